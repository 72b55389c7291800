"""What a call costs, in US dollars.

Catalog price overrides win over genai-prices (whose bundled data lags retirements and price
changes). Local calls cost 0 unless the user sets `local_cost_per_hour_usd`. An unknown price
is None — shown as "price unknown" — never 0.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

from .config import Config


class Pricing:
    def __init__(self, config: Config) -> None:
        self.config = config

    def cost(
        self,
        ref: str,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        seconds: float | None = None,
        when: datetime | None = None,
        batch: bool = False,
    ) -> float | None:
        """`batch`: the price of a provider batch (`runner batch --deferred`), about half."""
        provider, model = self._split(ref)
        if provider is None:
            return None
        if input_tokens is None or output_tokens is None:
            return None
        override = self.config.model_info(ref).price
        if override is not None:
            input_rate, output_rate, cache_rate = override.rates(batch)
            uncached = max(0, input_tokens - cache_read_tokens)
            return (uncached * input_rate + cache_read_tokens * cache_rate + output_tokens * output_rate) / 1e6
        if provider.local:
            rate = self.config.settings.local_cost_per_hour_usd
            return rate * (seconds or 0.0) / 3600.0 if rate else 0.0
        if not provider.prices_id:
            return None
        return _genai_price(provider.prices_id, model, input_tokens, output_tokens, cache_read_tokens,
                            cache_write_tokens, cache_write_1h_tokens, when, batch)

    def estimate(self, ref: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float | None:
        """Upper-bound estimate before a call (the router's max_cost check)."""
        provider, _ = self._split(ref)
        if provider is not None and provider.local and self.config.model_info(ref).price is None:
            return 0.0  # time-based local cost is unknown before the call, and small
        return self.cost(ref, input_tokens, output_tokens, batch=batch)

    def _split(self, ref: str):
        name, _, model = ref.partition("/")
        return self.config.providers.get(name), model


@lru_cache(maxsize=4096)
def _genai_price_cached(provider_id: str, model: str, inp: int, out: int, cache: int, write: int,
                        write_1h: int, minute: str, batch: bool = False) -> float | None:
    from genai_prices import Usage, calc_price  # heavy: load only when a price is needed

    when = datetime.fromisoformat(minute)
    try:
        result = calc_price(
            # Cache writes are dearer than plain input (Anthropic: 1.25x for 5 minutes, 2x for an
            # hour); the database knows the rates.
            Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cache or None,
                  cache_write_tokens=write or None,
                  cache_write_5m_tokens=(write - write_1h) if write_1h else None,
                  cache_write_1h_tokens=write_1h or None),
            model,
            provider_id=provider_id,
            genai_request_timestamp=when,
            price_context={"processing": "batch"} if batch else None,
        )
    except LookupError:  # unknown model or provider: the price is unknown, not zero
        return None
    return float(result.total_price)


def _genai_price(provider_id: str, model: str, inp: int, out: int, cache: int, write: int, write_1h: int,
                 when: datetime | None, batch: bool = False) -> float | None:
    when = when or datetime.now(timezone.utc)
    # Prices can depend on time of day (DeepSeek); a minute's resolution keeps the cache useful.
    minute = when.replace(second=0, microsecond=0).isoformat()
    return _genai_price_cached(provider_id, model, inp, out, cache, write, write_1h, minute, batch)
