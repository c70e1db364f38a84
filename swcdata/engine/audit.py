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
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from swcdata.core.arrow import bools
from swcdata.engine.dedup import (
    ORDER,
    ROWS_PER_BLOCK,
    _broadcast,
    _collect,
    _ints,
    _mapped,
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

I64 = npt.NDArray[np.int64]
RECORD, CODE, BATCH = 1, 2, 0  # row kinds of the scan: a record sharing a record bucket, a code bucket; a batch
SCAN = pa.schema([("kind", pa.int8()), ("key", pa.int64()), ("sig", pa.large_binary()),
                  ("buckets", pa.list_(pa.int64())), ("blob", pa.binary())])
BLOBS = pa.schema([("blob", pa.binary())])
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
    c = _broadcast(side)
    keys = _ints(batch, ORDER)
    blob: dict[str, Any] = {}
    # exact: the batch's records whose id is a candidate's
    hit = pc.is_in(batch.column("id"), value_set=c["ids"])
    blob["exact"] = (batch.column("id").filter(hit).to_pylist(), keys[_np(hit)])
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
    kind = np.array([BATCH] + [r[0] for r in rows], dtype=np.int8)
    key = np.array([-1] + [r[1] for r in rows], dtype=np.int64)
    sigs = [None] + [r[2] for r in rows]
    buckets = [None] + [r[3] for r in rows]
    return pa.Table.from_arrays([pa.array(kind), pa.array(key), pa.array(sigs, pa.large_binary()),
                                 pa.array(buckets, pa.list_(pa.int64())),
                                 pa.array([pickle.dumps(blob)] + [None] * len(rows), pa.binary())], schema=SCAN)


def _np(mask: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    """A boolean Arrow column as numpy."""
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


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
    kind = _np(pc.equal(batch.column("kind"), pa.array([BATCH], pa.int8())[0]))
    return pa.table({"blob": batch.column("blob").filter(bools(kind))}, schema=BLOBS)


def _pairs(batch: pa.Table, cfg: AuditConfig, side: Any, sizes: Any) -> pa.Table:
    """Stage 3 on records that share buckets with candidates: their cross pairs by the local rule, verified."""
    c = _broadcast(side)
    record_total, record_head, code_total = _broadcast(sizes)
    kind = _ints(batch, "kind")
    near_rows: list[tuple[int, int, float]] = []
    code_rows: list[tuple[int, int, float]] = []
    for k, key, sig_bytes, buckets in zip(kind.tolist(), _ints(batch, "key").tolist(), batch.column("sig").to_pylist(),
                                          batch.column("buckets").to_pylist(), strict=True):
        if k == BATCH:
            continue
        b = np.asarray(buckets, dtype=np.int64)
        sig = np.frombuffer(sig_bytes, dtype=np.uint32)
        if k == RECORD:
            bk: _Buckets = c["record"]
            small = b[record_total[b] <= minhash.MAX_BUCKET]
            big = b[(record_total[b] > minhash.MAX_BUCKET) & (record_head[b] == key)]  # (the head is a reference)
            if len(small) + len(big) == 0:
                continue
            cand = np.unique(np.concatenate([bk.members[bk.starts[x]:bk.starts[x + 1]] for x in (*small, *big)]))
            sims = _similarity(sig, c["record_sig"][cand])
            ok = sims >= cfg.near.threshold
            near_rows += zip(cand[ok].tolist(), [key] * int(ok.sum()), sims[ok].tolist(), strict=True)
        else:
            bk = c["code"]
            small = b[code_total[b] <= minhash.MAX_BUCKET]
            big = b[code_total[b] > minhash.MAX_BUCKET]  # (their head: the bucket's lowest candidate)
            parts = [bk.members[bk.starts[x]:bk.starts[x + 1]] for x in small] + [bk.low[big]]
            cand = np.unique(np.concatenate(parts))
            sims = _similarity(sig, c["code_sig"][np.searchsorted(c["code_rows"], cand)])
            ok = sims >= cfg.code.threshold
            code_rows += zip(cand[ok].tolist(), [key] * int(ok.sum()), sims[ok].tolist(), strict=True)
    # per batch: each candidate's best near match (highest similarity, then the lowest key)
    if near_rows:
        cand = np.array([r[0] for r in near_rows], dtype=np.int64)
        key = np.array([r[1] for r in near_rows], dtype=np.int64)
        sim = np.array([r[2] for r in near_rows], dtype=np.float64)
        o = np.lexsort((key, -sim, cand))
        first = np.ones(len(o), dtype=bool)
        first[1:] = cand[o][1:] != cand[o][:-1]
        sel = o[first]
        near_rows = list(zip(cand[sel].tolist(), key[sel].tolist(), sim[sel].tolist(), strict=True))
    return pa.table({"blob": pa.array([pickle.dumps((near_rows, code_rows))], pa.binary())}, schema=BLOBS)


def _similarity(sig: minhash.U32, others: minhash.U32) -> npt.NDArray[np.float64]:
    """`minhash.similarity` of one signature with each of `others` (the local function, so the same floats)."""
    if len(others) == 0:
        return np.zeros(0)
    both = np.concatenate([sig[None, :], others])
    pairs = np.stack([np.zeros(len(others), np.int64), np.arange(1, len(others) + 1, dtype=np.int64)], axis=1)
    return minhash.similarity(both, pairs)


def _named(batch: pa.Table, keys: Any) -> pa.Table:
    """The records of the batch whose key is in `keys` (broadcast): their key, id, source and category."""
    cols = [c for c in REFS if c in batch.column_names]
    hit = pc.is_in(batch.column(ORDER), value_set=pa.array(_broadcast(keys), pa.int64()))
    return batch.filter(hit).select([ORDER, *cols])


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
    sig = table_signatures(candidate.select(["instruction", "response"]), cfg.near)
    valid = np.flatnonzero(_valid(sig))
    sensitive = minhash.lsh_params(max(0.05, cfg.near.threshold - AUDIT_SENSITIVITY), cfg.near.num_perm)
    codes = record_code(candidate.column("instruction").to_pylist(), cfg.code)
    code_rows, code_sig = near_signatures(codes, cfg.code)
    cand_words = _words(candidate)
    side = {"ids": candidate.column("id").combine_chunks(), "record": _Buckets(sig[valid], valid,
                                                                                [cfg.near.lsh(), sensitive]),
            "record_sig": sig, "codes": codes, "code_rows": code_rows, "code_sig": code_sig,
            "code": _Buckets(code_sig, code_rows, [minhash.lsh_params(cfg.code.threshold, cfg.code.num_perm)]),
            "words": cand_words}
    side_ref = ray.put(side)
    t = time.perf_counter()
    scanned = _mapped(reference, _scan, rows_per_block, cfg=cfg, side=side_ref).materialize()
    blobs = [pickle.loads(b) for b in _collect(ray, _mapped(scanned, _blobs), BLOBS).column("blob").to_pylist()]
    timings["scan"] = time.perf_counter() - t
    nr = reference.count()

    # exact: each candidate id's lowest reference key
    first: dict[str, int] = {}
    for b in blobs:
        for i, k in zip(b["exact"][0], b["exact"][1].tolist(), strict=True):
            if i not in first or k < first[i]:
                first[i] = k
    exact = np.array([first.get(i, -1) for i in candidate.column("id").to_pylist()], dtype=np.int64)

    # the buckets' sizes over both sets, and (record buckets) their lowest reference
    rb, cb = side["record"], side["code"]
    record_total, record_head = rb.count.copy(), np.full(len(rb), np.iinfo(np.int64).max, np.int64)
    code_total = cb.count.copy()
    for b in blobs:
        ids, count, low = b["record_buckets"]
        record_total[ids] += count
        record_head[ids] = np.minimum(record_head[ids], low)
        ids, count, _ = b["code_buckets"]
        code_total[ids] += count
    record_head[record_head == np.iinfo(np.int64).max] = -1
    t = time.perf_counter()
    found = _collect(ray, _mapped(scanned, _pairs, rows_per_block, cfg=cfg, side=side_ref,
                                  sizes=ray.put((record_total, record_head, code_total))), BLOBS)
    timings["pairs"] = time.perf_counter() - t
    near = np.full(nc, -1, dtype=np.int64)
    near_sim = np.zeros(nc)
    code_found: dict[tuple[int, int], tuple[int, float]] = {}
    for b in blobs:
        for i, k, kind in b["contained"]:
            if code_found.get((i, k), (9, 0.0))[0] > kind:
                code_found[(i, k)] = (kind, 1.0)
    for blob in found.column("blob").to_pylist():
        near_rows, code_rows_found = pickle.loads(blob)
        for i, k, s in near_rows:
            if near[i] < 0 or s > near_sim[i] or (s == near_sim[i] and k < near[i]):
                near[i], near_sim[i] = k, s
        for i, k, s in code_rows_found:
            code_found.setdefault((i, k), (2, round(s, 4)))
    pairs = sorted(code_found)
    names = ("contained", "contains", "near")
    cp = CodePairs(i=np.array([p[0] for p in pairs], dtype=np.int64), j=np.array([p[1] for p in pairs], dtype=np.int64),
                   kind=[names[code_found[p][0]] for p in pairs],  # type: ignore[misc]
                   similarity=np.array([code_found[p][1] for p in pairs], dtype=np.float64))

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
            return pa.table({"id": pa.array([], pa.string())}).append_column(
                "source", pa.array([], pa.struct([("file", pa.string()), ("line", pa.int64())])))
        got = _collect(ray, _mapped(reference, _named, rows_per_block, keys=ray.put(keys)))
        got = got.take(pc.sort_indices(got.column(ORDER)))
        if not np.array_equal(_ints(got, ORDER), keys):
            raise AssertionError("a named reference record is missing")
        return got.drop_columns([ORDER])

    return audit_report(cfg, candidate, nr, Matches(exact, near, near_sim, cp, longest, ngram_ref, ngram_start),
                        cand_words, refs, timings, t0)

