"""`dedup_on_ray`: exact and near-duplicate removal on Ray Data, with exactly the local engine's results.

The input is a Ray Dataset of valid records: Arrow blocks with the RECORD_SCHEMA columns plus `_order` (int64,
unique; sorting by `_order` gives the local engine's record order). Every stage is a Ray Data operation over Arrow
blocks and calls the same pure functions as the local step (`swcdata.steps.dedup`, `swcdata.similarity.minhash`):

1. priority (a map over the input): each record's keep key `(_klen, _order)`: `_klen` is 0 for keep="first" and
   minus the length of instruction + response for keep="longest" (longest first, then input order: the order of
   the local `_priority`), beside the columns the later stages need (id, source, category: no texts);
2. exact groups (a groupby on the id, of those narrow rows): each record gets its exact representative `_exact`
   (the smallest key among the records with its id: `_representatives`) and the size of its id group;
3. signing (a map_batches over the input, skipping the exact duplicates): `table_signatures` with the config on
   each batch's exact representatives, the local function; records without shingles are dropped (local LSH never
   pairs them);
4. LSH (a groupby on (band, band hash)): each signed record emits one row per band (`band_hashes`), each bucket its
   star pairs (every member with the bucket's member of lowest `_order`, which is the lowest position among the
   unique records, as local `candidate_pairs` pairs its indices);
5. verification (two groupby-based joins of pairs with signatures, keyed by each end of a pair): the first also
   deduplicates the pairs (a pair found in several bands is one candidate) and sends each head's signature once to
   each partition that holds its pairs' other ends (not once per pair: a cluster of near copies is one head and
   many members), the second keeps a pair when `minhash.similarity` of the two signatures is >= threshold;
6. connected components of the verified pairs: on the driver (`minhash.components` over the edges relabelled to
   dense ids) while there are at most `components_bound` verified pairs; above it on the cluster: large-star /
   small-star (Kiveris et al., "Connected Components in MapReduce and Beyond", 2014) as alternating groupbys,
   iterated until a round changes no edge, then a groupby-based join of the nodes with their roots and signatures;
7. cluster representatives (a groupby on the component): each component keeps its smallest key (`_representatives`,
   the local rule), and each other member's similarity to it is `minhash.similarity`;
8. members (a map with the node table broadcast, or a groupby-based join above the bound): every record in a
   cluster of more than one record, with its kept record and similarity, as narrow rows (id, source, category,
   `_order`, `_exact`, `_final`, `_esim`);
9. the report's lists (a groupby on the kept record `_final`: each cluster whole in one partition): the local
   `report_lists` on each partition's clusters gives their removed and clusters rows, each cluster numbered by its
   kept record's rank among all the clusters' (their sorted `_order`s, broadcast); both lists are sorted on the
   cluster (by `_order`, by number: the local tables' order), and a map's per-batch counts and largest clusters
   give the report's summary;
10. kept records (a map over the input, the removed `_order`s broadcast): the input without the removed records, in
   the input's order, which a pass over the narrow rows checks (one row per batch); sorted by `_order` when it is
   not in `_order` order.

A "groupby" here is `Dataset.groupby("_p").map_groups(fn)` on a partition column `_p` that a map derives from the
real key (a hash of it modulo ceil(rows / rows_per_block)): every group of the key lands whole in one partition, and
`fn` handles all the groups of its partition at once with numpy (one Python call per partition, never one per id
or bucket). The joins are groupby-based: the two sides, keyed alike, in one union grouped once; this lets the first
verification join deduplicate the pairs in the same shuffle. (`Dataset.join` works in Ray 2.60, but it needs
polars, shuffles through pools of aggregator actors and cost 9-10 s per join on a 2-CPU test cluster, against
under a second for a groupby on the sort shuffle.) The groupbys run on Ray's task-based sort shuffle by default
(`shuffle_strategy`), set on the run's own copies of the context (materialized datasets), never the caller's.

What the driver holds: counts; the sorted `_order`s of the exact duplicates and of all removed records (int64
arrays, as long as the removed table it returns); the verified pairs and one entry per node of them (numpy arrays,
about 100 bytes a pair) while their number is at most `components_bound` (default 5,000,000 pairs: about 0.5 GB),
nothing per pair above it; the node table (node, kept record, similarity: 24 bytes per record in a cluster of near
duplicates) on the driver path; the sorted `_order`s of the clusters' kept records (8 bytes a cluster). Never one
Python object per record, never the removed or clusters lists (they stay on the cluster: the CLI streams them
into their Parquet files), nothing for a record outside the clusters. The cluster holds the narrow rows (two
copies at most), the signatures (4 * num_perm bytes a unique record), the pairs and the report's lists; never a
second copy of the texts. The input is read three times (narrow rows, signing, kept records): materialize it first
when producing it is expensive.
"""

from __future__ import annotations

import math
import pickle
import time
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from swcdata import _native
from swcdata.core.arrow import bools, to_numpy
from swcdata.core.records import SOURCE_TYPE
from swcdata.similarity import minhash
from swcdata.steps.dedup import (
    CLUSTERS_SCHEMA,
    LARGEST_CLUSTERS,
    REMOVED_SCHEMA,
    DedupConfig,
    DedupLedger,
    DedupReport,
    _representatives,
    report_lists,
    table_signatures,
)

ORDER = "_order"
ROWS_PER_BLOCK = 250_000
"""Records per batch of the maps over the input (signing: a task a batch), and rows per partition key of the
groupbys (ceil(rows / rows_per_block) partitions)."""
COMPONENTS_BOUND = 5_000_000
"""Verified pairs up to which connected components are found on the driver (its memory bound: ~100 bytes a pair)."""
SHUFFLE = "sort_shuffle_pull_based"
"""The shuffle the groupbys run on by default (see `dedup_on_ray`)."""
MAX_ROUNDS = 200  # large-star/small-star rounds before giving up (it converges in O(log^2 n) rounds)

I64 = npt.NDArray[np.int64]
_SALT = np.uint64(0x2545F4914F6CDD1D)


class RayDedup(NamedTuple):
    """The result of `dedup_on_ray`: the kept records (a Ray Dataset in `_order` order, the input's columns), the
    removed records and the clusters (Ray Datasets of REMOVED_SCHEMA / CLUSTERS_SCHEMA rows in the order of the
    local report's `removed_table` / `clusters_table`; the report holds its summary only) and the report."""

    kept: Any
    removed: Any
    clusters: Any
    report: DedupReport


