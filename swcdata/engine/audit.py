"""`audit_on_ray`: a candidate set (a test set: the small side) checked against a reference set on Ray Data (the
large side: the training data), with exactly the local `audit`'s report.

The candidates are on the driver; everything the rules need of them (their ids, MinHash signatures and LSH
buckets, code tokens, code signatures and buckets, words) is broadcast once. The reference is never shuffled:

1. a map over the reference (`_scan`): per batch, the records whose id is a candidate's (exact), its MinHash
   signatures and the LSH buckets they share with candidates (near: both bandings of the local audit), its code
   (`record_code`) matched both ways by containment against the candidates' code and its code signatures' buckets
   (code), and the longest word span it shares with each candidate (`_longest_overlap`, the local function, on the
   batch: its answer merges over batches by length, then earliest start, then reference order). Its output: the
   reference records that share a bucket with a candidate (key, signature, buckets) and one row per batch with
   the rest, pickled;
2. the bucket sizes and heads, summed on the driver: the local `candidate_pairs(all_pairs=True)` pairs every
   member of a bucket of up to `minhash.MAX_BUCKET` records and only the head (lowest index) with the others in a
   larger one, so a bucket's size over both sets decides which cross pairs exist;
3. a map over those bucket-sharing records (`_pairs`): each one's cross pairs by that rule, verified with the
   local `minhash.similarity`; per batch, each candidate's best near match (highest similarity, then reference
   order) and every code near pair;
4. on the driver: the matches merged (code pairs by the local precedence: contained, contains, near), the few
   reference records the report names fetched by a filter, and the local `audit_report`.

Reference records are named by their `_order` (which sorts as the local reference order). What the driver holds:
the candidates and their report (as locally), per reference batch its exact hits, bucket counts, code pairs and
n-gram spans (at most a few per candidate), and the verified matches; never the reference records.
"""

from __future__ import annotations

import pickle
import time
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from swcdata.core.arrow import bools, to_numpy
from swcdata.core.records import SOURCE_TYPE
from swcdata.engine.blocks import (
    BLOBS,
    I64,
    ORDER,
    ROWS_PER_BLOCK,
    blob_table,
    broadcast,
    collect,
    ints,
    mapped,
    unpickled,
)
from swcdata.similarity import minhash
from swcdata.similarity.codematch import CodePairs, contained_pairs, near_signatures, record_code
from swcdata.steps.audit import (
    AUDIT_SENSITIVITY,
    AuditConfig,
    AuditReport,
    Matches,
    _longest_overlap,
    _words,
    audit_report,
)
from swcdata.steps.dedup import table_signatures

RECORD, CODE, BATCH = 1, 2, 0  # row kinds of the scan: a record sharing a record bucket, a code bucket; a batch
SCAN = pa.schema([("kind", pa.int8()), ("key", pa.int64()), ("sig", pa.large_binary()),
                  ("buckets", pa.list_(pa.int64())), ("blob", pa.binary())])
REFS = ("id", "source", "category")
KIND_RANK = {"contained": 0, "contains": 1, "near": 2}


