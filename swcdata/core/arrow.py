"""Arrow arrays built from Python lists and numpy arrays without `pa.array`.

`pa.array` first asks pyarrow's pandas shim whether its argument is a pandas object, and the shim
imports pandas to answer: about 50 MB of memory and 0.3 s in every process that builds a column
(each worker of a pool too), for a library that no data command uses. The constructors here build
the same arrays from buffers (``pa.Array.from_buffers``), which never asks; tests check that each
equals what `pa.array` makes.

`table_batches` and `take_rows` read a `pa.Table` or a version's split stored on disk
(`swcdata.registry.stored.StoredSplit`, read a batch at a time) alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa

_MAX_INT32 = (1 << 31) - 1


def _validity(values: Sequence[object]) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap of `values` (None where every value is set) and its null count."""
    if None not in values:  # (one C-level scan, the usual case)
        return None, 0
    present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    return pa.py_buffer(np.packbits(present, bitorder="little")), len(values) - int(present.sum())


def strings(values: Sequence[str | None], *, large: bool = False) -> pa.Array:
    """``pa.array(values, pa.string())`` (``pa.large_string()`` when `large`): UTF-8 bytes joined,
    with their offsets."""
    n = len(values)
    validity, nulls = _validity(values)
    vals: Sequence[str] = values if not nulls else ["" if v is None else v for v in values]  # type: ignore[misc]
    if all(map(str.isascii, vals)):  # (a flag test per string; a value that is not a str raises TypeError)
        data = "".join(vals).encode("ascii")  # one encode, and a character is a byte
        lengths = np.fromiter(map(len, vals), dtype=np.int64, count=n)
    else:  # (joining would widen every character first: encode one by one)
        parts = [v.encode("utf-8") for v in vals]
        data = b"".join(parts)
        lengths = np.fromiter(map(len, parts), dtype=np.int64, count=n)
    if not large and len(data) > _MAX_INT32:
        raise OverflowError(f"{len(data)} bytes of strings do not fit one Arrow string array (2 GiB); use large=True")
    offsets = np.zeros(n + 1, dtype=np.int64 if large else np.int32)
    np.cumsum(lengths, out=offsets[1:])
    kind = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls)


def int64s(values: Sequence[int] | npt.NDArray[np.integer]) -> pa.Array:
    """``pa.array(values, pa.int64())`` for values without nulls."""
    arr = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(arr), [None, pa.py_buffer(arr)])


def float64s(values: Sequence[float] | npt.NDArray[np.floating]) -> pa.Array:
    """``pa.array(values, pa.float64())`` for values without nulls (NaN is a value)."""
    arr = np.ascontiguousarray(values, dtype=np.float64)
    return pa.Array.from_buffers(pa.float64(), len(arr), [None, pa.py_buffer(arr)])


def bools(mask: Sequence[bool] | npt.NDArray[np.bool_]) -> pa.Array:
    """``pa.array(mask, pa.bool_())`` for a mask without nulls (for ``Table.filter``)."""
    arr = np.asarray(mask, dtype=bool)
    return pa.Array.from_buffers(pa.bool_(), len(arr), [None, pa.py_buffer(np.packbits(arr, bitorder="little"))])


_PARQUET: dict[str, Any] = {"compression": "zstd", "use_dictionary": True, "write_statistics": False}
_ROW_GROUP = 65_536


def write_parquet(table: pa.Table, f: BinaryIO) -> None:
    """A table as Parquet into an open binary file (zstd, dictionary-encoded, 65,536 rows a group: the
    settings of the registry's removed-record files)."""
    import pyarrow.parquet as pq

    pq.write_table(table, f, row_group_size=_ROW_GROUP, **_PARQUET)


def write_parquet_batches(schema: pa.Schema, tables: Iterable[pa.Table], f: BinaryIO) -> None:
    """`write_parquet` of the concatenation of `tables` (of `schema`), written as they come: a list larger than
    memory (the Ray engine's, read back a block at a time) streams into one file."""
    import pyarrow.parquet as pq

    with pq.ParquetWriter(f, schema, **_PARQUET) as writer:
        for table in tables:
            if table.num_rows:
                writer.write_table(table.cast(schema), row_group_size=_ROW_GROUP)


def to_numpy(values: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.generic]:
    """``values.to_numpy()`` for integer or boolean arrays without nulls, read from the buffers (a
    view where the data allows one; read-only)."""
    kind = values.type
    if not (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
        raise TypeError(f"to_numpy takes integer or boolean arrays, not {kind}")
    if values.null_count:
        raise ValueError(f"to_numpy takes arrays without nulls ({values.null_count} here)")
    dtype = np.dtype(str(kind))
    if isinstance(values, pa.ChunkedArray):
        parts = [to_numpy(c) for c in values.chunks]
        return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, dtype=dtype)
    n, off = len(values), values.offset
    data = values.buffers()[1]
    if n == 0 or data is None:
        return np.zeros(0, dtype=dtype)
    if dtype == np.bool_:
        bits = np.frombuffer(data, dtype=np.uint8)
        return np.unpackbits(bits, count=off + n, bitorder="little")[off:].view(np.bool_)
    return np.frombuffer(data, dtype=dtype, count=n, offset=off * dtype.itemsize)


def table_batches(table: pa.Table | Any, columns: Sequence[str] | None = None,
                  rows: int = 65_536) -> Iterator[pa.Table]:
    """A table's rows in order as tables of `rows` rows (the last may hold fewer), with `columns` (all by default):
    slices of a `pa.Table`, or what the object's own `batches(columns, rows)` reads (a version split stored on
    disk, `swcdata.registry.stored.StoredSplit`, which reads a batch at a time)."""
    if not isinstance(table, pa.Table):
        yield from table.batches(columns, rows)
        return
    chosen = table.select(list(columns)) if columns is not None else table
    for start in range(0, chosen.num_rows, max(1, rows)):
        yield chosen.slice(start, rows)


def take_rows(table: pa.Table | Any, rows: npt.NDArray[np.integer], columns: Sequence[str]) -> pa.Table:
    """`table.select(columns).take(rows)`, for a `pa.Table` or a split read from disk (one pass over its batches)."""
    if not isinstance(table, pa.Table):
        return table.take(rows, columns)
    return table.select(list(columns)).take(int64s(np.asarray(rows, dtype=np.int64)))
