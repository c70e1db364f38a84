"""Reading records and writing outputs for the commands: inputs validated into record tables (nothing
lost: set-aside lines are counted and announced), outputs written all together or not at all."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

from swcdata.cli.console import (
    err,
    route_stdout,
)


def bytes_progress(advance: Callable[[float], None]) -> Callable[[int, int], None]:
    """The validate step's progress callback `(lines, bytes read so far)` as advances of a bar
    counted in bytes."""
    last = 0

    def progress(_lines: int, bytes_done: int) -> None:
        nonlocal last
        advance(bytes_done - last)
        last = bytes_done

    return progress


def load_records(paths: list[str], *, json_out: bool, label: str = "read",  # type: ignore[no-untyped-def]
                  kept_with: str | None = None, outputs: list[tuple[str, Path | None]] | None = None):
    """Read and schema-validate JSONL into a record table (quarantined lines are counted, never lost).
    Lines set aside are announced on stderr, with the option that keeps them (`kept_with`) if any.
    `outputs` (option, path) are refused if they would overwrite an input (see io.check_outputs)."""
    from swcdata.cli.console import progress_bar, show_progress
    from swcdata.core.io import check_outputs, resolve_inputs
    from swcdata.steps.validate import ValidateConfig, load_valid

    files = resolve_inputs(paths)
    check_outputs(files, outputs or [])
    route_stdout(outputs or [], json_out)
    total = sum(p.stat().st_size for p in files)
    with progress_bar(label, total, enabled=show_progress(json_out)) as advance:
        # the callers keep the ledger of this report, never the inputs' digests: none is computed
        table, vrep, quarantined = load_valid([str(p) for p in files], ValidateConfig(check_code=False),
                                              progress=bytes_progress(advance), digest=False)
    announce_quarantined(len(quarantined), json_out=json_out, label=label, kept_with=kept_with)
    return table, vrep, quarantined


def load_records_on_ray(stack: ExitStack, paths: list[str], address: str | None, *, json_out: bool,  # type: ignore[no-untyped-def]
                        label: str = "read", kept_with: str | None = None,
                        outputs: list[tuple[str, Path | None]] | None = None):
    """`load_records` on Ray: the Ray session joined (or started) on `stack`, where it stays open while the
    caller works with the result, `swcdata.engine.reading.validate_on_ray`'s `RayValidation` (the valid records
    as a Ray Dataset with `_order`, the report, the quarantined lines). The same checks and announcement."""
    from swcdata.cli.console import status
    from swcdata.core.io import check_outputs, resolve_inputs
    from swcdata.engine.reading import validate_on_ray
    from swcdata.engine.session import ray_session
    from swcdata.steps.validate import ValidateConfig

    files = resolve_inputs(paths)
    check_outputs(files, outputs or [])
    route_stdout(outputs or [], json_out)
    stack.enter_context(ray_session(address))
    with status(f"reading {len(files)} file(s) on Ray", json_out):
        valid = validate_on_ray([str(p) for p in files], ValidateConfig(check_code=False), digest=False)
    announce_quarantined(len(valid.quarantined), json_out=json_out, label=label, kept_with=kept_with)
    return valid


def read_split_dir_on_ray(directory: Path) -> dict[str, object]:
    """`read_split_dir` on Ray (a session must be open): each split's records as a Ray Dataset with `_order`, read
    and checked by `validate_on_ray`; a bad line is the same DataError as locally."""
    from swcdata.core.errors import DataError
    from swcdata.engine.reading import validate_on_ray
    from swcdata.steps.split_dir import split_files
    from swcdata.steps.validate import ValidateConfig

    out: dict[str, object] = {}
    for name, path in split_files(directory).items():
        valid = validate_on_ray([str(path)], ValidateConfig(check_code=False), digest=False)
        if valid.quarantined:
            q = valid.quarantined[0]
            raise DataError(f"{q.file}:{q.line}: {q.reasons[0][2]} ({valid.report.ledger.quarantined} bad line(s))")
        out[name] = valid.records
    return out


def ray_jsonl_writer(ds: object, fmt: str = "records") -> Callable[[BinaryIO], None]:
    """A writer of a Ray Dataset of records (with the engine's `_order`, `_sub` columns) as JSONL in `fmt` (the
    stored records by default; see swcdata.registry.formats): its blocks read back one at a time, in order."""

    def write(f: BinaryIO) -> None:
        from swcdata.core.records import RECORD_COLUMNS
        from swcdata.registry.formats import write_rendered

        for block in ds.iter_batches(batch_format="pyarrow", batch_size=None):  # type: ignore[attr-defined]
            write_rendered(block.select(list(RECORD_COLUMNS)), f, fmt)  # type: ignore[arg-type]

    return write


def announce_quarantined(n: int, *, json_out: bool, label: str = "read", kept_with: str | None = None) -> None:
    """On stderr: how many lines were set aside, and the option that keeps them (`kept_with`) if any."""
    if n and not json_out:
        keep = f"{kept_with} FILE writes them verbatim with their reasons; " if kept_with else ""
        which = "input" if label == "read" else label
        err.print(f"[yellow]warning:[/] {n:,} {which} line(s) fail the schema checks and were set "
                  f"aside (counted as quarantined in the ledger); {keep}swcdata validate names each problem")


def write_together(outputs: list[tuple[Path | None, Callable[[BinaryIO], object]]]) -> None:
    """Write the given outputs (None paths skipped) so that the files move in place together when all
    are written (io.atomic_outputs; `-` is stdout)."""
    from swcdata.core.io import atomic_outputs

    present = [(p, write) for p, write in outputs if p is not None]
    with atomic_outputs([p for p, _ in present]) as handles:
        for f, (_, write) in zip(handles, present, strict=True):
            write(f)

def open_output(stack: ExitStack, path: Path | None) -> BinaryIO | None:
    """`path` opened through io.atomic_output on `stack` (in place when the stack closes without an
    exception), or None."""
    if path is None:
        return None
    from swcdata.core.errors import InputError
    from swcdata.core.io import atomic_output

    try:
        return stack.enter_context(atomic_output(path))
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from e

