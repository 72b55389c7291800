"""`runner compare`: the same prompts on several models (or task routings), side by side, with
latency and cost; in the terminal, as JSON, Markdown or a self-contained HTML page."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import typer

from .common import Command, default, piped_input, run
from .options import Files, LocalOnly, MaxTokens, System, Temperature, Think

HELP = """Run the same prompt(s) on several models at once and compare answers, latency and cost.

Columns are models (-m, routing skipped, as `ask --model`) and/or tasks (--tasks, each routed by
its profile). With --prompts FILE (JSONL, YAML, CSV or text, as `runner batch` reads them) every
prompt runs on every column. Each call is logged under a comparison id that `--from-log ID`
re-renders later without calling anything.
"""


def register(app: typer.Typer) -> None:
    app.command(cls=Command, help=HELP)(compare)


def compare(
    prompt: Optional[str] = typer.Argument(None, metavar="PROMPT", show_default=False, help="The prompt. Piped standard input is read too: as the prompt, or as a document when a prompt is given."),
    models: List[str] = typer.Option([], "-m", "--model", metavar="PROVIDER/MODEL", show_default=False, help="A model to compare (routing skipped). Repeatable."),
    tasks: List[str] = typer.Option([], "--tasks", metavar="TASK,…", show_default=False, help="Task profiles to compare, comma-separated (e.g. long-doc,coding): each column is what that task's routing picks."),
    prompts_file: Optional[str] = typer.Option(None, "--prompts", metavar="FILE", help="A prompt file (JSONL, YAML, CSV or text): compare every prompt in it (a matrix of prompts × columns). A row's system and files are used; its task and model are not (the columns decide)."),
    files: Files = [],
    task: Optional[str] = typer.Option(None, "-t", "--task", metavar="TASK", help=default("Task profile whose options, system prompt and privacy the -m columns use.", "default_task from config.yaml")),
    system: System = None,
    local_only: LocalOnly = False,
    max_cost: Optional[float] = typer.Option(None, "--max-cost", metavar="USD", help="For --tasks columns: skip models whose estimated cost exceeds this many US dollars."),
    max_tokens: MaxTokens = None,
    temperature: Temperature = None,
    think: Think = None,
    judge: Optional[str] = typer.Option(None, "--judge", metavar="PROVIDER/MODEL", help="A model that ranks each prompt's answers (shown anonymised to it); its cost is shown separately. Off by default."),
    concurrency: int = typer.Option(16, "-c", "--concurrency", metavar="N", help="At most this many calls at once (each provider also stays within its own limit)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array for scripts: one object per prompt × column (the fields of `ask --json`), then the judge's calls."),
    md: Optional[str] = typer.Option(None, "--md", metavar="FILE", help="Also write the comparison as Markdown tables to this file."),
    html: Optional[str] = typer.Option(None, "--html", metavar="FILE", help="Also write a self-contained HTML report (answers side by side, latency and cost charts) to this file."),
    answers: Optional[bool] = typer.Option(None, "--answers/--no-answers", show_default=False, help=default("Show the answers in the terminal; a prompt set shows the matrix and the summary.", "for a single prompt only")),
    from_log: Optional[str] = typer.Option(None, "--from-log", metavar="ID", help="Re-render a past comparison from the run log (its id, e.g. c-3f9a2b7c); calls nothing."),
) -> None:
    args = CompareArgs(prompt=prompt, models=models, tasks=tasks, prompts_file=prompts_file, files=files, task=task,
                       system=system, local_only=local_only, max_cost=max_cost, max_tokens=max_tokens,
                       temperature=temperature, think=think, judge=judge, concurrency=concurrency, as_json=as_json,
                       md=md, html=html, answers=answers, from_log=from_log,
                       stdin="" if from_log else piped_input())
    code = run(compare_command(args))
    if code:
        raise typer.Exit(code)


@dataclass
class CompareArgs:
    prompt: str | None = None
    models: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    prompts_file: str | None = None
    files: list[str] = field(default_factory=list)
    task: str | None = None
    system: str | None = None
    local_only: bool = False
    max_cost: float | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    think: bool | None = None
    judge: str | None = None
    concurrency: int = 16
    as_json: bool = False
    md: str | None = None
    html: str | None = None
    answers: bool | None = None
    from_log: str | None = None
    stdin: str = ""


async def compare_command(args: CompareArgs) -> int:
    from ..compare.report import build_report
    from ..config import load_config
    from ..errors import UserError

    config = load_config()
    for path in (args.md, args.html):
        if path:
            _check_writable(path)
    if args.from_log:
        given = [name for name, v in (("a prompt", args.prompt), ("-m", args.models), ("--tasks", args.tasks),
                                      ("--prompts", args.prompts_file), ("-f", args.files), ("--judge", args.judge)) if v]
        if given:
            raise UserError(f"--from-log re-renders a past comparison as it was; it takes no {', '.join(given)}")
        from ..compare.log import load_comparison
        from ..store import open_store

        comp = load_comparison(open_store(config.home), args.from_log)
    else:
        comp = await _run(config, args)

    report = build_report(comp, config.is_local)
    from ..render import err, esc

    written = []
    if args.md:
        from ..render.compare_md import render_markdown

        written.append(_write(args.md, render_markdown(report)))
    if args.html:
        from ..render.compare_html import render_html

        written.append(_write(args.html, render_html(report)))
    if args.as_json:
        from ..render import print_json
        from ..render.compare_json import report_json

        print_json(report_json(report))
    else:
        from rich.console import Console

        from ..render.compare_terminal import render_terminal

        render_terminal(report, Console(highlight=False), answers=args.answers)
    for path in written:
        err.print(f"[dim]wrote {esc(path)}[/]")
    err.print(f"[dim]comparison {comp.id} — re-render with [bold]runner compare --from-log {comp.id}[/][/]")
    # As batch: any failed answer is exit 1, so a script notices a column that never answered.
    # Re-rendering from the log runs nothing, so it has nothing to fail.
    return 1 if report.failures and not args.from_log else 0


async def _run(config, args: CompareArgs):
    from ..compare.model import Plan
    from ..compare.run import run_comparison
    from ..request import check_max_cost
    from ..session import Session
    from .options import at_least, generation_options

    columns = _columns(config, args)
    if args.judge:
        config.split_ref(args.judge)
    at_least("--concurrency", args.concurrency)
    options = generation_options(args.max_tokens, args.temperature, args.think)
    check_max_cost(args.max_cost)
    default_task = args.task or config.settings.default_task
    config.profile(default_task)
    prompts, documents = _prompts(args)
    plan = Plan(prompts=prompts, columns=columns, default_task=default_task, documents=documents,
                system=args.system, local_only=args.local_only, max_cost_usd=args.max_cost,
                options=options,
                judge=args.judge, concurrency=args.concurrency)
    session = Session(config)
    progress = _Progress(len(prompts) * len(columns), quiet=args.as_json)
    try:
        with progress:
            return await run_comparison(session, plan, on_cell=progress.advance)
    finally:
        await session.aclose()


def _columns(config, args: CompareArgs):
    from ..compare.model import Column
    from ..errors import UserError

    columns: list[Column] = []
    for ref in args.models:
        ref = ref.strip()
        config.split_ref(ref)  # a clear error for a malformed or unknown ref
        columns.append(Column.for_model(ref))
    for spec in args.tasks:
        for name in (t.strip() for t in spec.split(",")):
            if name:
                config.profile(name)  # unknown task: one line naming the known ones
                columns.append(Column.for_task(name))
    columns = list(dict.fromkeys(columns))  # the same column twice compares nothing
    if not columns:
        raise UserError("nothing to compare: give models with -m (e.g. -m ollama/qwen2.5:7b -m openai/gpt-4.1) "
                        "or tasks with --tasks (e.g. --tasks long-doc,coding)")
    if len(columns) > 26:
        raise UserError(f"{len(columns)} columns is too many to compare side by side (at most 26)")
    return columns


def _prompts(args: CompareArgs):
    """The prompts (with their documents) and the documents shared by all of them."""
    from ..compare.model import PromptItem
    from ..documents import Document, read_documents
    from ..errors import UserError
    from ..request import ensure_prompt

    documents = read_documents(args.files)
    stdin = args.stdin
    if args.prompts_file:
        if args.prompt:
            raise UserError("give either a prompt or --prompts FILE, not both")
        if stdin.strip():
            documents.append(Document("stdin", stdin))
        return _prompt_file(Path(args.prompts_file), documents), documents
    prompt = args.prompt or ""
    if stdin.strip():
        if prompt:
            documents.append(Document("stdin", stdin))
        else:
            prompt = stdin
    if not prompt.strip() and documents:
        prompt = "Summarise these documents."
    ensure_prompt(prompt)
    return [PromptItem(prompt.strip(), [d.name for d in documents])], documents


def _prompt_file(path: Path, documents):
    import re

    from ..prompts import BadRow, read_rows
    from ..compare.model import PromptItem
    from ..documents import read_documents
    from ..errors import UserError

    items = []
    for row in read_rows(path):
        if isinstance(row, BadRow):
            raise UserError(f"{path}, line {row.line}: {row.error}")
        docs = documents + read_documents(list(row.files)) if row.files else None
        label = None if re.fullmatch(r"p-[0-9a-f]{12}(-\d+)?", row.id) else row.id
        names = [d.name for d in (docs if docs is not None else documents)]
        items.append(PromptItem(row.prompt, names, label, system=row.system, documents=docs))
    if not items:
        raise UserError(f"{path}: no prompts in the file")
    return items


def _check_writable(path: str) -> None:
    from ..errors import UserError

    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"{path} is a folder; give a file name for the report")
    if not p.parent.is_dir():
        raise UserError(f"cannot write {path}: the folder {p.parent} does not exist")


def _write(path: str, text: str) -> str:
    from ..errors import UserError

    try:
        Path(path).expanduser().write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


class _Progress:
    """"12/200 answers" on stderr while a comparison runs, only on an interactive terminal."""

    def __init__(self, total: int, quiet: bool) -> None:
        from ..render import err

        self.total = total
        self.done = 0
        self.status = None
        self.active = not quiet and err.is_terminal and total > 1

    def __enter__(self) -> "_Progress":
        if self.active:
            from ..render import err

            self.status = err.status(self._text())
            self.status.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def advance(self, p: int, c: int, cell) -> None:
        self.done += 1
        if self.status is not None:
            self.status.update(self._text())

    def _text(self) -> str:
        return f"comparing: {self.done}/{self.total} answers"

