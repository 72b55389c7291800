"""The one asyncio helper the core shares."""

from __future__ import annotations

import asyncio
from typing import Any


async def maybe_await(value: Any) -> None:
    """Callbacks may be plain functions or coroutines: await what they returned, if anything."""
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        await value
