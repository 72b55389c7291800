"""Our usage mapping agrees with genai-prices' own extractors where those are right, and differs
only where they are wrong (DeepSeek's cache hits, xAI's reasoning tokens). The vendors' payloads
are in their documented shapes."""

from __future__ import annotations

import genai_prices
import pytest

from runner.backends.gemini import _usage as gemini_usage
from runner.backends.openai import _usage as openai_usage


def extracted(payload: dict, provider: str, flavor: str = "default"):
    return genai_prices.extract_usage(payload, provider_id=provider, api_flavor=flavor).usage


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": 1200, "completion_tokens": 80},
    {"prompt_tokens": 1200, "completion_tokens": 80, "prompt_tokens_details": {"cached_tokens": 1024}},
    {"prompt_tokens": 1200, "completion_tokens": 80,
     "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1100},
     "completion_tokens_details": {"reasoning_tokens": 40}},
])
def test_openai_usage_matches_genai_prices(usage):
    ours = openai_usage(usage)
    theirs = extracted({"model": "gpt-4.1", "usage": usage}, "openai", "chat")
    assert ours.input_tokens == theirs.input_tokens and ours.output_tokens == theirs.output_tokens
    assert ours.cache_read_tokens == (theirs.cache_read_tokens or 0)
    assert ours.cache_write_tokens == (theirs.cache_write_tokens or 0)


def test_gemini_usage_matches_genai_prices():
    meta = {"promptTokenCount": 900, "candidatesTokenCount": 120, "thoughtsTokenCount": 30,
            "cachedContentTokenCount": 256}
    ours = gemini_usage(meta)
    theirs = extracted({"modelVersion": "gemini-2.5-pro", "usageMetadata": meta}, "google")
    assert (ours.input_tokens, ours.output_tokens, ours.cache_read_tokens) == (
        theirs.input_tokens, theirs.output_tokens, theirs.cache_read_tokens)


def test_deepseek_cache_hits_are_counted_where_the_extractor_misses_them():
    usage = {"prompt_tokens": 1000, "completion_tokens": 50, "prompt_cache_hit_tokens": 640,
             "prompt_cache_miss_tokens": 360}
    assert openai_usage(usage).cache_read_tokens == 640
    theirs = extracted({"model": "deepseek-chat", "usage": usage}, "deepseek", "chat")
    assert not theirs.cache_read_tokens  # why runner keeps its own mapping for DeepSeek


def test_xai_reasoning_outside_completion_tokens_is_billed_output():
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 170,
             "completion_tokens_details": {"reasoning_tokens": 50}}
    assert openai_usage(usage).output_tokens == 70
    assert extracted({"model": "grok-4", "usage": usage}, "x-ai").output_tokens == 20  # the extractor misses it
