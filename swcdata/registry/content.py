"""The content hash: the identity of a version's data, computed from the records alone.

`content_hash` is the sha256 over the split names (sorted), their row counts and every row's canonical JSON
(sorted keys), in row order, after a fixed header. It does not depend on Arrow chunking, nullability flags, the
machine or the time, so the same records give the same hash anywhere. Two formats (the manifest's
`schema_version` says which one a version uses: `hash_format`):

- 2 (`HASH_FORMAT`, schema_version 3 on): each split is cut into fixed shards of rows (`shard_bounds` with
  `SHARD_ROWS`: they depend on the row count alone, and they are the version's data files); the hash covers each
  shard's digest (`shard_digest`: the sha256 of its rows' JSON lines) in order. Workers hash their own shards in
  parallel (`swcdata.engine.build`) and `combined_hash` joins the digests: the same hash as hashing here.
- 1 (`HASH_FORMAT_1`, schema_version 1 and 2): one sha256 over every row's JSON line, in order. Still read.

`canonical` is the step before publishing: it checks the tables against the record schema, re-encodes them (one
contiguous chunk, the splits in a fixed order) and returns them with their hash and counts; the registry writes
exactly these tables (a shard at a time: `swcdata.registry.shards`).

Both are columnar. `canonical` is an Arrow cast and a take into fresh buffers (the values never become Python
objects). The rows' JSON is written by polars (`struct.json_encode` writes exactly the bytes orjson writes for the
row's dict with sorted keys, every string escaped alike: tests/test_registry.py checks every Unicode character),
`HASH_BATCH_ROWS` rows at a time, and hashed from the Arrow buffer of the lines. A table with a column polars
would write otherwise than orjson (floats, lists, dates: never a record table) takes the row-by-row path, in
batches too.

pyarrow, polars and `datasets` are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from swcdata.core.errors import DataError
from swcdata.registry.manifest import SplitCounts

if TYPE_CHECKING:
    import pyarrow as pa

HASH_FORMAT_1 = b"swcdata-content-hash/1\n"
HASH_FORMAT = b"swcdata-content-hash/2\n"
HASH_FORMATS = {1: HASH_FORMAT_1, 2: HASH_FORMAT}
CURRENT_HASH_FORMAT = 2
SHARD_ROWS = 250_000
"""Rows per shard (`shard_bounds`): a version's data files, and the chunks of rows hashing format 2 digests. Part
of the format: another value gives other hashes."""
SPLIT_ORDER = ("train", "validation", "test")
_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name


def as_arrow(data: Any) -> pa.Table:
    """A pa.Table from a pa.Table or a `datasets.Dataset` (its rows in their visible order); a split read from
    disk a batch at a time (`swcdata.registry.stored.StoredSplit`) as it is."""
    import pyarrow as pa

    if isinstance(data, pa.Table) or hasattr(data, "batches"):  # (a table, or a split read from disk: StoredSplit)
        return data
    if getattr(data, "_indices", None) is not None:  # a shuffled/selected Dataset: materialise its row order
        with quiet_datasets():
            data = data.flatten_indices()
    table = getattr(data, "data", None)
    table = getattr(table, "table", table)
    if not isinstance(table, pa.Table):
        raise TypeError(f"expected a pyarrow Table or a datasets.Dataset, got {type(data).__name__}")
    return table


HASH_BATCH_ROWS = 8_192  # rows encoded at a time: the memory of the hash stays bounded whatever the table's size


class ContentCheckCancelled(Exception):
    """The content hash stopped because its `cancel` event was set (see `Registry.reading`)."""


def _batches(table: Any, cancel: threading.Event | None) -> Iterator[pa.Table]:
    """The table's rows, HASH_BATCH_ROWS at a time (slices, or reads of a split on disk); stops with
    ContentCheckCancelled once `cancel` is set."""
    from swcdata.core.arrow import table_batches

    for batch in table_batches(table, None, HASH_BATCH_ROWS):
        if cancel is not None and cancel.is_set():
            raise ContentCheckCancelled
        yield batch


def _iter_row_json(table: pa.Table, cancel: threading.Event | None = None
                   ) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each row as a dict and its canonical JSON (orjson, sorted keys), a batch of rows at a time: the reference
    for `_json_line_buffers`, and the path of tables whose columns polars would write otherwise."""
    import orjson

    for batch in _batches(table, cancel):
        for row in batch.to_pylist():
            yield row, orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def _polars_writes_as_orjson(kind: pa.DataType) -> bool:
    """Whether polars' `json_encode` writes values of this Arrow type exactly as orjson writes their Python
    values: strings, integers, booleans and structs of them (keys sorted by `_sorted_json_expr`)."""
    import pyarrow as pa

    t = pa.types
    if t.is_struct(kind):
        names = [kind.field(i).name for i in range(kind.num_fields)]
        return len(set(names)) == len(names) and all(_polars_writes_as_orjson(kind.field(i).type)
                                                    for i in range(kind.num_fields))
    return (t.is_string(kind) or t.is_large_string(kind) or t.is_string_view(kind) or t.is_integer(kind)
            or t.is_boolean(kind) or t.is_null(kind))


