"""`dedup --against REF`: remove the input records that duplicate a published version's records, then dedup the rest.

A record is an exact duplicate of a version's record when they share an id, and a near duplicate when their MinHash
signatures agree on at least the threshold (candidates from the config's LSH banding: the input's band keys looked up
among the version's). Each such record is removed with `duplicate_of` = the version's record {id, source, version:
name@vN}: the exact twin first met in the version's split order, else the most similar one (ties: the first). The
other input records are deduplicated among themselves as `dedup` does, and the two lists of removed records merge in
input order. The version's records come as a `Reference` (ids, sources, signatures): read from the version's data
and its signature index by the registry (`swcdata.registry.reference`), never from its sources.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from swcdata.core.arrow import bools, float64s, int64s, strings, to_numpy
from swcdata.similarity import minhash
from swcdata.steps.dedup import (
    DUPLICATE_OF_TYPE,
    REMOVED_SCHEMA,
    AgainstSummary,
    DedupConfig,
    DedupLedger,
    DedupReport,
    Progress,
    _rounded,
    dedup,
    table_signatures,
)


@dataclass(frozen=True, slots=True)
class Buckets:
    """The reference's LSH buckets: for each band, its band hashes sorted (`hashes`, (bands, k)) and the reference
    rows in that order (`rows`), over the k rows that have shingles."""

    bands: int
    rows_per_band: int
    hashes: npt.NDArray[np.uint64]
    rows: npt.NDArray[np.int64]

    @classmethod
    def of(cls, sig: minhash.U32, bands: int, rows: int) -> Buckets:
        ok = np.flatnonzero((sig != minhash.EMPTY).any(axis=1))
        h = minhash.band_hashes(sig[ok], bands, rows).T if len(ok) else np.zeros((bands, 0), np.uint64)
        order = np.argsort(h, axis=1, kind="stable")
        return cls(bands, rows, np.take_along_axis(h, order, axis=1), ok[order])


@dataclass(frozen=True, slots=True)
class Reference:
    """A published version's records as `dedup_against` matches them (`Reference.of`)."""

    version: str  # name@vN
    ids: pa.Array  # its records' ids (string), in split order
    sources: pa.Array  # their sources (SOURCE_TYPE)
    sig: minhash.U32  # their signatures (m, num_perm) with the dedup config's parameters
    reused: int  # of those, read from the version's signature index
    note: str  # where the signatures came from, in words
    buckets: Buckets  # their LSH buckets with the dedup config's banding

    @classmethod
    def of(cls, version: str, ids: pa.Array, sources: pa.Array, sig: minhash.U32, reused: int, note: str,
           cfg: DedupConfig) -> Reference:
        return cls(version, ids, sources, sig, reused, note, Buckets.of(sig, *cfg.lsh()))


@dataclass(frozen=True, slots=True)
class Matches:
    """The input rows that duplicate a version's record: `rows` ascending, the version record each duplicates
    (`of`), the similarity, and whether it is an exact duplicate."""

    rows: npt.NDArray[np.int64]
    of: npt.NDArray[np.int64]
    sim: npt.NDArray[np.float64]
    exact: npt.NDArray[np.bool_]


def match(table: pa.Table, cfg: DedupConfig, ref: Reference, progress: Progress | None = None) -> Matches:
    """The input records that duplicate (exactly, or nearly with `cfg.near`) one of the reference's records, each
    record on its own (a function of the record and the reference only: the Ray engine runs it block by block)."""
    n = table.num_rows
    twin = to_numpy(pc.fill_null(pc.index_in(table.column("id"), value_set=ref.ids), -1)).astype(np.int64) \
        if n else np.zeros(0, np.int64)
    exact = twin >= 0
    of, sim = twin.copy(), np.where(exact, 1.0, 0.0)
    rest = np.flatnonzero(~exact)
    if cfg.near and len(rest) and len(ref.sig):
        best, best_sim = _near(table_signatures(table, cfg, rest, progress), ref, cfg.threshold)
        of[rest], sim[rest] = best, np.where(best >= 0, best_sim, 0.0)
    rows = np.flatnonzero(of >= 0)
    return Matches(rows, of[rows], sim[rows], exact[rows])


