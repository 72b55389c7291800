"""Pricing a whole job's rows fast: genai-prices takes ~130 µs a call, too slow for 100,000 rows.

A price is linear in each kind of token up to a prompt-size tier (e.g. "over 200K input
tokens"). `RowPricer` asks `Pricing.cost` — the one source of truth — for the price of 1,000
tokens of each kind once, checks the line it draws against an exact price at a probe point, and
then prices rows below the tier threshold by arithmetic; larger rows, or a model whose price is
not linear, are priced exactly, row by row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...pricing import Pricing

LINEAR_BELOW = 100_000  # input tokens; tiers start at 128K or later
UNIT = 1000
TOLERANCE = 1e-9


class RowPricer:
    def __init__(self, pricing: Pricing, ref: str, *, batch: bool, when: datetime | None = None) -> None:
        self.pricing, self.ref, self.batch, self.when = pricing, ref, batch, when
        self.rates: tuple[float, float, float, float, float] | None = None
        self.unknown = False
        self._fit()

    def _exact(self, inp: int, out: int, read: int = 0, write: int = 0, write_1h: int = 0) -> float | None:
        return self.pricing.cost(self.ref, inp, out, cache_read_tokens=read, cache_write_tokens=write,
                                 cache_write_1h_tokens=write_1h, when=self.when, batch=self.batch)

    def _fit(self) -> None:
        base = [self._exact(UNIT, 0), self._exact(0, UNIT), self._exact(UNIT, 0, read=UNIT),
                self._exact(UNIT, 0, write=UNIT), self._exact(UNIT, 0, write=UNIT, write_1h=UNIT)]
        if None in base:
            self.unknown = base[0] is None
            return
        rates = tuple(b / UNIT for b in base)  # input, output, cached input, 5m write, 1h write
        probe = (61_234, 3_457, 20_011, 9_001, 4_003)
        exact = self._exact(*probe)
        if exact is not None and abs(self._linear(rates, *probe) - exact) <= TOLERANCE * max(1.0, exact):
            self.rates = rates

    @staticmethod
    def _linear(rates: tuple[float, ...], inp: int, out: int, read: int, write: int, write_1h: int) -> float:
        a, b, c, d, e = rates
        plain = max(0, inp - read - write)
        return plain * a + out * b + read * c + (write - write_1h) * d + write_1h * e

    def cost(self, usage: Any) -> float | None:
        """The price of one row's usage (a backends.Usage); None when it cannot be known."""
        inp, out = usage.input_tokens, usage.output_tokens
        if inp is None or out is None or self.unknown:
            return None
        read, write, write_1h = usage.cache_read_tokens or 0, usage.cache_write_tokens or 0, usage.cache_write_1h_tokens or 0
        if self.rates is not None and inp < LINEAR_BELOW:
            return self._linear(self.rates, inp, out, read, write, write_1h)
        return self._exact(inp, out, read, write, write_1h)

    def estimate(self, input_tokens: int, output_tokens: int) -> float | None:
        if self.unknown:
            return None
        if self.rates is not None and input_tokens < LINEAR_BELOW:
            return input_tokens * self.rates[0] + output_tokens * self.rates[1]
        return self._exact(input_tokens, output_tokens)