# --------------------------------------------------------------------------- row layouts of the shuffles

SIG = pa.large_binary()
"""A signature as bytes (num_perm uint32s). Variable-length binary, not fixed-size: a null fixed-size value still
takes its width, and most rows of the joins (pairs) have no signature."""


# Rows of the verification joins: a signature row (key = a record, klen, sig), a pair row (key = one end, other =
# the other end, with the other end's klen once attached) or a head row (key = a pair's head, osig = its signature).
JOIN = pa.schema([("key", pa.int64()), ("other", pa.int64()), ("klen", pa.int64()), ("oklen", pa.int64()),
                  ("sig", SIG), ("osig", SIG), ("_p", pa.int64())])


CHECKED = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("a_klen", pa.int64()), ("b_klen", pa.int64()),
                     ("ok", pa.bool_())])
BANDS = pa.schema([("band", pa.int64()), ("hash", pa.uint64()), ("key", pa.int64()), ("_p", pa.int64())])
EDGES = pa.schema([("u", pa.int64()), ("v", pa.int64()), ("changed", pa.int64()), ("_p", pa.int64())])
NODES = pa.schema([("node", pa.int64()), ("final", pa.int64()), ("esim", pa.float64())])


# Rows keyed by a node: kind 0 = a node (with its klen), 1 = a star edge (its root), 2 = a signature; 3 = a node with
# its root and signature (the output, keyed by its root).
NODE_JOIN = pa.schema([("node", pa.int64()), ("klen", pa.int64()), ("root", pa.int64()), ("sig", SIG),
                       ("kind", pa.int8()), ("_p", pa.int64())])


# A record in a cluster of more than one record, gathered on the driver.
MEMBERS = pa.schema([(ORDER, pa.int64()), ("id", pa.string()), ("source", SOURCE_TYPE), ("category", pa.string()),
                     ("_exact", pa.int64()), ("_final", pa.int64()), ("_esim", pa.float64())])
# Rows keyed by an exact representative: a record (kind 0) or a node of the node table (kind 1).
MEMBER_JOIN = pa.schema([("key", pa.int64()), (ORDER, pa.int64()), ("id", pa.string()), ("source", SOURCE_TYPE),
                         ("category", pa.string()), ("_esize", pa.int64()), ("final", pa.int64()),
                         ("esim", pa.float64()), ("kind", pa.int8()), ("_p", pa.int64())])


def _table(schema: pa.Schema, n: int, **columns: Any) -> pa.Table:
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


def _ints(table: pa.Table, name: str) -> I64:
    return to_numpy(table.column(name)).astype(np.int64, copy=False) if table.num_rows else np.zeros(0, np.int64)


def _floats(table: pa.Table, name: str) -> npt.NDArray[np.float64]:
    col = table.column(name)
    return np.asarray(col.to_numpy(), dtype=np.float64) if table.num_rows else np.zeros(0)


def _part(keys: I64, parts: int) -> I64:
    """The partition (0..parts-1) of int64 keys: a mixed hash, so that neighbouring keys spread."""
    if parts <= 1:
        return np.zeros(len(keys), dtype=np.int64)
    return (minhash.fmix64(keys.astype(np.uint64) ^ _SALT) % np.uint64(parts)).astype(np.int64)


def _sig_column(sig: minhash.U32) -> pa.Array:
    """(m, num_perm) uint32 signatures as one binary value per row (`SIG`)."""
    m, w = sig.shape
    offsets = np.arange(m + 1, dtype=np.int64) * (4 * w)
    return pa.Array.from_buffers(SIG, m, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(sig))])


def _sig_matrix(col: pa.Array | pa.ChunkedArray, num_perm: int) -> minhash.U32:
    """The inverse of `_sig_column` (a column without nulls)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise ValueError("missing signatures")
    if len(arr) == 0:
        return np.zeros((0, num_perm), dtype=np.uint32)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    if end - start != len(arr) * 4 * num_perm or not (np.diff(offsets) == 4 * num_perm).all():
        raise ValueError("signatures of the wrong width")
    return np.frombuffer(arr.buffers()[2], dtype=np.uint8)[start:end].view(np.uint32).reshape(-1, num_perm)


def _pair_similarity(a: minhash.U32, b: minhash.U32) -> npt.NDArray[np.float64]:
    """`minhash.similarity` of the row pairs (a[i], b[i])."""
    k = len(a)
    if k == 0:
        return np.zeros(0)
    idx = np.arange(k, dtype=np.int64)
    return minhash.similarity(np.concatenate([a, b]), np.stack([idx, idx + k], axis=1))


def _first_of_runs(*keys: I64) -> npt.NDArray[np.bool_]:
    """For rows sorted by `keys`: True where a run of equal keys starts."""
    n = len(keys[0])
    first = np.ones(n, dtype=bool)
    if n > 1:
        same = np.ones(n - 1, dtype=bool)
        for k in keys:
            same &= k[1:] == k[:-1]
        first[1:] = ~same
    return first


def _unique_pairs(a: I64, b: I64) -> tuple[I64, I64]:
    """Distinct (a, b) pairs, sorted by a then b."""
    o = np.lexsort((b, a))
    a, b = a[o], b[o]
    keep = _first_of_runs(a, b)
    return a[keep], b[keep]


def _lookup(sorted_keys: I64, keys: I64) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Positions of `keys` in `sorted_keys` and whether each is there."""
    pos = np.searchsorted(sorted_keys, keys)
    hit = np.zeros(len(keys), dtype=bool)
    inside = pos < len(sorted_keys)
    hit[inside] = sorted_keys[pos[inside]] == keys[inside]
    return np.minimum(pos, max(len(sorted_keys) - 1, 0)), hit


def _rows_of(keys: I64, wanted: I64, missing: str) -> I64:
    """The row (in `keys`, any order; the first of equal keys) of each of `wanted`, which must all be there
    (AssertionError `missing` otherwise)."""
    o = np.argsort(keys, kind="stable")
    pos, hit = _lookup(keys[o], wanted)
    if not hit.all():
        raise AssertionError(missing)
    return o[pos]


def _rank(klen: I64, node: I64) -> I64:
    """Dense ranks of (klen, node) keys: smaller key, smaller rank."""
    rank = np.empty(len(node), dtype=np.int64)
    rank[np.lexsort((node, klen))] = np.arange(len(node))
    return rank


# --------------------------------------------------------------------------- stage functions (run on workers)

