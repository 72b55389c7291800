"""A routed row as a provider batch request: the same body a live call would send, not streamed."""

from __future__ import annotations

from typing import Any

from ...execute import call_for
from ...request import Prepared
from .protocols import batch_capable

STREAM_KEYS = ("stream", "stream_options")


def deferrable(config: Any, prepared: Prepared | None) -> bool:
    """Does this row go to a provider batch? Its first model's provider must have a batch API;
    a long document that has to be split, or a row with no route, runs live."""
    if prepared is None or prepared.split is not None or not prepared.plan.attempts:
        return False
    provider = config.providers.get(prepared.plan.attempts[0].provider)
    return provider is not None and batch_capable(provider)


def request_body(session: Any, prepared: Prepared) -> dict[str, Any]:
    """The first attempt's request body, exactly as the backend builds it, minus streaming."""
    attempt = prepared.plan.attempts[0]
    call = call_for(attempt, prepared.messages, prepared.system, est_input_tokens=attempt.est_input_tokens)
    body = session.pool.get(attempt.provider).request_body(call)
    for key in STREAM_KEYS:
        body.pop(key, None)
    return body


def output_tokens(prepared: Prepared) -> int:
    attempt = prepared.plan.attempts[0]
    return int(attempt.options.get("max_output_tokens") or prepared.need.output_tokens)


def input_tokens(prepared: Prepared) -> int:
    attempt = prepared.plan.attempts[0]
    return attempt.est_input_tokens if attempt.est_input_tokens is not None else prepared.need.input_tokens
