"""Errors that reach the user as one clear line and an exit code, never a traceback."""

from __future__ import annotations


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
