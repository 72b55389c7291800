"""`runner models` and `runner profiles`: what is available right now, and why not."""

from __future__ import annotations

import typer

from .common import guard, run
from .options import AsJson


def register(app: typer.Typer) -> None:
    app.command(help="List models: pulled Ollama models and the hosted catalog, each ready or why not.")(models)
    app.command(help="List task profiles and their candidate models.")(profiles)


def models(as_json: AsJson = False) -> None:
    run(_models(as_json))


async def _models(as_json: bool) -> None:
    from rich.table import Table

    from ..availability import gather_availability
    from ..config import load_config
    from ..pricing import Pricing
    from ..render import err, out, print_json
    from ..tokens import fmt_tokens

    config = load_config()
    pricing = Pricing(config)
    ollama_refs = [f"{name}/x" for name, p in config.providers.items() if p.protocol == "ollama"]
    avail = await gather_availability(config, ollama_refs)
    rows = []
    for name, status in avail.ollama.items():
        ceiling = config.settings.ollama_max_num_ctx
        for model, info in sorted(status.models.items()):
            ctx = info.context_length
            rows.append({"model": f"{name}/{model}", "local": True, "context": min(ctx, ceiling) if ctx and ceiling else ctx,
                         "input_per_mtok": 0.0, "output_per_mtok": 0.0, "ready": True, "status": "pulled",
                         "capabilities": list(info.capabilities)})
    for ref, info in sorted(config.models.items()):
        provider, _ = config.split_ref(ref)
        if provider.protocol == "ollama":
            continue
        ready = not provider.key_env or provider.name in avail.keys
        status = "ready" if ready else f"no {provider.key_env}"
        rows.append({"model": ref, "local": provider.local, "context": info.context,
                     "input_per_mtok": per_mtok(pricing, ref), "output_per_mtok": per_mtok(pricing, ref, output=True),
                     "ready": ready, "status": status})
    from ..redact import display_url

    servers = [{"provider": n, "host": display_url(s.host), "reachable": s.reachable, "version": s.version, "error": s.error}
               for n, s in avail.ollama.items()]
    if as_json:
        print_json({"ollama": servers, "models": rows})
        return
    for s in servers:
        if s["reachable"]:
            err.print(f"[green]●[/] {s['provider']}: Ollama {s['version'] or ''} at {s['host']}")
        else:
            err.print(f"[red]●[/] {s['provider']}: Ollama not reachable at {s['host']} ({s['error']}) — start it with `ollama serve`")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col, just in (("model", "left"), ("context", "right"), ("$/M in", "right"), ("$/M out", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    for r in rows:
        price_in = "local" if r["local"] else _price(r["input_per_mtok"])
        price_out = "" if r["local"] else _price(r["output_per_mtok"])
        style = "" if r["ready"] else "dim"
        table.add_row(r["model"], fmt_tokens(r["context"]) if r["context"] else "?", price_in, price_out,
                      r["status"], style=style)
    out.print(table)


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
    from rich.table import Table

    from ..config import load_config
    from ..render import out, print_json

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
    table = Table(box=None, header_style="bold", pad_edge=False, show_lines=False)
    table.add_column("task")
    table.add_column("description")
    table.add_column("candidates, in order", no_wrap=True)
    table.add_column("limits")
    for r in rows:
        limits = []
        if r["privacy"] == "local-only":
            limits.append("local-only")
        if r["max_cost_usd"] is not None:
            limits.append(f"≤ ${r['max_cost_usd']:.2f}")
        name = r["name"] + (" (default)" if r["name"] == config.settings.default_task else "")
        table.add_row(name, r["description"], "\n".join(r["candidates"]), ", ".join(limits))
    out.print(table)