def _sorts_keys(kind: pa.DataType) -> bool:
    """Whether every struct in the type has its fields in sorted order already."""
    import pyarrow as pa

    if not pa.types.is_struct(kind):
        return True
    names = [kind.field(i).name for i in range(kind.num_fields)]
    return names == sorted(names) and all(_sorts_keys(kind.field(i).type) for i in range(kind.num_fields))


def _sorted_json_expr(expr: Any, kind: pa.DataType) -> Any:
    """`expr` with the fields of every struct in it in sorted order (orjson's OPT_SORT_KEYS); a null struct stays
    null."""
    import polars as pl

    if _sorts_keys(kind):
        return expr
    fields = sorted((kind.field(i) for i in range(kind.num_fields)), key=lambda f: f.name)
    inner = pl.struct([_sorted_json_expr(expr.struct.field(f.name), f.type).alias(f.name) for f in fields])
    return pl.when(expr.is_null()).then(None).otherwise(inner)


def _json_line_buffers(table: pa.Table, cancel: threading.Event | None = None) -> Iterator[memoryview]:
    """The canonical JSON lines of the rows (each ended by a newline), as the bytes of Arrow buffers, one batch
    of rows at a time: the same bytes as `_iter_row_json`'s lines, each followed by a newline."""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    names = table.column_names
    if not names:  # (a row of no columns is {})
        for start in range(0, table.num_rows, HASH_BATCH_ROWS):
            yield memoryview(b"{}\n" * min(HASH_BATCH_ROWS, table.num_rows - start))
        return
    row = pl.struct([_sorted_json_expr(pl.col(n), table.schema.field(n).type).alias(n) for n in sorted(names)])
    line = pl.concat_str([row.struct.json_encode(), pl.lit("\n")])
    for batch in _batches(table, cancel):
        frame = pl.from_arrow(batch, rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        lines = frame.select(line).to_series().to_arrow(compat_level=pl.CompatLevel.oldest())
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            if len(chunk) == 0:
                continue
            if chunk.null_count:  # (cannot happen: a struct's JSON is never null)
                raise AssertionError("a row's JSON is null")
            _validity, offsets_buf, data = chunk.buffers()
            offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=len(chunk) + 1, offset=chunk.offset * 8)
            yield memoryview(data)[int(offsets[0]):int(offsets[-1])]


def _line_encoder(schema: pa.Schema) -> Callable[[pa.Table], Iterator[bytes | memoryview]]:
    """A function from a batch of rows (of `schema`) to their canonical JSON lines (each ended by a newline), as
    buffers: polars' JSON where it writes what orjson writes, else orjson row by row."""
    if len(set(schema.names)) == len(schema.names) and all(_polars_writes_as_orjson(f.type) for f in schema):
        return _json_line_buffers

    def rows(batch: pa.Table) -> Iterator[bytes]:
        for _, line in _iter_row_json(batch):
            yield line + b"\n"

    return rows


def _hash_rows(h: Any, table: pa.Table, cancel: threading.Event | None = None) -> None:
    """Feed every row's canonical JSON line to the sha256 `h`, in row order (format 1)."""
    encode = _line_encoder(table.schema)
    for batch in _batches(table, cancel):
        for buf in encode(batch):
            h.update(buf)


def shards_of(rows: int) -> list[tuple[int, int]]:
    """The [start, stop) rows of each shard of a split of `rows` rows (`shard_bounds` with `SHARD_ROWS`)."""
    return shard_bounds(rows, SHARD_ROWS)


