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

The report is a summary (counts, the largest clusters); its per-record lists, every removed record
with the kept record it duplicates and every cluster, are Arrow tables built from the step's arrays
(`DedupReport.removed_table`, `clusters_table`; no Python object per record), which
`swcdata dedup --report` writes as Parquet beside the report's JSON.
"""

from __future__ import annotations

import multiprocessing
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
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from swcdata import _native
from swcdata.core.arrow import bools, float64s, int64s, strings, to_numpy
from swcdata.core.records import SOURCE_TYPE
from swcdata.core.schema import BACKEND_DOC, Ledger, RecordRef
from swcdata.core.workers import process_pool, usable_cpus
from swcdata.similarity import minhash
from swcdata.similarity.sigindex import IndexParams, Keys, SignatureIndex, text_keys
from swcdata.similarity.tokens import Job, Packed, chunk_signatures


class DedupConfig(BaseModel):
    """Every knob of the dedup step (defaults chosen by the curve in bench/RESULTS.md)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold: float = Field(0.7, gt=0, le=1, description="Estimated Jaccard similarity at or above which two "
                             "records are near duplicates.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    ngram: int = Field(5, ge=1, le=32, description="Tokens per shingle.")
    bands: int | None = Field(None, ge=1, description="LSH bands (default: chosen from threshold and num_perm).")
    keep: Literal["first", "longest", "none"] = Field(
        "first", description="Which member of a cluster is kept: the first in input order, the longest, or none "
        "(every record of a cluster of more than one is removed: no ambiguous record stays).")
    abstract_identifiers: bool = Field(True, description="Replace code identifiers by one symbol before shingling.")
    abstract_literals: bool = Field(False, description="Replace code number/string literals by one symbol.")
    near: bool = Field(True, description="Find near duplicates (off: exact duplicates only).")
    seed: int = Field(1, ge=0, le=2**63 - 1, description="Seed of the MinHash permutations.")
    workers: int = Field(0, ge=0, description="Processes that build token streams; 0 = one per CPU core.")
    member_threshold: float | None = Field(
        None, ge=0, le=1, description="Estimated Jaccard similarity to its cluster's kept record below which a "
        "member is split off the cluster (a cluster is a chain of near-duplicate pairs: without this guard its far "
        "end can be unlike the kept record). Default: the threshold minus 0.1; 0 keeps whole chains.")

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupConfig:
        if self.bands is not None and self.bands > self.num_perm:
            raise ValueError(f"bands ({self.bands}) cannot exceed num_perm ({self.num_perm})")
        if self.member_threshold is not None and self.member_threshold > self.threshold:
            raise ValueError(f"member_threshold ({self.member_threshold}) cannot exceed threshold ({self.threshold})")
        return self

    def member_floor(self) -> float:
        """The similarity to its kept record a cluster member needs to stay in the cluster (`member_threshold`)."""
        if self.member_threshold is not None:
            return self.member_threshold
        return max(0.0, round(self.threshold - 0.1, 10))

    def lsh(self) -> tuple[int, int]:
        if self.bands is not None:
            return self.bands, self.num_perm // self.bands
        return minhash.lsh_params(self.threshold, self.num_perm)

    def index_params(self) -> IndexParams:
        """The parameters of the signatures this config makes (a signature index's, `sigindex.IndexParams`)."""
        bands, rows = self.lsh()
        return IndexParams(num_perm=self.num_perm, ngram=self.ngram, seed=self.seed,
                           abstract_identifiers=self.abstract_identifiers, abstract_literals=self.abstract_literals,
                           bands=bands, rows=rows)


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
    workers = cfg.workers or usable_cpus()  # (the cores this process may use, as --workers caps)
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


@dataclass(slots=True)
class Signed:
    """Signatures of some records of a table (`signed`): `sig` (n, num_perm), the records' `keys`
    (`sigindex.text_keys`), and how many of them an index gave (`reused`) instead of signing."""

    sig: minhash.U32
    keys: Keys
    reused: int
    known: SignatureIndex | None = None  # the index that gave some, and the row it gave each (-1: signed here)
    rows: npt.NDArray[np.int64] | None = None

    def index(self, params: IndexParams) -> SignatureIndex:
        """An index of these signatures. Where an index gave most of them, its rows that were used are taken in
        their order and the others inserted (no sort of them all: the same index)."""
        if self.known is None or self.rows is None:
            return SignatureIndex.of(params, self.keys, self.sig)
        hit = self.rows >= 0
        used = minhash.unique(self.rows[hit])
        base = SignatureIndex(params, self.known.keys[used], self.known.sig[used])
        return base.merged(self.keys[~hit], self.sig[~hit])


def signed(table: pa.Table, cfg: DedupConfig, rows: npt.NDArray[np.int64] | None = None, *,
           known: SignatureIndex | None = None, progress: Progress | None = None,
           keys: Keys | None = None) -> Signed:
    """`table_signatures` of the rows, with their keys: the rows whose texts `known` holds take its signatures (its
    parameters must be the config's: `IndexParams.differences`), the others are signed. `keys`: the keys of all the
    table's rows, when the caller has them (`sigindex.text_keys`)."""
    if keys is None:
        keys = text_keys(table.column("instruction"), table.column("response"))
    if rows is not None:
        keys = keys[rows]
    if known is None or not len(known):
        return Signed(table_signatures(table, cfg, rows, progress), keys, 0)
    differences = known.params.differences(cfg.index_params())
    if differences:
        raise ValueError("the index's signatures are not this config's: " + "; ".join(differences))
    pos = known.find(keys)
    hit = pos >= 0
    sig = known.sig.take(np.maximum(pos, 0), axis=0)  # (one gather; the rows it lacks are signed over)
    miss = np.flatnonzero(~hit)
    if len(miss):
        sig[miss] = table_signatures(table, cfg, miss if rows is None else rows[miss], progress)
    elif progress is not None:
        progress(0, 0)
    return Signed(sig, keys, int(hit.sum()), known, pos)


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
    """A cluster of more than one record: one row of the clusters table (the report's JSON holds the
    largest ones)."""

    model_config = ConfigDict(extra="forbid")

    cluster: int = Field(description="The cluster's number: its row in the clusters table, and the `cluster` of "
                         "its removed records. Clusters are numbered in the input order of their kept records.")
    representative: RecordRef = Field(description="The kept record.")
    size: int
    exact: int = Field(description="Members removed as exact duplicates.")
    near: int = Field(description="Members removed as near duplicates.")
    min_similarity: float
    categories: list[str] = Field(description="Distinct categories in the cluster (more than one = label conflict).")
    split_off: int = Field(0, description="Unique records the guard against chains split off this cluster "
                           "(`member_threshold`): they are in clusters of their own.")


LARGEST_CLUSTERS = 20  # clusters a report's JSON names (the clusters table holds them all)

# The per-record lists of a dedup, as Arrow tables (`DedupReport.removed_table`, `clusters_table`) and as the
# Parquet files beside a report: one row per removed record, one row per cluster of more than one record.
REF_TYPE = pa.struct([pa.field("id", pa.string()), pa.field("source", SOURCE_TYPE)])
# duplicate_of: the record a removed record duplicates; `version` names the published version that holds it
# (`dedup --against name@vN`), null when it is one of the input records
DUPLICATE_OF_TYPE = pa.struct([*REF_TYPE, pa.field("version", pa.string())])
REMOVED_SCHEMA = pa.schema([
    pa.field("id", pa.string()), pa.field("source", SOURCE_TYPE), pa.field("kind", pa.string()),
    pa.field("similarity", pa.float64()), pa.field("duplicate_of", DUPLICATE_OF_TYPE), pa.field("cluster", pa.int64()),
])
CLUSTERS_SCHEMA = pa.schema([
    pa.field("cluster", pa.int64()), pa.field("representative", REF_TYPE), pa.field("size", pa.int64()),
    pa.field("exact", pa.int64()), pa.field("near", pa.int64()), pa.field("min_similarity", pa.float64()),
    pa.field("categories", pa.list_(pa.string())), pa.field("split_off", pa.int64()),
])

NOT_WRITTEN = ("The per-record lists (removed records, clusters) were not written: `swcdata dedup --report FILE` "
               "writes them as Parquet files beside FILE (in Python: the report's removed_table and clusters_table).")


class DedupLists(BaseModel):
    """Where the per-record lists of a dedup went: Parquet files beside the report, named in it."""

    model_config = ConfigDict(extra="forbid")

    removed: str | None = Field(None, description="Parquet file of the removed records, relative to the report's "
                                "folder: one row per removed record (id, source {file, line}, kind exact|near, "
                                "similarity, duplicate_of {id, source, version}: the kept record of its cluster, or "
                                "with --against the version's record (version: name@vN; null for an input record), "
                                "cluster: null for a duplicate of a version's record), in "
                                "input order; null when not written. similarity: 1.0 for exact duplicates, else the "
                                "estimated Jaccard with the kept record (a cluster is a chain of pairs at or above "
                                "the threshold, so a member can be below it, down to member_threshold).")
    clusters: str | None = Field(None, description="Parquet file of the clusters of more than one record, relative "
                                 "to the report's folder: one row per cluster (cluster, representative {id, source}, "
                                 "size, exact, near, min_similarity, categories, split_off), in the input order of "
                                 "their kept records; null when not written.")
    note: str = Field(NOT_WRITTEN, description="Where the lists are, in words.")


class AgainstSummary(BaseModel):
    """`dedup --against REF`: the input records removed as duplicates of a published version's records."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="The version, name@vN.")
    records: int = Field(description="Its records (every split).")
    exact: int = Field(description="Input records removed as exact duplicates of one of its records.")
    near: int = Field(description="Input records removed as near duplicates of one of its records.")
    reused_signatures: int = Field(description="Its records' signatures read from its signature index.")
    signed: int = Field(description="Its records signed from its data (not in its index, or no usable index).")
    note: str = Field(description="Where its signatures came from, in words.")


class DedupLedger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: int = Field(description="Valid records that entered the step.")
    kept: int
    exact_duplicates: int
    near_duplicates: int

    @property
    def adds_up(self) -> bool:
        return self.records == self.kept + self.exact_duplicates + self.near_duplicates


class DedupReport(BaseModel):
    """The summary of a dedup. Its per-record lists (every removed record with the kept record it
    duplicates, every cluster) are Arrow tables held beside the fields (`removed_table`,
    `clusters_table`: not part of the JSON), written as Parquet beside the report by the CLI."""

    model_config = ConfigDict(extra="forbid", title="DedupReport")

    config: DedupConfig
    input: Ledger | None = Field(None, description="How the input lines were read (set when dedup read files).")
    bands: int
    rows: int
    ledger: DedupLedger
    clusters: int = Field(description="Clusters of more than one record (rows of the clusters file).")
    largest_clusters: list[Cluster] = Field(description=f"The {LARGEST_CLUSTERS} largest clusters: size "
                                            "descending, then in the input order of their kept records.")
    category_conflicts: int = Field(description="Clusters whose members carry different categories.")
    candidate_pairs: int
    verified_pairs: int
    reused_signatures: int = Field(0, description="Of the unique records' signatures, those taken from a signature "
                                   "index (a build's parent version) instead of being computed.")
    split_off: int = Field(0, description="Unique records split off the cluster of their chain by the guard "
                           "(`member_threshold`): less like its kept record than the floor, they form clusters of "
                           "their own (of each cluster, its far members together), guarded in turn.")
    timings: dict[str, float]
    records_per_second: float
    backend: str = Field(description=BACKEND_DOC)
    lists: DedupLists = Field(default_factory=DedupLists, description="Where the per-record lists went.")
    against: AgainstSummary | None = Field(None, description="With --against: what the input lost to the version's "
                                           "records (counted in the ledger's duplicates too).")

    _removed: pa.Table | None = PrivateAttr(None)
    _clusters: pa.Table | None = PrivateAttr(None)
    _signed: Signed | None = PrivateAttr(None)  # (the unique records' signatures: a build's signature index)

    @property
    def signed(self) -> Signed | None:
        """The signatures of the unique records (none when nothing was signed: exact dedup, one record, a report
        read back from JSON)."""
        return self._signed

    @property
    def removed_table(self) -> pa.Table:
        """Every removed record and the kept record it duplicates, in input order (`REMOVED_SCHEMA`)."""
        return self._table(self._removed, "removed")

    @property
    def clusters_table(self) -> pa.Table:
        """Every cluster of more than one record, in the input order of the kept records (`CLUSTERS_SCHEMA`)."""
        return self._table(self._clusters, "clusters")

    def _table(self, table: pa.Table | None, what: str) -> pa.Table:
        if table is None:
            raise ValueError(f"this report holds no {what} table (a report read back from JSON holds the summary "
                             f"only): read the Parquet file its lists.{what} names")
        return table


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


def guarded(labels: npt.NDArray[np.int64], priority: npt.NDArray[np.int64],
            similar: Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.float64]],
            floor: float | None) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Each element's representative (the element of smallest `priority` in its cluster: `labels`), its similarity
    to it (`similar(i, j)`: of the elements i[k] and j[k]) and, with a `floor`, the guard against chains: the
    members of a cluster whose similarity to its representative is below `floor` are split off into a cluster of
    their own (of each cluster, its far members together), which gets its representative the same way and is
    guarded in turn, until every member is at the floor or above (a round's representative stays: each round
    settles at least one element). Deterministic: it depends on the clusters and priorities only. Returns the
    representatives, the similarities and each element's first representative (its cluster's before the guard:
    an element was split off where the two differ)."""
    n = len(labels)
    rep = _representatives(labels, priority)
    origin = rep.copy()
    sim = np.ones(n)
    moved = np.flatnonzero(rep != np.arange(n))
    if len(moved):
        sim[moved] = similar(moved, rep[moved])
    label = np.asarray(labels, dtype=np.int64).copy()
    while floor is not None and len(moved):
        far = moved[sim[moved] < floor]
        if not len(far):
            break
        _, fresh = np.unique(label[far], return_inverse=True)  # (the far members of each cluster: one new cluster)
        label[far] = (label.max(initial=0) + 1) + fresh.astype(np.int64)
        rep[far] = far[_representatives(label[far], priority[far])]
        sim[far] = 1.0
        moved = far[rep[far] != far]
        if len(moved):
            sim[moved] = similar(moved, rep[moved])
    return rep, sim, origin


def _priority(table: pa.Table, keep: str) -> npt.NDArray[np.int64]:
    n = table.num_rows
    pos = np.arange(n, dtype=np.int64)
    if keep != "longest":  # (first, and none: whose clusters are named by their first record)
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
    lost: npt.NDArray[np.int64] | None = None  # per record: the unique records its cluster lost to the guard
    signed: Signed | None = None  # the unique records' signatures (none without near duplicates)

    @property
    def split_off(self) -> int:
        """Unique records the guard split off their chain's cluster."""
        return int(self.lost.sum()) if self.lost is not None else 0


def cluster(table: pa.Table, cfg: DedupConfig, *, all_pairs: bool = False, verify_threshold: float | None = None,
            extra_bandings: Sequence[tuple[int, int]] = (), member_floor: float | None = None,
            progress: Progress | None = None, known: SignatureIndex | None = None) -> Clustering:
    """Exact groups by id, then connected components of verified near-duplicate pairs among one
    representative per exact group; with a `member_floor`, guarded against chains (`guarded`: the dedup's
    `member_threshold`; a split's groups are whole components, every pair in one group).

    For leak-free splitting the clusters must contain every pair that a later audit could find:
    `all_pairs` verifies every pair inside each LSH bucket (not only those with the bucket's first
    member), `verify_threshold` verifies below the audit's threshold (a margin for estimation
    error), and `extra_bandings` adds more sensitive (bands, rows) bucketings to the config's own. `known`: a
    signature index whose signatures are taken instead of signing (`signed`)."""
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
    lost = np.zeros(n, dtype=np.int64)
    done: Signed | None = None
    if cfg.near and len(uniq) > 1:
        t = time.perf_counter()
        done = signed(table, cfg, None if len(uniq) == n else uniq, known=known, progress=progress)
        sig = done.sig
        timings["minhash"] = time.perf_counter() - t  # token streams, shingles and signatures
        t = time.perf_counter()
        pairs = minhash.candidate_pairs(sig, bands, rows, all_pairs=all_pairs)
        for b, r in extra_bandings:
            pairs = minhash.union_pairs(pairs, minhash.candidate_pairs(sig, b, r, all_pairs=all_pairs), len(sig))
        sims = minhash.similarity(sig, pairs)
        ok = pairs[sims >= (cfg.threshold if verify_threshold is None else verify_threshold)]
        n_candidates, n_verified = len(pairs), len(ok)
        comp = minhash.components(ok, len(uniq))
        near_rep_local, sims, origin = guarded(
            comp, priority[uniq], lambda i, j: minhash.similarity(sig, np.stack([i, j], axis=1)), member_floor)
        split = np.flatnonzero(origin != near_rep_local)  # (unique records the guard split off their chain)
        lost = np.bincount(uniq[origin[split]], minlength=n).astype(np.int64)
        final[uniq] = uniq[near_rep_local]  # each unique record's final representative
        final = final[exact_rep]  # exact duplicates follow their exact representative
        sim_to_rep[uniq] = sims
        timings["lsh"] = time.perf_counter() - t
    return Clustering(exact_rep, final, sim_to_rep, bands, rows, n_candidates, n_verified, timings, lost, done)


def dedup(table: pa.Table, config: DedupConfig | None = None, *, progress: Progress | None = None,
          known: SignatureIndex | None = None) -> tuple[pa.Table, DedupReport]:
    """Remove exact and near duplicates from a record table. Returns the kept records (input order)
    and a report whose `removed_table` names, for every removed record, the kept record it duplicates
    (`clusters_table`: every cluster). `progress` follows the signing of the records (the long part).
    `known`: a signature index of the config's parameters (a build's parent version): the records whose texts it
    holds are not signed again (the same result); the report's `signed` holds the unique records' signatures."""
    cfg = config or DedupConfig()
    t0 = time.perf_counter()
    c = cluster(table, cfg, member_floor=cfg.member_floor(), progress=progress, known=known)
    return _report(table, cfg, c, t0)


def _report(table: pa.Table, cfg: DedupConfig, c: Clustering, t0: float) -> tuple[pa.Table, DedupReport]:
    """The kept records and the report of a clustering (`t0`: when the step started)."""
    n = table.num_rows
    exact_rep, final, sim_to_rep, timings = c.exact_rep, c.final, c.sim_to_rep, c.timings
    bands, rows, n_candidates, n_verified = c.bands, c.rows, c.candidate_pairs, c.verified_pairs
    t = time.perf_counter()
    import pyarrow.compute as pc

    removed, clusters, gone = report_lists(table, exact_rep, final, sim_to_rep, lost=c.lost,
                                           keep_none=cfg.keep == "none")
    n_exact = int(pc.sum(pc.equal(removed.column("kind"), strings(["exact"])[0])).as_py() or 0)
    kept_mask = np.ones(n, dtype=bool)
    kept_mask[gone] = False
    largest = np.lexsort((np.arange(clusters.num_rows), -to_numpy(clusters.column("size"))))[:LARGEST_CLUSTERS]
    n_categories = to_numpy(pc.list_value_length(clusters.column("categories")))
    kept = table.filter(bools(kept_mask))
    timings["report"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    timings["total"] = total
    report = DedupReport(
        config=cfg, bands=bands, rows=rows,
        ledger=DedupLedger(records=n, kept=int(kept_mask.sum()), exact_duplicates=n_exact,
                           near_duplicates=len(gone) - n_exact),
        clusters=clusters.num_rows, largest_clusters=clusters.take(int64s(largest)).to_pylist(),  # type: ignore[arg-type]
        category_conflicts=int(np.count_nonzero(n_categories > 1)),
        candidate_pairs=n_candidates, verified_pairs=n_verified, split_off=c.split_off,
        reused_signatures=c.signed.reused if c.signed is not None else 0,
        timings={k: round(v, 3) for k, v in timings.items()},
        records_per_second=round(n / total, 1) if total > 0 else 0.0, backend=_native.backend(),
    )
    report._removed, report._clusters, report._signed = removed, clusters, c.signed
    return kept, report


def report_lists(table: pa.Table, exact_rep: npt.NDArray[np.int64], final: npt.NDArray[np.int64],
                 sim_to_rep: npt.NDArray[np.float64], numbers: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]]
                 | None = None, lost: npt.NDArray[np.int64] | None = None,
                 keep_none: bool = False) -> tuple[pa.Table, pa.Table, npt.NDArray[np.int64]]:
    """The removed and clusters tables (REMOVED_SCHEMA, CLUSTERS_SCHEMA) of a clustering of `table`'s records
    (positions: each record's exact representative and kept record, and its exact representative's similarity to
    the kept one). `numbers(representatives' positions)`: their cluster numbers (default: their rank, from 0),
    for a table that holds some clusters of a larger clustering (the Ray engine's partitions). `lost`: per record,
    the unique records the guard split off the cluster it keeps (default none). `keep_none` (keep="none"): the
    kept record of each cluster of more than one record goes too, as a duplicate of the cluster's first other
    member (positions in input order). The third value: the removed records' positions, in the removed table's
    order."""
    n = table.num_rows
    gone = np.flatnonzero(final != np.arange(n))
    of = final[gone]  # (the record each one duplicates)
    if keep_none:
        heads = np.flatnonzero((final == np.arange(n)) & (np.bincount(final, minlength=n) > 1))
        first_other = np.full(n, n, dtype=np.int64)
        np.minimum.at(first_other, final[gone], gone)
        gone, of = np.concatenate([gone, heads]), np.concatenate([of, first_other[heads]])
        o = np.argsort(gone, kind="stable")
        gone, of = gone[o], of[o]
    pair = np.where(final[gone] == gone, of, gone)  # (the member of each pair that is not the kept record)
    is_exact = exact_rep[of] == exact_rep[gone]  # exact: the record it duplicates is its exact twin
    sims = np.where(is_exact, 1.0, sim_to_rep[exact_rep[pair]])
    clusters, reps = _clusters(table, final, exact_rep, sim_to_rep, lost)
    if numbers is not None:
        clusters = clusters.set_column(0, "cluster", int64s(numbers(reps)))
        cluster_of = numbers(final[gone])
    else:
        cluster_of = np.searchsorted(reps, final[gone])
    removed = pa.Table.from_arrays(
        [_column(table, "id", gone), _column(table, "source", gone),
         strings(["near", "exact"]).take(int64s(is_exact)), float64s(_rounded(sims)), _refs(table, of, version=True),
         int64s(cluster_of)],
        schema=REMOVED_SCHEMA)
    return removed, clusters, gone


