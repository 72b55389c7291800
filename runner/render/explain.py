"""`--explain`: the routing decision, every candidate with why it was taken or skipped."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ..router import RoutePlan
from ..tokens import fmt_tokens
from . import esc, fmt_cost, out
from .fit import LATE, Col, fit_table


def explain(plan: RoutePlan, estimate_note: str = "", split: Any = None, split_error: str | None = None) -> None:
    need = plan.need
    out.print(f"[bold]task[/] {plan.task} · prompt ~{fmt_tokens(need.input_tokens)} tokens "
              f"(±{need.margin:.0%}) + up to {fmt_tokens(need.output_tokens)} output{estimate_note}", soft_wrap=False)
    cols = [Col(""), Col("model", "left", name=True), Col("context", short="window"),
            Col("est. input", short="input", drop=LATE), Col("est. cost", short="cost"), Col("decision", "left", wrap=True)]
    rows = []
    for i, a in enumerate(plan.attempts, 1):
        ctx = fmt_tokens(a.context) if a.context else "?"
        extra = f" (num_ctx {a.backend_options['num_ctx']:,})" if "num_ctx" in a.backend_options else ""
        if a.hosts:  # of a pool, the hosts able to take it (the model there, the window large enough)
            from ..redact import host_label

            extra += " on " + ", ".join(host_label(h) for h in a.hosts)
        rows.append([Text(str(i), style="green"), a.ref, ctx, _est_note(need, a.ref), fmt_cost(a.est_cost_usd, a.local),
                     "fits: " + ("try first" if i == 1 else "fallback") + extra])
    for s in plan.skipped:
        ctx = fmt_tokens(s.context) if getattr(s, "context", None) else ""
        rows.append([Text("✗", style="red"), s.ref, ctx, _est_note(need, s.ref), "",
                     ("too long: " if s.too_small else "skip: ") + s.reason])
    table = fit_table(cols, rows, out.width)
    out.print(table)
    if split is not None:
        out.print(f"[bold]split[/] into {split.n} chunks of ≤ {fmt_tokens(split.budget)} tokens for {split.ref} "
                  f"({fmt_tokens(split.window)} window), then combine the {split.n} partial answers"
                  + (f" · est. {fmt_cost(split.est_cost_usd, split.plans[0].attempts[0].local)}" if split.plans else ""),
                  soft_wrap=False)
        for note in split.skipped:
            out.print(f"  [dim]not split for {esc(note)}[/]", soft_wrap=False)
    elif plan.too_long:
        why = f": {split_error}" if split_error else " (the task's profile says too_long: fail)"
        out.print(f"[red]too long for every candidate[/], and not split{esc(why)}", soft_wrap=False)


def _est_note(need: Any, ref: str) -> str:
    est = need.per_model.get(ref) if getattr(need, "per_model", None) else None
    if est is None:
        return f"~{fmt_tokens(need.input_tokens)}"
    note = f"~{fmt_tokens(est.tokens)}"
    if est.factor is not None:
        note += f" (×{est.factor:.2f} learned)"
    return note


def explain_json(plan: RoutePlan, split: Any = None, split_error: str | None = None) -> dict[str, Any]:
    from ..redact import display_url

    need = plan.need
    candidates = [
        {"model": a.ref, "context": a.context, "est_input_tokens": need.input_for(a.ref), "fits": True,
         "decision": "try first" if i == 0 else "fallback"}
        for i, a in enumerate(plan.attempts)
    ] + [
        {"model": s.ref, "context": getattr(s, "context", None), "est_input_tokens": need.input_for(s.ref),
         "fits": False if s.too_small else None, "decision": "skip: " + s.reason}
        for s in plan.skipped
    ]
    split_json = None
    if split is not None:
        split_json = {"model": split.ref, "chunks": split.n, "window": split.window, "chunk_budget_tokens": split.budget,
                      "chunk_tokens": [c.tokens for c in split.chunks], "est_cost_usd": split.est_cost_usd,
                      "parts": [c.label() for c in split.chunks]}
    return {
        "candidates": candidates,
        "split": split_json,
        "split_error": split_error,
        "task": plan.task,
        "estimate": {"input_tokens": plan.need.input_tokens, "margin": plan.need.margin,
                     "low": int(plan.need.input_tokens * (1 - plan.need.margin)), "high": plan.need.input_high,
                     "output_tokens": plan.need.output_tokens},
        "attempts": [
            {"model": a.ref, "context": a.context, "est_cost_usd": a.est_cost_usd, "local": a.local,
             "options": a.options, "backend_options": a.backend_options,
             **({"hosts": [display_url(h) for h in a.hosts]} if a.hosts else {})}
            for a in plan.attempts
        ],
        "skipped": [{"model": s.ref, "reason": s.reason} for s in plan.skipped],
        "too_long": plan.too_long,
    }