def _klen(batch: pa.Table, keep: str) -> I64:
    """The first part of each record's keep key: 0 (keep="first"), or minus the length of instruction + response
    (keep="longest": longest first), the order of the local `_priority`."""
    n = batch.num_rows
    if keep != "longest" or n == 0:
        return np.zeros(n, dtype=np.int64)
    return -(to_numpy(pc.utf8_length(batch.column("instruction"))).astype(np.int64)
             + to_numpy(pc.utf8_length(batch.column("response"))).astype(np.int64))


NARROW = ("id", "source", "category", ORDER)


def _prepare(batch: pa.Table, keep: str) -> pa.Table:
    """The columns the exact stage and the report need (no texts), with each record's keep key `_klen` and a
    hash of its id `_idh`."""
    ids = batch.column("id").to_pylist()
    h = np.fromiter((xxhash.xxh3_64_intdigest(s.encode()) >> 1 for s in ids), dtype=np.int64, count=len(ids))
    return (batch.select(list(NARROW)).append_column("_klen", pa.array(_klen(batch, keep), pa.int64()))
            .append_column("_idh", pa.array(h, pa.int64())))


def _id_part(batch: pa.Table, parts: int) -> pa.Table:
    """The exact stage's partition `_p`: the id's hash modulo the partition count."""
    return batch.append_column("_p", pa.array(_ints(batch, "_idh") % parts, pa.int64()))


def _exact_groups(group: pa.Table) -> pa.Table:
    """All the records of some ids: each gets its exact representative `_exact` (the smallest (klen, order) of
    its id, `_representatives`) and `_esize` (records with its id)."""
    group = group.drop_columns(["_p", "_idh"])
    n = group.num_rows
    if n == 0:
        return group.append_column("_exact", pa.array([], pa.int64())).append_column("_esize", pa.array([], pa.int64()))
    labels = to_numpy(pc.dictionary_encode(group.column("id").combine_chunks()).indices).astype(np.int64)
    order, klen = _ints(group, ORDER), _ints(group, "_klen")
    rep = _representatives(labels, _rank(klen, order))
    size = np.bincount(labels)[labels]
    return (group.append_column("_exact", pa.array(order[rep], pa.int64()))
            .append_column("_esize", pa.array(size.astype(np.int64), pa.int64())))


def _duplicates(batch: pa.Table) -> pa.Table:
    """The `_order`s of the exact duplicates (records that are not their id's representative)."""
    order = _ints(batch, ORDER)
    return pa.table({ORDER: pa.array(order[order != _ints(batch, "_exact")], pa.int64())})


def _sign(batch: pa.Table, cfg: DedupConfig, parts: int, duplicates: Any) -> pa.Table:
    """MinHash signatures (`table_signatures`, the local function) of the batch's exact representatives (the
    records not in `duplicates`: sorted `_order`s, broadcast), as signature rows of the verification joins;
    records without shingles are left out (they never match)."""
    _, dup = _lookup(_broadcast(duplicates), _ints(batch, ORDER))
    uniq = batch.filter(bools(~dup)) if dup.any() else batch
    if uniq.num_rows == 0:
        return JOIN.empty_table()
    sig = table_signatures(uniq.select(["instruction", "response"]), cfg)
    valid = (sig != minhash.EMPTY).any(axis=1)
    order, klen = _ints(uniq, ORDER)[valid], _klen(uniq, cfg.keep)[valid]
    return _table(JOIN, len(order), key=order, klen=klen, sig=_sig_column(sig[valid]), _p=_part(order, parts))


def _band_rows(batch: pa.Table, bandings: list[tuple[int, int]], num_perm: int, parts: int) -> pa.Table:
    """One row per (signed record, band of each banding): the band (numbered across the bandings, so that each
    (bands, rows) banding has buckets of its own), its `band_hashes` value, the record."""
    order = _ints(batch, "key")
    if len(order) == 0:
        return BANDS.empty_table()
    sig = _sig_matrix(batch.column("sig"), num_perm)
    band_parts, hash_parts = [], []
    first = 0
    for bands, rows in bandings:
        band_parts.append(np.tile(np.arange(first, first + bands, dtype=np.int64), len(order)))
        hash_parts.append(minhash.band_hashes(sig, bands, rows).reshape(-1))  # (n, bands), record by record
        first += bands
    band, h = np.concatenate(band_parts), np.concatenate(hash_parts)
    key = np.concatenate([np.repeat(order, bands) for bands, _ in bandings])
    p = ((minhash.fmix64(h ^ (band.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))) % np.uint64(parts))
         .astype(np.int64) if parts > 1 else np.zeros(len(h), dtype=np.int64))
    return pa.Table.from_arrays([pa.array(band), pa.array(h), pa.array(key), pa.array(p)], schema=BANDS)


def _stars(group: pa.Table, parts: int, all_pairs: bool) -> pa.Table:
    """The candidate pairs of the LSH buckets of a partition, as `candidate_pairs` finds them: in each bucket
    (band, hash) of more than one record, every member paired with the bucket's lowest `_order` (a star); with
    `all_pairs`, every pair of each bucket of up to `minhash.MAX_BUCKET` members. Each pair (a < b) keyed by a."""
    band, h, key = _ints(group, "band"), to_numpy(group.column("hash")).astype(np.uint64), _ints(group, "key")
    o = np.lexsort((key, h, band))
    band, h, key = band[o], h[o], key[o]
    first = _first_of_runs(band, h)
    start = np.flatnonzero(first)
    head = key[start[np.cumsum(first) - 1]]  # each row's bucket head: the bucket's smallest key
    member = ~first
    a, b = [head[member]], [key[member]]
    if all_pairs:
        size = np.diff(np.append(start, len(key)))
        for s in np.unique(size[(size > 2) & (size <= minhash.MAX_BUCKET)]).tolist():
            iu, ju = np.triu_indices(s, 1)
            mem = key[start[size == s][:, None] + np.arange(s)[None, :]]  # (a bucket's keys ascend)
            a.append(mem[:, iu].ravel())
            b.append(mem[:, ju].ravel())
    a_, b_ = _unique_pairs(np.concatenate(a), np.concatenate(b))
    return _table(JOIN, len(a_), key=a_, other=b_, _p=_part(a_, parts))


