"""The plumbing of the Ray engine's stages: Arrow blocks as numpy, keys and partitions, signatures as binary
columns, and Ray Data's maps and groupbys as this engine runs them.

- Columns: `ints`, `floats`, `table_of` (a table of a schema from some columns, nulls for the others), `sig_column`
  / `sig_matrix` (MinHash signatures as one binary value a row, and back), `pair_similarity`, `signature_index`
  (signed records' blocks read from the object store by every task, indexed by key: `SignatureIndex`).
- Sorted keys: `first_of_runs`, `unique_pairs`, `lookup_sorted`, `rows_of`, `dense_ranks`.
- Partitions: `partition_of` (a mixed hash of int64 keys modulo the partition count), `partition_count`,
  `task_rows` (records per task: `rows_per_block`, fewer where the CPUs would be idle; `cluster_cpus`).
- Ray Data: `mapped` (map_batches over Arrow batches), `grouped` (a groupby on the partition column `_p` whose
  function sees whole partitions), `collect` (a dataset's blocks as one table on the driver), `column_total`,
  `broadcast` (a value the driver put in the object store, read in a task), `materialized` and `sorted_on` (with a
  run's own settings on the materialized dataset's context), `without_orders` (drop the records whose `_order`
  the driver names), `blob_table` / `unpickled` (a pickled value per batch, read back on the driver),
  `raised_as_locally` (a task's swcdata error raised as itself).

Ray is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import math
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from swcdata.core.arrow import bools, to_numpy
from swcdata.core.errors import SwcdataError
from swcdata.similarity import minhash

ORDER = "_order"
"""The record's key in the engine: unique, and sorting by it gives the local engine's record order."""
ROWS_PER_BLOCK = 250_000
"""Records per batch of the maps over the input (signing: a task a batch), and rows per partition key of the
groupbys (ceil(rows / rows_per_block) partitions)."""
SHUFFLE = "sort_shuffle_pull_based"
"""The shuffle the groupbys run on by default (see `swcdata.engine.dedup.dedup_on_ray`)."""
SIG = pa.large_binary()
"""A signature as bytes (num_perm uint32s). Variable-length binary, not fixed-size: a null fixed-size value still
takes its width, and most rows of the joins (pairs) have no signature."""
SUMS = pa.schema([("sum", pa.int64())])

I64 = npt.NDArray[np.int64]
_SALT = np.uint64(0x2545F4914F6CDD1D)


def table_of(schema: pa.Schema, n: int, **columns: Any) -> pa.Table:
    """A table of `schema` with n rows: the given columns (arrays or numpy), nulls for the others."""
    arrays = []
    for f in schema:
        v = columns.get(f.name)
        if v is None:
            arrays.append(pa.nulls(n, f.type))
        elif isinstance(v, (pa.Array, pa.ChunkedArray)):
            arrays.append(v.cast(f.type) if v.type != f.type else v)
        else:
            arrays.append(pa.array(np.asarray(v), type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def ints(table: pa.Table, name: str) -> I64:
    return to_numpy(table.column(name)).astype(np.int64, copy=False) if table.num_rows else np.zeros(0, np.int64)


def floats(table: pa.Table, name: str) -> npt.NDArray[np.float64]:
    col = table.column(name)
    return np.asarray(col.to_numpy(), dtype=np.float64) if table.num_rows else np.zeros(0)


def partition_of(keys: I64, parts: int) -> I64:
    """The partition (0..parts-1) of int64 keys: a mixed hash, so that neighbouring keys spread."""
    if parts <= 1:
        return np.zeros(len(keys), dtype=np.int64)
    return (minhash.fmix64(keys.astype(np.uint64) ^ _SALT) % np.uint64(parts)).astype(np.int64)


def sig_column(sig: minhash.U32) -> pa.Array:
    """(m, num_perm) uint32 signatures as one binary value per row (`SIG`)."""
    m, w = sig.shape
    offsets = np.arange(m + 1, dtype=np.int64) * (4 * w)
    return pa.Array.from_buffers(SIG, m, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(sig))])


def sig_matrix(col: pa.Array | pa.ChunkedArray, num_perm: int) -> minhash.U32:
    """The inverse of `sig_column` (a column without nulls)."""
    arr = col
    if isinstance(col, pa.ChunkedArray):  # (one chunk as it is: combining copies it)
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    if arr.null_count:
        raise ValueError("missing signatures")
    if len(arr) == 0:
        return np.zeros((0, num_perm), dtype=np.uint32)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    if end - start != len(arr) * 4 * num_perm or not (np.diff(offsets) == 4 * num_perm).all():
        raise ValueError("signatures of the wrong width")
    return np.frombuffer(arr.buffers()[2], dtype=np.uint8)[start:end].view(np.uint32).reshape(-1, num_perm)


class SignatureIndex:
    """Signed records' blocks (rows with `key`, `klen` and `sig`: `swcdata.engine.dedup`'s signature rows, read
    zero-copy from the object store), indexed by key. Each block is taken a record batch at a time (a block a map
    wrote from several batches has several chunks: combining them would copy every signature)."""

    def __init__(self, blocks: list[pa.Table], num_perm: int) -> None:
        pieces = [b for t in blocks for b in t.to_batches() if b.num_rows]
        self.sigs = [sig_matrix(b.column("sig"), num_perm) for b in pieces]
        keys = np.concatenate([ints(b, "key") for b in pieces]) if pieces else np.zeros(0, np.int64)
        o = np.argsort(keys, kind="stable")
        self.keys = keys[o]
        self.piece = np.repeat(np.arange(len(pieces), dtype=np.int64), [b.num_rows for b in pieces])[o]
        self.row = (np.concatenate([np.arange(b.num_rows, dtype=np.int64) for b in pieces])[o] if pieces
                    else np.zeros(0, np.int64))
        self.klen = np.concatenate([ints(b, "klen") for b in pieces])[o] if pieces else np.zeros(0, np.int64)
        self.num_perm = num_perm

    def gathered(self, keys: I64) -> tuple[minhash.U32, I64, I64]:
        """The signatures of `keys` (all of them signed records), piece by piece into one matrix (no scattered
        copy), the row of each key's signature in it, and each key's klen."""
        pos, hit = lookup_sorted(self.keys, keys)
        if not hit.all():
            raise AssertionError("a record has no signature")
        piece, row = self.piece[pos], self.row[pos]
        by_piece = np.argsort(piece, kind="stable")
        ends = np.searchsorted(piece[by_piece], np.arange(len(self.sigs) + 1))
        out = np.empty((len(keys), self.num_perm), dtype=np.uint32)
        for k in np.flatnonzero(np.diff(ends)).tolist():
            np.take(self.sigs[k], row[by_piece[ends[k] : ends[k + 1]]], axis=0, out=out[ends[k] : ends[k + 1]])
        where = np.empty(len(keys), dtype=np.int64)
        where[by_piece] = np.arange(len(keys), dtype=np.int64)
        return out, where, self.klen[pos]

    def similarity(self, a: I64, b: I64) -> tuple[npt.NDArray[np.float64], I64, I64]:
        """`minhash.similarity` of each pair (a[i], b[i]) of signed records, and each end's klen (every signature
        gathered once, however many pairs it is in)."""
        ends, at = np.unique(np.concatenate([a, b]), return_inverse=True)
        sig, where, klen = self.gathered(ends)
        pairs = np.stack([where[at[: len(a)]], where[at[len(a) :]]], axis=1)
        return minhash.similarity(sig, pairs), klen[at[: len(a)]], klen[at[len(a) :]]


_index: tuple[tuple[str, ...], SignatureIndex] | None = None  # (this worker's: the blocks of one run, read once)


def signature_index(blocks: list[Any], num_perm: int) -> SignatureIndex:
    """The index of the signed records' blocks (`blocks`: their object refs, broadcast), built once per worker
    process and run."""
    global _index
    import ray

    ids = tuple(r.hex() for r in blocks)
    if _index is None or _index[0] != ids:
        _index = None  # (the last run's, released before this one's are read)
        _index = (ids, SignatureIndex(ray.get(blocks), num_perm))
    return _index[1]


def pair_similarity(a: minhash.U32, b: minhash.U32) -> npt.NDArray[np.float64]:
    """`minhash.similarity` of the row pairs (a[i], b[i])."""
    k = len(a)
    if k == 0:
        return np.zeros(0)
    idx = np.arange(k, dtype=np.int64)
    return minhash.similarity(np.concatenate([a, b]), np.stack([idx, idx + k], axis=1))


def first_of_runs(*keys: I64) -> npt.NDArray[np.bool_]:
    """For rows sorted by `keys`: True where a run of equal keys starts."""
    n = len(keys[0])
    first = np.ones(n, dtype=bool)
    if n > 1:
        same = np.ones(n - 1, dtype=bool)
        for k in keys:
            same &= k[1:] == k[:-1]
        first[1:] = ~same
    return first


def unique_pairs(a: I64, b: I64) -> tuple[I64, I64]:
    """Distinct (a, b) pairs, sorted by a then b (polars' hashed `unique`, then its sort: as fast as numpy's
    `lexsort` on one thread, faster where it has more)."""
    import polars as pl

    out = pl.DataFrame({"a": a, "b": b}).unique().sort(["a", "b"])
    return out["a"].to_numpy(writable=True), out["b"].to_numpy(writable=True)


def lookup_sorted(sorted_keys: I64, keys: I64) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Positions of `keys` in `sorted_keys` and whether each is there."""
    pos = np.searchsorted(sorted_keys, keys)
    hit = np.zeros(len(keys), dtype=bool)
    inside = pos < len(sorted_keys)
    hit[inside] = sorted_keys[pos[inside]] == keys[inside]
    return np.minimum(pos, max(len(sorted_keys) - 1, 0)), hit


