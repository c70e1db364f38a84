"""Terminal plumbing shared by the CLI: consoles, progress bars (only on a terminal), error printing,
and the option vocabulary every command reuses. Imports nothing heavy."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from swcdata.core.errors import TERMINATED


def _flags_show_no_type() -> None:
    """typer 0.29 shows a type after every option in --help, `--strict <bool>` too, as if the flag
    took a value (`--strict true` then reads `true` as a path). A flag shows no type here; every
    other option keeps typer's display. (Skipped if a typer release renames the hook.)"""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_swcdata", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    display_type_rich._swcdata = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_type()
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)
if not out.is_terminal and "COLUMNS" not in os.environ:
    # Piped or captured: no terminal to fit (rich would assume 80 columns), so give tables room
    # for a file:line reference on one line.
    out.width = 160

# ---- one vocabulary of options ---------------------------------------------------------------
PathsArg = Annotated[
    list[str],
    typer.Argument(help="JSONL files, directories (searched for *.jsonl) or quoted globs.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout (no tables, no progress).")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Also write the full report as JSON to this file.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives byte-identical output.")]
def _cap_workers(value: int) -> int:
    """More worker processes than cores only adds memory and switching: capped, with a note on stderr."""
    if value <= 1:
        return value
    from swcdata.core.workers import usable_cpus

    cpus = usable_cpus()
    if value > cpus:
        err.print(f"[dim]note: --workers {value} capped at {cpus}, the CPU cores this process may use[/]")
        return cpus
    return value


WorkersOpt = Annotated[int, typer.Option("--workers", min=0, callback=_cap_workers,
                                         help="Worker processes; 0 = one per CPU core (more than the cores are "
                                              "capped).")]

EngineOpt = Annotated[str | None, typer.Option(
    "--engine", help="Where the step runs: local (this machine, the default) or ray (a Ray cluster through Ray Data: "
    "the same results). Default: `engine` in ./swcdata.toml, else local.", show_default=False)]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="With --engine ray: the cluster to join (ray://HOST:10001 or HOST:6379); default "
    "RAY_ADDRESS, else a local cluster on this machine's cores.", show_default=False)]

P = ParamSpec("P")
R = TypeVar("R")


def _is_stdout(path: Path | None) -> bool:
    return path is not None and path.as_posix() in ("-", "/dev/stdout")


def route_stdout(outputs: Iterable[tuple[str, Path | None]], json_out: bool) -> None:
    """When an output goes to stdout (``--out -``), stdout carries that data alone: the tables and
    messages go to stderr for the rest of the command (`handle_errors` restores the console), and
    ``--json``, which prints its report on stdout too, is refused, as are two outputs on stdout."""
    from swcdata.core.errors import InputError

    names = [option for option, path in outputs if _is_stdout(path)]
    if not names:
        return
    if json_out:
        raise InputError(f"--json and {names[0]} - both write to stdout",
                         hint=f"write {names[0]} to a file, or drop --json and read the summary on stderr")
    if len(names) > 1:
        raise InputError(f"{names[0]} and {names[1]} both write to stdout: one would mix into the other")
    out.file = sys.stderr