def shard_digests(table: Any, cancel: threading.Event | None = None) -> list[bytes]:
    """The sha256 digest of each shard's rows (`shards_of`; an empty table is one empty shard), read a batch at a
    time: the batches are cut where a shard ends."""
    bounds = shards_of(table.num_rows)
    encode = _line_encoder(table.schema)
    digests: list[bytes] = []
    h = hashlib.sha256()
    pos = 0
    for batch in _batches(table, cancel):
        start = 0
        while start < batch.num_rows:
            end = bounds[len(digests)][1]
            take = min(batch.num_rows - start, end - pos)
            for buf in encode(batch.slice(start, take)):
                h.update(buf)
            start += take
            pos += take
            if pos == end:
                digests.append(h.digest())
                h = hashlib.sha256()
    if pos != table.num_rows:
        raise DataError(f"read {pos:,} rows of a split that holds {table.num_rows:,}")
    while len(digests) < len(bounds):  # (only the one shard of an empty table)
        digests.append(h.digest())
    return digests


def shard_digest(shard: pa.Table) -> bytes:
    """The digest of one shard's rows (a table of the rows of one of `shard_bounds`' ranges)."""
    h = hashlib.sha256()
    _hash_rows(h, shard)
    return h.digest()


def _split_header(name: str, rows: int) -> bytes:
    return b"split\x00" + name.encode("utf-8") + b"\x00" + str(rows).encode() + b"\n"


def combined_hash(splits: Mapping[str, tuple[int, list[bytes]]]) -> str:
    """The format 2 content hash from each split's row count and shard digests (in shard order)."""
    h = hashlib.sha256(HASH_FORMAT)
    for name in sorted(splits):
        rows, digests = splits[name]
        if len(digests) != len(shards_of(rows)):
            raise AssertionError(f"split {name!r}: {len(digests)} shard digests for {rows:,} rows")
        h.update(_split_header(name, rows))
        for d in digests:
            h.update(d)
    return h.hexdigest()


def content_hash(dd: Mapping[str, Any], *, cancel: threading.Event | None = None,
                 hash_format: int = CURRENT_HASH_FORMAT) -> str:
    """sha256 over the split names (sorted), their row counts and every row's canonical JSON (sorted keys), in
    row order: per shard (format 2, the current one) or in one stream (format 1, `hash_format=1`: manifests of
    schema_version 1 and 2).

    Independent of Arrow chunking, nullability flags, machine and time. Accepts a mapping of split name
    to `pa.Table`, `datasets.Dataset` (so a `DatasetDict` works too) or `StoredSplit` (read a batch at a time).
    Setting `cancel` (from another thread) stops it with ContentCheckCancelled."""
    if hash_format not in HASH_FORMATS:
        raise ValueError(f"unknown content hash format {hash_format}")
    if hash_format == 2:
        tables = {name: as_arrow(data) for name, data in dd.items()}
        return combined_hash({name: (t.num_rows, shard_digests(t, cancel)) for name, t in tables.items()})
    h = hashlib.sha256(HASH_FORMAT_1)
    for name in sorted(dd):
        table = as_arrow(dd[name])
        h.update(_split_header(name, table.num_rows))
        _hash_rows(h, table, cancel)
    return h.hexdigest()


def split_order(names: list[str]) -> list[str]:
    """Split names in the order they are stored: train, validation, test, then any other by name."""
    return [s for s in SPLIT_ORDER if s in names] + sorted(s for s in names if s not in SPLIT_ORDER)


def canonical(splits: Mapping[str, pa.Table], shard_rows: int | None = None, *,
              hash_format: int = CURRENT_HASH_FORMAT) -> tuple[dict[str, pa.Table], str, dict[str, SplitCounts]]:
    """Check and re-encode the tables (RECORD_SCHEMA, fresh buffers, fixed split order); return them with the
    content hash (in `hash_format`) and the counts. Each split is one chunk; one whose text is over 2 GiB in a
    column (more than Arrow's 32-bit string offsets hold) is one chunk per shard of `shard_rows` rows (default
    `SHARD_ROWS`; see `_compact`)."""
    if not splits:
        raise DataError("nothing to publish: no splits given")
    problems = split_problems({name: as_arrow(data).schema for name, data in splits.items()})
    if problems:
        raise DataError("cannot publish: " + "; ".join(problems))
    out: dict[str, pa.Table] = {}
    counts: dict[str, SplitCounts] = {}
    for name in split_order(list(splits)):
        canon = out[name] = record_table(as_arrow(splits[name]), name, shard_rows or SHARD_ROWS)
        counts[name] = SplitCounts(records=canon.num_rows, by_category=category_counts(canon))
    return out, content_hash(out, hash_format=hash_format), counts