def _attach_head(group: pa.Table, num_perm: int, parts: int) -> pa.Table:
    """Pairs keyed by their head, with the heads' signature rows: the distinct pairs (every pair of a head is in
    its partition), keyed by the other end, each with its head's klen; and each head's signature once per
    partition its pairs go to (a head row: key = the head, osig = its signature), not once per pair: a cluster of
    near copies has one head and many members, which a few partitions hold."""
    is_sig = pc.is_valid(group.column("sig"))
    sigs, pairs = group.filter(is_sig), group.filter(pc.invert(is_sig))
    if pairs.num_rows == 0:
        return JOIN.empty_table()
    a, b = _unique_pairs(_ints(pairs, "key"), _ints(pairs, "other"))
    at = _rows_of(_ints(sigs, "key"), a, "a pair's head has no signature")
    q = _part(b, parts)
    ha, hq = _unique_pairs(a, q)  # (each head once per partition of its members)
    hat = _rows_of(_ints(sigs, "key"), ha, "a pair's head has no signature")
    pair_rows = _table(JOIN, len(a), key=b, other=a, oklen=_ints(sigs, "klen")[at], _p=q)
    head_rows = _table(JOIN, len(ha), key=ha, osig=sigs.column("sig").take(pa.array(hat)), _p=hq)
    return pa.concat_tables([pair_rows, head_rows])


def _verify(group: pa.Table, num_perm: int, threshold: float) -> pa.Table:
    """Pairs keyed by their second end, with its signature rows and their heads' signatures (head rows): every
    candidate pair (a, b) with both ends' klen and whether `minhash.similarity` of their signatures reaches the
    threshold."""
    is_sig = pc.is_valid(group.column("sig"))
    is_head = pc.is_valid(group.column("osig"))
    sigs, heads = group.filter(is_sig), group.filter(is_head)
    pairs = group.filter(pc.and_(pc.invert(is_sig), pc.invert(is_head)))
    if pairs.num_rows == 0:
        return CHECKED.empty_table()
    a, b = _ints(pairs, "other"), _ints(pairs, "key")
    at = _rows_of(_ints(sigs, "key"), b, "a pair's end has no signature")
    ah = _rows_of(_ints(heads, "key"), a, "a pair's head signature did not come")
    sim = _pair_similarity(_sig_matrix(heads.column("osig").take(pa.array(ah)), num_perm),
                           _sig_matrix(sigs.column("sig").take(pa.array(at)), num_perm))
    return pa.Table.from_arrays([pa.array(a), pa.array(b), pa.array(_ints(pairs, "oklen")),
                                 pa.array(_ints(sigs, "klen")[at]), pa.array(sim >= threshold)], schema=CHECKED)


def _column_sum(batch: pa.Table, column: str) -> pa.Table:
    """One row: the sum of an int column of the batch (a count read without a Ray aggregate, which costs more)."""
    return pa.table({"sum": pa.array([int(_ints(batch, column).sum())], pa.int64())})


# ---- distributed connected components: large-star / small-star

def _edges_of_pairs(batch: pa.Table) -> pa.Table:
    ok = batch.filter(batch.column("ok"))
    a, b = _ints(ok, "a"), _ints(ok, "b")
    return _table(EDGES, len(a), u=a, v=b, changed=np.zeros(len(a), np.int64), _p=np.zeros(len(a), np.int64))


def _both_ways(batch: pa.Table, parts: int) -> pa.Table:
    """Each edge in both directions, keyed by its first end (the large-star step's neighbourhoods); a round's
    change count starts from 0 here."""
    u, v = _ints(batch, "u"), _ints(batch, "v")
    uu, vv = np.concatenate([u, v]), np.concatenate([v, u])
    return _table(EDGES, len(uu), u=uu, v=vv, changed=np.zeros(len(uu), np.int64), _p=_part(uu, parts))


def _neighbourhoods(group: pa.Table) -> tuple[int, I64, I64, npt.NDArray[np.bool_], I64]:
    """A star step's input: (edges changed in the last round, the distinct edges (u, v) without loops sorted by
    (u, v), where each node's run starts, the runs' starts)."""
    carried = int(_ints(group, "changed").sum())
    u, v = _unique_pairs(_ints(group, "u"), _ints(group, "v"))
    loop = u == v
    u, v = u[~loop], v[~loop]
    first = _first_of_runs(u) if len(u) else np.zeros(0, dtype=bool)
    return carried, u, v, first, np.flatnonzero(first)


def _large_star(group: pa.Table) -> pa.Table:
    """For every node u: m = min(u, its neighbours); each neighbour v > u is linked to m instead of u. An edge
    changes when m != u."""
    carried, u, v, first, start = _neighbourhoods(group)
    if len(u) == 0:
        return _carry(EDGES.empty_table(), carried)
    mn = np.minimum(np.minimum.reduceat(v, start), u[start])[np.cumsum(first) - 1]
    up = v > u
    out_u, out_v = v[up], mn[up]
    changed = (out_v != u[up]).astype(np.int64)
    return _carry(_table(EDGES, len(out_u), u=out_u, v=out_v, changed=changed, _p=np.zeros(len(out_u), np.int64)),
                  carried)


def _oriented(batch: pa.Table, parts: int) -> pa.Table:
    """Each edge as (larger end, smaller end), keyed by the larger (the small-star step's neighbourhoods)."""
    u, v = _ints(batch, "u"), _ints(batch, "v")
    hi, lo = np.maximum(u, v), np.minimum(u, v)
    return _table(EDGES, len(hi), u=hi, v=lo, changed=_ints(batch, "changed"), _p=_part(hi, parts))


def _small_star(group: pa.Table) -> pa.Table:
    """For every node u: N = its smaller neighbours, m = min(N); u and every v in N are linked to m. A node with
    more than one smaller neighbour changes its edges."""
    carried, u, v, first, start = _neighbourhoods(group)
    if len(u) == 0:
        return _carry(EDGES.empty_table(), carried)
    sizes = np.diff(np.append(start, len(u)))
    m = v[start]  # sorted by (u, v): each node's smallest neighbour
    mm = m[np.cumsum(first) - 1]
    rest = ~first  # v != m: (v, m)
    out_u = np.concatenate([u[start], v[rest]])
    out_v = np.concatenate([m, mm[rest]])
    changed = np.concatenate([(sizes > 1).astype(np.int64), np.zeros(int(rest.sum()), np.int64)])
    return _carry(_table(EDGES, len(out_u), u=out_u, v=out_v, changed=changed, _p=np.zeros(len(out_u), np.int64)),
                  carried)