class _Buckets:
    """The LSH buckets of the candidates under some bandings: bucket ids (numbered across the bandings), and for
    each bucket its candidates (ascending)."""

    def __init__(self, sig: minhash.U32, rows: I64, bandings: list[tuple[int, int]]) -> None:
        self.bandings = bandings
        self.hashes: list[npt.NDArray[np.uint64]] = []  # per global band: the sorted distinct hashes
        self.first: list[int] = []  # per global band: the bucket id of its first hash
        members: list[I64] = []
        starts: list[I64] = []
        n_buckets = offset = 0
        for bands, rows_per_band in bandings:
            bh = minhash.band_hashes(sig, bands, rows_per_band) if len(sig) else np.zeros((0, bands), np.uint64)
            for b in range(bands):
                col = bh[:, b]
                o = np.lexsort((rows, col))
                uh, start = np.unique(col[o], return_index=True)
                self.hashes.append(uh)
                self.first.append(n_buckets)
                n_buckets += len(uh)
                members.append(rows[o])
                starts.append(start.astype(np.int64) + offset)
                offset += len(o)
        self.members = np.concatenate(members) if members else np.zeros(0, np.int64)
        # bucket k's candidates (ascending): members[starts[k]:starts[k + 1]]
        self.starts = np.concatenate([*starts, np.array([offset], np.int64)])
        self.count = np.diff(self.starts)
        self.low = self.members[self.starts[:-1]] if len(self.count) else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.count)

    def of(self, sig: minhash.U32) -> list[I64]:
        """The candidate buckets each row of `sig` falls in (bucket ids, ascending)."""
        found: list[list[int]] = [[] for _ in range(len(sig))]
        g = 0
        for bands, rows_per_band in self.bandings:
            bh = minhash.band_hashes(sig, bands, rows_per_band) if len(sig) else np.zeros((0, bands), np.uint64)
            for b in range(bands):
                uh = self.hashes[g]
                if len(uh):
                    pos = np.minimum(np.searchsorted(uh, bh[:, b]), len(uh) - 1)
                    for r in np.flatnonzero(uh[pos] == bh[:, b]).tolist():
                        found[r].append(self.first[g] + int(pos[r]))
                g += 1
        return [np.asarray(f, dtype=np.int64) for f in found]


def _valid(sig: minhash.U32) -> npt.NDArray[np.bool_]:
    """Records with shingles (the others are in no bucket, as in `candidate_pairs`)."""
    return (sig != minhash.EMPTY).any(axis=1)


def _scan(batch: pa.Table, cfg: AuditConfig, side: Any) -> pa.Table:
    """Stage 1 on a reference batch (see the module doc)."""
    c = broadcast(side)
    keys = ints(batch, ORDER)
    blob: dict[str, Any] = {}
    # exact: the batch's records whose id is a candidate's
    hit = pc.is_in(batch.column("id"), value_set=c["ids"])
    blob["exact"] = (batch.column("id").filter(hit).to_pylist(), keys[to_numpy(hit)])
    rows: list[tuple[int, int, bytes, list[int]]] = []
    # near: buckets shared with candidates, counted per bucket (records and lowest key)
    sig = table_signatures(batch.select(["instruction", "response"]), cfg.near.model_copy(update={"workers": 1}))
    valid = np.flatnonzero(_valid(sig))
    blob["record_buckets"] = _bucket_rows(c["record"], sig[valid], keys[valid], RECORD, rows)
    # code: containment both ways, and the near rule's buckets
    codes = record_code(batch.column("instruction").to_pylist(), cfg.code)
    contained = [(i, int(keys[j]), 0) for i, j in contained_pairs(c["codes"], codes, cfg.code.min_tokens)]
    contains = [(i, int(keys[j]), 1) for j, i in contained_pairs(codes, c["codes"], cfg.code.min_tokens)]
    blob["contained"] = contained + contains
    crow, csig = near_signatures(codes, cfg.code)
    blob["code_buckets"] = _bucket_rows(c["code"], csig, keys[crow], CODE, rows)
    # n-grams: each candidate's longest span shared with a record of the batch
    longest, ref_of, start = _longest_overlap(_words(batch), c["words"], cfg.overlap_n)
    found = np.flatnonzero(longest > 0)
    blob["ngram"] = (found, longest[found], keys[ref_of[found]], start[found])
    return _scan_table(rows, blob)