def _near(sig: minhash.U32, ref: Reference, threshold: float) -> tuple[npt.NDArray[np.int64],
                                                                       npt.NDArray[np.float64]]:
    """For each signature, the reference row most like it at or above the threshold (-1 where none) and the
    similarity: candidates share an LSH bucket (at most `minhash.MAX_BUCKET` reference rows a bucket)."""
    ref_sig, bk = ref.sig, ref.buckets
    n, m = len(sig), len(ref_sig)
    best, best_sim = np.full(n, -1, dtype=np.int64), np.zeros(n)
    a_ok = np.flatnonzero((sig != minhash.EMPTY).any(axis=1))
    if not len(a_ok) or not bk.rows.shape[1]:
        return best, best_sim
    ha = minhash.band_hashes(sig[a_ok], bk.bands, bk.rows_per_band)
    keys: list[npt.NDArray[np.int64]] = []
    for b in range(bk.bands):
        col = bk.hashes[b]
        lo, hi = np.searchsorted(col, ha[:, b], "left"), np.searchsorted(col, ha[:, b], "right")
        count = np.minimum(hi - lo, minhash.MAX_BUCKET)
        if not count.any():
            continue
        i = np.repeat(np.arange(len(a_ok), dtype=np.int64), count)
        j = bk.rows[b][np.repeat(lo, count) + minhash.ragged_arange(count)]
        keys.append(minhash.unique(a_ok[i] * m + j))
    if not keys:
        return best, best_sim
    key = minhash.unique(np.concatenate(keys))
    i, j = key // m, key % m
    s = np.empty(len(key))
    for lo in range(0, len(key), 1 << 16):
        s[lo : lo + (1 << 16)] = (sig[i[lo : lo + (1 << 16)]] == ref_sig[j[lo : lo + (1 << 16)]]).mean(axis=1)
    ok = s >= threshold
    i, j, s = i[ok], j[ok], s[ok]
    order = np.lexsort((j, -s, i))  # (per record: the most similar first, then the first reference row)
    first = np.ones(len(order), dtype=bool)
    first[1:] = i[order][1:] != i[order][:-1]
    pick = order[first]
    best[i[pick]], best_sim[i[pick]] = j[pick], s[pick]
    return best, best_sim


def removed_rows(table: pa.Table, hit: Matches, ref: Reference) -> pa.Table:
    """The matched input records as rows of the removed table (`REMOVED_SCHEMA`: duplicate_of the version's record,
    with its name@vN; no cluster)."""
    take = int64s(hit.rows)
    n = len(hit.rows)
    return pa.Table.from_arrays(
        [table.column("id").take(take).combine_chunks(), table.column("source").take(take).combine_chunks(),
         strings(["near", "exact"]).take(int64s(hit.exact.astype(np.int64))), float64s(_rounded(hit.sim)),
         pa.StructArray.from_arrays([ref.ids.take(int64s(hit.of)), ref.sources.take(int64s(hit.of)),
                                     strings([ref.version]).take(int64s(np.zeros(n, np.int64)))],
                                    fields=list(DUPLICATE_OF_TYPE)),
         pa.nulls(n, pa.int64())], schema=REMOVED_SCHEMA)


def merged_report(report: DedupReport, records: int, removed: pa.Table, ref: Reference, t_match: float,
                  t0: float) -> DedupReport:
    """The report of the records left after the match (`report`), made the report of all `records`: the ledger
    counts the version's duplicates (`removed`: their rows) too, and `against` says what the version took."""
    kinds = to_numpy(pc.equal(removed.column("kind"), "exact").cast(pa.int8())) if removed.num_rows else np.zeros(0)
    n_exact = int(kinds.sum())
    led = report.ledger
    summary = AgainstSummary(version=ref.version, records=len(ref.ids), exact=n_exact, near=removed.num_rows - n_exact,
                             reused_signatures=ref.reused, signed=len(ref.ids) - ref.reused, note=ref.note)
    total = time.perf_counter() - t0
    out = report.model_copy(update={
        "ledger": DedupLedger(records=records, kept=led.kept, exact_duplicates=led.exact_duplicates + n_exact,
                              near_duplicates=led.near_duplicates + summary.near),
        "against": summary, "timings": {**report.timings, "against": round(t_match, 3), "total": round(total, 3)},
        "records_per_second": round(records / total, 1) if total > 0 else 0.0})
    out._signed = report._signed
    return out


def dedup_against(table: pa.Table, config: DedupConfig | None, ref: Reference, *,
                  progress: Progress | None = None) -> tuple[pa.Table, DedupReport]:
    """`dedup` of the input records that do not duplicate a record of the version `ref`; those that do are removed
    too, each with `duplicate_of` naming the version's record (see the module's docstring). The report's ledger
    counts both; its `against` says what the version took."""
    cfg = config or DedupConfig()
    t0 = time.perf_counter()
    n = table.num_rows
    hit = match(table, cfg, ref, progress)
    t_match = time.perf_counter() - t0
    mask = np.ones(n, dtype=bool)
    mask[hit.rows] = False
    rest_rows = np.flatnonzero(mask)
    pos = "__position"
    rest = table.filter(bools(mask)).append_column(pos, int64s(rest_rows))
    kept, report = dedup(rest, cfg)
    kept_rows = to_numpy(kept.column(pos)).astype(np.int64)
    kept = kept.drop_columns([pos])
    gone = np.setdiff1d(rest_rows, kept_rows, assume_unique=True)  # (the removed table's rows, in input order)
    version_rows = removed_rows(table, hit, ref)
    order = np.argsort(np.concatenate([gone, hit.rows]), kind="stable")
    removed = pa.concat_tables([report.removed_table, version_rows]).take(int64s(order)).combine_chunks()
    out = merged_report(report, n, version_rows, ref, t_match, t0)
    out._removed, out._clusters = removed, report.clusters_table
    return kept, out
