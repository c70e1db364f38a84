"""Errors that reach the user as one clear line and an exit code, never a traceback."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (pydantic is not imported here: this module stays cheap to import)
    from collections.abc import Callable, Mapping

    from pydantic import ValidationError


class SwcdataError(Exception):
    """A user-facing problem. `exit_code` 2 = usage/config error, 1 = data problem."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class InputError(SwcdataError):
    """A path that does not exist, cannot be read, or holds no JSONL."""


class ConfigError(SwcdataError):
    """A configuration with one or more invalid values; `problems` lists every one with its path."""

    def __init__(self, problems: list[str], *, source: str | None = None) -> None:
        head = f"invalid configuration{f' in {source}' if source else ''} ({len(problems)} problem(s)):"
        super().__init__(head + "".join(f"\n  - {p}" for p in problems))
        self.problems = problems

    @classmethod
    def from_validation(cls, e: ValidationError, *, source: str | None = None, prefix: str = "",
                        whole: str = "(top level)",
                        message: Callable[[Mapping[str, Any]], str | None] | None = None) -> ConfigError:
        """Every error of a pydantic ValidationError as one problem `path: message` (see `validation_problems`
        for `prefix`, `whole` and `message`); `source` names where the values came from."""
        return cls(validation_problems(e, prefix=prefix, whole=whole, message=message), source=source)


# a `path: message` line: what a check across several fields puts in one ValueError, one line per problem
_PATHED = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)+: ")


def _is_tag(part: object) -> bool:
    """Whether a part of an error's loc is pydantic's name for a union branch or a validator
    (`list[str]`, `literal['all-linear']`, `function-after[...]`), not a field or an index."""
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def plain_message(err: Mapping[str, Any]) -> str:
    """pydantic's message of an error without the `Value error, ` it puts before a validator's own words."""
    return str(err["msg"]).removeprefix("Value error, ")


def validation_problems(e: ValidationError, *, prefix: str = "", whole: str = "(top level)",
                        message: Callable[[Mapping[str, Any]], str | None] | None = None) -> list[str]:
    """Every error of a pydantic ValidationError as `<prefix><path>: <message>`, in order, each once.

    The path is the error's loc joined by '.' (`lora.r`, `inputs.0`), without pydantic's union-branch and
    validator names; `whole` stands for an error of the whole object (an empty loc). `message(err)` words an
    error (None, or no `message`: pydantic's own `msg`). An error of the whole object whose message is several
    `a.b: ...` lines (a check across sections, one line per problem) gives one problem per line."""
    seen: dict[str, None] = {}
    for err in e.errors():
        path = ".".join(str(p) for p in err["loc"] if not _is_tag(p))
        text = message(err) if message is not None else None
        text = str(err["msg"]) if text is None else text
        lines = text.splitlines()
        if not path and err["type"] == "value_error" and lines and all(_PATHED.match(m) for m in lines):
            for m in lines:  # each problem carries its own path
                seen.setdefault(prefix + m, None)
            continue
        seen.setdefault(f"{prefix}{path or whole}: {text}", None)
    return list(seen)


class DataError(SwcdataError):
    """The data itself is wrong in a way that stops the step (not a per-record finding)."""

    exit_code = 1


class MissingExtra(SwcdataError):
    """A command needs an optional dependency group (an extra) that is not installed."""


# What a run stopped by SIGTERM raises as KeyboardInterrupt(TERMINATED): the CLI then exits 143, not 130.
TERMINATED = "stopped by signal SIGTERM"

# import name -> the name pip installs it by
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "rouge_score": "rouge-score"}


def require_extra(extra: str, modules: tuple[str, ...], purpose: str) -> None:
    """Raise MissingExtra naming every module of `modules` that is not installed (found without
    importing anything), so that `purpose` fails with one line and the pip command, not a traceback
    from deep inside it."""
    from importlib.util import find_spec

    missing = [_DISTRIBUTIONS.get(m, m) for m in modules if find_spec(m) is None]
    if missing:
        hint = f"pip install 'swcdata[{extra}]'"
        if "torch" in missing:
            hint += " (on a GPU machine, install your CUDA build of torch first)"
        raise MissingExtra(f"{purpose} needs the `{extra}` extra; not installed: {', '.join(missing)}", hint=hint)
