"""What a client's `model` means, and the model list a client's menu shows.

- a task name (`coding`, `long-doc`, or `task/coding`; an Ollama client's `coding:latest` too)
  routes by that task's profile;
- `provider/model` (`ollama/qwen2.5:7b`, `anthropic/claude-sonnet-4-6`) goes to that model, with
  the default task's options, system prompt and privacy (as `runner ask --model` does);
- anything else is a 404 that lists the tasks.

The list (`/v1/models`, `/api/tags`) has the tasks first, so a UI's model menu shows "coding",
"long-doc"…, then the models available now: the pulled models of each reachable Ollama server,
the catalog's models of each hosted provider whose key is set, and those of key-less endpoints.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..availability import Availability
from ..config import Config
from .errors import ApiError

TASK_PREFIX = "task/"


@dataclass(frozen=True)
class Target:
    name: str  # as the client wrote it
    task: str
    model: str | None = None  # provider/model; None routes by the task


@dataclass(frozen=True)
class Listed:
    id: str
    kind: str  # "task" | "model"
    owned_by: str  # "runner" for a task, else the provider
    description: str = ""
    context: int | None = None  # the largest window behind it, where known
    tools: bool | None = None  # can it call tools (for a task: can any candidate)
    local: bool = False


def task_names(config: Config) -> list[str]:
    """The tasks, the default one first."""
    default = config.settings.default_task
    return sorted(config.profiles, key=lambda n: (n != default, n))


def resolve(name: str, config: Config, pulled: tuple[str, ...] = ()) -> Target:
    """The Target a client's `model` names, or an ApiError 404 that lists the tasks.
    `pulled`: provider/model refs available now, for a "did you mean" hint."""
    wanted = name.strip()
    bare = wanted.removesuffix(":latest")
    task = bare[len(TASK_PREFIX):] if bare.startswith(TASK_PREFIX) else bare
    if task in config.profiles:
        return Target(name, task)
    if not bare.startswith(TASK_PREFIX) and "/" in wanted:
        provider, _, model = wanted.partition("/")
        if provider in config.providers and model:
            return Target(name, config.settings.default_task, wanted)
    tasks = ", ".join(task_names(config))
    hint = ""
    near = [ref for ref in pulled if ref.partition("/")[2] in (wanted, bare, f"{bare}:latest")]
    if near:
        hint = f" (did you mean '{near[0]}'?)"
    else:
        close = difflib.get_close_matches(task, list(config.profiles), n=1)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
    raise ApiError(404, f"unknown model '{name}'{hint}: name a task ({tasks}) or a provider/model "
                        "such as ollama/qwen2.5:7b", code="model_not_found", param="model")


def ollama_refs(config: Config) -> list[str]:
    """One ref per Ollama provider: what `gather_availability` needs to probe them all."""
    return [f"{name}/" for name, p in config.providers.items() if p.protocol == "ollama"]


def model_facts(ref: str, config: Config, availability: Availability) -> tuple[bool, int | None, bool | None]:
    """(available now, context window, tools) of one provider/model."""
    provider_name, _, model = ref.partition("/")
    provider = config.providers.get(provider_name)
    if provider is None:
        return False, None, None
    if provider.protocol == "ollama":
        status = availability.ollama.get(provider_name)
        if status is None or not status.reachable:
            return False, None, None
        local = status.models.get(model) or status.models.get(model if ":" in model else f"{model}:latest")
        if local is None:
            return False, None, None
        tools = ("tools" in local.capabilities) if local.capabilities else None
        return True, local.context_length, tools
    info = config.model_info(ref)
    up = not provider.key_env or provider_name in availability.keys
    return up, info.context, getattr(info, "tools", None)


def listing(config: Config, availability: Availability) -> list[Listed]:
    out: list[Listed] = []
    for name in task_names(config):
        profile = config.profiles[name]
        contexts, tools = [], []
        for cand in profile.candidates:
            up, context, can = model_facts(cand.model, config, availability)
            if up:
                contexts.append(context or 0)
                tools.append(bool(can))
        out.append(Listed(name, "task", "runner", profile.description, max(contexts) or None if contexts else None,
                          any(tools) if tools else None, profile.privacy == "local-only"))
    for provider_name, provider in config.providers.items():
        if provider.protocol == "ollama":
            status = availability.ollama.get(provider_name)
            refs = [f"{provider_name}/{m}" for m in status.models] if status and status.reachable else []
        else:
            refs = [ref for ref in config.models if ref.partition("/")[0] == provider_name]
        for ref in refs:
            up, context, tools = model_facts(ref, config, availability)
            if up:
                out.append(Listed(ref, "model", provider_name, "", context, tools, provider.local))
    return out


def pulled_refs(config: Config, availability: Availability) -> tuple[str, ...]:
    return tuple(f"{name}/{m}" for name, st in availability.ollama.items() if st.reachable for m in st.models)
