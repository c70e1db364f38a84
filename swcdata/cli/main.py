"""The `swcdata` command line. Thin: parse arguments, call the step, render its report.

Exit codes: 0 = clean, 1 = data problems found, 2 = usage or configuration error.
Heavy libraries (pyarrow, datasets, torch) are imported inside the commands that need them, so
`swcdata --help` starts fast and the data commands never import torch.
"""

from __future__ import annotations

import inspect
import sys
from typing import Annotated

import typer

from swcdata.cli.console import (
    out,
)
from swcdata.core.version import __version__

app = typer.Typer(
    name="swcdata",
    help="Trustworthy, versioned instruction data about Solidity vulnerabilities (SWC classes): "
    "validate, deduplicate, split, augment, publish and fine-tune.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        out.print(f"swcdata {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """swcdata: clean, leak-free, versioned SWC instruction data, and QLoRA fine-tuning on it."""


# The commands live in modules of their own (swcdata/cli/<area>.py), each exposing `register(app)`, in the
# order `swcdata --help` lists them. They import nothing heavy at module level, so `swcdata --help` stays fast.
COMMAND_GROUPS = ("data", "schema", "split", "augment", "build", "registry", "train", "evaluate")


def _register_groups() -> None:
    from importlib import import_module

    for name in COMMAND_GROUPS:
        import_module(f"swcdata.cli.{name}").register(app)


_register_groups()


def reflow(doc: str) -> str:
    """A docstring as help text: each paragraph one line, so the terminal wraps it to its width.

    typer (rich markup mode) keeps the docstring's line breaks and then wraps every line again, which
    leaves ragged paragraphs in an 80-column terminal. A line that starts a list item (``- ``, ``* ``)
    or is indented keeps its break."""
    paragraphs = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines: list[str] = []
        for line in para.splitlines():
            if lines and not line.startswith(("- ", "* ", " ", "\t")):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.rstrip())
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


for _info in app.registered_commands:
    if _info.help is None and _info.callback is not None and _info.callback.__doc__:
        _info.help = reflow(_info.callback.__doc__)


# Options that take several values, as the shell expands a glob: `audit --reference a.jsonl b.jsonl
# --candidate c.jsonl` means `--reference a.jsonl --reference b.jsonl --candidate c.jsonl` (click
# options take one value each). Only for commands without positional arguments, so nothing is ambiguous.
MULTI_VALUE_OPTIONS: dict[str, frozenset[str]] = {
    "audit": frozenset({"--reference", "-r", "--candidate", "-c"}),
}


def expand_multi_value_options(args: list[str]) -> list[str]:
    """Repeat a multi-value option before each of the values that follow it (up to the next option)."""
    command = next((a for a in args if not a.startswith("-")), None)
    multi = MULTI_VALUE_OPTIONS.get(command or "")
    if not multi:
        return args
    out_args: list[str] = []
    current: str | None = None
    for a in args:
        if a.startswith("-"):
            name = a.split("=", 1)[0]
            current = name if name in multi else None
            out_args.append(a)
        elif current is not None and out_args[-1] != current:  # a second (third, ...) value
            out_args += [current, a]
        else:
            out_args.append(a)
    return out_args


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    app(args=expand_multi_value_options(args), prog_name="swcdata")


if __name__ == "__main__":
    main()