def _rounded(values: npt.NDArray[np.float64], digits: int = 4) -> npt.NDArray[np.float64]:
    """Python's `round(v, digits)` of each value (correctly rounded, unlike `np.round`), computed
    once per distinct value: similarities are shares of 128 slots, so a million of them hold a few
    hundred distinct values."""
    distinct, index = np.unique(values, return_inverse=True)
    return np.array([round(v, digits) for v in distinct.tolist()], dtype=np.float64)[index.reshape(-1)]


def _column(table: pa.Table, name: str, rows: npt.NDArray[np.int64]) -> pa.Array:
    """A column's values at the given rows, as one array."""
    return table.column(name).take(int64s(rows)).combine_chunks()


def _refs(table: pa.Table, rows: npt.NDArray[np.int64], *, version: bool = False) -> pa.StructArray:
    """The {id, source} of the given rows (`REF_TYPE`), taken as columns; with `version`, a null version too
    (`DUPLICATE_OF_TYPE`: records of the input)."""
    cols = [_column(table, "id", rows), _column(table, "source", rows)]
    if version:
        return pa.StructArray.from_arrays([*cols, pa.nulls(len(rows), pa.string())], fields=list(DUPLICATE_OF_TYPE))
    return pa.StructArray.from_arrays(cols, fields=list(REF_TYPE))


