"""`runner models` and `runner profiles`: what is available right now, and why not."""

from __future__ import annotations

import typer

from .common import Command, guard, run
from .options import AsJson


def register(app: typer.Typer) -> None:
    app.command(cls=Command, help="List models: pulled Ollama models and the hosted catalog, each ready or why not.")(models)
    app.command(cls=Command, help="List task profiles and their candidate models.")(profiles)


def models(as_json: AsJson = False) -> None:
    run(_models(as_json))


async def _models(as_json: bool) -> None:
    from ..availability import gather_availability
    from ..config import load_config
    from ..limits import Limits
    from ..pricing import Pricing
    from ..render import err, out, print_json
    from ..render.fit import Alt, Col, fit_table
    from ..tokens import fmt_tokens

    config = load_config()
    pricing = Pricing(config)
    limits = Limits(config)
    ollama_refs = [f"{name}/x" for name, p in config.providers.items() if p.protocol == "ollama"]
    avail = await gather_availability(config, ollama_refs, fresh_s=0)  # what is there right now
    from ..redact import display_url, host_label

    rows = []
    for name, status in avail.ollama.items():
        ceiling = config.settings.ollama_max_num_ctx
        hosts = status.hosts or (status,)  # a pool lists each host
        for model, info in sorted(status.models.items()):
            ctx = info.context_length
            having = [display_url(h.host) for h in hosts if h.reachable and model in h.models]
            where = f"pulled on {', '.join(host_label(h) for h in having)}" if len(hosts) > 1 else "pulled"
            rows.append({"model": f"{name}/{model}", "local": True, "context": min(ctx, ceiling) if ctx and ceiling else ctx,
                         "input_per_mtok": 0.0, "output_per_mtok": 0.0, "ready": True, "status": where,
                         "capabilities": list(info.capabilities), "num_parallel": limits.ceiling(name),
                         "hosts": having})
    for ref, info in sorted(config.models.items()):
        provider, _ = config.split_ref(ref)
        if provider.protocol == "ollama":
            continue
        ready = not provider.key_env or provider.name in avail.keys
        status = "ready" if ready else f"no {provider.key_env}"
        rows.append({"model": ref, "local": provider.local, "context": info.context,
                     "input_per_mtok": per_mtok(pricing, ref), "output_per_mtok": per_mtok(pricing, ref, output=True),
                     "ready": ready, "status": status, "num_parallel": limits.ceiling(provider.name)})
    servers = []
    for n, s in avail.ollama.items():
        slots = [spec[1] for spec in limits.host_specs(n)]
        for h, at_once in zip(s.hosts or (s,), slots):
            servers.append({"provider": n, "host": display_url(h.host), "reachable": h.reachable, "version": h.version,
                            "error": h.error, "models": sorted(h.models) if h.reachable else [],
                            "num_parallel": at_once})
    if as_json:
        print_json({"ollama": servers, "models": rows})
        return
    for line in server_lines(servers):
        err.print(line)
    cols = [Col("model", "left", name=True), Col("context", short="window"), Col("$/M in", short="$/M\nin"),
            Col("$/M out", short="$/M\nout"), Col("at once", short="at\nonce", drop=1), Col("status", "left", wrap=True)]
    table_rows = []
    for r in rows:
        price_in = "local" if r["local"] else _price(r["input_per_mtok"])
        price_out = "" if r["local"] else _price(r["output_per_mtok"])
        status = Alt(r["status"], r["status"].replace("_API_KEY", " key"))
        table_rows.append([r["model"], fmt_tokens(r["context"]) if r["context"] else "?", price_in, price_out,
                           str(r["num_parallel"]), status])
    table = fit_table(cols, table_rows, out.width)
    for i, r in enumerate(rows):  # unavailable models dimmed
        if not r["ready"]:
            table.rows[i].style = "dim"
    out.print(table)
    err.print("[dim]at once: calls in flight per provider (ollama.num_parallel, an endpoint's num_parallel, "
              "hosted_concurrency; a pool's hosts summed)[/]", soft_wrap=False)


def server_lines(servers: list[dict]) -> list[str]:
    """One line per Ollama provider; a pool adds one per host: what it has, or why it is down."""
    from ..redact import host_label
    from ..render import plural

    lines = []
    for provider in dict.fromkeys(s["provider"] for s in servers):
        hosts = [s for s in servers if s["provider"] == provider]
        if len(hosts) == 1:
            s = hosts[0]
            if s["reachable"]:
                lines.append(f"[green]●[/] {provider}: Ollama {s['version'] or ''} at {s['host']}")
            else:
                lines.append(f"[red]●[/] {provider}: Ollama not reachable at {s['host']} ({s['error']}) — start it "
                             "with `ollama serve`")
            continue
        up = sum(s["reachable"] for s in hosts)
        colour = "green" if up == len(hosts) else "yellow" if up else "red"
        lines.append(f"[{colour}]●[/] {provider}: {up} of {len(hosts)} hosts up")
        for s in hosts:
            if s["reachable"]:
                lines.append(f"  [green]●[/] {host_label(s['host'])}  Ollama {s['version'] or '?'}, "
                             f"{plural(len(s['models']), 'model')}, {s['num_parallel']} at once")
            else:
                lines.append(f"  [red]●[/] {host_label(s['host'])}  not reachable ({s['error']})")
    return lines


PRICE_PROBE_TOKENS = 1000


def per_mtok(pricing, ref: str, *, output: bool = False) -> float | None:
    """The base input (or output) rate in US dollars per million tokens. One call of a million
    tokens would cross long-context tiers (above 200K input tokens Claude Sonnet 4.5 and Gemini
    2.5 Pro charge double), so a small call is priced and scaled up."""
    n = PRICE_PROBE_TOKENS
    cost = pricing.cost(ref, 0 if output else n, n if output else 0)
    return None if cost is None else round(cost * (1_000_000 / n), 6)


def _price(v: float | None) -> str:
    from ..render import fmt_cost

    return "unknown" if v is None else fmt_cost(v).removeprefix("$")  # the column says $/M


@guard
def profiles(as_json: AsJson = False) -> None:
    from ..config import load_config
    from ..render import out, print_json
    from ..render.fit import Alt, Col, fit_table

    config = load_config()
    rows = [
        {"name": p.name, "description": p.description, "privacy": p.privacy, "max_cost_usd": p.max_cost_usd,
         "too_long": p.too_long, "candidates": [c.model for c in p.candidates], "options": p.options,
         "system": p.system, "source": p.source}
        for p in sorted(config.profiles.values(), key=lambda p: p.name)
    ]
    if as_json:
        print_json(rows)
        return
    cols = [Col("task", "left"), Col("description", "left", wrap=True, drop=1),
            Col("candidates, in order", "left", short="candidates", name=True), Col("limits", "left", wrap=True)]
    table_rows = []
    for r in rows:
        limits = []
        if r["privacy"] == "local-only":
            limits.append("local-only")
        if r["max_cost_usd"] is not None:
            limits.append(f"≤ ${r['max_cost_usd']:.2f}")
        name = r["name"] + (" (default)" if r["name"] == config.settings.default_task else "")
        table_rows.append([Alt(name, name.replace(" (default)", "\n(default)")), r["description"],
                           "\n".join(r["candidates"]), ", ".join(limits)])
    table = fit_table(cols, table_rows, out.width)
    out.print(table)
