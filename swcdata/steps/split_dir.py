"""A split directory: one `<split>.jsonl` file of stored records per split (train, validation, test, or
any other name). `swcdata split` writes one; `augment` and `finetune` read one. Written all together or
not at all; read back with the schema checks, since it is swcdata's own output and must be clean."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from swcdata.core.errors import DataError, InputError
from swcdata.core.io import atomic_outputs
from swcdata.core.records import write_jsonl
from swcdata.steps.validate import ValidateConfig, load_valid

SPLIT_NAMES = ("train", "validation", "test")


def write_split_dir(splits: dict[str, pa.Table], directory: Path) -> dict[str, Path]:
    """Write each split as `<directory>/<split>.jsonl` (stored-record JSON, one per line): all the files
    or none (an interrupted run leaves the folder as it was, and no folder where there was none)."""
    return write_split_files({name: lambda f, t=table: write_jsonl(t, f) for name, table in splits.items()},
                             directory)


def write_split_files(writers: dict[str, Callable[[BinaryIO], object]], directory: Path) -> dict[str, Path]:
    """`write_split_dir` with a writer per split (which writes its records to the open file it is given: the Ray
    engine streams a split's blocks)."""
    paths = {name: directory / f"{name}.jsonl" for name in writers}
    with atomic_outputs(list(paths.values())) as files:  # (all moved in place together, or none)
        for f, write in zip(files, writers.values(), strict=True):
            write(f)
    return paths


def read_split_dir(directory: Path) -> dict[str, pa.Table]:
    """Read a split directory written by `write_split_dir` (or by hand: `<split>.jsonl` files) into
    record tables, in the order train, validation, test, then any other split by name. Lines are
    validated (schema checks only); a bad line raises DataError naming it, since a split directory is
    swcdata's own output and must be clean."""
    out: dict[str, pa.Table] = {}
    for name, path in split_files(directory).items():
        table, report, quarantined = load_valid([path], ValidateConfig(check_code=False))
        if quarantined:
            q = quarantined[0]
            raise DataError(f"{q.file}:{q.line}: {q.reasons[0][2]} ({report.ledger.quarantined} bad line(s))")
        out[name] = table
    return out


def split_files(directory: Path) -> dict[str, Path]:
    """The `<split>.jsonl` files of a split directory, in the order train, validation, test, then any other split
    by name (InputError when it is no folder or holds none)."""
    if not directory.is_dir():
        raise InputError(f"not a split directory: {directory}", hint="pass the --out folder of `swcdata split`")
    files = {p.stem: p for p in sorted(directory.glob("*.jsonl"))}
    if not files:
        raise InputError(f"no <split>.jsonl files in {directory}")
    return {s: files[s] for s in [s for s in SPLIT_NAMES if s in files] + sorted(s for s in files
                                                                                  if s not in SPLIT_NAMES)}