def _bucket_rows(buckets: _Buckets, sig: minhash.U32, keys: I64, kind: int,
                 rows: list[tuple[int, int, bytes, list[int]]]) -> tuple[I64, I64, I64]:
    """Append a row (kind, key, signature, buckets) for each record that shares a bucket with a candidate, and
    return the per-bucket tally of the batch: (bucket ids, records, lowest key)."""
    if len(buckets) == 0 or len(sig) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    per_row = buckets.of(sig)
    ids: list[I64] = []
    owners: list[I64] = []
    for r, b in enumerate(per_row):
        if len(b):
            rows.append((kind, int(keys[r]), sig[r].tobytes(), b.tolist()))
            ids.append(b)
            owners.append(np.full(len(b), keys[r], np.int64))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    b_all, k_all = np.concatenate(ids), np.concatenate(owners)
    o = np.lexsort((k_all, b_all))
    b_all, k_all = b_all[o], k_all[o]
    uniq, start, count = np.unique(b_all, return_index=True, return_counts=True)
    return uniq, count.astype(np.int64), k_all[start]


def _blobs(batch: pa.Table) -> pa.Table:
    kind = to_numpy(pc.equal(batch.column("kind"), pa.array([BATCH], pa.int8())[0]))
    return pa.table({"blob": batch.column("blob").filter(bools(kind))}, schema=BLOBS)


class _Sizes(NamedTuple):
    """The buckets' sizes over both sets, and the lowest scanned key of each (-1: none), per kind; and which side
    heads a bucket over the pairing bound: the scanned side (its lowest key) or the broadcast one (its lowest)."""

    record_total: I64
    record_head: I64
    code_total: I64
    code_head: I64
    record_head_scanned: bool
    code_head_scanned: bool


def _cross(b: I64, key: int, bk: _Buckets, total: I64, head: I64, head_scanned: bool) -> I64:
    """The broadcast records a scanned record (`key`, in buckets `b`) is paired with, by the local rule: every
    member of a bucket of up to MAX_BUCKET records; in a larger bucket, only its head with every other member."""
    small = b[total[b] <= minhash.MAX_BUCKET]
    big = b[total[b] > minhash.MAX_BUCKET]
    parts = [bk.members[bk.starts[x]:bk.starts[x + 1]] for x in small]
    if head_scanned:  # (the bucket's head is a scanned record: paired with all, when it is this one)
        parts += [bk.members[bk.starts[x]:bk.starts[x + 1]] for x in big[head[big] == key]]
    else:  # (the head is the broadcast side's lowest member: paired with every scanned one)
        parts.append(bk.low[big])
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _pairs(batch: pa.Table, cfg: AuditConfig, side: Any, sizes: Any, best_of: str) -> pa.Table:
    """Stage 3 on scanned records that share buckets with broadcast ones: their cross pairs by the local rule,
    verified; the near pairs reduced per batch to the best of each candidate (`best_of`: which side the
    candidates are, "broadcast" or "scanned"): highest similarity, then the lowest reference."""
    c = broadcast(side)
    z: _Sizes = broadcast(sizes)
    kind = ints(batch, "kind")
    near_rows: list[tuple[int, int, float]] = []
    code_rows: list[tuple[int, int, float]] = []
    for k, key, sig_bytes, buckets in zip(kind.tolist(), ints(batch, "key").tolist(), batch.column("sig").to_pylist(),
                                          batch.column("buckets").to_pylist(), strict=True):
        if k == BATCH:
            continue
        b = np.asarray(buckets, dtype=np.int64)
        sig = np.frombuffer(sig_bytes, dtype=np.uint32)
        if k == RECORD:
            other = _cross(b, key, c["record"], z.record_total, z.record_head, z.record_head_scanned)
            sims = _similarity(sig, c["record_sig"][other])
            ok = sims >= cfg.near.threshold
            near_rows += zip(other[ok].tolist(), [key] * int(ok.sum()), sims[ok].tolist(), strict=True)
        else:
            other = _cross(b, key, c["code"], z.code_total, z.code_head, z.code_head_scanned)
            sims = _similarity(sig, c["code_sig"][np.searchsorted(c["code_rows"], other)])
            ok = sims >= cfg.code.threshold
            code_rows += zip(other[ok].tolist(), [key] * int(ok.sum()), sims[ok].tolist(), strict=True)
    if near_rows:  # (broadcast, scanned, similarity): the best per candidate
        bc = np.array([r[0] for r in near_rows], dtype=np.int64)
        sc = np.array([r[1] for r in near_rows], dtype=np.int64)
        sim = np.array([r[2] for r in near_rows], dtype=np.float64)
        cand, ref = (bc, sc) if best_of == "broadcast" else (sc, bc)
        o = np.lexsort((ref, -sim, cand))
        first = np.ones(len(o), dtype=bool)
        first[1:] = cand[o][1:] != cand[o][:-1]
        sel = o[first]
        near_rows = list(zip(bc[sel].tolist(), sc[sel].tolist(), sim[sel].tolist(), strict=True))
    return blob_table((near_rows, code_rows))