def _clusters(table: pa.Table, final: npt.NDArray[np.int64], exact_rep: npt.NDArray[np.int64],
              sim: npt.NDArray[np.float64], lost: npt.NDArray[np.int64] | None = None
              ) -> tuple[pa.Table, npt.NDArray[np.int64]]:
    """The clusters table (`CLUSTERS_SCHEMA`: one row per cluster of more than one record, ordered by the
    representative's position, numbered from 0 in that order) and the representatives' positions."""
    import pyarrow.compute as pc

    n = len(final)
    sizes = np.bincount(final, minlength=n)
    reps = np.flatnonzero(sizes > 1)
    others = np.flatnonzero(final != np.arange(n))  # members other than their representative
    owner = final[others]
    ex = exact_rep[others] == owner
    member_sim = np.where(ex, 1.0, sim[exact_rep[others]])
    n_exact = np.bincount(owner, weights=ex, minlength=n).astype(np.int64)
    min_sim = np.ones(n)
    np.minimum.at(min_sim, owner, member_sim)
    # distinct categories per cluster, in name order: unique (representative, category rank) pairs
    members = np.flatnonzero(sizes[final] > 1)
    enc = pc.dictionary_encode(_column(table, "category", members))
    names: list[str] = enc.dictionary.to_pylist()  # (the distinct categories: a few)
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    codes = rank[to_numpy(enc.indices).astype(np.int64)] if len(members) else np.zeros(0, dtype=np.int64)
    n_names = max(len(names), 1)
    pair = minhash.unique(final[members] * n_names + codes)
    offsets = np.append(np.searchsorted(pair // n_names, reps, side="left"), len(pair))
    categories = pa.ListArray.from_arrays(int64s(offsets).cast(pa.int32()),
                                          strings([names[k] for k in order]).take(int64s(pair % n_names)))
    size, exact = sizes[reps].astype(np.int64), n_exact[reps]
    out = pa.Table.from_arrays(
        [int64s(np.arange(len(reps))), _refs(table, reps), int64s(size), int64s(exact), int64s(size - 1 - exact),
         float64s(_rounded(min_sim[reps])), categories,
         int64s(lost[reps] if lost is not None else np.zeros(len(reps), dtype=np.int64))], schema=CLUSTERS_SCHEMA)
    return out, reps
