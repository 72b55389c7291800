"""Which providers have a batch API, and the adapter that speaks it.

A provider is batch-capable when its catalog entry says `batch: true` and its protocol has a
batch API here: OpenAI's (every OpenAI-compatible provider that serves `/v1/batches`),
Anthropic's Message Batches, Gemini's batch mode. Each adapter has the same surface:

    line(custom_id, body) -> bytes       one request as a line of the job's input file
    submit(job, lines, label, save)      upload / create; job.input_file, job.job_id set and saved
    find(job, label, taken) -> bool      after a kill mid-submission: adopt the job if it exists
    poll(job) / cancel(job) -> JobStatus
    fetch(job, status, dest)             the job's results into a local JSONL file
    parse(line) -> (custom_id, RowResult)
"""

from __future__ import annotations

from typing import Any

import httpx

from ...errors import UserError
from .api import Api

PROTOCOLS = ("openai", "anthropic", "gemini")


def batch_capable(provider: Any) -> bool:
    return bool(getattr(provider, "batch", False)) and provider.protocol in PROTOCOLS and not provider.local


def timeout(settings: Any) -> httpx.Timeout:
    # Uploads of up to 200 MB and downloads of results files: generous writes and reads.
    return httpx.Timeout(connect=settings.connect_timeout_s, read=max(120.0, settings.first_token_timeout_s),
                         write=300.0, pool=60.0)


def adapter_for(provider: Any, settings: Any):
    """The batch adapter for a provider; a UserError when it has no batch API or no key."""
    if not batch_capable(provider):
        raise UserError(f"{provider.name} has no batch API that runner knows (set `batch: true` on an "
                        "OpenAI-compatible provider that serves /v1/batches)")
    key = provider.api_key()
    if provider.key_env and not key:
        raise UserError(f"no {provider.key_env}: cannot reach {provider.name}'s batch API")
    if provider.protocol == "openai":
        from .openai import OpenAIBatches

        headers = {"authorization": f"Bearer {key}"} if key else {}
        return OpenAIBatches(provider, Api(provider.name, provider.base_url, headers, [key], timeout(settings)))
    if provider.protocol == "anthropic":
        from .anthropic import AnthropicBatches, headers

        base = provider.base_url.rstrip("/").removesuffix("/v1")
        return AnthropicBatches(provider, Api(provider.name, base, headers(key), [key], timeout(settings)))
    from .gemini import GeminiBatches

    base = provider.base_url.rstrip("/").removesuffix("/v1beta")
    return GeminiBatches(provider, Api(provider.name, base, {"x-goog-api-key": key} if key else {}, [key],
                                       timeout(settings)))