def _carry(out: pa.Table, carried: int) -> pa.Table:
    """Adds the changes counted by the previous step to the first row (a step never empties a non-empty group)."""
    if carried == 0:
        return out
    if out.num_rows == 0:
        raise AssertionError("changes but no edges")
    ch = _ints(out, "changed").copy()
    ch[0] += carried
    return out.set_column(out.schema.get_field_index("changed"), "changed", pa.array(ch, pa.int64()))


def _node_rows_of_pairs(batch: pa.Table, parts: int) -> pa.Table:
    ok = batch.filter(batch.column("ok"))
    node = np.concatenate([_ints(ok, "a"), _ints(ok, "b")])
    klen = np.concatenate([_ints(ok, "a_klen"), _ints(ok, "b_klen")])
    return _table(NODE_JOIN, len(node), node=node, klen=klen, kind=np.zeros(len(node), np.int8),
                  _p=_part(node, parts))


def _node_rows_of_stars(batch: pa.Table, parts: int) -> pa.Table:
    u, v = _ints(batch, "u"), _ints(batch, "v")
    return _table(NODE_JOIN, len(u), node=u, root=v, kind=np.ones(len(u), np.int8),
                  _p=_part(u, parts))


def _node_rows_of_sigs(batch: pa.Table, parts: int) -> pa.Table:
    key = _ints(batch, "key")
    return _table(NODE_JOIN, len(key), node=key, klen=batch.column("klen"), sig=batch.column("sig"),
                  kind=np.full(len(key), 2, np.int8), _p=_part(key, parts))


def _join_nodes(group: pa.Table, parts: int) -> pa.Table:
    """Nodes (kind 0), star edges (kind 1: a node's root) and signatures (kind 2) of some nodes: each node with
    its root (itself when it has no star edge: a root) and signature, keyed by its root."""
    kind = to_numpy(group.column("kind"))
    node = _ints(group, "node")
    nodes = minhash.unique(node[kind == 0])
    stars = group.filter(bools(kind == 1))
    s_node, s_root = _ints(stars, "node"), _ints(stars, "root")
    o = np.argsort(s_node, kind="stable")
    pos, hit = _lookup(s_node[o], nodes)
    root = np.where(hit, s_root[o][pos] if len(o) else nodes, nodes)
    sigs = group.filter(bools(kind == 2))
    at = pa.array(_rows_of(_ints(sigs, "node"), nodes, "a node has no signature"))
    return _table(NODE_JOIN, len(nodes), node=nodes, klen=sigs.column("klen").take(at), root=root,
                  sig=sigs.column("sig").take(at), kind=np.full(len(nodes), 3, np.int8), _p=_part(root, parts))


def _broadcast(value: Any) -> Any:
    """A value the driver put in the object store (a map's fn_kwargs are not resolved): read zero-copy."""
    import ray

    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def _nodes_of_signed(batch: pa.Table, table: Any, parts: int) -> pa.Table:
    """The driver path's node rows: the signed records that are nodes (`table`: sorted nodes and their roots,
    broadcast), each with its root and signature, keyed by the root."""
    nodes, roots = _broadcast(table)
    key = _ints(batch, "key")
    pos, hit = _lookup(nodes, key)
    sel = np.flatnonzero(hit)
    at = pa.array(sel)
    root = roots[pos[sel]]
    return _table(NODE_JOIN, len(sel), node=key[sel], klen=batch.column("klen").take(at), root=root,
                  sig=batch.column("sig").take(at), kind=np.full(len(sel), 3, np.int8), _p=_part(root, parts))


def _cluster_reps(group: pa.Table, num_perm: int) -> pa.Table:
    """The nodes of some components (keyed by root): each component keeps its smallest (klen, order), the local
    `_representatives` rule; every node gets it and its `minhash.similarity` to it (1.0 for itself)."""
    node, klen, root = _ints(group, "node"), _ints(group, "klen"), _ints(group, "root")
    if len(node) == 0:
        return NODES.empty_table()
    rep = _representatives(root, _rank(klen, node))
    moved = np.flatnonzero(rep != np.arange(len(node)))
    esim = np.ones(len(node))
    if len(moved):
        sig = _sig_matrix(group.column("sig"), num_perm)
        esim[moved] = _pair_similarity(sig[moved], sig[rep[moved]])
    return pa.Table.from_arrays([pa.array(node), pa.array(node[rep]), pa.array(esim)], schema=NODES)


def _member_rows(records: pa.Table, nodes: I64, final: I64, esim: npt.NDArray[np.float64]) -> pa.Table:
    """The records (with `_exact`, `_esize`) that are in a cluster of more than one record, given the node table
    (sorted nodes, their kept record and similarity to it): removed ones and kept ones with duplicates."""
    order, exact, esize = _ints(records, ORDER), _ints(records, "_exact"), _ints(records, "_esize")
    pos, hit = _lookup(nodes, exact)
    fin = np.where(hit, final[pos] if len(nodes) else exact, exact)
    es = np.where(hit, esim[pos] if len(nodes) else 1.0, 1.0)
    member = (fin != order) | ((order == exact) & ((esize > 1) | hit))
    sel = np.flatnonzero(member)
    rows = records.select(["id", "source", "category"]).take(pa.array(sel))
    return pa.Table.from_arrays([pa.array(order[sel]), rows.column("id"), rows.column("source"),
                                 rows.column("category"), pa.array(exact[sel]), pa.array(fin[sel]),
                                 pa.array(es[sel])], schema=MEMBERS)


def _members_broadcast(batch: pa.Table, table: Any) -> pa.Table:
    """`_member_rows` with the node table broadcast."""
    return _member_rows(batch, *_broadcast(table))


def _records_keyed(batch: pa.Table, parts: int) -> pa.Table:
    exact = _ints(batch, "_exact")
    return _table(MEMBER_JOIN, batch.num_rows, key=exact, _order=batch.column(ORDER), id=batch.column("id"),
                  source=batch.column("source"), category=batch.column("category"), _esize=batch.column("_esize"),
                  kind=np.zeros(batch.num_rows, np.int8), _p=_part(exact, parts))


def _nodes_keyed(batch: pa.Table, parts: int) -> pa.Table:
    node = _ints(batch, "node")
    return _table(MEMBER_JOIN, len(node), key=node, final=batch.column("final"), esim=batch.column("esim"),
                  kind=np.ones(len(node), np.int8), _p=_part(node, parts))


