"""`runner batch`: a prompt file, run concurrently across backends, into a resumable results file."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import List, Optional

import typer

from .common import Command, StopSignals, default, run
from .options import LocalOnly, MaxTokens, Temperature, Think

HELP = """Run every prompt of a file (JSONL, YAML, CSV or text: one prompt per paragraph), routed by task like `ask`, many at once, into a results file with one line per row.

Running the same command again resumes: rows already answered are skipped and failed rows are tried again. A killed run (even kill -9) loses no finished row. Every call is in the run log under the batch id (`runner log --group ID`).

With --deferred, rows whose model's provider has a batch API (OpenAI, Anthropic, Gemini) go to it as jobs at about half price, answered within 24 h; other rows run live meanwhile. The jobs are recorded beside the results file (answers.jsonl.jobs.json for answers.jsonl) before anything is sent, so nothing is submitted twice: run the same command again to collect, --status to see them, --cancel to cancel them.

Exit codes: 0 every row answered; 1 some rows failed or were invalid (run again to retry); 2 a usage mistake, nothing sent; 3 stopped by --max-cost (run again with a larger budget); 4 provider batch jobs still running (run the same command again to collect); 130 interrupted (run again to resume).
"""


def register(app: typer.Typer) -> None:
    app.command(cls=Command, help=HELP)(batch)


def batch(
    file: Path = typer.Argument(..., metavar="FILE", show_default=False, help="The prompt file: .jsonl, .yaml, .csv/.tsv, or text (one prompt per paragraph)."),
    out: Optional[str] = typer.Option(None, "-o", "--out", metavar="PATH", help=default("Results file (resumed if it exists); '-' for standard output.", "./FILE-STEM.results.jsonl (or .csv)")),
    fmt: Optional[str] = typer.Option(None, "--format", metavar="jsonl|csv", help=default("Results format.", "from --out's extension, else jsonl")),
    input_format: Optional[str] = typer.Option(None, "--input-format", metavar="FORMAT", help=default("Read the prompt file as jsonl, yaml, csv, tsv or text.", "from its extension")),
    task: Optional[str] = typer.Option(None, "-t", "--task", metavar="TASK", help=default("Task profile for rows that name no task or model.", "default_task from config.yaml")),
    model: Optional[str] = typer.Option(None, "-m", "--model", metavar="PROVIDER/MODEL", help="Model for rows that name no task or model; skips routing."),
    system: Optional[str] = typer.Option(None, "-s", "--system", metavar="TEXT", help=default("System prompt for rows that have none.", "the profile's")),
    template: Optional[str] = typer.Option(None, "--template", metavar="TEXT", help="Prompt template for rows without a prompt, e.g. 'Translate to French: {text}' over a CSV."),
    concurrency: Optional[int] = typer.Option(None, "-c", "--concurrency", metavar="N", help=default("Rows in flight at once, all backends together. Given, it also raises each hosted API's limit to N (local servers keep theirs; see --limit).", "the largest per-backend limit, at least 8")),
    limits: List[str] = typer.Option([], "--limit", metavar="PROVIDER=N", show_default=False, help=default("Per-backend limit, e.g. --limit openai=32 --limit ollama=2; halved on 429, grown back on success. Repeatable.", "ollama.num_parallel for Ollama, an endpoint's num_parallel (1 for a local one), hosted_concurrency (8) for hosted APIs")),
    max_cost: Optional[float] = typer.Option(None, "--max-cost", metavar="USD", help="Budget in US dollars for the whole results file: no new row starts once the batch would pass it."),
    max_tokens: MaxTokens = None,
    temperature: Temperature = None,
    think: Think = None,
    local_only: LocalOnly = False,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show every row's routing and the estimated total cost; send nothing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over: empty the results file instead of resuming it."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary (or the --dry-run plan) as JSON for scripts."),
    deferred: bool = typer.Option(False, "--deferred", help="Send rows whose model's provider has a batch API (OpenAI, Anthropic, Gemini) as provider batch jobs: about half price, answers within 24 h. Other rows run live meanwhile. Then wait, collecting each job as it ends; the same command again resumes and collects."),
    no_wait: bool = typer.Option(False, "--no-wait", help="With --deferred: submit the jobs and return (exit 4 while they run)."),
    status: bool = typer.Option(False, "--status", help="With --deferred: show where each submitted job is; sends and writes nothing."),
    cancel: bool = typer.Option(False, "--cancel", help="With --deferred: ask the providers to cancel the submitted jobs; the next run collects what they finished and sends the rest again."),
    resubmit: bool = typer.Option(False, "--resubmit", help=default("With --deferred: send rows that failed or expired in a job to a new job.", "they fall back live to their next candidate model")),
) -> None:
    flags = {"deferred": deferred, "no_wait": no_wait, "status": status, "cancel": cancel, "resubmit": resubmit}
    code = run(batch_command(file=file, out=out, input_format=input_format, out_format=fmt, task=task, model=model,
                             system=system, template=template, local_only=local_only, max_tokens=max_tokens,
                             temperature=temperature, think=think, concurrency=concurrency, max_cost=max_cost,
                             overwrite=overwrite, dry_run=dry_run, as_json=as_json, limits=limits, flags=flags))
    if code:
        raise typer.Exit(code)


def parse_limits(items: list[str]) -> dict[str, int]:
    from ..errors import UserError

    limits: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            n = int(value)
        except ValueError:
            n = None
        if not sep or not name.strip() or n is None:
            raise UserError(f"--limit {item}: write it PROVIDER=N, e.g. --limit openai=32")
        limits[name.strip()] = n
    return limits


def resume_command(options, *extra: str) -> str:
    parts = ["runner", "batch", str(options.file)]
    if options.out:
        parts += ["--out", options.out]
    if options.out_format:
        parts += ["--format", options.out_format]
    return shlex.join([*parts, *extra]) + (" …" if _has_other_options(options) else "")


def check_flags(flags: dict[str, bool], dry_run: bool) -> None:
    """--no-wait, --status, --cancel and --resubmit belong to --deferred, and exclude each other
    where they must."""
    from ..errors import UserError

    names = {"no_wait": "--no-wait", "status": "--status", "cancel": "--cancel", "resubmit": "--resubmit"}
    given = [names[k] for k in names if flags.get(k)]
    if given and not flags.get("deferred"):
        raise UserError(f"{given[0]} works with --deferred (e.g. runner batch FILE --deferred {given[0]})")
    looks = [f for f in ("--status", "--cancel") if f in given] + (["--dry-run"] if dry_run else [])
    if len(looks) > 1:
        raise UserError(f"{looks[0]} and {looks[1]} do different things; give one")


def _has_other_options(o) -> bool:
    return any([o.task, o.model, o.system, o.template, o.input_format, o.limits, o.concurrency,
                o.options.as_dict(), o.local_only])


async def batch_command(*, dry_run: bool, as_json: bool, limits: list[str] = (), max_tokens=None, temperature=None,
                        think=None, flags: dict[str, bool] | None = None, **fields) -> int:
    import signal
    import sys

    from ..batch import Batch, BatchOptions
    from ..config import load_config
    from ..render import err, esc, plural, print_json
    from ..render.batch import ProgressView, bad_rows, closing_notes, dry_run as show_dry_run, summary_table
    from .options import generation_options

    flags = flags or {}
    check_flags(flags, dry_run)
    options = BatchOptions(**fields, options=generation_options(max_tokens, temperature, think),
                           limits=parse_limits(list(limits)))
    if flags.get("deferred"):
        from .deferred import deferred_command

        return await deferred_command(options, dry_run=dry_run, as_json=as_json, wait=not flags.get("no_wait"),
                                      resubmit=bool(flags.get("resubmit")), status=bool(flags.get("status")),
                                      cancel=bool(flags.get("cancel")), resume_cmd=resume_command(options, "--deferred"))
    config = load_config()
    b = Batch(config, options)
    waiting: set[str] = set()
    try:
        b.read(dry_run=dry_run)
        if b.out_path is not None:
            from ..batch.deferred.state import waiting_rows

            waiting = waiting_rows(b.out_path) - b.state.ok
        if waiting:  # in a provider batch job: never sent a second time, live
            b.row_filter = lambda row: row.id not in waiting
            if not as_json:
                err.print(f"[yellow]note:[/] {plural(len(waiting), 'row')} wait in provider batch jobs and are not sent "
                          f"live; collect them with: {esc(resume_command(options, '--deferred'))}", soft_wrap=False)
        if not as_json:
            bad_rows(b)
        if dry_run:
            return await show_dry_run(b, as_json)
        if b.scan.todo == 0:
            b.close()
            data = b.summary()
            if as_json:
                print_json(data)
            else:
                every = "the one row is" if b.scan.rows == 1 else f"all {b.scan.rows:,} rows are"
                err.print(f"{every} already answered in {data['out']}; nothing to do (--overwrite starts over)")
            return b.exit_code()
        if b.scan.changed and not as_json:
            err.print(f"{plural(b.scan.changed, 'answered row')} changed since (prompt, system prompt, task, model or "
                      f"options): {'it runs' if b.scan.changed == 1 else 'they run'} again")
        if b.writer is not None and b.writer.path is not None and b.scan.todo < b.scan.rows and not as_json and err.is_terminal:
            err.print(f"resuming {b.writer.shown}: {plural(b.scan.rows - b.scan.todo, 'row')} already answered, "
                      f"{b.scan.todo:,} to go")
        if not as_json:
            b.on_note = lambda note: err.print(f"[yellow]note:[/] {esc(note)}")

        def on_signal(sig: int) -> None:
            if sig == signal.SIGTERM:
                b.interrupt()
                b.interrupt()  # terminate: abandon the running rows now
            elif b.interrupt():
                err.print("[yellow]abandoning the running rows[/]")
            else:
                err.print(f"[yellow]stopping:[/] finishing the running {plural(b.running, 'row')} "
                          "(Ctrl-C again to abandon them)", soft_wrap=False)

        with StopSignals(on_signal), ProgressView(b, enabled=None):
            code = await b.run()
    finally:
        b.close()
        await b.session.aclose()

    data = b.summary()
    to_stderr = b.out_path is None  # results are on stdout: keep it clean
    if as_json and to_stderr:
        import json

        sys.stderr.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    elif as_json:
        print_json(data)
    else:
        summary_table(b, data, to_stderr=to_stderr)
    closing_notes(b, data, resume_command(options))
    if waiting and code == 0:
        from ..batch.deferred import EXIT_PENDING

        return EXIT_PENDING
    return code