def rows_of(keys: I64, wanted: I64, missing: str) -> I64:
    """The row (in `keys`, any order; the first of equal keys) of each of `wanted`, which must all be there
    (AssertionError `missing` otherwise)."""
    o = np.argsort(keys, kind="stable")
    pos, hit = lookup_sorted(keys[o], wanted)
    if not hit.all():
        raise AssertionError(missing)
    return o[pos]


def dense_ranks(klen: I64, node: I64) -> I64:
    """Dense ranks of (klen, node) keys: smaller key, smaller rank."""
    rank = np.empty(len(node), dtype=np.int64)
    rank[np.lexsort((node, klen))] = np.arange(len(node))
    return rank


def column_sum(batch: pa.Table, column: str) -> pa.Table:
    """One row: the sum of an int column of the batch (a count read without a Ray aggregate, which costs more)."""
    return pa.table({"sum": pa.array([int(ints(batch, column).sum())], pa.int64())})


def broadcast(value: Any) -> Any:
    """A value the driver put in the object store (a map's fn_kwargs are not resolved): read zero-copy."""
    import ray

    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def without_orders(batch: pa.Table, removed: Any) -> pa.Table:
    """The batch without the removed records (`removed`: their sorted `_order`s, broadcast)."""
    _, hit = lookup_sorted(broadcast(removed), ints(batch, ORDER))
    return batch.filter(bools(~hit)) if hit.any() else batch


