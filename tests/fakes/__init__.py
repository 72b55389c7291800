"""Loopback fake servers speaking the backends' real wire protocols (see tests/fakes/fixtures.py)."""

from .anthropic import FakeAnthropic
from .gemini import FakeGemini
from .ollama import FakeModel, FakeOllama
from .openai import FakeOpenAI
from .server import ABORT, DROP, NGINX_502, Fault, FakeServer, Recorded, Reply, StreamReply, nginx_502
from .tokens import MESSAGE_OVERHEAD, count_tokens, default_reply, message_tokens

__all__ = [
    "ABORT",
    "DROP",
    "MESSAGE_OVERHEAD",
    "NGINX_502",
    "FakeAnthropic",
    "FakeGemini",
    "FakeModel",
    "FakeOllama",
    "FakeOpenAI",
    "FakeServer",
    "Fault",
    "Recorded",
    "Reply",
    "StreamReply",
    "count_tokens",
    "default_reply",
    "message_tokens",
    "nginx_502",
]