def _stop_on_sigterm() -> Any:
    """SIGTERM (`timeout`, a scheduler, systemd, a launcher stopping its workers) stops a command the
    way Ctrl-C does: outputs not yet complete are removed, worker pools are shut down, a training run is
    marked failed, and the exit code is 143. Python's default would kill the process with no cleanup,
    leaving temporary files and orphaned pool workers. Returns the handler to restore (None off the
    main thread, where no handler can be set)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    _defer_during_fork()

    def stop(_signum: int, _frame: object) -> None:
        if _FORK["inside"]:  # an exception raised now would be ignored (see _defer_during_fork)
            _FORK["pending"] = True
            return
        raise KeyboardInterrupt(TERMINATED)

    return signal.signal(signal.SIGTERM, stop)


# While os.fork runs its at-fork callbacks (logging takes and releases its locks there), an exception raised
# by a signal handler is printed as "Exception ignored" and dropped: a SIGTERM landing there would be lost
# and the command would run on. So the handler only notes it during a fork, and the signal is delivered
# again just after the fork, from a short-lived thread, to the main thread's ordinary code.
_FORK: dict[str, bool] = {"inside": False, "pending": False, "registered": False}


def _defer_during_fork() -> None:
    if _FORK["registered"]:
        return
    _FORK["registered"] = True

    def before() -> None:  # (registered after logging's: runs before its lock is taken)
        _FORK["inside"] = True

    def after_in_parent() -> None:  # (runs after logging's lock is released)
        _FORK["inside"] = False
        if _FORK["pending"]:
            _FORK["pending"] = False
            _redeliver_sigterm()

    def after_in_child() -> None:
        _FORK["inside"] = _FORK["pending"] = False

    os.register_at_fork(before=before, after_in_parent=after_in_parent, after_in_child=after_in_child)


def _redeliver_sigterm() -> None:
    import _thread
    import signal
    import threading

    threading.Timer(0.01, _thread.interrupt_main, args=(signal.SIGTERM,)).start()


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn user-facing errors into one red line on stderr and the right exit code (never a traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from rich.markup import escape

        from swcdata.core.errors import SwcdataError

        previous = _stop_on_sigterm()
        try:
            return fn(*args, **kwargs)
        except SwcdataError as e:
            # (escaped: a message or hint may hold brackets, such as "pip install 'swcdata[train]'")
            # (soft-wrapped: the terminal wraps it, a log keeps a path on one line)
            err.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt as e:
            terminated = bool(e.args) and e.args[0] == TERMINATED
            if previous is not None:  # the command is over: a second SIGTERM must not interrupt the exit
                import signal

                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                previous = None
            err.print(f"[yellow]{'terminated' if terminated else 'interrupted'}[/]")
            if terminated:
                # The command's own cleanup has run (outputs removed, pools shut down). Leave now: in
                # some runs a KeyboardInterrupt came back during interpreter shutdown after SIGTERM and
                # the process died by SIGINT (-2) instead of exiting 143.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(143)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            sys.stderr.close()
            raise typer.Exit(0) from None
        finally:
            out.file = None  # type: ignore[assignment]  # (back to this process's stdout; see route_stdout)
            if previous is not None:
                import signal

                signal.signal(signal.SIGTERM, previous)

    return wrapper


def kv_table(rows: Iterable[tuple[str | Text, str | Text]], title: str | None = None, *,
             justify: Literal["left", "right"] = "left") -> Table:
    """A borderless two-column table, labels in bold: the shape of every summary the CLI prints
    (ledgers, run and version facts). ``justify="right"`` lines up numbers. Cells are plain text,
    shown as they are (values come from the data: paths, names, ids, where rich would read "[x]"
    as markup); a styled cell is a `Text`, e.g. ``Text.from_markup("[green]yes[/]")``."""
    t = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold", overflow="fold")
    t.add_column(justify=justify, overflow="fold")
    for label, value in rows:
        t.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in (label, value)))
    return t


def print_json(data: Any) -> None:
    """Machine output: indented JSON on stdout, nothing else. A pydantic model is serialised by
    pydantic itself; anything else (lists, dicts of plain values) by the json module."""
    if hasattr(data, "__pydantic_serializer__"):
        buffer = getattr(sys.stdout, "buffer", None)
        sys.stdout.flush()
        if buffer is None:  # a text-only stream (a notebook's): write the text
            sys.stdout.write(_report_bytes(data).decode("utf-8"))
            sys.stdout.flush()
        else:
            buffer.write(_report_bytes(data))
            buffer.flush()
        return
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def write_report(path: Path, report: Any) -> None:
    """Write a pydantic report as indented JSON, atomically (see io.atomic_output)."""
    from swcdata.core.errors import InputError
    from swcdata.core.io import atomic_output

    try:
        with atomic_output(path) as f:
            write_report_to(f, report)
    except OSError as e:
        raise InputError(f"cannot write the report {path}: {e.strerror}") from None


def write_report_to(f: BinaryIO, report: Any) -> None:
    """A pydantic report as indented JSON into an open binary file (one of several written together)."""
    f.write(_report_bytes(report))


def _report_bytes(model: Any) -> bytes:
    """A pydantic model as indented JSON and a final newline, straight from pydantic's serializer (no
    Python dicts, no intermediate str). Reports hold summaries only: per-record lists go beside them, in
    Parquet (see `swcdata dedup --report`)."""
    return model.__pydantic_serializer__.to_json(model, indent=2) + b"\n"


def show_progress(json_mode: bool) -> bool:
    return not json_mode and err.is_terminal


@contextmanager
def signing_progress(enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar for the records that dedup, audit and split sign (their long part): yields the
    `(done, total)` callback those steps take."""
    with progress_bar("signatures", None, enabled=enabled) as advance:
        yield lambda done, total: advance(0, completed=done, total=total)


@contextmanager
def status(description: str, json_mode: bool) -> Iterator[None]:
    """A transient spinner with the elapsed time on stderr (a terminal, not --json), for work whose progress the
    command cannot count (a Ray execution)."""
    if not show_progress(json_mode):
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(), console=err,
                  transient=True) as p:
        p.add_task(description, total=None)
        yield


@contextmanager
def progress_bar(description: str, total: float | None, *, enabled: bool) -> Iterator[Callable[..., None]]:
    """Yield `advance(n=1, **fields)`; draws a transient rich bar on a terminal, does nothing otherwise."""
    if not enabled:
        yield lambda *a, **k: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as p:
        task = p.add_task(description, total=total)

        def advance(n: float = 1, **fields: Any) -> None:
            p.update(task, advance=n, **fields)

        yield advance