@contextlib.contextmanager
def raised_as_locally() -> Iterator[None]:
    """Around the execution of Ray tasks or a Ray Data dataset: a task's swcdata error (a file changed while it was
    read, a record that does not fit the schema) raised as itself, as the local engine raises it; Ray Data's
    no-progress error with a note on its usual cause here (see `swcdata.engine.reading`)."""
    import ray

    try:
        yield
    except ray.data.exceptions.ExecutionTimeoutError as e:
        e.add_note("swcdata: a task whose Ray worker dies on every try (out of memory each time?) is run again by "
                   "Ray Data without end; see the Ray logs of the dead workers")
        raise
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, SwcdataError):
            error = e.cause
            error.args = (error.message,)  # (Ray Data appends its retry advice to the arguments)
            raise error from None
        raise


def materialized(ds: Any, shuffle_strategy: str | None) -> Any:
    """`ds` materialized, with this run's settings on the materialized dataset's own copy of the context (never
    the caller's): blocks in order, and the shuffle of the groupbys and sorts that follow."""
    out = ds.materialize()
    ctx = out.context
    ctx.execution_options.preserve_order = True
    if shuffle_strategy is not None:
        ctx.shuffle_strategy = shuffle_strategy
    return out


def sorted_on(ds: Any, column: str, shuffle_strategy: str | None) -> Any:
    """`ds` sorted by `column` on this run's shuffle (see `materialized`)."""
    return materialized(ds, shuffle_strategy).sort(column)


