"""A budget is zero or more dollars."""

from __future__ import annotations

import pytest

from ..helpers import one_line_error

# --- budgets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_negative_max_cost_is_one_line(cli, value):
    r = cli("ask", "--max-cost", value, "--explain", "hi")
    one_line_error(r, "--max-cost must be zero or more US dollars")
