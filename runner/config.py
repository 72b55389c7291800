"""Load the model catalog, task profiles and user settings from YAML.

Shipped files live in the top-level `profiles/` folder (`catalog.yaml` plus one file per task).
A user's `$RUNNER_HOME/config.yaml` adds endpoints, models, price overrides and settings, and
`$RUNNER_HOME/profiles/*.yaml` add to or replace shipped profiles by name.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import options as generation
from .backends.registry import PROTOCOLS
from .errors import UserError
from .yamlfile import YamlDoc, load_yaml

MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
MIN_NUM_CTX = 512


@dataclass(frozen=True)
class Host:
    """One machine of a provider's pool (`ollama: {hosts: [...]}`, an endpoint's list of base_urls)."""

    url: str
    num_parallel: int | None = None  # None: the provider's (ollama.num_parallel, an endpoint's num_parallel)
    weight: float = 1.0  # a larger share of the calls, where slots allow

    @property
    def shown_url(self) -> str:
        from .redact import display_url

        return display_url(self.url)


@dataclass(frozen=True)
class Provider:
    name: str
    protocol: str
    base_url: str
    key_env: str | None = None
    local: bool = False
    prices_id: str | None = None  # genai-prices provider id
    max_tokens_field: str = "max_tokens"
    # Calls in flight at once; None: the default (Limits.ceiling). llama.cpp's server serves
    # one request and cuts the others, so a local endpoint defaults to 1.
    num_parallel: int | None = None
    # Serves a provider batch API (`runner batch --deferred`): OpenAI's /v1/batches for the openai
    # protocol, Message Batches for anthropic, batch mode for gemini.
    batch: bool = False
    # Several machines serving as one provider; empty: the one at base_url (base_url is the first).
    hosts: tuple[Host, ...] = ()

    @property
    def host_list(self) -> tuple[Host, ...]:
        """Its machines: the configured hosts, or the one at base_url."""
        return self.hosts or (Host(self.base_url),)

    def api_key(self) -> str | None:
        """The key from the environment, without the whitespace a CRLF .env or a paste leaves."""
        if not self.key_env:
            return None
        key = (os.environ.get(self.key_env) or "").strip()
        if not key:
            return None
        if not key.isascii():
            raise UserError(f"{self.key_env} contains a character that cannot be sent (non-ASCII); check the value")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
            raise UserError(f"{self.key_env} contains a character that cannot be sent (a control character); check the value")
        return key

    @property
    def shown_url(self) -> str:
        """The base URL fit to show: no credentials, no query."""
        from .redact import display_url

        return display_url(self.base_url)

    def usable_key(self) -> str | None:
        """The key, or None when it is unset or unusable (the router says which, and why)."""
        try:
            return self.api_key()
        except UserError:
            return None


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    # A provider batch's price (`runner batch --deferred`): its own rates, or a share of these.
    batch_input_per_mtok: float | None = None
    batch_output_per_mtok: float | None = None
    batch_discount: float | None = None  # e.g. 0.5: the batch costs half of every rate above

    def rates(self, batch: bool = False) -> tuple[float, float, float]:
        """(input, output, cache read) per million tokens; with `batch`, the batch price — the
        live one when the override gives no batch price."""
        cache = self.cache_read_per_mtok if self.cache_read_per_mtok is not None else self.input_per_mtok
        if not batch:
            return self.input_per_mtok, self.output_per_mtok, cache
        if self.batch_discount is not None:
            d = self.batch_discount
            return self.input_per_mtok * d, self.output_per_mtok * d, cache * d
        if self.batch_input_per_mtok is not None and self.batch_output_per_mtok is not None:
            share = self.batch_input_per_mtok / self.input_per_mtok if self.input_per_mtok else 1.0
            return self.batch_input_per_mtok, self.batch_output_per_mtok, cache * share
        return self.input_per_mtok, self.output_per_mtok, cache


@dataclass(frozen=True)
class ModelInfo:
    ref: str
    context: int | None = None
    price: Price | None = None
    tools: bool | None = None  # can it call tools (a request with tools goes only where true)


@dataclass(frozen=True)
class Candidate:
    model: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    candidates: tuple[Candidate, ...]
    privacy: str = "any"  # "any" | "local-only"
    max_cost_usd: float | None = None
    options: dict = field(default_factory=dict)
    system: str | None = None
    too_long: str = "fail"  # "split" | "fail"
    source: str = ""


@dataclass(frozen=True)
class Settings:
    default_task: str = "general"
    ollama_max_num_ctx: int | None = None  # the user's memory ceiling for num_ctx
    ollama_num_parallel: int = 1  # match the server's OLLAMA_NUM_PARALLEL
    ollama_keep_alive: str | None = None
    local_cost_per_hour_usd: float = 0.0  # electricity etc.; 0 means local calls are free
    retries: int = 2
    connect_timeout_s: float = 10.0
    first_token_timeout_s: float = 120.0
    total_timeout_s: float = 900.0
    hosted_concurrency: int = 8
    deferred_poll_s: float = 5.0  # runner batch --deferred: the first wait between polls of a job
    deferred_max_poll_s: float = 300.0  # … growing to this


@dataclass
class Config:
    home: Path
    providers: dict[str, Provider]
    models: dict[str, ModelInfo]
    profiles: dict[str, Profile]
    settings: Settings

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            near = difflib.get_close_matches(name, self.profiles, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            known = ", ".join(sorted(self.profiles))
            raise UserError(f"unknown task '{name}'{hint}; known tasks: {known}") from None

    def split_ref(self, ref: str) -> tuple[Provider, str]:
        """'provider/model' → (Provider, model). The model part may itself contain '/'."""
        provider_name, sep, model = ref.partition("/")
        if not sep or not model:
            raise UserError(f"model '{ref}' must be written provider/model, e.g. ollama/qwen2.5:7b")
        provider = self.providers.get(provider_name)
        if provider is None:
            known = ", ".join(sorted(self.providers))
            raise UserError(f"unknown provider '{provider_name}' in '{ref}'; known providers: {known}")
        return provider, model

    def model_info(self, ref: str) -> ModelInfo:
        return self.models.get(ref) or ModelInfo(ref)

    def is_local(self, ref: str | None) -> bool:
        """Does this provider/model run on the user's own machines? False for unknown refs."""
        if not ref:
            return False
        provider = self.providers.get(ref.partition("/")[0])
        return bool(provider and provider.local)