BLOBS = pa.schema([("blob", pa.binary())])
"""A map's one row per batch: a pickled value (counts, tallies, a few matches) for the driver."""


def blob_table(value: Any) -> pa.Table:
    """`value` pickled as a BLOBS row."""
    return pa.table({"blob": pa.array([pickle.dumps(value)], pa.binary())}, schema=BLOBS)


def unpickled(ray: Any, ds: Any) -> list[Any]:
    """The values of a dataset of BLOBS rows, in its order."""
    return [pickle.loads(b) for b in collect(ray, ds, BLOBS).column("blob").to_pylist()]


def partition_count(rows: int, rows_per_block: int) -> int:
    return max(1, math.ceil(rows / rows_per_block))


TASKS_PER_CPU = 4
"""Tasks a CPU of the cluster gets of a map or a groupby over the records, where they are many (`task_rows`)."""
MIN_TASK_ROWS = 10_000
"""The fewest records a task of `task_rows` is given (a Ray task costs milliseconds to run)."""


def cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def task_rows(rows: int, rows_per_block: int, cpus: int) -> int:
    """Records per task of a map over `rows` records (and per partition of the groupbys that follow): at most
    `rows_per_block`, and fewer where that would leave CPUs idle or tasks unequal (about `TASKS_PER_CPU` tasks a
    CPU, never under `MIN_TASK_ROWS` records a task). The results never depend on it."""
    return max(1, min(rows_per_block, max(MIN_TASK_ROWS, math.ceil(rows / (TASKS_PER_CPU * max(1, cpus))))))


def batch_rows(per_task: int) -> int:
    """The batch size of a map over the records meant to give each task about `per_task` of them (`task_rows`).
    Ray Data bundles a map's input blocks until a bundle holds a whole batch, so blocks a few rows short of
    `per_task` (the validated records' blocks: about as many lines each, less the quarantined ones) would go two
    to a task: at 1M records on 2 CPUs, 5 signing tasks of which the longest ran 6.2 s, where 8 of 3 s were
    meant. A batch of 7/8 of it leaves each such block a task of its own (which runs it as two batches)."""
    return max(1, per_task - per_task // 8)


def grouped(ds: Any, fn: Any, partitions: int, /, **kwargs: Any) -> Any:
    """`ds.groupby("_p").map_groups(fn)`: fn sees whole partitions (every group of the key they were derived from)."""
    return ds.groupby("_p", num_partitions=partitions).map_groups(fn, batch_format="pyarrow", fn_kwargs=kwargs or None)


def mapped(ds: Any, fn: Any, batch_size: int | None = None, /, **kwargs: Any) -> Any:
    return ds.map_batches(fn, batch_format="pyarrow", batch_size=batch_size, fn_kwargs=kwargs or None)


def column_total(ray: Any, ds: Any, column: str) -> int:
    """The sum of an int (or bool) column of a dataset."""
    return int(ints(collect(ray, mapped(ds, column_sum, None, column=column), SUMS), "sum").sum())


def collect(ray: Any, ds: Any, schema: pa.Schema | None = None) -> pa.Table:
    """A dataset's blocks as one table on the driver (in the dataset's order)."""
    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    if not tables:
        if schema is None:
            raise ValueError("no rows and no schema")
        return schema.empty_table()
    return pa.concat_tables(tables, promote_options="none" if schema is None else "default")
