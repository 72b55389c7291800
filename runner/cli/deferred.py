"""`runner batch --deferred` (and its --status, --cancel, --no-wait, --resubmit): the command body.
`cli/batch.py` declares the options and hands over here; parsing and rendering only."""

from __future__ import annotations

from typing import Any


async def deferred_command(options: Any, *, dry_run: bool, as_json: bool, wait: bool, resubmit: bool,
                           status: bool, cancel: bool, resume_cmd: str) -> int:
    import signal

    from ..batch import Batch
    from ..batch.deferred import Deferred, DeferredOptions
    from ..config import load_config
    from ..render import err, print_json
    from ..render.batch import bad_rows, closing_notes, summary_table
    from ..render.deferred import DeferredProgress, dry_run as show_dry_run, jobs_table, summary_lines
    from .common import StopSignals

    config = load_config()
    b = Batch(config, options)
    s = config.settings
    d = Deferred(b, DeferredOptions(wait=wait, resubmit=resubmit, poll_s=s.deferred_poll_s,
                                    max_poll_s=s.deferred_max_poll_s))
    try:
        if status or cancel:  # reads the jobs file only: no lock, nothing written, nothing submitted
            items = await (d.cancel() if cancel else d.describe())
            jobs_table(items, as_json, str(d.jobs.path), "cancel" if cancel else "status")
            return 0
        b.read(dry_run=dry_run)
        d.attach()
        if not as_json:
            bad_rows(b)
        if dry_run:
            return await show_dry_run(d, as_json)
        if b.scan.todo == 0 and not d.open_jobs:
            b.close()
            if as_json:
                print_json({**b.summary(), "deferred": d.summary()})
            else:
                err.print(f"all {b.scan.rows:,} rows are already answered in {b.out_path}; nothing to do "
                          "(--overwrite starts over)")
            if not d.jobs.jobs:
                d.jobs.remove()
            return b.exit_code()

        def on_signal(sig: int) -> None:
            if sig == signal.SIGTERM:
                d.interrupt()
                d.interrupt()
            elif d.interrupt():
                err.print("[yellow]abandoning the running live rows[/]")
            else:
                err.print("[yellow]stopping:[/] the provider jobs keep running; finishing the running live rows "
                          "(Ctrl-C again to abandon them)", soft_wrap=False)

        with StopSignals(on_signal), DeferredProgress(d, enabled=None if not as_json else False):
            code = await d.run()
    finally:
        b.close()
        await b.session.aclose()

    data = {**b.summary(), "exit_code": code, "deferred": d.summary()}
    if as_json:
        print_json(data)
    else:
        summary_table(b, data)
        if data["stopped"] != "interrupted" or not d.open_jobs:
            closing_notes(b, data, resume_cmd)
        summary_lines(d, data["deferred"], resume_cmd)
    return code
