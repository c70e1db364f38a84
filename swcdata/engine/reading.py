"""Reading and validating JSONL on Ray, with exactly the local engine's results.

The local engine (`swcdata.steps.validate`) streams each file once on one machine: `iter_units` counts the
newlines, cuts the file into units of whole lines (at most ``chunk_size`` lines and 4 MiB, or one longer line)
and hashes it, and worker processes check each unit with the pure function `check_unit`. Here the same work
is spread over a Ray cluster as two Ray Data operations (`Dataset.map_batches`), with a barrier between them
that costs the driver one integer per byte block:

1. **Planning** (`plan_units`). The driver looks only at file sizes (and the first 8 bytes of each file, to
   refuse a compressed one as the local reader does) and cuts every file into byte blocks of
   ``block_bytes``. A map over small work items (one row, and one Ray Data block, per group of consecutive
   byte blocks) scans the blocks: a block owns every line that *starts* inside it (a line starts at byte 0
   and after every newline that is not the file's last byte), counts them from the newlines in its byte range
   (the byte before its start decides whether a line starts on its first byte), reads past its end to finish
   its last line, and cuts its lines into units within the local engine's limits (a call then joins the
   small units that block boundaries leave, within the same limits). A unit's first line is counted from its
   block's first. The driver reads the map's rows (per block its line count, per unit five integers) and
   takes a prefix sum over the per-block line counts, which gives each block its first line number, and each
   unit its `first_line`. Any block size works, 1 byte included: a block inside a long line owns nothing, the
   block where the line starts reads it to its end. The same map hashes the files meanwhile (its other items:
   sha256, a large file in an item of its own, small ones a few to an item); the BOM and final-newline facts
   come from the blocks that own each file's first and last line. The result equals what `iter_units` fills
   in: the same line numbers, the same `FileStats`; only the places where units are cut differ, and no result
   depends on those.
2. **Validation** (`validate_on_ray`). A map over the unit groups (one row, and one block, per group of
   ``rows_per_block`` units) reads each unit's bytes and checks it with `swcdata.steps.validate.check_unit`,
   as the local workers do, and emits per group a carrier row with its summary (per unit the counts, the
   quarantined lines, and per rule only the first ``max_findings_per_rule`` findings, which is all the report
   can list; the record columns null), then its valid records (`RECORD_SCHEMA` plus `_order`, see below; the
   summary columns null). That dataset is materialized once. The driver reads only its summary columns
   (`select_columns`), in unit order, and tallies them exactly as `Validation.run` does, into the same
   `ValidationReport`; the records Dataset is a map over the materialized blocks that drops the carrier rows
   and the summary columns (one block per group, in input order), so nothing is computed twice, the records
   never come to the driver, and the maps that read them see their true row counts (Ray Data sizes a map's
   tasks by the rows of its input blocks: with the records packed one group a row, as they once were, a map
   of 250,000 records a task over them ran as one task).

Its `_order` column is ``file index << 40 | line number`` (the file's index in the resolved input order, the
1-based input line): sorting by it gives the local engine's record order. Quarantined lines and findings are
few and come to the driver (or to an ``on_quarantine`` callback).

What the driver holds: the resolved file list; per byte block two small integers (its file and line count);
per unit its five integers (file, offset, size, first line, lines), a unit being at least a few hundred lines
at the default block size; the work items (per unit its integers and its file's path again); the listed
findings (at most the cap per rule) and the quarantined lines. The records stay in the cluster's object store
(spilled to disk when it fills).

Failures (Ray 2.60). Ray Data runs every map task with ``max_retries=-1`` and ``retry_exceptions=
[RaySystemError]`` (``ray/data/_internal/remote_fn.py``, `cached_remote_fn`): a worker that dies (killed, out
of memory, a lost node) has its task run again, with no limit, and since a map's output is only what its tasks
return, a retried task counts once. Ray Data has no bound on that other than the deprecated
``ray_remote_args``, so it can tell no "dies on every try" from "died once". Hence:

* the code checks (tree-sitter, whose crash kills its process) never run in a Ray worker itself: with
  ``check_code`` a map call checks its units in a single-use child process (`stream_isolated`), and a unit
  during which the child dies is checked again line by line in single-use children by the local engine's own
  recovery (`swcdata.steps.validate.recover_units`), so the line that kills one gets `parser-crashed` exactly
  as locally, and the task succeeds. Without the code checks the units are checked in the worker, as the local
  engine checks them in its own process;
* a task whose worker dies on every try for another reason (out of memory every time) is run again until Ray
  Data's no-progress guard ends the execution (``DataContext.execution_no_progress_timeout_s``, 30 minutes by
  default) with its `ExecutionTimeoutError`, raised here with a note that says so: an error, never a partial
  result;
* an error in the data (a file changed while it was read) is raised by a map call, neither retried
  (``max_map_retries`` 0) nor dropped (``max_errored_blocks`` 0), reaches the driver as itself
  (``raise_original_map_exception``: `swcdata.engine.session.configure_data` sets both), and is raised here
  as the local engine raises it.

Storage. The workers read the input files themselves, by absolute path; the records' `source.file` keeps the
path as the user gave it, as locally. On a cluster of several machines the inputs must be on storage that
every node mounts at the same path (NFS, a parallel file system, a FUSE mount of object storage), and the
driver must see them too (it resolves the inputs and reads their sizes).
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from swcdata.core.arrow import int64s, to_numpy
from swcdata.core.errors import InputError
from swcdata.core.io import (
    BOM,
    FileStats,
    LineUnit,
    changed_error,
    file_stamp,
    refuse_unreadable_format,
    resolve_inputs,
    split_unit,
    stamp_change,
)
from swcdata.core.isolate import ChildCrashed, stream_isolated
from swcdata.core.records import RECORD_SCHEMA
from swcdata.core.schema import Finding, Severity, ValidationReport
from swcdata.engine import require_ray
from swcdata.engine.blocks import TASKS_PER_CPU, broadcast, cluster_cpus, raised_as_locally
from swcdata.steps.validate import (
    RULES,
    TASK_BYTES,
    TASK_LINES,
    UNIT_BYTES,
    ChunkResult,
    CodeChecks,
    Quarantined,
    Tally,
    ValidateConfig,
    Validation,
    check_unit,
    recover_units,
    use_checks,
)

__all__ = ["DEFAULT_BLOCK_BYTES", "ORDER", "ORDERED_SCHEMA", "ORDER_SHIFT", "Plan", "RayValidation", "TaskHook",
           "load_valid_on_ray", "plan_units", "validate_on_ray"]

DEFAULT_BLOCK_BYTES = 64 << 20
ORDER = "_order"
ORDER_SHIFT = 40  # _order = file index << 40 | line number (a file of up to 2**40 - 1 lines)
ORDERED_SCHEMA = RECORD_SCHEMA.append(pa.field(ORDER, pa.int64(), nullable=False))

_WINDOW = 8 << 20  # a planning call reads this many bytes of consecutive blocks at once
_MARGIN = 64 << 10  # and this much past them, where the last line of the last block usually ends
_READ_ON = 1 << 20  # a line longer than that is read on this much at a time
_SCAN_BYTES = 4 << 20  # and at least this many bytes of blocks each (a smaller one costs more than it does)
_GROUP_SCALE = 64  # a validation group: at most this many times the local engine's task (lines and bytes)
_HASH_TASK_BYTES = 256 << 20  # a hashing item takes files of up to this many bytes together (or one larger)

Stamp = tuple[int, int]  # (size, modification time in ns) of a file when the driver planned it
TaskHook = Callable[[list[LineUnit]], None]  # called in a worker with the units of a validation group


# --------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class Plan:
    """Where the lines of the inputs are: the resolved files (in input order), their `FileStats` (as
    `iter_units` fills them in: sha256, bytes, lines, BOM, final newline; the blank and CRLF line counts are
    the validation's), and the units of whole lines, in file and line order."""

    files: list[Path]
    stats: list[FileStats]
    units: list[LineUnit]
    blocks: int  # byte blocks scanned


@dataclass(slots=True)
class _Planned:
    """The plan as columns, as `validate_on_ray` uses it (`plan_units` makes the LineUnits of it)."""

    files: list[Path]
    paths: list[str]  # absolute: what the workers open
    stamps: list[Stamp]
    stats: list[FileStats]
    unit_file: np.ndarray
    unit_offset: np.ndarray
    unit_size: np.ndarray
    unit_first_line: np.ndarray
    unit_lines: np.ndarray
    blocks: int


def _ray() -> Any:
    ray = require_ray()
    if not ray.is_initialized():
        raise RuntimeError("the Ray engine needs a Ray session: run it inside swcdata.engine.session.ray_session()")
    return ray


def _one_block_each(ray: Any, table: pa.Table) -> Any:
    """A Ray Dataset of `table`, one row to a block (so one row to a map task: the unit of parallelism and of
    retry), in order."""
    return ray.data.from_arrow([table.slice(i, 1) for i in range(table.num_rows)])


def _lists(parts: Sequence[Any], type_: pa.DataType) -> pa.ListArray:
    """A list column: one list per part (a sequence or an array of `type_`)."""
    values = [pa.array(p, type=type_) for p in parts]
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum([len(v) for v in values], out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.concat_arrays(values) if values else pa.array([], type_))


def plan_units(
    paths: Sequence[str | os.PathLike[str]],
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    *,
    max_lines: int = 500,
    max_bytes: int = UNIT_BYTES,
    blocks_per_task: int | None = None,
    digest: bool = True,
) -> Plan:
    """Cut `paths` (resolved as `resolve_inputs` does) into units of whole lines on the Ray cluster: at most
    `max_lines` lines and `max_bytes` bytes each (or one line longer than that), numbered as `iter_units`
    numbers them. `block_bytes`: the bytes each block of the scan covers (any size from 1 on);
    `blocks_per_task`: blocks per item of the planning map, each a Ray task (default: about four per CPU of
    the cluster, of at least 4 MiB each). `digest=False` skips the sha256 (then ""). See the module for how."""
    p = _plan(resolve_inputs(paths), block_bytes, max_lines, max_bytes, blocks_per_task, digest)
    stamps = [file_stamp(os.stat(f)) for f in p.files]
    units = [LineUnit(str(p.files[f]), o, s, fl, n, stamp=stamps[f])
             for f, o, s, fl, n in zip(p.unit_file.tolist(), p.unit_offset.tolist(), p.unit_size.tolist(),
                                       p.unit_first_line.tolist(), p.unit_lines.tolist(), strict=True)]
    return Plan(p.files, p.stats, units, p.blocks)


_SCAN, _HASH = 0, 1  # the two kinds of planning items
_PLAN_OUT = pa.schema([  # a planning item's result
    ("kind", pa.int64()),
    ("g0", pa.int64()),  # (scan) its first block, over all files
    ("counts", pa.list_(pa.int64())),  # (scan) the lines each of its blocks owns
    ("units", pa.list_(pa.int64())),  # (scan) per unit: block within the item, offset, size, first line, lines
    ("facts", pa.list_(pa.int64())),  # (scan) per fact: file, 0 (had BOM) or 1 (final newline), the fact
    ("hashed", pa.list_(pa.int64())),  # (hash) its files
    ("sha256", pa.list_(pa.string())),  # (hash) theirs
])


def _plan(files: list[Path], block_bytes: int, max_lines: int, max_bytes: int, blocks_per_task: int | None,
          digest: bool) -> _Planned:
    if block_bytes < 1 or max_lines < 1 or max_bytes < 1:
        raise ValueError("block_bytes, max_lines and max_bytes must be at least 1")
    ray = _ray()
    paths = [os.path.abspath(f) for f in files]
    stamps: list[Stamp] = []
    for f in files:
        try:
            with open(f, "rb", buffering=0) as fh:
                st = os.fstat(fh.fileno())
                refuse_unreadable_format(f, os.pread(fh.fileno(), 8, 0))
        except OSError as e:
            raise _cannot_read(f, e) from e
        stamps.append((st.st_size, st.st_mtime_ns))
    sizes = np.array([s for s, _ in stamps], dtype=np.int64)
    per_file = -(-sizes // block_bytes)  # blocks per file (an empty file has none)
    n_blocks = int(per_file.sum())
    first_block = np.concatenate([[0], np.cumsum(per_file)[:-1]]).astype(np.int64)
    items: list[tuple[int, int, list[tuple[int, int, int]]]] = []  # (kind, first block, (file, k0, k1) runs)
    if digest:  # small files hashed a few per item, a large one in an item of its own
        group: list[int] = []
        size = 0
        for i in range(len(files) + 1):
            if group and (i == len(files) or size + stamps[i][0] > _HASH_TASK_BYTES):
                items.append((_HASH, 0, [(j, 0, 0) for j in group]))
                group, size = [], 0
            if i < len(files):
                group.append(i)
                size += stamps[i][0]
    if blocks_per_task is None:
        blocks_per_task = max(1, math.ceil(n_blocks / (TASKS_PER_CPU * cluster_cpus(ray))),
                              _SCAN_BYTES // block_bytes)
    for g0 in range(0, n_blocks, blocks_per_task):
        g1 = min(g0 + blocks_per_task, n_blocks)
        runs = []  # (file index, first block, end block) of the files this item's blocks are in
        f = int(np.searchsorted(first_block, g0, side="right")) - 1
        while f < len(files) and first_block[f] < g1:
            k0, k1 = max(g0 - first_block[f], 0), min(g1 - first_block[f], per_file[f])
            if k1 > k0:
                runs.append((f, int(k0), int(k1)))
            f += 1
        items.append((_SCAN, g0, runs))
    counts = np.zeros(n_blocks, dtype=np.int64)
    unit_parts: list[tuple[int, np.ndarray]] = []
    facts: list[np.ndarray] = []
    sha256: dict[int, str] = {}
    if items:
        table = pa.table({
            "kind": int64s([k for k, _, _ in items]),
            "g0": int64s([g0 for _, g0, _ in items]),
            **{name: _lists([[r[c] for r in rs] for _, _, rs in items], pa.int64())
               for c, name in enumerate(("file", "k0", "k1"))},
            "path": _lists([[paths[r[0]] for r in rs] for _, _, rs in items], pa.string()),
            "stamp": _lists([[x for r in rs for x in stamps[r[0]]] for _, _, rs in items], pa.int64()),
        })
        ds = _one_block_each(ray, table).map_batches(
            _plan_items, batch_size=1, batch_format="pyarrow",
            fn_kwargs={"block_bytes": block_bytes, "max_lines": max_lines, "max_bytes": max_bytes})
        with raised_as_locally():
            for out in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in range(out.num_rows):
                    if out["kind"][row].as_py() == _HASH:
                        sha256.update(zip(out["hashed"][row].as_py(), out["sha256"][row].as_py(), strict=True))
                        continue
                    g0 = out["g0"][row].as_py()
                    lines = out["counts"][row].values.to_numpy()
                    counts[g0:g0 + len(lines)] = lines
                    units = out["units"][row].values.to_numpy().reshape(-1, 5)
                    if len(units):
                        unit_parts.append((g0, units + np.array([g0, 0, 0, 0, 0])))  # (block in the item -> overall)
                    facts.append(out["facts"][row].values.to_numpy().reshape(-1, 3))
    # The prefix sum: each block's first line number, from the line counts of the blocks before it in its file.
    block_file = np.repeat(np.arange(len(files), dtype=np.int64), per_file)
    file_lines = np.zeros(len(files), dtype=np.int64)
    np.add.at(file_lines, block_file, counts)
    before = np.cumsum(counts) - counts  # lines in all the blocks before, over all files
    files_before = np.cumsum(file_lines) - file_lines
    block_first_line = before - files_before[block_file] + 1
    unit_parts.sort(key=lambda part: part[0])
    units = np.concatenate([u for _, u in unit_parts]) if unit_parts else np.zeros((0, 5), dtype=np.int64)
    blocks = units[:, 0]
    bom: dict[int, bool] = {}
    final: dict[int, bool] = {}
    for f, what, fact in (np.concatenate(facts) if facts else np.zeros((0, 3), dtype=np.int64)).tolist():
        (final if what else bom)[f] = bool(fact)
    stats = [FileStats(str(f), sha256=sha256.get(i, ""), bytes=stamps[i][0], lines=int(file_lines[i]),
                       had_bom=bom.get(i, False), final_newline=final.get(i, True)) for i, f in enumerate(files)]
    return _Planned(files, paths, stamps, stats, unit_file=block_file[blocks], unit_offset=units[:, 1],
                    unit_size=units[:, 2], unit_first_line=block_first_line[blocks] + units[:, 3],
                    unit_lines=units[:, 4], blocks=n_blocks)


def _plan_items(batch: pa.Table, block_bytes: int, max_lines: int, max_bytes: int) -> pa.Table:
    """Map (planning): each item scans its byte blocks, or hashes its files (see `_PLAN_OUT`)."""
    out: dict[str, list[Any]] = {name: [] for name in _PLAN_OUT.names}
    for item in batch.to_pylist():
        files = item["file"]
        paths = dict(zip(files, item["path"], strict=True))
        stamps = {f: (item["stamp"][2 * i], item["stamp"][2 * i + 1]) for i, f in enumerate(files)}
        counts, units, facts, hashed, sha256 = np.zeros(0, np.int64), np.zeros(0, np.int64), [], [], []
        if item["kind"] == _HASH:
            hashed = files
            sha256 = [_digest_file(paths[f], stamps[f]) for f in files]
        else:
            counts, units, bom, final = _scan_blocks(list(zip(files, item["k0"], item["k1"], strict=True)), paths,
                                                     stamps, block_bytes, max_lines, max_bytes)
            facts = [x for f, fact in bom.items() for x in (f, 0, int(fact))] + \
                    [x for f, fact in final.items() for x in (f, 1, int(fact))]
        for name, value in zip(_PLAN_OUT.names, (item["kind"], item["g0"], counts, units.ravel(), facts, hashed,
                                                 sha256), strict=True):
            out[name].append(value)
    return pa.table({"kind": int64s(out["kind"]), "g0": int64s(out["g0"]),
                     **{name: _lists(out[name], _PLAN_OUT.field(name).type.value_type)
                        for name in _PLAN_OUT.names[2:]}}, schema=_PLAN_OUT)


def _cannot_read(path: str | Path, e: OSError) -> InputError:
    return InputError(f"cannot read {path}: {e.strerror}")


def _open_checked(path: str, stamp: Stamp) -> int:
    """A read-only descriptor of `path`, which must still have the size and modification time it had when
    the driver planned the work (device and inode are not compared: they differ between the nodes that
    mount a shared file system)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise changed_error(path, "it was removed or renamed") from None
    except OSError as e:
        raise _cannot_read(path, e) from e
    st = os.fstat(fd)
    why = stamp_change((0, 0, *stamp), (0, 0, st.st_size, st.st_mtime_ns))
    if why is not None:
        os.close(fd)
        raise changed_error(path, why)
    return fd


def _pread(fd: int, path: str, size: int, offset: int) -> bytes:
    """Exactly `size` bytes at `offset` (a file that ends before them changed since it was planned)."""
    parts = []
    got = 0
    while got < size:
        try:
            part = os.pread(fd, size - got, offset + got)
        except OSError as e:
            raise _cannot_read(path, e) from e
        if not part:
            raise changed_error(path, f"it ends before byte {offset + size:,}")
        parts.append(part)
        got += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _digest_file(path: str, stamp: Stamp) -> str:
    """The sha256 of a file (read by one task: the hash is sequential)."""
    h = hashlib.sha256()
    fd = _open_checked(path, stamp)
    try:
        buf = bytearray(8 << 20)
        done = 0
        with memoryview(buf) as mv:
            while True:
                try:
                    got = os.readv(fd, [mv])
                except OSError as e:
                    raise _cannot_read(path, e) from e
                if not got:
                    break
                h.update(mv[:got])
                done += got
        st = os.fstat(fd)
        why = stamp_change((0, 0, *stamp), (0, 0, st.st_size, st.st_mtime_ns))
        if why is None and done != stamp[0]:
            why = f"{done:,} bytes were read of the {stamp[0]:,} it had"
        if why is not None:
            raise changed_error(path, why)
    finally:
        os.close(fd)
    return h.hexdigest()


def _scan_blocks(runs: list[tuple[int, int, int]], paths: Mapping[int, str], stamps: Mapping[int, Stamp],
                 block_bytes: int, max_lines: int, max_bytes: int
                 ) -> tuple[np.ndarray, np.ndarray, dict[int, bool], dict[int, bool]]:
    """Scan consecutive byte blocks (`runs`: file index, first and end block). Returns the lines each
    block owns, its units as rows (block index within the item, offset, size, first line counted from the
    block's first, lines), and the had-BOM and final-newline facts of the files whose first or last line a
    block of the item owns."""
    counts: list[int] = []
    units: list[tuple[int, int, int, int, int]] = []
    bom: dict[int, bool] = {}
    final: dict[int, bool] = {}
    for f, k0, k1 in runs:
        path, stamp = paths[f], stamps[f]
        size = stamp[0]
        fd = _open_checked(path, stamp)
        run = len(units)
        try:
            k = k0
            while k < k1:  # a window of blocks read at once
                kw = min(k1, k + max(1, _WINDOW // block_bytes))
                lo = max(k * block_bytes - 1, 0)
                buf = _pread(fd, path, min(kw * block_bytes + _MARGIN, size) - lo, lo)
                for j in range(k, kw):
                    start = j * block_bytes
                    n, first_bom, last_nl = _scan_block(fd, path, size, buf, lo, start, min(start + block_bytes, size),
                                                        max_lines, max_bytes, len(counts), units)
                    counts.append(n)
                    if first_bom is not None:
                        bom[f] = first_bom
                    if last_nl is not None:
                        final[f] = last_nl
                k = kw
        finally:
            os.close(fd)
        units[run:] = _merge_units(units[run:], max_lines, max_bytes)
    return np.array(counts, dtype=np.int64), np.array(units, dtype=np.int64).reshape(-1, 5), bom, final


def _merge_units(units: list[tuple[int, int, int, int, int]], max_lines: int, max_bytes: int
                 ) -> list[tuple[int, int, int, int, int]]:
    """Consecutive units of one file joined while they stay within the limits: blocks smaller than a unit
    (or a block boundary) would otherwise leave many small ones. A joined unit keeps its first block and
    line; the units of a file's consecutive blocks follow each other without a gap."""
    out: list[tuple[int, int, int, int, int]] = []
    for u in units:
        if out:
            block, offset, size, rel, lines = out[-1]
            if offset + size == u[1] and lines + u[4] <= max_lines and size + u[2] <= max_bytes:
                out[-1] = (block, offset, size + u[2], rel, lines + u[4])
                continue
        out.append(u)
    return out


def _scan_block(fd: int, path: str, size: int, buf: bytes, lo: int, start: int, end: int, max_lines: int,
                max_bytes: int, block: int, out: list[tuple[int, int, int, int, int]]
                ) -> tuple[int, bool | None, bool | None]:
    """The lines that start in the block [start, end) of the file, cut into units appended to `out`. `buf`
    holds the file's bytes from `lo` (start - 1, or 0) to at least `end`. Returns the number of lines, and
    for the block that starts the file whether it starts with a BOM, for the one that owns the file's last
    line whether that ends with a newline (else None)."""
    a, b = start - lo, end - lo
    scan_from = a - 1 if start else 0
    # newlines in [start - 1, end - 1): each starts a line in the block (byte 0 starts one too)
    n = buf.count(b"\n", scan_from, b - 1) + (start == 0)
    if not n:
        return 0, None, None
    first = 0 if start == 0 else buf.index(b"\n", scan_from, b - 1) + 1
    # The block's lines run from `first` to the end of the line that holds its last byte.
    data, base = buf, lo
    if buf[b - 1] == 0x0A or end == size:
        stop = b
    elif (q := buf.find(b"\n", b)) >= 0:
        stop = q + 1
    elif lo + len(buf) == size:  # the file's last line, without a newline
        stop = len(buf)
    else:  # a long line: read on to its end
        data, base = buf[first:] + _read_line_end(fd, path, lo + len(buf), size), lo + first
        first, stop = 0, len(data)
    starts_file = data[:3] == BOM if start == 0 else None
    ends_file = (data[stop - 1] == 0x0A) if base + stop == size else None
    # Units as `iter_units` cuts them: at most max_lines lines and max_bytes bytes, or one longer line.
    p, rel = first, 0
    while p < stop:
        limit = min(stop, p + max_bytes)
        j, k = p - 1, 0
        while k < max_lines:
            q = data.find(b"\n", j + 1, limit)
            if q < 0:
                break
            j, k = q, k + 1
        if k == max_lines:
            e = j + 1
        elif limit == stop and data[stop - 1] != 0x0A:  # the rest, to the file's last line (no newline)
            e, k = stop, k + 1
        elif k:
            e = j + 1
        else:  # one line longer than max_bytes
            q = data.find(b"\n", p, stop)
            e, k = (q + 1 if q >= 0 else stop), 1
        out.append((block, base + p, e - p, rel, k))
        rel += k
        p = e
    assert rel == n, (path, start, rel, n)
    return n, starts_file, ends_file


def _read_line_end(fd: int, path: str, pos: int, size: int) -> bytes:
    """The bytes from `pos` to the end of the line there (its newline included), or to the end of the file."""
    parts = []
    while pos < size:
        part = _pread(fd, path, min(_READ_ON, size - pos), pos)
        q = part.find(b"\n")
        if q >= 0:
            parts.append(part[:q + 1])
            break
        parts.append(part)
        pos += len(part)
    return b"".join(parts)


# --------------------------------------------------------------------------- validation


@dataclass(slots=True)
class _UnitSummary:
    """What the driver needs of a checked unit (the records stay in the object store): per rule the count of
    findings and the first `max_findings_per_rule` of them, which is all the report may list."""

    unit: int
    file: int
    n_lines: int
    valid: int
    blank: int
    crlf: int
    quarantined: list[Quarantined]
    counts: dict[str, int] = field(default_factory=dict)
    listed: dict[str, list[tuple[int, str | None, str]]] = field(default_factory=dict)  # (line, field, message)
    # with a CodeChecks in use: the unit's checked texts (see ChunkResult)
    checked_keys: bytes = b""
    checked: dict[int, list[tuple[str, str | None, str]]] = field(default_factory=dict)
    reused: int = 0


def _summarise(unit: int, file: int, res: ChunkResult, cap: int) -> _UnitSummary:
    s = _UnitSummary(unit, file, res.n_lines, res.valid, res.blank_lines, res.crlf_lines, res.quarantined,
                     checked_keys=res.checked_keys, checked=res.checked, reused=res.reused)
    for rule, line, fld, msg in res.findings:
        n = s.counts.get(rule, 0)
        s.counts[rule] = n + 1
        if n < cap:
            s.listed.setdefault(rule, []).append((line, fld, msg))
    return s


def _ordered(res: ChunkResult, file: int, lines: list[tuple[int, bytes]]) -> pa.RecordBatch | None:
    """The unit's valid records with their `_order`: the input lines that are neither blank nor quarantined
    (every line of a unit is one of the three), in order."""
    if not res.valid:
        return None
    out = {q.line for q in res.quarantined}
    order = [(file << ORDER_SHIFT) | n for n, _ in lines if n not in out]
    assert len(order) == res.valid == res.batch.num_rows, (res.file, len(order), res.valid)
    return pa.RecordBatch.from_arrays([*res.batch.columns, int64s(order)], schema=ORDERED_SCHEMA)


def _table(batches: list[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(batches, schema=ORDERED_SCHEMA)


_GROUP_COLUMNS = ("unit", "file", "offset", "size", "first_line", "lines", "name", "path", "file_bytes", "mtime")
_SUMMARY_FIELDS = [  # a group's carrier row (null in its records' rows)
    ("_unit", pa.int64()),  # its first unit
    ("_units", pa.int64()),
    ("_recovered", pa.int64()),  # its units checked again line by line (a crash in the code checks)
    ("_summary", pa.large_binary()),  # its _UnitSummary list, pickled
]
_SUMMARY = [name for name, _ in _SUMMARY_FIELDS]
_CHECKED = pa.schema([pa.field(f.name, f.type) for f in ORDERED_SCHEMA] + _SUMMARY_FIELDS)
"""The validation map's rows: per group of units, its carrier row (the record columns null) and its records."""


def _unit_groups(plan: _Planned, names: list[str], bounds: np.ndarray) -> pa.Table:
    """The validation map's input: one row per group of units (`bounds`: where each starts, then the end),
    each unit with its file's name (as given), path (absolute) and stamp."""
    f = plan.unit_file
    stamps = np.array(plan.stamps, dtype=np.int64).reshape(-1, 2)
    offsets = pa.array(bounds.astype(np.int32))
    columns = (np.arange(len(f), dtype=np.int64), f, plan.unit_offset, plan.unit_size, plan.unit_first_line,
               plan.unit_lines, pa.array(names, pa.string()).take(f), pa.array(plan.paths, pa.string()).take(f),
               stamps[f, 0], stamps[f, 1])
    return pa.table({name: pa.ListArray.from_arrays(offsets, pa.array(values))
                     for name, values in zip(_GROUP_COLUMNS, columns, strict=True)})


def _check_groups(batch: pa.Table, cfg: ValidateConfig, hook: TaskHook | None, checks: bool = False,
                  known: Any = None) -> pa.Table:
    """Map (validation): each group's units read here and checked with `check_unit`; per group its `_CHECKED`
    carrier row, then its records. `checks`: the run keeps its code checks by text (`CodeChecks`), `known` its
    memo (broadcast): the texts it holds are not checked again, and each unit's checked texts go back in its
    summary."""
    use_checks(checks, broadcast(known) if known is not None else None)
    try:
        tables = [_check_group(group, cfg, hook) for group in batch.to_pylist()]
    finally:
        use_checks(False, None)  # (a Ray worker runs other tasks after this one)
    return pa.concat_tables(tables) if tables else _CHECKED.empty_table()


def _check_group(g: dict[str, list[Any]], cfg: ValidateConfig, hook: TaskHook | None) -> pa.Table:
    units = [LineUnit(name, offset, size, first_line, n) for name, offset, size, first_line, n
             in zip(g["name"], g["offset"], g["size"], g["first_line"], g["lines"], strict=True)]
    if hook is not None:
        hook(units)
    data: list[bytes] = []
    fds: dict[str, int] = {}
    try:
        for path, size, mtime, u in zip(g["path"], g["file_bytes"], g["mtime"], units, strict=True):
            if path not in fds:
                fds[path] = _open_checked(path, (size, mtime))
            data.append(_pread(fds[path], path, u.size, u.offset))
    finally:
        for fd in fds.values():
            os.close(fd)
    results, recovered = _check(units, data, cfg)
    batches: list[pa.RecordBatch] = []
    summaries: list[_UnitSummary] = []
    for unit, f, u, d, res in zip(g["unit"], g["file"], units, data, results, strict=True):
        rows = _ordered(res, f, split_unit(d, u.first_line, u.offset == 0)[0])
        if rows is not None:
            batches.append(rows)
        summaries.append(_summarise(unit, f, res, cfg.max_findings_per_rule))
    records = _table(batches)
    carrier = [g["unit"][0], len(units), recovered, pickle.dumps(summaries, protocol=pickle.HIGHEST_PROTOCOL)]
    columns = [pa.chunked_array([pa.nulls(1, f.type), *records.column(f.name).chunks], f.type)
               for f in ORDERED_SCHEMA]
    columns += [pa.chunked_array([pa.array([v], kind), pa.nulls(records.num_rows, kind)], kind)
                for v, (_, kind) in zip(carrier, _SUMMARY_FIELDS, strict=True)]
    return pa.Table.from_arrays(columns, schema=_CHECKED)


def _check(units: list[LineUnit], data: list[bytes], cfg: ValidateConfig) -> tuple[list[ChunkResult], int]:
    """The units checked, and how many were checked again line by line. The code checks run tree-sitter, whose
    crash kills its process: they run in a single-use child process, and a unit during which one dies is
    checked again by the local engine's recovery (`recover_units`: line by line in single-use children, the
    line that kills one gets `parser-crashed`), so that the worker survives (see the module)."""
    if not cfg.check_code:
        return [check_unit(u, cfg, d) for u, d in zip(units, data, strict=True)], 0
    _warm_up()
    results: list[ChunkResult] = []
    recovered = 0
    while len(results) < len(units):
        i = len(results)
        try:
            for res in stream_isolated(_check_each_unit, units[i:], data[i:], cfg):
                results.append(res)
        except ChildCrashed:
            u = units[len(results)]
            results += recover_units(([LineUnit(u.file, u.offset, u.size, u.first_line, u.lines,
                                                data=data[len(results)])], cfg, True))
            recovered += 1
    return results, recovered


def _check_each_unit(units: list[LineUnit], data: list[bytes], cfg: ValidateConfig) -> Iterator[ChunkResult]:
    """In a single-use child: `check_unit` of each unit."""
    for u, d in zip(units, data, strict=True):
        yield check_unit(u, cfg, d)


_warm = False


def _warm_up() -> None:
    """Load here, once, what every code check needs (tree-sitter, the compiled scanners): the children inherit
    it instead of each loading its own."""
    global _warm
    if not _warm:
        from swcdata.solidity.spans import extract_code
        from swcdata.solidity.treesitter import parse_check

        parse_check("contract A {}")
        extract_code("x = 1;")
        _warm = True


def _records_of(batch: pa.Table) -> pa.Table:
    """Map (the records Dataset): the batch's records, without the groups' carrier rows and summary columns (the
    slices between the carriers: no record is copied)."""
    carriers = np.flatnonzero(to_numpy(pc.is_null(batch.column(ORDER))))
    starts, stops = np.append(0, carriers + 1), np.append(carriers, batch.num_rows)
    pieces = [batch.slice(a, b - a) for a, b in zip(starts.tolist(), stops.tolist(), strict=True) if b > a]
    rows = pa.concat_tables(pieces) if pieces else batch.slice(0, 0)
    return pa.Table.from_arrays([rows.column(f.name) for f in ORDERED_SCHEMA], schema=ORDERED_SCHEMA)


@dataclass(slots=True)
class RayValidation:
    """The validate step's result on Ray.

    `records`: a Ray Dataset of the valid records (Arrow blocks with the `RECORD_SCHEMA` columns and `_order`,
    one block per group of units, in input order: sorting by `_order` gives the local engine's order), or None
    where an `on_records` callback took them.
    `report`: the `ValidationReport`, equal to the local engine's but for `seconds`, `records_per_second`.
    `quarantined`: the quarantined lines in input order (empty when an `on_quarantine` callback took them).
    `recovered`: units checked again line by line because the process that checked them died (a crash in the
    code checks: see the module)."""

    records: Any
    report: ValidationReport
    quarantined: list[Quarantined]
    units: int
    blocks: int
    recovered: int = 0


def validate_on_ray(
    paths: Sequence[str | os.PathLike[str]],
    config: ValidateConfig | None = None,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    rows_per_block: int | None = None,
    blocks_per_task: int | None = None,
    digest: bool = True,
    on_quarantine: Callable[[list[Quarantined]], None] | None = None,
    on_records: Callable[[pa.Table], None] | None = None,
    task_hook: TaskHook | None = None,
    checks: CodeChecks | None = None,
) -> RayValidation:
    """Validate `paths` on the Ray cluster this process is connected to (see `swcdata.engine.session`), with
    the local engine's results (see the module).

    `block_bytes`, `blocks_per_task`: the planning scan (see `plan_units`). `rows_per_block`: units per group,
    each a row of the validation map (a Ray task) and a block of the records Dataset (default: units of up to
    2,000 lines and 4 MiB together, one unit with the code checks, as the local engine groups them).
    `on_quarantine`: takes each unit's quarantined lines, in order, instead of the result's list.
    `on_records`: takes the valid records (`ORDERED_SCHEMA`) a group at a time, in input order, as each group's
    check ends (the later groups are checked meanwhile); the result's `records` is then None, and no group
    stays on the cluster once read. `task_hook`: called in the worker with the units of every group before they
    are read (a seam for tests that kill workers; None in use). `checks`: the code checks kept by text, as
    `Validation.run` takes them (its memo broadcast to the workers; this run's checked texts gathered here)."""
    ray = _ray()
    cfg = config or ValidateConfig()
    t0 = time.perf_counter()
    files = resolve_inputs(paths)
    plan = _plan(files, block_bytes, cfg.chunk_size, UNIT_BYTES, blocks_per_task, digest)
    names = [str(f) for f in files]
    bounds = _groups(plan, cfg, rows_per_block, cluster_cpus(ray), memo=checks is not None and checks.known is not None)
    tally = Tally()
    tally.stats = {str(f): st for f, st in zip(files, plan.stats, strict=True)}
    quarantined: list[Quarantined] = []
    counts = [0, 0]  # the units tallied, the units checked again

    def take(b: pa.Table) -> None:
        """Tally the summaries of a block's groups (its carrier rows), which must come in input order."""
        b = b.filter(pc.is_valid(b.column("_unit")))
        for first, n, rec, blob in zip(*(b[c].to_pylist() for c in _SUMMARY), strict=True):
            if first != counts[0]:  # (configure_data keeps the blocks in order)
                raise RuntimeError(f"the Ray Data blocks came out of order: unit {first}, not {counts[0]}")
            counts[0] += n
            counts[1] += rec
            for s in pickle.loads(blob):
                _tally(tally, names[s.file], s, cfg.max_findings_per_rule)
                if checks is not None:
                    checks.collect(s)
                if s.quarantined:
                    (on_quarantine or quarantined.extend)(s.quarantined)

    records = None
    if len(bounds) > 1:
        checked = _one_block_each(ray, _unit_groups(plan, names, bounds)).map_batches(
            _check_groups, batch_size=1, batch_format="pyarrow",
            fn_kwargs={"cfg": cfg, "hook": task_hook, "checks": checks is not None,
                       "known": ray.put(checks.known) if checks is not None and checks.known is not None else None})
        with raised_as_locally():
            if on_records is None:
                checked = checked.materialize()
                for b in checked.select_columns(_SUMMARY).iter_batches(batch_size=None, batch_format="pyarrow"):
                    take(b)
                records = checked.map_batches(_records_of, batch_size=None, batch_format="pyarrow")
            else:  # (streamed: each block read once, while the next ones are checked)
                for b in checked.iter_batches(batch_size=None, batch_format="pyarrow"):
                    take(b.select(_SUMMARY))
                    if (rows := _records_of(b)).num_rows:
                        on_records(rows)
    elif on_records is None:  # (no line at all: an empty Dataset with the schema)
        records = ray.data.from_arrow(_table([]))
    report = Validation(cfg).report(files, tally, time.perf_counter() - t0)
    return RayValidation(records, report, quarantined, units=len(plan.unit_file), blocks=plan.blocks,
                         recovered=counts[1])


def _groups(plan: _Planned, cfg: ValidateConfig, rows_per_block: int | None, cpus: int = 1,
            memo: bool = False) -> np.ndarray:
    """Where each group of units starts, then the number of units: `rows_per_block` units at a time, or groups
    of at least the local engine's task size (its lines and bytes), larger where the input is large for the
    cluster's `cpus`: about `TASKS_PER_CPU` groups a CPU, of equal lines, each at most `_GROUP_SCALE` times the
    local size (a Ray task costs about 0.2 s to schedule and collect on top of its work: 32 groups of 31k lines
    took 11.5 s at 1M records on 2 CPUs, 9 of 125k lines 9.3 s). With the code checks, a unit a group, as
    locally, unless a memo of earlier checks is in use (`memo`: most texts are not parsed)."""
    n = len(plan.unit_file)
    if rows_per_block is not None:
        if rows_per_block < 1:
            raise ValueError("rows_per_block must be at least 1")
        return np.append(np.arange(0, n, rows_per_block, dtype=np.int64), n)
    task_lines, task_bytes, share = 1, TASK_BYTES, math.inf
    if not cfg.check_code or memo:
        total = int(plan.unit_lines.sum())
        task_lines, task_bytes = TASK_LINES * _GROUP_SCALE, TASK_BYTES * _GROUP_SCALE  # (at most)
        per_group = int(np.clip(-(-total // (TASKS_PER_CPU * cpus)), TASK_LINES, task_lines))
        share = total / max(1, -(-total // per_group))  # (the lines of each group, the same for all)
    starts: list[int] = []
    lines = size = done = 0
    for i, (k, s) in enumerate(zip(plan.unit_lines.tolist(), plan.unit_size.tolist(), strict=True)):
        if not starts or lines + k > task_lines or size + s > task_bytes or done >= len(starts) * share:
            starts.append(i)
            lines = size = 0
        lines += k
        size += s
        done += k
    return np.array([*starts, n], dtype=np.int64)


def _tally(t: Tally, file: str, s: _UnitSummary, cap: int) -> None:
    """Count a unit's summary as `Validation.run` counts its ChunkResult (units come in input order)."""
    st = t.stats[file]
    st.blank_lines += s.blank
    st.crlf_lines += s.crlf
    t.valid[file] += s.valid
    t.quarantined[file] += len(s.quarantined)
    for rule, n in s.counts.items():
        sev = RULES[rule][0]
        t.rule_counts[rule][file] += n
        if sev is Severity.error:
            t.errors[file] += n
        elif sev is Severity.warning:
            t.warnings[file] += n
        take = max(0, min(n, cap - t.rule_totals[rule]))
        t.rule_totals[rule] += n
        t.truncated += n - take
        t.listed.extend(Finding(rule=rule, severity=sev, file=file, line=line, field=fld, message=msg)
                        for line, fld, msg in s.listed.get(rule, ())[:take])


def load_valid_on_ray(
    paths: Sequence[str | os.PathLike[str]],
    config: ValidateConfig | None = None,
    **options: Any,
) -> tuple[pa.Table, ValidationReport, list[Quarantined]]:
    """`load_valid` on Ray: the valid records as one in-memory table (`RECORD_SCHEMA`, in the local engine's
    order), the report and the quarantined lines. For tests and small inputs: the driver holds the table.
    `options`: those of `validate_on_ray`."""
    ray = _ray()
    v = validate_on_ray(paths, config, **options)
    with raised_as_locally():
        tables = ray.get(v.records.to_arrow_refs())
    table = pa.concat_tables(tables) if tables else _table([])
    return table.sort_by(ORDER).drop_columns([ORDER]), v.report, v.quarantined
