"""pytest plugin: function-scoped, started fake servers. Register with
``pytest_plugins = ["tests.fakes.fixtures"]`` in tests/conftest.py."""

from __future__ import annotations

from typing import Iterator

import pytest

from .anthropic import FakeAnthropic
from .gemini import FakeGemini
from .ollama import FakeOllama, default_models
from .openai import FakeOpenAI

OPENAI_MODELS = {"gpt-4.1": 1_047_576, "gpt-4.1-mini": 1_047_576, "o3": 200_000, "o4-mini": 200_000}
OPENAI_REASONING = {
    "o3": "The user wants a short answer. I will check the request and reply briefly.",
    "o4-mini": "Short question, short reasoning. Reply now.",
}
DEEPSEEK_MODELS = {"deepseek-flash": 1_000_000, "deepseek-v4-pro": 1_000_000}
DEEPSEEK_REASONING = {
    "deepseek-v4-pro": "Okay, the user asks something. Let me read the prompt carefully and then answer it.",
}
XAI_MODELS = {"grok-4.3": 1_000_000}
MISTRAL_MODELS = {"mistral-large-latest": 128_000, "mistral-small-latest": 128_000}
ANTHROPIC_MODELS = {"claude-sonnet-4-5": 200_000, "claude-sonnet-4-6": 1_000_000, "claude-haiku-4-5": 200_000}
GEMINI_MODELS = {"gemini-2.5-pro": 1_048_576, "gemini-2.5-flash": 1_048_576}
GEMINI_THINKING = {
    "gemini-2.5-pro": "**Reading the request** I am looking at what the user asked and planning a reply.",
    "gemini-2.5-flash": "**Answering** A quick look at the request.",
}


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama(default_models()) as server:
        yield server


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(OPENAI_MODELS, reasoning=OPENAI_REASONING) as server:
        yield server


@pytest.fixture
def fake_deepseek() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(DEEPSEEK_MODELS, flavor="deepseek", reasoning=DEEPSEEK_REASONING) as server:
        yield server


@pytest.fixture
def fake_xai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(XAI_MODELS) as server:
        yield server


@pytest.fixture
def fake_mistral() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(MISTRAL_MODELS, flavor="mistral") as server:
        yield server


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(ANTHROPIC_MODELS) as server:
        yield server


@pytest.fixture
def fake_gemini() -> Iterator[FakeGemini]:
    with FakeGemini(GEMINI_MODELS, thinking=GEMINI_THINKING) as server:
        yield server


# --- provider batch APIs (runner batch --deferred) ---------------------------------------------


@pytest.fixture
def fake_openai_batch():
    from .batch_openai import FakeOpenAIBatch

    with FakeOpenAIBatch(OPENAI_MODELS, reasoning=OPENAI_REASONING) as server:
        yield server


@pytest.fixture
def fake_anthropic_batch():
    from .batch_anthropic import FakeAnthropicBatch

    with FakeAnthropicBatch(ANTHROPIC_MODELS) as server:
        yield server


@pytest.fixture
def fake_gemini_batch():
    from .batch_gemini import FakeGeminiBatch

    with FakeGeminiBatch(GEMINI_MODELS, thinking=GEMINI_THINKING) as server:
        yield server
