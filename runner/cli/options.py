"""Options several commands share: one definition each (name, help, type), and the generation
options built and checked once, with the flag's name in the message."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Files = Annotated[List[str], typer.Option("-f", "--file", help="A document to include (text, Markdown, HTML, PDF, or a directory). Repeatable.")]
System = Annotated[Optional[str], typer.Option("-s", "--system", help="System prompt (replaces the profile's).")]
LocalOnly = Annotated[bool, typer.Option("--local-only", help="Never send a prompt off this machine.")]
MaxTokens = Annotated[Optional[int], typer.Option("--max-tokens", help="Cap each answer at this many tokens.")]
Temperature = Annotated[Optional[float], typer.Option("--temperature", help="Sampling temperature.")]
Think = Annotated[Optional[bool], typer.Option("--think/--no-think", help="Ask reasoning models to think (or not).")]

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
