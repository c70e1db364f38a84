"""`dedup`: exact and code-aware near-duplicate removal, with a reason for every removed record.

Exact duplicates share a record id (the hash of the normalised instruction + response: NFKC,
typography folded, whitespace collapsed, case folded). Near duplicates are found with MinHash +
LSH over k-gram shingles of a *code-aware token stream*: the Solidity code extracted from both
fields, lexed with comments and layout removed (identifiers and literals optionally abstracted so
that a consistent renaming does not hide a copy), interleaved with the normalised words of the
prose around it. LSH candidates are verified against the threshold with the signatures, and
connected components of the verified pairs are the clusters. Each cluster keeps one deterministic
representative (the first in input order, or the longest); every other member is removed and
points at it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from swcdata import minhash
from swcdata.arrow import bools, int64s, to_numpy
from swcdata.removed import RemovedList
from swcdata.schema import Ledger, RecordRef, Source
from swcdata.tokens import Job, Packed, chunk_signatures
from swcdata.workers import process_pool


class DedupConfig(BaseModel):
    """Every knob of the dedup step (defaults chosen by the curve in bench/RESULTS.md)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold: float = Field(0.7, gt=0, le=1, description="Estimated Jaccard similarity at or above which two "
                             "records are near duplicates.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    ngram: int = Field(5, ge=1, le=32, description="Tokens per shingle.")
    bands: int | None = Field(None, ge=1, description="LSH bands (default: chosen from threshold and num_perm).")
    keep: Literal["first", "longest"] = Field("first", description="Which member of a cluster is kept.")
    abstract_identifiers: bool = Field(True, description="Replace code identifiers by one symbol before shingling.")
    abstract_literals: bool = Field(False, description="Replace code number/string literals by one symbol.")
    near: bool = Field(True, description="Find near duplicates (off: exact duplicates only).")
    seed: int = Field(1, ge=0, le=2**63 - 1, description="Seed of the MinHash permutations.")
    workers: int = Field(0, ge=0, description="Processes that build token streams; 0 = one per CPU core.")

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupConfig:
        if self.bands is not None and self.bands > self.num_perm:
            raise ValueError(f"bands ({self.bands}) cannot exceed num_perm ({self.num_perm})")
        return self

    def lsh(self) -> tuple[int, int]:
        if self.bands is not None:
            return self.bands, self.num_perm // self.bands
        return minhash.lsh_params(self.threshold, self.num_perm)


_STEP = 4096  # records per worker job


def _pool_context() -> multiprocessing.context.BaseContext:
    """Spawn workers where that is safe, else fork. A forked worker shares (and in RSS figures
    appears to hold) the whole record table of this process; a spawned one holds only its chunks.
    Spawning re-imports the main module, which is safe for `python -m pkg` and interactive use,
    but would re-run a script without an `if __name__ == "__main__"` guard: such scripts fork."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    safe = main is None or not getattr(main, "__file__", None) or (
        spec is not None and spec.name.endswith("__main__"))
    if not safe or "spawn" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    return multiprocessing.get_context("spawn")


Progress = Callable[[int, int], None]
"""A progress callback: `(records signed so far, records to sign)`, after each chunk."""


def _signatures(n: int, fields: Callable[[int, int], tuple[list[str] | Packed, list[str] | Packed]],
                cfg: DedupConfig, progress: Progress | None = None) -> minhash.U32:
    """MinHash signatures of n records whose (instructions, responses) for rows [lo, hi) come from
    `fields(lo, hi)`. Tokens, shingles and signatures are computed together in `cfg.workers` processes
    over chunks of `_STEP` records, with at most two chunks per worker in flight, so memory stays
    bounded by the signatures themselves (num_perm * 4 bytes a record)."""
    sig = np.empty((n, cfg.num_perm), dtype=np.uint32)
    workers = cfg.workers or (os.cpu_count() or 1)
    done = 0

    def place(at: int, part: minhash.U32) -> None:
        nonlocal done
        sig[at : at + len(part)] = part
        done += len(part)
        if progress is not None:
            progress(done, n)

    if progress is not None:
        progress(0, n)

    def job(lo: int) -> Job:
        ins, res = fields(lo, min(lo + _STEP, n))
        return ins, res, cfg.abstract_identifiers, cfg.abstract_literals, cfg.ngram, cfg.num_perm, cfg.seed

    if workers <= 1 or n < 2 * _STEP:
        for lo in range(0, n, _STEP):
            place(lo, chunk_signatures(job(lo)))
        return sig
    pending: deque[tuple[int, Future[minhash.U32]]] = deque()
    with process_pool(workers, _pool_context()) as pool:  # (workers that die with this process)
        for lo in range(0, n, _STEP):
            pending.append((lo, pool.submit(chunk_signatures, job(lo))))
            while len(pending) > 2 * workers or (pending and pending[0][1].done()):
                at, fut = pending.popleft()
                place(at, fut.result())
        while pending:
            at, fut = pending.popleft()
            place(at, fut.result())
    return sig


def record_signatures(instructions: Sequence[str], responses: Sequence[str], cfg: DedupConfig,
                      progress: Progress | None = None) -> minhash.U32:
    """MinHash signatures `(n, num_perm)` of records given as two parallel sequences."""
    return _signatures(len(instructions), lambda lo, hi: (list(instructions[lo:hi]), list(responses[lo:hi])), cfg,
                       progress)


def table_signatures(table: pa.Table, cfg: DedupConfig, rows: npt.NDArray[np.int64] | None = None,
                     progress: Progress | None = None) -> minhash.U32:
    """MinHash signatures of a record table's rows (all, or the given ascending row indices), chunk by
    chunk. The chunks go to the workers packed (`tokens.Packed`): buffers, not lists of str."""
    ins_col, res_col = table.column("instruction"), table.column("response")
    if rows is None:
        return _signatures(table.num_rows, lambda lo, hi: (_pack(ins_col.slice(lo, hi - lo)),
                                                           _pack(res_col.slice(lo, hi - lo))), cfg, progress)
    sel = rows

    def fields(lo: int, hi: int) -> tuple[Packed, Packed]:
        # rows are ascending: slice the span they cover, then take within it (a take over the whole
        # chunked column would walk every chunk)
        a, b = int(sel[lo]), int(sel[hi - 1]) + 1
        idx = int64s(sel[lo:hi] - a)
        return _pack(ins_col.slice(a, b - a).take(idx)), _pack(res_col.slice(a, b - a).take(idx))

    return _signatures(len(sel), fields, cfg, progress)


def _pack(col: pa.ChunkedArray | pa.Array) -> Packed:
    """A string column's values as `tokens.Packed` (offsets from 0, and only the bytes they span)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise ValueError("cannot sign null texts")
    _, offsets_buf, data_buf = arr.buffers()
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    if not len(offsets):
        return np.zeros(1, dtype=np.int64), b""
    start, end = int(offsets[0]), int(offsets[-1])
    data = memoryview(data_buf)[start:end].tobytes() if data_buf is not None else b""
    return offsets - start, data


# --------------------------------------------------------------------------- report


class Cluster(BaseModel):
    model_config = ConfigDict(extra="forbid")

    representative: RecordRef
    size: int
    exact: int = Field(description="Members removed as exact duplicates.")
    near: int = Field(description="Members removed as near duplicates.")
    min_similarity: float
    categories: list[str] = Field(description="Distinct categories in the cluster (more than one = label conflict).")


class DedupLedger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: int = Field(description="Valid records that entered the step.")
    kept: int
    exact_duplicates: int
    near_duplicates: int

    @property
    def balanced(self) -> bool:
        return self.records == self.kept + self.exact_duplicates + self.near_duplicates


class DedupReport(BaseModel):
    model_config = ConfigDict(extra="forbid", title="DedupReport")

    config: DedupConfig
    input: Ledger | None = Field(None, description="How the input lines were read (set when dedup read files).")
    bands: int
    rows: int
    ledger: DedupLedger
    clusters: list[Cluster]
    removed: RemovedList = Field(description="Every removed record and the kept record it duplicates, in input "
                                 "order (held as columns; read like a list of Removed).")
    category_conflicts: int = Field(description="Clusters whose members carry different categories.")
    candidate_pairs: int
    verified_pairs: int
    timings: dict[str, float]
    records_per_second: float


# --------------------------------------------------------------------------- the step

def _representatives(labels: npt.NDArray[np.int64], priority: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For each element, the index of its group's representative: the element with the smallest
    `priority` in its group (ties impossible: priority includes the input position)."""
    order = np.lexsort((priority, labels))
    first = np.ones(len(order), dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    head_of_sorted = order[np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))]
    rep = np.empty(len(labels), dtype=np.int64)
    rep[order] = head_of_sorted
    return rep


def _priority(table: pa.Table, keep: str) -> npt.NDArray[np.int64]:
    n = table.num_rows
    pos = np.arange(n, dtype=np.int64)
    if keep == "first":
        return pos
    import pyarrow.compute as pc

    length = (to_numpy(pc.utf8_length(table.column("instruction"))).astype(np.int64)
              + to_numpy(pc.utf8_length(table.column("response"))).astype(np.int64))
    return (length.max(initial=0) - length) * (n + 1) + pos  # longest first, then input order


@dataclass(slots=True)
class Clustering:
    """Cluster structure of a record table: every record's exact representative and final (kept)
    representative, and its estimated similarity to the latter."""

    exact_rep: npt.NDArray[np.int64]
    final: npt.NDArray[np.int64]
    sim_to_rep: npt.NDArray[np.float64]
    bands: int
    rows: int
    candidate_pairs: int
    verified_pairs: int
    timings: dict[str, float]


def cluster(table: pa.Table, cfg: DedupConfig, *, all_pairs: bool = False, verify_threshold: float | None = None,
            extra_bandings: Sequence[tuple[int, int]] = (), progress: Progress | None = None) -> Clustering:
    """Exact groups by id, then connected components of verified near-duplicate pairs among one
    representative per exact group.

    For leak-free splitting the clusters must contain every pair that a later audit could find:
    `all_pairs` verifies every pair inside each LSH bucket (not only those with the bucket's first
    member), `verify_threshold` verifies below the audit's threshold (a margin for estimation
    error), and `extra_bandings` adds more sensitive (bands, rows) bucketings to the config's own."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    n = table.num_rows
    priority = _priority(table, cfg.keep)
    # group label = the id's index in a dictionary of distinct ids (any labelling of the groups
    # gives the same representatives: the smallest priority in each group)
    import pyarrow.compute as pc

    ids = table.column("id")
    exact_label = (to_numpy(pc.dictionary_encode(ids).combine_chunks().indices)
                   if n else np.zeros(0, dtype=np.int64))
    exact_rep = _representatives(exact_label.astype(np.int64), priority)
    uniq = np.flatnonzero(exact_rep == np.arange(n))
    timings["exact"] = time.perf_counter() - t0

    bands, rows = cfg.lsh()
    final = exact_rep.copy()
    sim_to_rep = np.ones(n)
    n_candidates = n_verified = 0
    if cfg.near and len(uniq) > 1:
        t = time.perf_counter()
        sig = table_signatures(table, cfg, None if len(uniq) == n else uniq, progress)
        timings["minhash"] = time.perf_counter() - t  # token streams, shingles and signatures
        t = time.perf_counter()
        pairs = minhash.candidate_pairs(sig, bands, rows, all_pairs=all_pairs)
        for b, r in extra_bandings:
            pairs = minhash.union_pairs(pairs, minhash.candidate_pairs(sig, b, r, all_pairs=all_pairs), len(sig))
        sims = minhash.similarity(sig, pairs)
        ok = pairs[sims >= (cfg.threshold if verify_threshold is None else verify_threshold)]
        n_candidates, n_verified = len(pairs), len(ok)
        comp = minhash.components(ok, len(uniq))
        near_rep_local = _representatives(comp, priority[uniq])
        near_rep = uniq[near_rep_local]  # global index of each unique record's final representative
        final[uniq] = near_rep
        final = final[exact_rep]  # exact duplicates follow their exact representative
        moved = np.flatnonzero(near_rep != uniq)
        if len(moved):
            s = minhash.similarity(sig, np.stack([moved, near_rep_local[moved]], axis=1))
            sim_to_rep[uniq[moved]] = s
        timings["lsh"] = time.perf_counter() - t
    return Clustering(exact_rep, final, sim_to_rep, bands, rows, n_candidates, n_verified, timings)


def dedup(table: pa.Table, config: DedupConfig | None = None, *,
          progress: Progress | None = None) -> tuple[pa.Table, DedupReport]:
    """Remove exact and near duplicates from a record table. Returns the kept records (input order)
    and a report that names, for every removed record, the kept record it duplicates. `progress`
    follows the signing of the records (the long part)."""
    cfg = config or DedupConfig()
    t0 = time.perf_counter()
    c = cluster(table, cfg, progress=progress)
    return _report(table, cfg, c, t0)


def _report(table: pa.Table, cfg: DedupConfig, c: Clustering, t0: float) -> tuple[pa.Table, DedupReport]:
    """The kept records and the report of a clustering (`t0`: when the step started)."""
    n = table.num_rows
    exact_rep, final, sim_to_rep, timings = c.exact_rep, c.final, c.sim_to_rep, c.timings
    bands, rows, n_candidates, n_verified = c.bands, c.rows, c.candidate_pairs, c.verified_pairs
    t = time.perf_counter()
    positions = np.arange(n)
    kept_mask = final == positions
    gone = np.flatnonzero(~kept_mask)
    is_exact = final[gone] == exact_rep[gone]  # exact: the kept record is its exact twin
    sims = np.where(is_exact, 1.0, sim_to_rep[exact_rep[gone]])
    refs = _Refs(table, np.concatenate([gone, final[gone]]))
    removed = RemovedList(refs.ids, refs.files, refs.lines, refs.pos(gone), refs.pos(final[gone]), is_exact,
                          _rounded(sims))
    n_exact = int(is_exact.sum())
    clusters = _clusters(table, final, exact_rep, sim_to_rep, refs)
    kept = table.filter(bools(kept_mask))
    timings["report"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    timings["total"] = total
    report = DedupReport(
        config=cfg, bands=bands, rows=rows,
        ledger=DedupLedger(records=n, kept=int(kept_mask.sum()), exact_duplicates=n_exact,
                           near_duplicates=len(gone) - n_exact),
        clusters=clusters, removed=removed,  # type: ignore[arg-type]  # clusters: validated here, in one call
        category_conflicts=sum(1 for c in clusters if len(c["categories"]) > 1),  # type: ignore[arg-type]
        candidate_pairs=n_candidates, verified_pairs=n_verified,
        timings={k: round(v, 3) for k, v in timings.items()},
        records_per_second=round(n / total, 1) if total > 0 else 0.0,
    )
    return kept, report


def _rounded(values: npt.NDArray[np.float64], digits: int = 4) -> npt.NDArray[np.float64]:
    """Python's `round(v, digits)` of each value (correctly rounded, unlike `np.round`), computed
    once per distinct value: similarities are shares of 128 slots, so a million of them hold a few
    hundred distinct values."""
    distinct, index = np.unique(values, return_inverse=True)
    return np.array([round(v, digits) for v in distinct.tolist()], dtype=np.float64)[index.reshape(-1)]


class _Refs:
    """ids and sources of the rows a report names, read from the table once (not every row's)."""

    def __init__(self, table: pa.Table, rows: npt.NDArray[np.int64]) -> None:
        import pyarrow.compute as pc

        self._need = minhash.unique(rows)
        sub = table.select(["id", "source"]).take(int64s(self._need))
        src = sub.column("source").combine_chunks()
        self.ids: list[str] = sub.column("id").to_pylist()
        files = pc.dictionary_encode(src.field("file"))
        names: list[str] = files.dictionary.to_pylist()  # one str object per file, shared by its rows
        self.files: list[str] = [names[k] for k in files.indices.to_pylist()]
        self.lines: list[int] = src.field("line").to_pylist()

    def pos(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.searchsorted(self._need, rows)

    def ref(self, i: int) -> RecordRef:
        """The reference of row i (one of the rows asked for)."""
        k = int(self.pos(np.asarray([i]))[0])
        return RecordRef.model_construct(id=self.ids[k], source=Source.model_construct(file=self.files[k],
                                                                                       line=self.lines[k]))


def _clusters(table: pa.Table, final: npt.NDArray[np.int64], exact_rep: npt.NDArray[np.int64],
              sim: npt.NDArray[np.float64], refs: _Refs) -> list[dict[str, object]]:
    """One entry per cluster of more than one record, ordered by the representative's position."""
    n = len(final)
    sizes = np.bincount(final, minlength=n)
    reps = np.flatnonzero(sizes > 1)
    if not len(reps):
        return []
    others = np.flatnonzero(final != np.arange(n))  # members other than their representative
    owner = final[others]
    ex = exact_rep[others] == owner
    member_sim = np.where(ex, 1.0, sim[exact_rep[others]])
    n_exact = np.bincount(owner, weights=ex, minlength=n).astype(np.int64)
    min_sim = np.ones(n)
    np.minimum.at(min_sim, owner, member_sim)
    # distinct categories per cluster: unique (representative, category code) pairs
    members = np.flatnonzero(sizes[final] > 1)
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(table.column("category").take(int64s(members))).combine_chunks()
    names: list[str] = enc.dictionary.to_pylist()
    codes = to_numpy(enc.indices).astype(np.int64)
    n_names = max(len(names), 1)
    pair = minhash.unique(final[members] * n_names + codes)
    cat_rep, cat_code = pair // n_names, pair % n_names
    bounds = [*np.searchsorted(cat_rep, reps, side="left").tolist(), len(pair)]
    out: list[dict[str, object]] = []
    for k, rep in enumerate(reps.tolist()):
        cats = sorted(names[c] for c in cat_code[bounds[k] : bounds[k + 1]].tolist())
        size, exact = int(sizes[rep]), int(n_exact[rep])
        out.append({"representative": refs.ref(rep), "size": size, "exact": exact, "near": size - 1 - exact,
                    "min_similarity": round(float(min_sim[rep]), 4), "categories": cats})
    return out