def _sizes(blobs: list[dict[str, Any]], side: dict[str, Any], record_head_scanned: bool,
           code_head_scanned: bool) -> _Sizes:
    """Stage 2: the scans' bucket tallies summed over the batches, with the broadcast side's own members."""
    rb, cb = side["record"], side["code"]
    none = np.iinfo(np.int64).max
    record_total, code_total = rb.count.copy(), cb.count.copy()
    record_head, code_head = np.full(len(rb), none, np.int64), np.full(len(cb), none, np.int64)
    for b in blobs:
        for name, total, head in (("record_buckets", record_total, record_head), ("code_buckets", code_total,
                                                                                  code_head)):
            ids, count, low = b[name]
            total[ids] += count
            head[ids] = np.minimum(head[ids], low)
    record_head[record_head == none] = -1
    code_head[code_head == none] = -1
    return _Sizes(record_total, record_head, code_total, code_head, record_head_scanned, code_head_scanned)


def _side(table: pa.Table, cfg: AuditConfig) -> dict[str, Any]:
    """What the scans need of the broadcast records: ids, MinHash signatures and LSH buckets (both bandings of
    the audit), code, code signatures and buckets, words."""
    sig = table_signatures(table.select(["instruction", "response"]), cfg.near)
    valid = np.flatnonzero(_valid(sig))
    sensitive = minhash.lsh_params(max(0.05, cfg.near.threshold - AUDIT_SENSITIVITY), cfg.near.num_perm)
    codes = record_code(table.column("instruction").to_pylist(), cfg.code)
    code_rows, code_sig = near_signatures(codes, cfg.code)
    return {"ids": table.column("id").combine_chunks(), "record": _Buckets(sig[valid], valid,
                                                                           [cfg.near.lsh(), sensitive]),
            "record_sig": sig, "codes": codes, "code_rows": code_rows, "code_sig": code_sig,
            "code": _Buckets(code_sig, code_rows, [minhash.lsh_params(cfg.code.threshold, cfg.code.num_perm)]),
            "words": _words(table)}


def _similarity(sig: minhash.U32, others: minhash.U32) -> npt.NDArray[np.float64]:
    """`minhash.similarity` of one signature with each of `others` (the local function, so the same floats)."""
    if len(others) == 0:
        return np.zeros(0)
    both = np.concatenate([sig[None, :], others])
    pairs = np.stack([np.zeros(len(others), np.int64), np.arange(1, len(others) + 1, dtype=np.int64)], axis=1)
    return minhash.similarity(both, pairs)


def _by_key(batch: pa.Table, keys: Any, columns: tuple[str, ...] | None = None) -> pa.Table:
    """The batch's records whose `_order` is in `keys` (broadcast): all their columns, or their `_order` and those
    of `columns` the batch has."""
    hit = batch.filter(pc.is_in(batch.column(ORDER), value_set=pa.array(broadcast(keys), pa.int64())))
    return hit if columns is None else hit.select([ORDER, *(c for c in columns if c in batch.column_names)])


_KINDS = ("contained", "contains", "near")  # (a code pair's kinds, in the local precedence)