def _join_members(group: pa.Table) -> pa.Table:
    """Records keyed by their exact representative, with the node table's rows of those representatives."""
    kind = to_numpy(group.column("kind"))
    nodes = group.filter(bools(kind == 1))
    records = group.filter(bools(kind == 0)).rename_columns(
        [ORDER if c == ORDER else "_exact" if c == "key" else c for c in group.column_names])
    node = _ints(nodes, "key")
    o = np.argsort(node, kind="stable")
    return _member_rows(records, node[o], _ints(nodes, "final")[o],
                        _floats(nodes, "esim")[o])


# ---- the report's lists, per cluster: the records of a cluster together (a groupby on `_final`)

ORDERS = pa.schema([(ORDER, pa.int64())])
BLOBS = pa.schema([("blob", pa.binary())])
# Rows of the report: a removed record (_row 0: REMOVED_SCHEMA's columns) or a cluster (_row 1: CLUSTERS_SCHEMA's)
REPORT_ROWS = pa.schema([("_row", pa.int8()), (ORDER, pa.int64()),
                         *[f for f in REMOVED_SCHEMA if f.name != "cluster"],
                         *[f for f in CLUSTERS_SCHEMA if f.name not in ("similarity",)]])


def _representative_orders(batch: pa.Table) -> pa.Table:
    """The `_order`s of the clusters' kept records (a member that is its own kept record)."""
    order = _ints(batch, ORDER)
    return pa.table({ORDER: pa.array(order[order == _ints(batch, "_final")], pa.int64())}, schema=ORDERS)


def _final_part(batch: pa.Table, parts: int) -> pa.Table:
    return batch.append_column("_p", pa.array(_part(_ints(batch, "_final"), parts), pa.int64()))


def _report_rows(group: pa.Table, reps: Any) -> pa.Table:
    """The members of some clusters: the local `report_lists` on them, each cluster numbered by its kept record's
    rank among all the clusters' (`reps`: their sorted `_order`s, broadcast)."""
    if group.num_rows == 0:
        return REPORT_ROWS.empty_table()
    group = group.drop_columns(["_p"])
    group = group.take(pc.sort_indices(group.column(ORDER)))
    order = _ints(group, ORDER)
    exact, final = np.searchsorted(order, _ints(group, "_exact")), np.searchsorted(order, _ints(group, "_final"))
    ranks = _broadcast(reps)
    removed, clusters = report_lists(group, exact, final, _floats(group, "_esim"),
                                     lambda pos: np.searchsorted(ranks, order[pos]))
    gone = np.flatnonzero(final != np.arange(len(order)))
    rows = []
    for kind, table, orders in ((0, removed, order[gone]), (1, clusters, None)):
        columns = {name: table.column(name) for name in table.column_names}
        rows.append(_table(REPORT_ROWS, table.num_rows, _row=np.full(table.num_rows, kind, np.int8),
                           **({ORDER: orders} if orders is not None else {}), **columns))
    return pa.concat_tables(rows)


def _removed_rows(batch: pa.Table) -> pa.Table:
    rows = batch.filter(pc.equal(batch.column("_row"), pa.array([0], pa.int8())[0]))
    return rows.select([ORDER, *REMOVED_SCHEMA.names])


def _cluster_rows(batch: pa.Table) -> pa.Table:
    rows = batch.filter(pc.equal(batch.column("_row"), pa.array([1], pa.int8())[0]))
    return rows.select(CLUSTERS_SCHEMA.names)


def _without_order(batch: pa.Table) -> pa.Table:
    return batch.drop_columns([ORDER])


def _orders_of(batch: pa.Table) -> pa.Table:
    return batch.select([ORDER])


def _largest(clusters: pa.Table) -> pa.Table:
    """The LARGEST_CLUSTERS largest clusters: by size, then number (the local report's order)."""
    o = np.lexsort((_ints(clusters, "cluster"), -_ints(clusters, "size")))[:LARGEST_CLUSTERS]
    return clusters.select(CLUSTERS_SCHEMA.names).take(pa.array(o, pa.int64()))


def _summary(batch: pa.Table) -> pa.Table:
    """One row: the batch's exact duplicates, removed records, clusters under several categories, and its
    largest clusters (pickled)."""
    removed, clusters = _removed_rows(batch), _cluster_rows(batch)
    n_exact = int(pc.sum(pc.equal(removed.column("kind"), pa.array(["exact"])[0])).as_py() or 0)
    conflicts = int(np.count_nonzero(to_numpy(pc.list_value_length(clusters.column("categories"))) > 1)) \
        if clusters.num_rows else 0
    blob = pickle.dumps((n_exact, removed.num_rows, conflicts, _largest(clusters)))
    return pa.table({"blob": pa.array([blob], pa.binary())}, schema=BLOBS)


SUMS = pa.schema([("sum", pa.int64())])
SPANS = pa.schema([("lo", pa.int64()), ("hi", pa.int64()), ("n", pa.int64()), ("ok", pa.bool_())])


def _span(batch: pa.Table) -> pa.Table:
    """Whether a batch is in `_order` order, and its first and last `_order`."""
    o = _ints(batch, ORDER)
    ok = bool(len(o) < 2 or (o[1:] > o[:-1]).all())
    return pa.table({"lo": pa.array([o[0] if len(o) else 0], pa.int64()),
                     "hi": pa.array([o[-1] if len(o) else 0], pa.int64()),
                     "n": pa.array([len(o)], pa.int64()), "ok": pa.array([ok])})


def _drop_removed(batch: pa.Table, removed: Any) -> pa.Table:
    """The batch without the removed records (`removed`: their sorted `_order`s, broadcast)."""
    _, hit = _lookup(_broadcast(removed), _ints(batch, ORDER))
    return batch.filter(bools(~hit)) if hit.any() else batch


# --------------------------------------------------------------------------- the driver

def _configure(ctx: Any, shuffle_strategy: str | None) -> None:
    """This run's settings on a context of its own (a materialized dataset's copy): blocks in order, and the
    shuffle of the groupbys."""
    ctx.execution_options.preserve_order = True
    if shuffle_strategy is not None:
        ctx.shuffle_strategy = shuffle_strategy


def _parts(rows: int, rows_per_block: int) -> int:
    return max(1, math.ceil(rows / rows_per_block))


def _grouped(ds: Any, fn: Any, partitions: int, /, **kwargs: Any) -> Any:
    """`ds.groupby("_p").map_groups(fn)`: fn sees whole partitions (every group of the key they were derived from)."""
    return ds.groupby("_p", num_partitions=partitions).map_groups(fn, batch_format="pyarrow", fn_kwargs=kwargs or None)


