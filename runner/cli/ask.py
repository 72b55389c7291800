"""`runner ask`: one prompt, routed by task, streamed, timed, priced and logged."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import typer

from .common import Command, piped_input, run
from .options import AsJson, Files, LocalOnly, MaxCost, MaxTokens, Model, System, Task, Temperature, Think


def register(app: typer.Typer) -> None:
    app.command(cls=Command, help="Ask one prompt; it is routed by task profile, streamed, timed, priced and logged.")(ask)


def ask(
    prompt: Optional[str] = typer.Argument(None, metavar="PROMPT", show_default=False, help="The prompt. Piped standard input is read too: as the prompt, or as a document when a prompt is given."),
    files: Files = [],
    task: Task = None,
    model: Model = None,
    system: System = None,
    local_only: LocalOnly = False,
    max_cost: MaxCost = None,
    max_tokens: MaxTokens = None,
    temperature: Temperature = None,
    think: Think = None,
    explain: bool = typer.Option(False, "--explain", help="Show the routing decision and send nothing."),
    as_json: AsJson = False,
    no_stream: bool = typer.Option(False, "--no-stream", help="Print the answer once it is complete."),
) -> None:
    args = AskArgs(prompt=prompt, files=files, task=task, model=model, system=system, local_only=local_only,
                   max_cost=max_cost, max_tokens=max_tokens, temperature=temperature, think=think,
                   explain=explain, as_json=as_json, no_stream=no_stream, stdin=piped_input())
    code = run(ask_command(args))
    if code:
        raise typer.Exit(code)


@dataclass
class AskArgs:
    prompt: str | None
    files: list[str]
    task: str | None
    model: str | None
    system: str | None
    local_only: bool
    max_cost: float | None
    max_tokens: int | None
    temperature: float | None
    think: bool | None
    explain: bool
    as_json: bool
    no_stream: bool
    stdin: str = ""


async def ask_command(args: AskArgs) -> int:
    from ..config import load_config
    from ..documents import Document, read_documents
    from ..records import RunRecord
    from ..render import print_json  # the rich consoles only where needed: not before the answer
    from ..render.stream import StreamPrinter, dim_line, footer
    from ..request import Request, check_max_cost, ensure_prompt
    from ..session import Session
    from .options import generation_options

    config = load_config()
    options = generation_options(args.max_tokens, args.temperature, args.think)
    check_max_cost(args.max_cost)
    skipped: list[str] = []
    documents = read_documents(args.files, skipped)
    if skipped:
        from ..render import err, esc

        for note in skipped:
            err.print(f"[yellow]note:[/] skipped {esc(note)}")
    prompt = args.prompt or ""
    if args.stdin.strip():
        if prompt:
            documents.append(Document("stdin", args.stdin))
        else:
            prompt = args.stdin
    if not prompt.strip() and documents:
        prompt = "Summarise these documents."
    ensure_prompt(prompt)
    request = Request(
        prompt=prompt.strip(),
        task=args.task or config.settings.default_task,
        documents=documents,
        system=args.system,
        model=args.model,
        local_only=args.local_only,
        max_cost_usd=args.max_cost,
        options=options,
    )
    session = Session(config)
    try:
        # --explain sends nothing, not even to a count endpoint: it shows the estimate.
        prepared = await session.prepare(request, count=not args.explain)
        if args.explain:
            from ..render.explain import explain, explain_json

            if args.as_json:
                print_json(explain_json(prepared.plan, prepared.split, prepared.split_error))
            else:
                explain(prepared.plan, split=prepared.split, split_error=prepared.split_error)
            return 0
        streaming = not args.as_json and not args.no_stream
        printer = StreamPrinter()
        result, run_id = await session.answer(
            prepared,
            on_event=printer.on_event if streaming else None,
            on_attempt=printer.on_attempt if not args.as_json else None,
            on_progress=printer.progress if not args.as_json else None,
        )
    finally:
        await session.aclose()

    if any(a.outcome != "ok" for a in result.attempts):  # the server may have changed: ask it next time
        from ..availability import forget_ollama

        for provider in {a.model.partition("/")[0] for a in result.attempts if a.outcome != "ok"}:
            forget_ollama(config, provider)
    data = RunRecord.from_result(prepared.profile.name, result, run_id).json()
    if args.as_json:
        print_json(data)
        return 0 if result.ok else 1
    printer.end_line()
    ans = result.answer
    if ans is None:
        from ..render import err, esc

        err.print(f"[red]error:[/] {esc(result.error or 'failed')}")
        return 1
    if not streaming:
        if ans.thinking:
            from ..render import err, esc

            err.print(f"[dim italic]{esc(ans.thinking)}[/]")
        sys.stdout.write(ans.text + "\n")
        sys.stdout.flush()
    local = config.is_local(ans.model)
    chunks = getattr(result, "chunks", None)
    if chunks:  # a split document: the whole run's time, tokens and cost
        shown = result.total_attempt() or ans
        dim_line(f"── {chunks} chunks + combine · {footer(shown, data['cost_usd'], local)}")
    else:
        dim_line(f"── {footer(ans, data['cost_usd'], local)}")
    return 0