def _contained_into(found: dict[tuple[int, int], tuple[int, float]], pairs: list[tuple[int, int, int]]) -> None:
    """Add containment pairs (candidate, reference, 0 contained / 1 contains): a pair keeps its first kind in
    the local precedence."""
    for i, j, kind in pairs:
        if found.get((i, j), (len(_KINDS), 0.0))[0] > kind:
            found[(i, j)] = (kind, 1.0)


def _near_code_into(found: dict[tuple[int, int], tuple[int, float]], pairs: list[tuple[int, int, float]]) -> None:
    """Add code near pairs (candidate, reference, similarity): a pair already contained keeps its kind."""
    for i, j, s in pairs:
        found.setdefault((i, j), (2, round(s, 4)))


def _code_pairs(found: dict[tuple[int, int], tuple[int, float]]) -> CodePairs:
    """The local `code_pairs` result from the merged pairs, sorted by (candidate, reference)."""
    pairs = sorted(found)
    return CodePairs(i=np.array([p[0] for p in pairs], dtype=np.int64),
                     j=np.array([p[1] for p in pairs], dtype=np.int64),
                     kind=[_KINDS[found[p][0]] for p in pairs],  # type: ignore[misc]
                     similarity=np.array([found[p][1] for p in pairs], dtype=np.float64))


def audit_on_ray(reference: Any, candidate: pa.Table, config: AuditConfig | None = None, *,
                 rows_per_block: int = ROWS_PER_BLOCK) -> AuditReport:
    """Match every candidate record (a table on the driver) against the reference (a Ray Dataset of records with
    `_order`, in the local reference order) as the local `audit(reference, candidate)` does: the same report
    (timings aside). `rows_per_block`: reference records per task of the scan."""
    from swcdata.engine import require_ray

    ray = require_ray()
    cfg = config or AuditConfig()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    nc = candidate.num_rows
    # the candidates' side, broadcast
    side = _side(candidate, cfg)
    cand_words = side["words"]
    side_ref = ray.put(side)
    t = time.perf_counter()
    scanned = mapped(reference, _scan, rows_per_block, cfg=cfg, side=side_ref).materialize()
    blobs = unpickled(ray, mapped(scanned, _blobs))
    timings["scan"] = time.perf_counter() - t
    nr = reference.count()

    # exact: each candidate id's lowest reference key
    first: dict[str, int] = {}
    for b in blobs:
        for i, k in zip(b["exact"][0], b["exact"][1].tolist(), strict=True):
            if i not in first or k < first[i]:
                first[i] = k
    exact = np.array([first.get(i, -1) for i in candidate.column("id").to_pylist()], dtype=np.int64)

    # the buckets' sizes over both sets (a record bucket over the bound is headed by its lowest reference, a code
    # bucket by its lowest candidate: the local indices put the references first, the candidates' code first)
    sizes = _sizes(blobs, side, record_head_scanned=True, code_head_scanned=False)
    t = time.perf_counter()
    found = unpickled(ray, mapped(scanned, _pairs, rows_per_block, cfg=cfg, side=side_ref, sizes=ray.put(sizes),
                                  best_of="broadcast"))
    timings["pairs"] = time.perf_counter() - t
    near = np.full(nc, -1, dtype=np.int64)
    near_sim = np.zeros(nc)
    code_found: dict[tuple[int, int], tuple[int, float]] = {}
    for b in blobs:
        _contained_into(code_found, b["contained"])
    for near_rows, code_rows_found in found:
        for i, k, s in near_rows:
            if near[i] < 0 or s > near_sim[i] or (s == near_sim[i] and k < near[i]):
                near[i], near_sim[i] = k, s
        _near_code_into(code_found, code_rows_found)
    cp = _code_pairs(code_found)

    # n-grams: the longest span, then the earliest start in the candidate, then the reference order
    longest = np.zeros(nc, dtype=np.int64)
    ngram_ref = np.full(nc, -1, dtype=np.int64)
    ngram_start = np.zeros(nc, dtype=np.int64)
    for b in blobs:
        for j, n_words, k, s in zip(*(x.tolist() for x in b["ngram"]), strict=True):
            best = (-longest[j], ngram_start[j], ngram_ref[j])
            if longest[j] == 0 or (-n_words, s, k) < best:
                longest[j], ngram_ref[j], ngram_start[j] = n_words, k, s

    def refs(keys: I64) -> pa.Table:
        if len(keys) == 0:
            return pa.schema([("id", pa.string()), ("source", SOURCE_TYPE)]).empty_table()
        got = collect(ray, mapped(reference, _by_key, rows_per_block, keys=ray.put(keys), columns=REFS))
        got = got.take(pc.sort_indices(got.column(ORDER)))
        if not np.array_equal(ints(got, ORDER), keys):
            raise AssertionError("a named reference record is missing")
        return got.drop_columns([ORDER])

    return audit_report(cfg, candidate, nr, Matches(exact, near, near_sim, cp, longest, ngram_ref, ngram_start),
                        cand_words, refs, timings, t0)