def runner_home() -> Path:
    env = os.environ.get("RUNNER_HOME")
    if env:
        return Path(env).expanduser()
    from typer import get_app_dir  # the platform's config folder (typer is loaded already)

    return Path(get_app_dir("runner"))


def shipped_profiles_dir() -> Path:
    here = Path(__file__).resolve().parent
    installed = here / "_profiles"  # where the wheel puts the top-level profiles/ folder
    return installed if installed.is_dir() else here.parent / "profiles"


def normalise_ollama_host(value: str) -> str:
    """OLLAMA_HOST may be 'host', 'host:port', '0.0.0.0' or a full URL (as the ollama CLI takes it)."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = "http://" + value
    scheme, _, rest = value.partition("://")
    hostport, slash, path = rest.partition("/")
    userinfo, at, hostport = hostport.rpartition("@")  # http://user:pw@host keeps its credentials
    if hostport.startswith("0.0.0.0"):
        hostport = hostport.replace("0.0.0.0", "127.0.0.1", 1)  # a bind address, not a place to connect
    if ":" not in hostport.rsplit("]", 1)[-1] and scheme == "http":
        hostport += ":11434"
    return f"{scheme}://{userinfo}{at}{hostport}{slash}{path}".rstrip("/")


# --- validation helpers -------------------------------------------------------------------


def _check_keys(doc: YamlDoc, path: tuple, data: dict, allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise doc.error(path + (key,), f"unknown key{hint}")


def _want(doc: YamlDoc, path: tuple, value: Any, kind: Any, what: str) -> Any:
    if kind in (int, (int, float)) and isinstance(value, bool):
        raise doc.error(path, f"must be {what}, not {value!r}")
    if not isinstance(value, kind):
        raise doc.error(path, f"must be {what}, not {value!r}")
    return value


def _number(doc: YamlDoc, path: tuple, value: Any, what: str, *, whole: bool = False,
            low: float | None = None, above: float | None = None) -> Any:
    """A number (a whole one if `whole`), at least `low` or more than `above`."""
    value = _want(doc, path, value, int if whole else (int, float), what)
    if value != value or value in (float("inf"), float("-inf")):  # .nan, .inf
        raise doc.error(path, f"must be {what}, not {value!r}")
    if (low is not None and value < low) or (above is not None and value <= above):
        raise doc.error(path, f"must be {what}, not {value!r}")
    return value


def _text(doc: YamlDoc, path: tuple, value: Any, what: str = "text") -> str:
    if not isinstance(value, str) or not value.strip():
        raise doc.error(path, f"must be {what}, not {value!r}")
    return value


def _options(doc: YamlDoc, path: tuple, data: Any) -> dict:
    data = _want(doc, path, data or {}, dict, "a mapping")
    _check_keys(doc, path, data, set(generation.SPEC))
    for key, value in data.items():
        why = generation.problem(key, value)
        if why:
            raise doc.error(path + (key,), why)
    return dict(data)


def _price(doc: YamlDoc, path: tuple, data: Any) -> Price:
    data = _want(doc, path, data, dict, "a mapping")
    batch_keys = ("batch_input_per_mtok", "batch_output_per_mtok")
    _check_keys(doc, path, data, {"input_per_mtok", "output_per_mtok", "cache_read_per_mtok", *batch_keys,
                                  "batch_discount"})
    for key in ("input_per_mtok", "output_per_mtok"):
        if key not in data:
            raise doc.error(path, f"needs {key} (USD per million tokens)")
        _number(doc, path + (key,), data[key], "a number of US dollars, 0 or more", low=0)
    optional: dict[str, float | None] = {}
    for key in ("cache_read_per_mtok", *batch_keys):
        if data.get(key) is not None:
            _number(doc, path + (key,), data[key], "a number of US dollars, 0 or more", low=0)
        optional[key] = None if data.get(key) is None else float(data[key])
    given = [k for k in batch_keys if optional[k] is not None]
    if len(given) == 1:
        missing = next(k for k in batch_keys if k not in given)
        raise doc.error(path + (given[0],), f"needs {missing} too (a batch price has both rates)")
    discount = data.get("batch_discount")
    if discount is not None:
        _number(doc, path + ("batch_discount",), discount, "a share of the price, more than 0 and at most 1", above=0)
        if discount > 1:
            raise doc.error(path + ("batch_discount",), f"must be a share of the price, more than 0 and at most 1, "
                                                         f"not {discount!r}")
        if given:
            raise doc.error(path + ("batch_discount",), "give either batch_discount or the batch rates, not both")
    return Price(float(data["input_per_mtok"]), float(data["output_per_mtok"]), optional["cache_read_per_mtok"],
                 optional["batch_input_per_mtok"], optional["batch_output_per_mtok"],
                 None if discount is None else float(discount))


def _models(doc: YamlDoc, data: Any, into: dict[str, ModelInfo], providers: dict[str, Provider]) -> None:
    data = _want(doc, ("models",), data or {}, dict, "a mapping of provider/model to settings")
    for ref, spec in data.items():
        path = ("models", ref)
        provider_name, sep, model = str(ref).partition("/")
        if not sep or not provider_name or not model:
            raise doc.error(path, "a model must be written provider/model")
        _known_provider(doc, path, provider_name, providers)
        spec = _want(doc, path, spec or {}, dict, "a mapping")
        _check_keys(doc, path, spec, {"context", "price", "tools"})
        old = into.get(ref, ModelInfo(ref))
        context = spec.get("context", old.context)
        if context is not None:
            _number(doc, path + ("context",), context, "a whole number of tokens, 1 or more", whole=True, low=1)
        price = _price(doc, path + ("price",), spec["price"]) if spec.get("price") is not None else old.price
        tools = spec.get("tools", old.tools)
        if tools is not None and not isinstance(tools, bool):
            raise doc.error(path + ("tools",), f"must be true or false, not {tools!r}")
        into[ref] = ModelInfo(ref, context, price, tools)


def _known_provider(doc: YamlDoc, path: tuple, name: str, providers: dict[str, Provider]) -> None:
    if name not in providers:
        near = difflib.get_close_matches(name, providers, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise doc.error(path, f"unknown provider '{name}'{hint}; known providers: {', '.join(sorted(providers))}")


def _providers(doc: YamlDoc, section: str, data: Any, into: dict[str, Provider], default_protocol: str | None) -> None:
    data = _want(doc, (section,), data or {}, dict, "a mapping of names to settings")
    allowed = {"protocol", "base_url", "key_env", "local", "prices_id", "max_tokens_field", "base_url_env", "num_parallel",
               "batch"}
    for name, spec in data.items():
        path = (section, name)
        if "/" in str(name):
            raise doc.error(path, "a provider name cannot contain '/'")
        spec = _want(doc, path, spec or {}, dict, "a mapping")
        _check_keys(doc, path, spec, allowed)
        old = into.get(name)
        protocol = spec.get("protocol", old.protocol if old else default_protocol)
        if protocol not in PROTOCOLS:
            raise doc.error(path + ("protocol",), f"must be one of {', '.join(PROTOCOLS)}")
        for key in ("key_env", "base_url_env", "prices_id"):
            if spec.get(key) is not None:
                _text(doc, path + (key,), spec[key])
        hosts = old.hosts if old and "base_url" not in spec else ()
        if isinstance(spec.get("base_url"), list):  # several machines as one provider
            hosts = _hosts(doc, path + ("base_url",), spec["base_url"], protocol)
            base_url = hosts[0].url
        else:
            if spec.get("base_url") is not None:
                _text(doc, path + ("base_url",), spec["base_url"])
            base_url = spec.get("base_url", old.base_url if old else None)
        if not base_url:
            raise doc.error(path, "needs base_url")
        if protocol == "ollama":
            base_url = normalise_ollama_host(base_url)
        _check_url(base_url, lambda message: doc.error(path + ("base_url",), message))
        env_name = spec.get("base_url_env")
        if env_name and os.environ.get(env_name, "").strip():
            base_url = os.environ[env_name].strip()
            if protocol == "ollama":
                base_url = normalise_ollama_host(base_url)
            _check_url(base_url, lambda message, env=env_name: UserError(f"{env}: {message}"))
            hosts = ()  # the environment names one host
        local = spec.get("local", old.local if old else protocol == "ollama")
        if not isinstance(local, bool):
            raise doc.error(path + ("local",), f"must be true or false, not {local!r}")
        num_parallel = spec.get("num_parallel", old.num_parallel if old else None)
        if num_parallel is not None:
            _number(doc, path + ("num_parallel",), num_parallel, "a whole number, 1 or more", whole=True, low=1)
        batch = spec.get("batch", old.batch if old else False)
        if not isinstance(batch, bool):
            raise doc.error(path + ("batch",), f"must be true or false, not {batch!r}")
        if batch and (protocol == "ollama" or local):
            raise doc.error(path + ("batch",), "a local server has no provider batch API; leave batch out")
        field_name = spec.get("max_tokens_field", old.max_tokens_field if old else "max_tokens")
        if field_name not in MAX_TOKENS_FIELDS:
            raise doc.error(path + ("max_tokens_field",), f"must be {' or '.join(MAX_TOKENS_FIELDS)}, not {field_name!r}")
        into[name] = Provider(
            name=name,
            protocol=protocol,
            base_url=str(base_url).rstrip("/"),
            key_env=spec.get("key_env", old.key_env if old else None),
            local=local,
            prices_id=spec.get("prices_id", old.prices_id if old else None),
            max_tokens_field=field_name,
            num_parallel=num_parallel,
            batch=batch,
            hosts=hosts,
        )


HOST_KEYS = {"url", "num_parallel", "weight"}


def _hosts(doc: YamlDoc, path: tuple, items: Any, protocol: str) -> tuple[Host, ...]:
    """A list of hosts: each a URL, or {url, num_parallel, weight}."""
    items = _want(doc, path, items, list, "a list of URLs or of {url, num_parallel, weight}")
    if not items:
        raise doc.error(path, "needs at least one host")
    hosts: list[Host] = []
    for i, item in enumerate(items):
        where = path + (i,)
        if isinstance(item, str):
            item = {"url": item}
        item = _want(doc, where, item, dict, "a URL or a mapping with url, num_parallel and weight")
        _check_keys(doc, where, item, HOST_KEYS)
        if "url" not in item:
            raise doc.error(where, "needs url")
        url = _text(doc, where + ("url",), item["url"], "a URL").strip().rstrip("/")
        if protocol == "ollama":
            url = normalise_ollama_host(url)
        _check_url(url, lambda message: doc.error(where + ("url",), message))
        num_parallel = item.get("num_parallel")
        if num_parallel is not None:
            _number(doc, where + ("num_parallel",), num_parallel, "a whole number, 1 or more", whole=True, low=1)
        weight = _number(doc, where + ("weight",), item.get("weight", 1), "a number more than 0", above=0)
        twin = next((j for j, h in enumerate(hosts) if h.url == url), None)
        if twin is not None:  # the message never repeats the URL: it may hold a password
            raise doc.error(where, f"the same host is listed twice (items {twin + 1} and {i + 1})")
        hosts.append(Host(url, num_parallel, float(weight)))
    return tuple(hosts)


def _check_url(url: str, error) -> None:
    """An http(s) URL with a host, or `error(message)` is raised. The message never repeats
    the URL: it may hold a password."""
    import httpx

    what = "must be an http(s) URL like https://api.example.com/v1"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise error(f"{what}; this one cannot be parsed") from None
    if "://" not in url:
        raise error(f"{what} (it has no http:// or https://)")
    if parsed.scheme not in ("http", "https"):
        raise error(f"{what}, not {parsed.scheme}://")
    if any(c.isspace() for c in url):
        raise error(f"{what} (it contains a space)")
    if not parsed.host:
        raise error(f"{what} (it has no host)")


def _settings(doc: YamlDoc, data: Any) -> Settings:
    data = _want(doc, (), data or {}, dict, "a mapping")
    s = Settings()
    values: dict[str, Any] = {}
    if "default_task" in data:
        values["default_task"] = _text(doc, ("default_task",), data["default_task"])
    if "retries" in data:
        values["retries"] = _number(doc, ("retries",), data["retries"], "a whole number, 0 or more", whole=True, low=0)
    if "hosted_concurrency" in data:
        values["hosted_concurrency"] = _number(doc, ("hosted_concurrency",), data["hosted_concurrency"],
                                               "a whole number, 1 or more", whole=True, low=1)
    if "local_cost_per_hour_usd" in data:
        values["local_cost_per_hour_usd"] = _number(doc, ("local_cost_per_hour_usd",), data["local_cost_per_hour_usd"],
                                                    "a number of US dollars, 0 or more", low=0)
    timeouts = data.get("timeouts") or {}
    _want(doc, ("timeouts",), timeouts, dict, "a mapping")
    _check_keys(doc, ("timeouts",), timeouts, {"connect_s", "first_token_s", "total_s"})
    for key in ("connect_s", "first_token_s", "total_s"):
        if key in timeouts:
            values[key.replace("_s", "_timeout_s")] = float(
                _number(doc, ("timeouts", key), timeouts[key], "a number of seconds, more than 0", above=0))
    ollama = data.get("ollama") or {}
    _want(doc, ("ollama",), ollama, dict, "a mapping")
    _check_keys(doc, ("ollama",), ollama, {"max_num_ctx", "num_parallel", "keep_alive", "hosts"})
    if "max_num_ctx" in ollama:
        values["ollama_max_num_ctx"] = _number(doc, ("ollama", "max_num_ctx"), ollama["max_num_ctx"],
                                               f"a whole number of tokens, {MIN_NUM_CTX} or more", whole=True, low=MIN_NUM_CTX)
    if "num_parallel" in ollama:
        values["ollama_num_parallel"] = _number(doc, ("ollama", "num_parallel"), ollama["num_parallel"],
                                                "a whole number, 1 or more", whole=True, low=1)
    if "keep_alive" in ollama:
        values["ollama_keep_alive"] = str(ollama["keep_alive"])
    deferred = data.get("deferred") or {}
    _want(doc, ("deferred",), deferred, dict, "a mapping")
    _check_keys(doc, ("deferred",), deferred, {"poll_s", "max_poll_s"})
    for key in ("poll_s", "max_poll_s"):
        if key in deferred:
            values[f"deferred_{key}"] = float(_number(doc, ("deferred", key), deferred[key],
                                                      "a number of seconds, more than 0", above=0))
    if values.get("deferred_max_poll_s", s.deferred_max_poll_s) < values.get("deferred_poll_s", s.deferred_poll_s):
        raise doc.error(("deferred", "max_poll_s"), "must be at least poll_s")
    return Settings(**{**s.__dict__, **values})


def _profile(doc: YamlDoc, providers: dict[str, Provider]) -> Profile:
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "a profile must be a mapping with name, description and candidates")
    allowed = {"name", "description", "privacy", "max_cost_usd", "candidates", "options", "system", "too_long"}
    _check_keys(doc, (), data, allowed)
    for key in ("name", "candidates"):
        if key not in data:
            raise doc.error((), f"missing required key '{key}'")
    name = _want(doc, ("name",), data["name"], str, "text")
    stem = Path(doc.path).stem
    if name != stem:
        # `--task NAME` finds the profile by its name; a file named otherwise hides it.
        raise doc.error(("name",), f"'{name}' differs from the file name; name the file {name}.yaml "
                                   f"or write name: {stem}")
    privacy = data.get("privacy", "any")
    if privacy not in ("any", "local-only"):
        raise doc.error(("privacy",), "must be 'any' or 'local-only'")
    max_cost = data.get("max_cost_usd")
    if max_cost is not None:
        _number(doc, ("max_cost_usd",), max_cost, "a number of US dollars, 0 or more", low=0)
    too_long = data.get("too_long", "fail")
    if too_long not in ("split", "fail"):
        raise doc.error(("too_long",), "must be 'split' or 'fail'")
    cands = _want(doc, ("candidates",), data["candidates"], list, "a list of {model: provider/model}")
    if not cands:
        raise doc.error(("candidates",), "needs at least one candidate")
    candidates = []
    for i, cand in enumerate(cands):
        path = ("candidates", i)
        if isinstance(cand, str):
            cand = {"model": cand}
        cand = _want(doc, path, cand, dict, "a mapping with 'model'")
        _check_keys(doc, path, cand, {"model", "options"})
        model = cand.get("model")
        if not isinstance(model, str) or "/" not in model:
            raise doc.error(path + ("model",), "must be provider/model, e.g. ollama/qwen2.5:7b")
        _known_provider(doc, path + ("model",), model.partition("/")[0], providers)
        candidates.append(Candidate(model, _options(doc, path + ("options",), cand.get("options"))))
    system = data.get("system")
    if system is not None:
        _want(doc, ("system",), system, str, "text")
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        candidates=tuple(candidates),
        privacy=privacy,
        max_cost_usd=None if max_cost is None else float(max_cost),
        options=_options(doc, ("options",), data.get("options")),
        system=system,
        too_long=too_long,
        source=str(doc.path),
    )


def _load_profiles(folder: Path, into: dict[str, Profile], providers: dict[str, Provider], skip: set[str]) -> None:
    if not folder.is_dir():
        return
    mine: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        if path.name in skip:
            continue
        if path.stem in mine:  # x.yaml and x.yml: which one wins would be a guess
            raise UserError(f"two profiles named '{path.stem}': {mine[path.stem]} and {path}; remove one")
        profile = _profile(load_yaml(path), providers)
        mine[profile.name] = path
        into[profile.name] = profile


def load_config(home: Path | None = None) -> Config:
    home = home or runner_home()
    shipped = shipped_profiles_dir()
    providers: dict[str, Provider] = {}
    models: dict[str, ModelInfo] = {}

    catalog = load_yaml(shipped / "catalog.yaml")
    if not isinstance(catalog.data, dict):
        raise catalog.error((), "the catalog must be a mapping")
    _providers(catalog, "providers", catalog.data.get("providers"), providers, None)
    _models(catalog, catalog.data.get("models"), models, providers)

    settings = Settings()
    user_file = home / "config.yaml"
    user = None
    if user_file.exists() and not user_file.is_file():
        raise UserError(f"{user_file} is not a file; move it away or make it a YAML file")
    if user_file.is_file():
        user = load_yaml(user_file)
        data = user.data or {}
        if not isinstance(data, dict):
            raise user.error((), "must be a mapping")
        _check_keys(user, (), data, {"endpoints", "providers", "models", "ollama", "timeouts", "default_task", "retries", "hosted_concurrency", "local_cost_per_hour_usd", "deferred"})
        _providers(user, "providers", data.get("providers"), providers, None)
        _providers(user, "endpoints", data.get("endpoints"), providers, "openai")
        _models(user, data.get("models"), models, providers)
        settings = _settings(user, {k: v for k, v in data.items() if k not in ("endpoints", "providers", "models")})
        hosts = (data.get("ollama") or {}).get("hosts")
        if hosts is not None and "ollama" in providers:  # wins over OLLAMA_HOST: that names one host
            hosts = _hosts(user, ("ollama", "hosts"), hosts, "ollama")
            providers["ollama"] = replace(providers["ollama"], base_url=hosts[0].url, hosts=hosts)

    profiles: dict[str, Profile] = {}
    _load_profiles(shipped, profiles, providers, skip={"catalog.yaml"})
    _load_profiles(home / "profiles", profiles, providers, skip=set())
    config = Config(home=home, providers=providers, models=models, profiles=profiles, settings=settings)
    if user is not None and settings.default_task not in profiles:
        try:
            config.profile(settings.default_task)
        except UserError as exc:  # the same words as --task, at the line that set it
            raise user.error(("default_task",), str(exc)) from None
    return config