def _mapped(ds: Any, fn: Any, batch_size: int | None = None, /, **kwargs: Any) -> Any:
    return ds.map_batches(fn, batch_format="pyarrow", batch_size=batch_size, fn_kwargs=kwargs or None)


def _total(ray: Any, ds: Any, column: str) -> int:
    """The sum of an int (or bool) column of a dataset."""
    return int(_ints(_collect(ray, _mapped(ds, _column_sum, None, column=column), SUMS), "sum").sum())


def _collect(ray: Any, ds: Any, schema: pa.Schema | None = None) -> pa.Table:
    """A dataset's blocks as one table on the driver (in the dataset's order)."""
    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    if not tables:
        if schema is None:
            raise ValueError("no rows and no schema")
        return schema.empty_table()
    return pa.concat_tables(tables, promote_options="none" if schema is None else "default")


def dedup_on_ray(ds: Any, config: DedupConfig | None = None, *, rows_per_block: int = ROWS_PER_BLOCK,
                 components_bound: int = COMPONENTS_BOUND, shuffle_strategy: str | None = SHUFFLE) -> RayDedup:
    """Remove exact and near duplicates from a Ray Dataset of valid records with an `_order` column, with the
    local `dedup`'s results: the kept records (a Ray Dataset in `_order` order, the input's columns), the removed
    records and the clusters (the local report's tables, equal), and a report whose ledger, clusters, largest
    clusters, category conflicts, bands/rows and pair counts are the local ones (timings and speed are this run's).

    `rows_per_block`: records per batch of the maps over the input (signing: a task a batch) and rows per partition
    key of the groupbys. `components_bound`: the most verified pairs whose connected components are found on the
    driver (its memory bound, about 100 bytes a pair); above it they are found on the cluster.
    `shuffle_strategy`: the Ray Data shuffle the groupbys run on (a `ray.data.context.ShuffleStrategy` value; None:
    the input's). The default is the task-based sort shuffle: Ray's hash shuffles start pools of aggregator
    actors for every groupby, which on a small cluster cost seconds a stage and can wait on one another for
    resources forever. It is set on this run's own copy of the context, never on the caller's."""
    from swcdata.engine import require_ray

    ray = require_ray()
    cfg = config or DedupConfig()
    c = cluster_on_ray(ray, ds, cfg, rows_per_block=rows_per_block, components_bound=components_bound,
                       shuffle_strategy=shuffle_strategy)
    t = time.perf_counter()
    parts = _parts(c.records, rows_per_block)
    reps = np.sort(_ints(_collect(ray, _mapped(c.members, _representative_orders), ORDERS), ORDER))
    rows = _grouped(_mapped(c.members, _final_part, None, parts=parts), _report_rows, parts,
                    reps=ray.put(reps)).materialize()
    _configure(rows.context, shuffle_strategy)
    removed = _mapped(rows, _removed_rows).materialize()
    _configure(removed.context, shuffle_strategy)
    removed = removed.sort(ORDER)
    clusters = _mapped(rows, _cluster_rows).materialize()
    _configure(clusters.context, shuffle_strategy)
    clusters = clusters.sort("cluster")
    n_exact = n_removed = conflicts = 0
    largest = CLUSTERS_SCHEMA.empty_table()
    for blob in _collect(ray, _mapped(rows, _summary), BLOBS).column("blob").to_pylist():
        e, r, k, top = pickle.loads(blob)
        n_exact, n_removed, conflicts = n_exact + e, n_removed + r, conflicts + k
        largest = _largest(pa.concat_tables([largest, top]))
    gone = np.sort(_ints(_collect(ray, _mapped(removed, _orders_of), ORDERS), ORDER))
    timings = {**c.timings, "report": time.perf_counter() - t}
    n = c.records
    total = time.perf_counter() - c.started
    timings["total"] = total
    bands, rows_per_band = c.bandings[0]
    report = DedupReport(
        config=cfg, bands=bands, rows=rows_per_band,
        ledger=DedupLedger(records=n, kept=n - n_removed, exact_duplicates=n_exact,
                           near_duplicates=n_removed - n_exact),
        clusters=len(reps), largest_clusters=largest.to_pylist(),  # type: ignore[arg-type]
        category_conflicts=conflicts, candidate_pairs=c.candidate_pairs, verified_pairs=c.verified_pairs,
        timings={k: round(v, 3) for k, v in timings.items()},
        records_per_second=round(n / total, 1) if total > 0 else 0.0, backend=_native.backend(),
    )
    # the kept records: the input without the removed ones (an empty input as it is: a map would lose its schema);
    # when the input is not in `_order` order, sorted on a materialized copy (whose context is this run's)
    kept = _mapped(ds, _drop_removed, rows_per_block, removed=ray.put(gone)) if n else ds
    if not c.in_order and n:
        kept = kept.materialize()
        _configure(kept.context, shuffle_strategy)
        kept = kept.sort(ORDER)
    return RayDedup(kept, _mapped(removed, _without_order), clusters, report)


class RayClusters(NamedTuple):
    """`cluster_on_ray`'s result: the narrow rows of every record with its exact group (`exact`: a materialized
    Ray Dataset of id, source, category, `_order`, `_klen`, `_exact`, `_esize`), the records in clusters of more
    than one record (`members`: a materialized Ray Dataset of MEMBERS rows), the counts and timings."""

    exact: Any
    members: Any
    records: int
    bandings: list[tuple[int, int]]
    candidate_pairs: int
    verified_pairs: int
    in_order: bool
    timings: dict[str, float]
    started: float