# --------------------------------------------------------------------------- the other way: a large candidate set

def _scan_candidates(batch: pa.Table, cfg: AuditConfig, side: Any) -> pa.Table:
    """Stage 1 on a batch of candidates, the reference broadcast (see `leaks_on_ray`)."""
    r = broadcast(side)
    keys = ints(batch, ORDER)
    blob: dict[str, Any] = {}
    first = pc.index_in(batch.column("id"), value_set=r["ids"])  # (a reference id's first position)
    hit = to_numpy(pc.is_valid(first))
    blob["exact"] = (keys[hit], np.asarray(first.filter(pc.is_valid(first)).to_numpy(), dtype=np.int64))
    rows: list[tuple[int, int, bytes, list[int]]] = []
    sig = table_signatures(batch.select(["instruction", "response"]), cfg.near.model_copy(update={"workers": 1}))
    valid = np.flatnonzero(_valid(sig))
    blob["record_buckets"] = _bucket_rows(r["record"], sig[valid], keys[valid], RECORD, rows)
    codes = record_code(batch.column("instruction").to_pylist(), cfg.code)
    blob["contained"] = ([(int(keys[i]), j, 0) for i, j in contained_pairs(codes, r["codes"], cfg.code.min_tokens)]
                         + [(int(keys[i]), j, 1) for j, i in contained_pairs(r["codes"], codes,
                                                                            cfg.code.min_tokens)])
    crow, csig = near_signatures(codes, cfg.code)
    blob["code_buckets"] = _bucket_rows(r["code"], csig, keys[crow], CODE, rows)
    longest, ref_of, start = _longest_overlap(r["words"], _words(batch), cfg.overlap_n)
    found = np.flatnonzero(longest > 0)
    blob["ngram"] = (keys[found], longest[found], ref_of[found], start[found])
    return _scan_table(rows, blob)


def _scan_table(rows: list[tuple[int, int, bytes, list[int]]], blob: dict[str, Any]) -> pa.Table:
    """A scan's output: a BATCH row with the pickled blob, then the bucket-sharing rows."""
    return pa.Table.from_arrays([
        pa.array(np.array([BATCH] + [r[0] for r in rows], dtype=np.int8)),
        pa.array(np.array([-1] + [r[1] for r in rows], dtype=np.int64)),
        pa.array([None] + [r[2] for r in rows], pa.large_binary()),
        pa.array([None] + [r[3] for r in rows], pa.list_(pa.int64())),
        pa.array([pickle.dumps(blob)] + [None] * len(rows), pa.binary())], schema=SCAN)


class RayLeaks(NamedTuple):
    """`leaks_on_ray`'s result: the leaked candidates' results and the label conflicts (as the local `audit`'s
    report lists them, in candidate order) and the leaked candidates' `_order`s (sorted)."""

    leaked: list[Any]
    label_conflicts: list[Any]
    orders: I64


