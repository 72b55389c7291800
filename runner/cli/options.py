"""Options several commands share: one definition each (name, metavar, help), and the checks of
values every command makes the same way, with the flag's name in the message."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from .common import default

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Files = Annotated[List[str], typer.Option("-f", "--file", metavar="PATH", show_default=False,
                                          help="A document to include (text, Markdown, HTML, PDF, or a directory). Repeatable.")]
System = Annotated[Optional[str], typer.Option("-s", "--system", metavar="TEXT",
                                               help=default("System prompt.", "the profile's"))]
LocalOnly = Annotated[bool, typer.Option("--local-only", help="Never send a prompt off this machine.")]
MaxTokens = Annotated[Optional[int], typer.Option("--max-tokens", metavar="N",
                                                  help=default("Cap each answer at N tokens.", "the profile's"))]
Temperature = Annotated[Optional[float], typer.Option("--temperature", metavar="T",
                                                      help=default("Sampling temperature, 0 to 2.", "the profile's"))]
Think = Annotated[Optional[bool], typer.Option("--think/--no-think", show_default=False,
                                               help=default("Ask reasoning models to think (or not).", "the model's"))]
Task = Annotated[Optional[str], typer.Option("-t", "--task", metavar="TASK",
                                             help=default("Task profile to route by (see `runner profiles`).",
                                                          "default_task from config.yaml"))]
Model = Annotated[Optional[str], typer.Option("-m", "--model", metavar="PROVIDER/MODEL",
                                              help="Use this model and skip routing.")]
MaxCost = Annotated[Optional[float], typer.Option("--max-cost", metavar="USD",
                                                  help="Skip models whose estimated cost exceeds this many US dollars.")]

FLAGS = {"max_output_tokens": "--max-tokens", "temperature": "--temperature", "think": "--think", "seed": "--seed"}


def generation_options(max_tokens: int | None = None, temperature: float | None = None,
                       think: bool | None = None):
    """The command line's generation options, checked: a bad value is one line naming the flag."""
    from ..errors import UserError
    from ..options import GenerationOptions

    options = GenerationOptions(max_output_tokens=max_tokens, temperature=temperature, think=think)
    for name, why in options.problems():
        raise UserError(f"{FLAGS[name]} {why}")
    return options


def at_least(flag: str, value: int | None, low: int = 1) -> None:
    """A count given on the command line: the same words as every other range check
    ("--concurrency must be a whole number, 1 or more, not 0")."""
    from ..errors import UserError

    if value is not None and value < low:
        raise UserError(f"{flag} must be a whole number, {low} or more, not {value}")