def split_problems(schemas: Mapping[str, pa.Schema]) -> list[str]:
    """What makes splits of these schemas unpublishable before their rows are read: a bad split name, missing or
    extra columns."""
    from swcdata.core.records import RECORD_COLUMNS

    problems = []
    for name, schema in schemas.items():
        if not isinstance(name, str) or not _SPLIT_RE.match(name):
            problems.append(f"split name {name!r} is not valid: use letters, digits and '_' (e.g. 'train')")
            continue
        columns = schema.names
        missing = [c for c in RECORD_COLUMNS if c not in columns]
        extra = [c for c in columns if c not in RECORD_COLUMNS]
        if missing:
            problems.append(f"split {name!r} lacks the record columns: {', '.join(missing)}")
        if extra:
            problems.append(f"split {name!r} has columns that are not record columns: {', '.join(extra)} "
                            "(drop them before publishing)")
    return problems


def record_table(table: pa.Table, name: str, shard_rows: int | None = None) -> pa.Table:
    """A split's table (with the record columns, `split_problems` checked) cast to RECORD_SCHEMA, checked and
    re-encoded in fresh buffers (`_compact`); a DataError naming the split where it does not fit."""
    import pyarrow as pa

    from swcdata.core.records import RECORD_COLUMNS, RECORD_SCHEMA

    table = table.select(list(RECORD_COLUMNS))
    try:
        # (the cast refuses a null in a required column and a value of another type that does not convert;
        # a full validation refuses bytes that are not UTF-8 in a string column)
        canon = _compact(table.cast(RECORD_SCHEMA), shard_rows)
        canon.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError) as e:
        raise DataError(f"cannot publish: split {name!r} does not fit the record schema: {e}") from None
    return canon


def shard_bounds(rows: int, shard_rows: int) -> list[tuple[int, int]]:
    """The [start, stop) rows of each shard when `rows` rows are cut into ceil(rows / shard_rows) shards as
    `datasets.Dataset.shard(n, i, contiguous=True)` cuts them (the first `rows % n` shards one row longer)."""
    n = max(1, -(-rows // max(1, shard_rows)))
    div, mod = divmod(rows, n)
    return [(i * div + min(i, mod), (i + 1) * div + min(i + 1, mod)) for i in range(n)]


def _compact(table: pa.Table, shard_rows: int | None = None) -> pa.Table:
    """The table in fresh buffers: no offset, strings packed (a null holds no bytes), as building it from its
    rows would make them; the registry's data files are these buffers' bytes.

    One chunk where its strings fit Arrow's 32-bit offsets (2 GiB per column); otherwise one chunk per shard
    (`shard_bounds`), and a shard that still overflows is cut in halves. (One chunk wherever it fits, because
    the Arrow stream writer copies a few bytes past a batch's last row when the batch sits at a suitable place
    in its chunk: the files of a split that fits in one chunk are the bytes every earlier swcdata wrote.)"""
    import numpy as np
    import pyarrow as pa

    from swcdata.core.arrow import int64s

    def taken(start: int, stop: int) -> list[pa.Table]:
        try:
            return [table.slice(start, stop - start).take(int64s(np.arange(stop - start, dtype=np.int64)))]
        except pa.ArrowInvalid as e:  # ("offset overflow while concatenating arrays")
            if "overflow" not in str(e) or stop - start < 2:
                raise
            if start == 0 and stop == table.num_rows and shard_rows and stop > shard_rows:
                return [p for a, b in shard_bounds(table.num_rows, shard_rows) for p in taken(a, b)]
            mid = (start + stop) // 2
            return taken(start, mid) + taken(mid, stop)

    parts = taken(0, table.num_rows)
    return pa.concat_tables(parts) if len(parts) != 1 else parts[0]


def category_counts(table: pa.Table) -> dict[str, int]:
    """Records per category, sorted by category (Arrow's value counts: no row becomes a Python object)."""
    import pyarrow.compute as pc

    counted = pc.value_counts(table.column("category"))
    pairs = zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True)
    return dict(sorted(pairs))


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars while the registry reads or writes (steps never print)."""
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()