def leaks_on_ray(reference: pa.Table, candidate: Any, config: AuditConfig | None = None, *,
                 rows_per_block: int = ROWS_PER_BLOCK) -> RayLeaks:
    """The leaked candidates of the local `audit(reference, candidate)` where the candidates are the large side (a
    Ray Dataset with `_order`: a corpus checked against a holdout set) and the reference a table on the driver,
    broadcast. The same stages as `audit_on_ray` the other way round; only the candidates that match something
    come back to the driver, where the local `audit_report` judges them."""
    from swcdata.engine import require_ray

    ray = require_ray()
    cfg = config or AuditConfig()
    t0 = time.perf_counter()
    side = _side(reference, cfg)
    side_ref = ray.put(side)
    scanned = mapped(candidate, _scan_candidates, rows_per_block, cfg=cfg, side=side_ref).materialize()
    blobs = unpickled(ray, mapped(scanned, _blobs))
    # (the local indices put the reference first, and the candidates' code first)
    sizes = _sizes(blobs, side, record_head_scanned=False, code_head_scanned=True)
    found = unpickled(ray, mapped(scanned, _pairs, rows_per_block, cfg=cfg, side=side_ref, sizes=ray.put(sizes),
                                  best_of="scanned"))
    exact: dict[int, int] = {}
    near: dict[int, tuple[int, float]] = {}
    code: dict[tuple[int, int], tuple[int, float]] = {}
    ngram: dict[int, tuple[int, int, int]] = {}
    for b in blobs:
        exact.update(zip(b["exact"][0].tolist(), b["exact"][1].tolist(), strict=True))
        _contained_into(code, b["contained"])
        for key, n_words, j, s in zip(*(x.tolist() for x in b["ngram"]), strict=True):
            ngram[key] = (n_words, j, s)
    for near_rows, code_rows in found:
        for j, key, s in near_rows:
            best = near.get(key)
            if best is None or s > best[1] or (s == best[1] and j < best[0]):
                near[key] = (j, s)
        _near_code_into(code, [(key, j, s) for j, key, s in code_rows])
    matched = np.unique(np.array([*exact, *near, *ngram, *(k for k, _ in code)], dtype=np.int64))
    if len(matched) == 0:
        return RayLeaks([], [], matched)
    rows = collect(ray, mapped(candidate, _by_key, rows_per_block, keys=ray.put(matched)))
    rows = rows.take(pc.sort_indices(rows.column(ORDER)))
    if not np.array_equal(ints(rows, ORDER), matched):
        raise AssertionError("a matched candidate is missing")
    at = {k: i for i, k in enumerate(matched.tolist())}
    m = len(matched)
    matches = Matches(
        exact=np.array([exact.get(k, -1) for k in matched.tolist()], dtype=np.int64),
        near=np.array([near[k][0] if k in near else -1 for k in matched.tolist()], dtype=np.int64),
        near_sim=np.array([near[k][1] if k in near else 0.0 for k in matched.tolist()], dtype=np.float64),
        code=_code_pairs({(at[k], j): v for (k, j), v in code.items()}),
        longest=np.array([ngram[k][0] if k in ngram else 0 for k in matched.tolist()], dtype=np.int64),
        ngram_ref=np.array([ngram[k][1] if k in ngram else -1 for k in matched.tolist()], dtype=np.int64),
        ngram_start=np.array([ngram[k][2] if k in ngram else 0 for k in matched.tolist()], dtype=np.int64))
    assert len(matches.exact) == m
    subset = rows.drop_columns([ORDER])
    cols = [c for c in REFS if c in reference.column_names]
    report = audit_report(cfg, subset, reference.num_rows, matches, _words(subset),
                          lambda keys: reference.select(cols).take(pa.array(keys)), {}, t0)
    leaked = np.array([r.leak for r in report.candidates], dtype=bool)
    return RayLeaks(report.leaked, report.label_conflicts, matched[leaked])
