"""Reading a version's stored data without `datasets`: its splits as Arrow stream files read a batch at a time,
memory-mapped tables, and a polars LazyFrame over either.

A version folder is what `datasets.save_to_disk` writes: `dataset_dict.json` names the splits, each split's
`state.json` names its Arrow *stream* files (`data-0000k-of-0000n.arrow`, record batches of 1,000 rows).

- `StoredSplit` reads those files with plain reads, a batch at a time, and keeps nothing: what a command holds is
  the batch it works on, whatever the version's size. Memory-mapping the files instead (`mapped_tables`) is
  cheaper per read, but every page read stays in the process's resident memory until the kernel needs it back:
  a 10M-record version is 12.5 GB of pages.
- `mapped_tables` gives real `pa.Table`s (random access: `take`, `slice`) over the same files.
- `table_batches` (swcdata.core.arrow) reads either kind a batch at a time: the steps that only stream (stats,
  the content hash, diff through `lazy_frame`) accept both.
- `lazy_frame`: a polars LazyFrame over tables or stored splits, read a batch at a time when collected.

pyarrow and polars are imported inside the functions that use them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swcdata.core.errors import DataError
from swcdata.registry.manifest import Manifest

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

SCAN_BATCH_ROWS = 65_536  # rows a scan converts to polars at a time


def unsafe_path(rel: str, root: Path) -> str | None:
    """Why the manifest path `rel` is not a plain relative path inside the (resolved) version folder `root`,
    judged without reading it; None when it is one."""
    from pathlib import PurePosixPath

    pure = PurePosixPath(rel)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", rel) or rel.startswith("\\"):
        return "is an absolute path (only relative paths inside the version folder are allowed)"
    if ".." in pure.parts:
        return "contains '..' (only relative paths inside the version folder are allowed)"
    if not rel or "\\" in rel or "\x00" in rel or pure.as_posix() != rel:
        return "is not a plain relative path (a/b/c, '/' between the parts)"
    real = (root / rel).resolve()
    if root not in real.parents:
        return f"leads outside the version folder (through a link, to {real})"
    return None


class StoredSplit:
    """One split of a version: its Arrow stream files, read a batch at a time with plain reads (no memory map), so
    that reading it holds one batch. It answers what the streaming steps ask of a table (`num_rows`, `schema`,
    `column_names`, `num_columns`, `nbytes`) and `batches`, which `table_batches` calls.

    `num_rows` is the manifest's count; reading checks it: a stream that holds another number of rows (a version
    read without verification, or altered) is a DataError when it ends."""

    def __init__(self, ref: str, name: str, paths: Sequence[Path], schema: pa.Schema, num_rows: int) -> None:
        self.ref, self.name, self.paths = ref, name, list(paths)
        self.schema, self.num_rows = schema, num_rows

    def __repr__(self) -> str:
        return f"StoredSplit({self.ref}:{self.name}, {self.num_rows:,} rows, {len(self.paths)} file(s))"

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    @property
    def num_columns(self) -> int:
        return len(self.schema.names)

    @property
    def nbytes(self) -> int:
        """The size of its files: about the bytes of its columns."""
        return sum(p.stat().st_size for p in self.paths)

    def batches(self, columns: Sequence[str] | None = None, rows: int = SCAN_BATCH_ROWS) -> Iterator[pa.Table]:
        """The split's rows in order, as tables of `rows` rows (the last may hold fewer) with `columns` (all by
        default); an empty split gives nothing."""
        import numpy as np
        import pyarrow as pa

        from swcdata.core.arrow import int64s

        rows = max(1, rows)
        # A record batch read from a stream file is one buffer (its message body), and each column a slice of it: a
        # table of some columns would keep every body alive (and whatever holds a column zero-copy, a polars frame
        # too), so some columns are copied out and the bodies freed.
        some = columns is not None and len(columns) < len(self.schema.names)

        def out(table: pa.Table) -> pa.Table:
            return table.take(int64s(np.arange(table.num_rows, dtype=np.int64))) if some else table

        pending: list[pa.RecordBatch] = []
        have = seen = 0
        for path in self.paths:
            try:
                with pa.OSFile(str(path)) as f:
                    for batch in pa.ipc.open_stream(f):
                        part = batch.select(list(columns)) if columns is not None else batch
                        seen += part.num_rows
                        pending.append(part)
                        have += part.num_rows
                        while have >= rows:
                            table = pa.Table.from_batches(pending)
                            yield out(table.slice(0, rows))
                            rest = table.slice(rows)
                            pending, have = rest.to_batches(), rest.num_rows
            except (OSError, pa.ArrowException, KeyError) as e:
                raise DataError(f"{self.ref}: cannot read {path}: {type(e).__name__}: {e}",
                                hint=f"run `swcdata verify {self.ref}`") from None
        if have:
            yield out(pa.Table.from_batches(pending))
        if seen != self.num_rows:
            raise DataError(f"{self.ref}: split {self.name!r} holds {seen:,} rows; its manifest counts "
                            f"{self.num_rows:,}", hint=f"run `swcdata verify {self.ref}`")


    def take(self, rows: Any, columns: Sequence[str], batch_rows: int = SCAN_BATCH_ROWS) -> pa.Table:
        """The rows at the indices `rows` (any order, repeats allowed) with `columns`, in one pass over the
        batches: only the rows asked for are kept."""
        import numpy as np
        import pyarrow as pa

        from swcdata.core.arrow import int64s

        want = np.asarray(rows, dtype=np.int64)
        if len(want) and (want.min() < 0 or want.max() >= self.num_rows):
            raise IndexError(f"row index out of range for {self!r}")
        uniq, inverse = np.unique(want, return_inverse=True)
        parts: list[pa.Table] = []
        start = 0
        for batch in self.batches(columns, batch_rows):
            lo, hi = np.searchsorted(uniq, [start, start + batch.num_rows])
            if hi > lo:
                parts.append(batch.take(int64s(uniq[lo:hi] - start)))
            start += batch.num_rows
        schema = pa.schema([self.schema.field(c) for c in columns])
        got = pa.concat_tables(parts) if parts else schema.empty_table()
        return got.take(int64s(inverse.reshape(-1)))


def _split_files(m: Manifest, folder: Path) -> dict[str, list[Path]]:
    """Each split's data files, in stored order (`dataset_dict.json`, then each split's `state.json`); a path that
    is not a plain relative path inside the folder is a DataError."""

    def fail(why: str) -> DataError:
        return DataError(f"{m.ref}: cannot read the data in {folder}: {why}", hint=f"run `swcdata verify {m.ref}`")

    root = folder.resolve()
    try:
        out: dict[str, list[Path]] = {}
        for split in json.loads((folder / "dataset_dict.json").read_bytes())["splits"]:
            files = [f["filename"] for f in json.loads((folder / split / "state.json").read_bytes())["_data_files"]]
            for rel in (f"{split}/{f}" for f in files):
                why = unsafe_path(rel, root)
                if why is not None:
                    raise fail(f"{rel} {why}")
            out[split] = [folder / split / f for f in files]
    except DataError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise fail(f"{type(e).__name__}: {e}") from None
    return out


def stored_splits(m: Manifest, folder: Path) -> dict[str, StoredSplit]:
    """A version's splits as `StoredSplit`s, in stored order (only each file's schema is read here)."""
    import pyarrow as pa

    out: dict[str, StoredSplit] = {}
    for split, paths in _split_files(m, folder).items():
        if not paths:
            raise DataError(f"{m.ref}: split {split!r} has no data file", hint=f"run `swcdata verify {m.ref}`")
        try:
            with pa.OSFile(str(paths[0])) as f:
                schema = pa.ipc.open_stream(f).schema
        except (OSError, pa.ArrowException) as e:
            raise DataError(f"{m.ref}: cannot read {paths[0]}: {type(e).__name__}: {e}",
                            hint=f"run `swcdata verify {m.ref}`") from None
        counted = m.counts.get(split)
        if counted is None:
            raise DataError(f"{m.ref}: the manifest has no count for split {split!r}",
                            hint=f"run `swcdata verify {m.ref}`")
        out[split] = StoredSplit(m.ref, split, paths, schema, counted.records)
    return out


def mapped_tables(m: Manifest, folder: Path) -> dict[str, pa.Table]:
    """The split tables of a version folder, memory-mapped, in stored order."""
    import pyarrow as pa

    out: dict[str, pa.Table] = {}
    for split, paths in _split_files(m, folder).items():
        try:
            parts = []
            for p in paths:
                with pa.memory_map(str(p)) as source:
                    parts.append(pa.ipc.open_stream(source).read_all())
        except (OSError, ValueError, pa.ArrowException) as e:
            raise DataError(f"{m.ref}: cannot read the data in {folder}: {type(e).__name__}: {e}",
                            hint=f"run `swcdata verify {m.ref}`") from None
        out[split] = pa.concat_tables(parts) if len(parts) != 1 else parts[0]
    return out


def lazy_frame(tables: Mapping[str, Any], ref: str, *, split_column: bool = True) -> pl.LazyFrame:
    """A LazyFrame over record tables (`pa.Table`s or `StoredSplit`s; the splits in the mapping's order), read a
    batch at a time when collected: only the columns the query selects are converted to polars, and a filter is
    evaluated on its own columns first, so the other columns of the rows it drops are never converted.
    `split_column`: a `split` column (String) last."""
    import polars as pl
    from polars.io.plugins import register_io_source

    from swcdata.core.arrow import table_batches
    from swcdata.core.records import RECORD_SCHEMA

    empty = pl.from_arrow(RECORD_SCHEMA.empty_table())
    assert isinstance(empty, pl.DataFrame)
    schema = dict(empty.schema)
    if split_column:
        schema["split"] = pl.String()

    def frame(batch: pa.Table, columns: list[str], split: str) -> pl.DataFrame:
        df = pl.from_arrow(batch.select([c for c in columns if c != "split"]), rechunk=False)
        assert isinstance(df, pl.DataFrame)
        if "split" in columns:
            df = df.with_columns(split=pl.lit(split, dtype=pl.String))
        return df.select(columns)

    def source(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
               batch_size: int | None) -> Any:
        columns = list(with_columns) if with_columns is not None else list(schema)
        wanted = columns or [next(iter(schema))]  # (a count of rows selects no column: read the smallest there is)
        need = sorted(set(predicate.meta.root_names())) if predicate is not None else []
        read = sorted({c for c in [*wanted, *need] if c != "split"}) or [next(iter(schema))]
        left = n_rows
        size = max(1, min(batch_size or SCAN_BATCH_ROWS, SCAN_BATCH_ROWS))
        for split, table in tables.items():
            test = predicate
            if test is not None and need == ["split"]:  # (a filter on the split alone: the whole split or none)
                if not pl.DataFrame({"split": [split]}).select(test.fill_null(False)).item():
                    continue
                test = None
            for batch in table_batches(table, read, size):
                if left is not None and left <= 0:
                    return
                if test is not None:
                    keep = frame(batch, need, split).select(test.fill_null(False)).to_series()
                    batch = batch.filter(keep.to_arrow())
                    if batch.num_rows == 0:
                        continue
                df = frame(batch, wanted, split)
                if left is not None:
                    df = df.head(left)
                    left -= df.height
                yield df

    return register_io_source(source, schema=schema, is_pure=True, explain_name="swcdata", explain_detail=ref)