def cluster_on_ray(ray: Any, ds: Any, cfg: DedupConfig, *, all_pairs: bool = False,
                   verify_threshold: float | None = None, extra_bandings: list[tuple[int, int]] | None = None,
                   rows_per_block: int = ROWS_PER_BLOCK, components_bound: int = COMPONENTS_BOUND,
                   shuffle_strategy: str | None = SHUFFLE) -> RayClusters:
    """The local `cluster` on Ray: exact groups by id, then the connected components of the verified near
    duplicate pairs among one record per exact group, each cluster's kept record by the keep rule. `all_pairs`,
    `verify_threshold` and `extra_bandings` are the local function's (the split's grouping uses them)."""
    if rows_per_block < 1:
        raise ValueError("rows_per_block must be at least 1")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    bandings = [cfg.lsh(), *(extra_bandings or [])]
    threshold = cfg.threshold if verify_threshold is None else verify_threshold
    sign_cfg = cfg.model_copy(update={"workers": 1})  # (a Ray task is one CPU: no process pool inside it)

    # the columns of the exact stage and the report (no texts), materialized: the run's own copy of the caller's
    # context, which the settings below go to, comes with it
    t = time.perf_counter()
    narrow = _mapped(ds, _prepare, rows_per_block, keep=cfg.keep).materialize()
    ordered = bool(ds.context.execution_options.preserve_order)  # (else the kept records are sorted)
    _configure(narrow.context, shuffle_strategy)
    n = narrow.count()
    parts = _parts(n, rows_per_block)
    spans = _collect(ray, _mapped(narrow, _span), SPANS)
    lo, hi = _ints(spans, "lo")[_ints(spans, "n") > 0], _ints(spans, "hi")[_ints(spans, "n") > 0]
    in_order = ordered and bool(pc.all(spans.column("ok")).as_py() is not False and (hi[:-1] < lo[1:]).all())

    # exact groups: a groupby on the id
    exact = _grouped(_mapped(narrow, _id_part, None, parts=parts), _exact_groups, parts).materialize()
    del narrow
    duplicates = np.sort(_ints(_collect(ray, _mapped(exact, _duplicates), pa.schema([(ORDER, pa.int64())])), ORDER))
    timings["exact"] = time.perf_counter() - t

    n_candidates = n_verified = 0
    node_table: Any = None  # (sorted nodes, final, esim) on the driver, or a Ray Dataset of NODES rows
    if cfg.near and n > 1:
        t = time.perf_counter()
        signed = _mapped(ds, _sign, rows_per_block, cfg=sign_cfg, parts=parts,
                         duplicates=ray.put(duplicates)).materialize()
        _configure(signed.context, shuffle_strategy)
        n_signed = signed.count()
        timings["minhash"] = time.perf_counter() - t
        t = time.perf_counter()
        if n_signed > 1:
            band_parts = _parts(n_signed * sum(b for b, _ in bandings), rows_per_block)
            band_rows = _mapped(signed, _band_rows, None, bandings=bandings, num_perm=cfg.num_perm, parts=band_parts)
            pairs = _grouped(band_rows, _stars, band_parts, parts=parts, all_pairs=all_pairs)
            keyed_by_b = _grouped(pairs.union(signed), _attach_head, parts, num_perm=cfg.num_perm, parts=parts)
            checked = _grouped(keyed_by_b.union(signed), _verify, parts, num_perm=cfg.num_perm,
                               threshold=threshold).materialize()
            n_candidates = checked.count()
            timings["lsh"] = time.perf_counter() - t
            t = time.perf_counter()
            edges = _verified_on_driver(ray, checked, components_bound)
            if edges is not None:
                n_verified = len(edges[0])
                node_table = _components_on_driver(ray, edges, signed, parts, cfg.num_perm)
            else:
                n_verified = _total(ray, checked, "ok")
                node_table = _components_on_ray(ray, checked, signed, parts, cfg.num_perm)
            timings["components"] = time.perf_counter() - t
        else:
            timings["lsh"] = time.perf_counter() - t

    # the records in clusters of more than one record, on the driver
    t = time.perf_counter()
    if node_table is None:
        node_table = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if isinstance(node_table, tuple):
        members = _mapped(exact, _members_broadcast, None, table=ray.put(node_table))
    else:
        members = _grouped(_mapped(exact, _records_keyed, None, parts=parts).union(
            _mapped(node_table, _nodes_keyed, None, parts=parts)), _join_members, parts)
    members = members.materialize()
    timings["members"] = time.perf_counter() - t
    return RayClusters(exact, members, n, bandings, n_candidates, n_verified, in_order, timings, t0)


def _verified_on_driver(ray: Any, checked: Any, bound: int) -> tuple[I64, I64] | None:
    """The verified pairs (a, b) read block by block from `checked`, or None when there are more than `bound`."""
    a: list[I64] = []
    b: list[I64] = []
    total = 0
    for ref in checked.to_arrow_refs():
        block = ray.get(ref)
        ok = block.filter(block.column("ok"))
        total += ok.num_rows
        if total > bound:
            return None
        a.append(_ints(ok, "a"))
        b.append(_ints(ok, "b"))
    return (np.concatenate(a), np.concatenate(b)) if a else (np.zeros(0, np.int64), np.zeros(0, np.int64))


def _components_on_driver(ray: Any, edges: tuple[I64, I64], signed: Any, parts: int,
                          num_perm: int) -> tuple[I64, I64, npt.NDArray[np.float64]]:
    """Connected components of the verified pairs on the driver (`minhash.components` over dense ids); the
    representatives and similarities on the cluster (`_cluster_reps`). Returns the node table."""
    a, b = edges
    if len(a) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    comp = minhash.components(np.stack([inv[: len(a)], inv[len(a) :]], axis=1), len(nodes))
    roots = nodes[comp]  # each node's component, named by its smallest `_order`
    rows = _mapped(signed, _nodes_of_signed, None, table=ray.put((nodes, roots)), parts=parts)
    table = _collect(ray, _grouped(rows, _cluster_reps, parts, num_perm=num_perm), NODES)
    table = table.take(pc.sort_indices(table.column("node")))
    return _ints(table, "node"), _ints(table, "final"), _floats(table, "esim")


def _components_on_ray(ray: Any, checked: Any, signed: Any, parts: int, num_perm: int) -> Any:
    """Connected components of the verified pairs on the cluster: large-star / small-star rounds until a round
    changes no edge (then every component is a star around its smallest node), then each node joined with its
    root and signature, and `_cluster_reps`. Returns the node table as a materialized Ray Dataset."""
    edges = _mapped(checked, _edges_of_pairs).materialize()
    for _ in range(MAX_ROUNDS):
        large = _grouped(_mapped(edges, _both_ways, None, parts=parts), _large_star, parts)
        small = _grouped(_mapped(large, _oriented, None, parts=parts), _small_star, parts).materialize()
        changed = _total(ray, small, "changed")
        edges = small
        if changed == 0:
            break
    else:
        raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
    nodes = _mapped(checked, _node_rows_of_pairs, None, parts=parts).union(
        _mapped(edges, _node_rows_of_stars, None, parts=parts),
        _mapped(signed, _node_rows_of_sigs, None, parts=parts))
    joined = _grouped(nodes, _join_nodes, parts, parts=parts)
    return _grouped(joined, _cluster_reps, parts, num_perm=num_perm).materialize()
