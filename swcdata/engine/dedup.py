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
5. verification: while the signatures take at most `sig_broadcast_bound` bytes (2 GiB: 4M records), a groupby of
   the pairs on their second end (the pairs of a large cluster's head spread) deduplicates them (a pair found in
   several bands is one candidate) and reads both ends' signatures from the signed blocks in the object store
   (their refs broadcast: zero-copy on the node that holds them, fetched once per worker on another), keeping a
   pair when `minhash.similarity` of the two is >= threshold; above the bound, two groupby-based joins of pairs
   with signatures, keyed by each end of a pair: the first deduplicates the pairs and sends each head's signature
   once to each partition that holds its pairs' other ends (not once per pair: a cluster of near copies is one
   head and many members), the second verifies;
6. connected components of the verified pairs (`swcdata.engine.components`): on the driver (`minhash.components`
   over the edges relabelled to dense ids) while there are at most `components_bound` verified pairs; above it on
   the cluster: large-star / small-star (Kiveris et al., "Connected Components in MapReduce and Beyond", 2014) as
   alternating groupbys, iterated until a round changes no edge, then a groupby-based join of the nodes with their
   roots and signatures;
7. cluster representatives (a groupby on the component, or on the driver): each component keeps its smallest key
   (`_representatives`, the local rule), each other member's similarity to it is `minhash.similarity`, and the
   guard against chains (`guarded`, the local function) splits off the members below `member_threshold`;
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
duplicates) on the driver path, and there the signatures of the records the guard against chains splits off (4
bytes a permutation each: its later rounds run on the driver); the sorted `_order`s of the clusters' kept records (8
bytes a cluster) and of those that lost members to the guard, with how many. Never one
Python object per record, never the removed or clusters lists (they stay on the cluster: the CLI streams them
into their Parquet files), nothing for a record outside the clusters. The cluster holds the narrow rows (two
copies at most), the signatures (4 * num_perm bytes a unique record), the pairs and the report's lists; never a
second copy of the texts. The input is read three times (narrow rows, signing, kept records): materialize it first
when producing it is expensive.
"""

from __future__ import annotations

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
from swcdata.engine.blocks import (
    I64,
    ORDER,
    ROWS_PER_BLOCK,
    SHUFFLE,
    SIG,
    batch_rows,
    blob_table,
    broadcast,
    cluster_cpus,
    collect,
    column_total,
    dense_ranks,
    first_of_runs,
    floats,
    grouped,
    ints,
    lookup_sorted,
    mapped,
    materialized,
    pair_similarity,
    partition_count,
    partition_of,
    rows_of,
    sig_column,
    sig_matrix,
    signature_index,
    sorted_on,
    table_of,
    task_rows,
    unique_pairs,
    unpickled,
    without_orders,
)
from swcdata.engine.components import (
    COMPONENTS_BOUND,
    NodeTable,
    components_on_driver,
    components_on_ray,
    verified_on_driver,
)
from swcdata.similarity import minhash
from swcdata.similarity.sigindex import key_array as key_column
from swcdata.steps.dedup import (
    CLUSTERS_SCHEMA,
    LARGEST_CLUSTERS,
    REMOVED_SCHEMA,
    DedupConfig,
    DedupLedger,
    DedupReport,
    _representatives,
    report_lists,
    signed,
)

__all__ = ["COMPONENTS_BOUND", "ORDER", "ROWS_PER_BLOCK", "SHUFFLE", "SIG_BROADCAST_BOUND", "RayClusters",
           "RayDedup", "cluster_on_ray", "dedup_on_ray", "without_orders"]


class RayDedup(NamedTuple):
    """The result of `dedup_on_ray`: the kept records (a Ray Dataset in `_order` order, the input's columns), the
    removed records and the clusters (Ray Datasets of REMOVED_SCHEMA / CLUSTERS_SCHEMA rows in the order of the
    local report's `removed_table` / `clusters_table`; the report holds its summary only) and the report."""

    kept: Any
    removed: Any
    clusters: Any
    report: DedupReport
    signed: Any = None  # (the signature rows of the unique records: key, sig, tkey...; None without near dedup)
    removed_ordered: Any = None  # (`removed` with each row's `_order`, in that order)


SIG_BROADCAST_BOUND = 2 << 30
"""The most bytes of signatures (2 GiB: 4M records at 128 permutations) the verification reads whole in every task,
instead of joining them to the pairs by shuffles (see `dedup_on_ray`)."""

BAND_ROWS = 4_000_000
"""The most band rows (32 bytes each) a partition of the LSH shuffle is given where the CPUs would get fewer
partitions than `task_rows` asks for (and at least `rows_per_block`)."""

# --------------------------------------------------------------------------- row layouts of the shuffles

# Rows of the verification joins: a signature row (key = a record, klen, sig), a pair row (key = one end, other =
# the other end, with the other end's klen once attached) or a head row (key = a pair's head, osig = its signature).
JOIN = pa.schema([("key", pa.int64()), ("other", pa.int64()), ("klen", pa.int64()), ("oklen", pa.int64()),
                  ("sig", SIG), ("osig", SIG), ("_p", pa.int64()), ("tkey", pa.binary(16))])
# (tkey: a signature row's text key, `sigindex.text_keys`: the rows of a build's signature index)


CHECKED = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("a_klen", pa.int64()), ("b_klen", pa.int64()),
                     ("ok", pa.bool_())])
BANDS = pa.schema([("band", pa.int64()), ("hash", pa.uint64()), ("key", pa.int64()), ("_p", pa.int64())])


# A record in a cluster of more than one record, gathered on the driver.
MEMBERS = pa.schema([(ORDER, pa.int64()), ("id", pa.string()), ("source", SOURCE_TYPE), ("category", pa.string()),
                     ("_exact", pa.int64()), ("_final", pa.int64()), ("_esim", pa.float64())])
# Rows keyed by an exact representative: a record (kind 0) or a node of the node table (kind 1).
MEMBER_JOIN = pa.schema([("key", pa.int64()), (ORDER, pa.int64()), ("id", pa.string()), ("source", SOURCE_TYPE),
                         ("category", pa.string()), ("_esize", pa.int64()), ("final", pa.int64()),
                         ("esim", pa.float64()), ("head", pa.bool_()), ("kind", pa.int8()), ("_p", pa.int64())])


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
    return batch.append_column("_p", pa.array(ints(batch, "_idh") % parts, pa.int64()))


def _exact_groups(group: pa.Table) -> pa.Table:
    """All the records of some ids: each gets its exact representative `_exact` (the smallest (klen, order) of
    its id, `_representatives`) and `_esize` (records with its id)."""
    group = group.drop_columns(["_p", "_idh"])
    n = group.num_rows
    if n == 0:
        return group.append_column("_exact", pa.array([], pa.int64())).append_column("_esize", pa.array([], pa.int64()))
    labels = to_numpy(pc.dictionary_encode(group.column("id").combine_chunks()).indices).astype(np.int64)
    order, klen = ints(group, ORDER), ints(group, "_klen")
    rep = _representatives(labels, dense_ranks(klen, order))
    size = np.bincount(labels)[labels]
    return (group.append_column("_exact", pa.array(order[rep], pa.int64()))
            .append_column("_esize", pa.array(size.astype(np.int64), pa.int64())))


def _duplicates(batch: pa.Table) -> pa.Table:
    """The `_order`s of the exact duplicates (records that are not their id's representative)."""
    order = ints(batch, ORDER)
    return pa.table({ORDER: pa.array(order[order != ints(batch, "_exact")], pa.int64())})


def _sign(batch: pa.Table, cfg: DedupConfig, parts: int, duplicates: Any, known: Any = None) -> pa.Table:
    """MinHash signatures (`signed`, the local function: those of the texts the broadcast signature index `known`
    holds are taken from it) of the batch's exact representatives (the records not in `duplicates`: sorted
    `_order`s, broadcast), as signature rows of the verification joins, with their text keys; records without
    shingles are left out (they never match)."""
    _, dup = lookup_sorted(broadcast(duplicates), ints(batch, ORDER))
    uniq = batch.filter(bools(~dup)) if dup.any() else batch
    if uniq.num_rows == 0:
        return JOIN.empty_table()
    done = signed(uniq.select(["instruction", "response"]), cfg, known=broadcast(known) if known is not None else None)
    valid = (done.sig != minhash.EMPTY).any(axis=1)
    order, klen = ints(uniq, ORDER)[valid], _klen(uniq, cfg.keep)[valid]
    tkey = key_column(done.keys[valid])
    return table_of(JOIN, len(order), key=order, klen=klen, sig=sig_column(done.sig[valid]),
                    _p=partition_of(order, parts), tkey=tkey)


def _band_rows(batch: pa.Table, bandings: list[tuple[int, int]], num_perm: int, parts: int) -> pa.Table:
    """One row per (signed record, band of each banding): the band (numbered across the bandings, so that each
    (bands, rows) banding has buckets of its own), its `band_hashes` value, the record."""
    order = ints(batch, "key")
    if len(order) == 0:
        return BANDS.empty_table()
    sig = sig_matrix(batch.column("sig"), num_perm)
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


def _stars(group: pa.Table, parts: int, all_pairs: bool, by_member: bool = False) -> pa.Table:
    """The candidate pairs of the LSH buckets of a partition, as `candidate_pairs` finds them: in each bucket
    (band, hash) of more than one record, every member paired with the bucket's lowest `_order` (a star); with
    `all_pairs`, every pair of each bucket of up to `minhash.MAX_BUCKET` members. Each pair (a < b) keyed by a, in
    the partition of a (or, `by_member`, of b: the pairs of a large cluster's head spread over the partitions)."""
    if not all_pairs:  # (the stars alone: polars' hashed window and unique, twice as fast as sorting on 3 keys)
        a_, b_ = _star_pairs(group)
        return table_of(JOIN, len(a_), key=a_, other=b_, _p=partition_of(b_ if by_member else a_, parts))
    band, h, key = ints(group, "band"), to_numpy(group.column("hash")).astype(np.uint64), ints(group, "key")
    o = np.lexsort((key, h, band))
    band, h, key = band[o], h[o], key[o]
    first = first_of_runs(band, h)
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
    a_, b_ = unique_pairs(np.concatenate(a), np.concatenate(b))
    return table_of(JOIN, len(a_), key=a_, other=b_, _p=partition_of(b_ if by_member else a_, parts))


def _star_pairs(group: pa.Table) -> tuple[I64, I64]:
    """Every band row's record paired with its bucket's smallest key (the other members of a bucket of more than
    one record), each pair once, sorted."""
    import polars as pl

    out = (pl.from_arrow(group.select(["band", "hash", "key"])).lazy()  # type: ignore[union-attr]
           .with_columns(head=pl.col("key").min().over(["band", "hash"]))
           .filter(pl.col("key") != pl.col("head"))
           .select(a=pl.col("head"), b=pl.col("key")).unique().sort(["a", "b"]).collect())
    return out["a"].to_numpy(writable=True), out["b"].to_numpy(writable=True)


def _attach_head(group: pa.Table, num_perm: int, parts: int) -> pa.Table:
    """Pairs keyed by their head, with the heads' signature rows: the distinct pairs (every pair of a head is in
    its partition), keyed by the other end, each with its head's klen; and each head's signature once per
    partition its pairs go to (a head row: key = the head, osig = its signature), not once per pair: a cluster of
    near copies has one head and many members, which a few partitions hold."""
    is_sig = pc.is_valid(group.column("sig"))
    sigs, pairs = group.filter(is_sig), group.filter(pc.invert(is_sig))
    if pairs.num_rows == 0:
        return JOIN.empty_table()
    a, b = unique_pairs(ints(pairs, "key"), ints(pairs, "other"))
    at = rows_of(ints(sigs, "key"), a, "a pair's head has no signature")
    q = partition_of(b, parts)
    ha, hq = unique_pairs(a, q)  # (each head once per partition of its members)
    hat = rows_of(ints(sigs, "key"), ha, "a pair's head has no signature")
    pair_rows = table_of(JOIN, len(a), key=b, other=a, oklen=ints(sigs, "klen")[at], _p=q)
    head_rows = table_of(JOIN, len(ha), key=ha, osig=sigs.column("sig").take(pa.array(hat)), _p=hq)
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
    a, b = ints(pairs, "other"), ints(pairs, "key")
    at = rows_of(ints(sigs, "key"), b, "a pair's end has no signature")
    ah = rows_of(ints(heads, "key"), a, "a pair's head signature did not come")
    sim = pair_similarity(sig_matrix(heads.column("osig").take(pa.array(ah)), num_perm),
                           sig_matrix(sigs.column("sig").take(pa.array(at)), num_perm))
    return pa.Table.from_arrays([pa.array(a), pa.array(b), pa.array(ints(pairs, "oklen")),
                                 pa.array(ints(sigs, "klen")[at]), pa.array(sim >= threshold)], schema=CHECKED)


def _verify_broadcast(group: pa.Table, num_perm: int, threshold: float, blocks: list[Any]) -> pa.Table:
    """The candidate pairs of a partition (pair rows keyed by their head, in the partition of their other end:
    every copy of a pair is here), each once, with both ends' klen and whether `minhash.similarity` of their
    signatures reaches the threshold; the signatures read from the signed records' blocks (`blocks`: their object
    refs), not shuffled."""
    if group.num_rows == 0:
        return CHECKED.empty_table()
    a, b = unique_pairs(ints(group, "key"), ints(group, "other"))
    sim, a_klen, b_klen = signature_index(blocks, num_perm).similarity(a, b)
    return pa.Table.from_arrays([pa.array(a), pa.array(b), pa.array(a_klen), pa.array(b_klen),
                                 pa.array(sim >= threshold)], schema=CHECKED)


# ---- distributed connected components: large-star / small-star

def _member_rows(records: pa.Table, nodes: I64, final: I64, esim: npt.NDArray[np.float64],
                 head: npt.NDArray[np.bool_]) -> pa.Table:
    """The records (with `_exact`, `_esize`) that are in a cluster of more than one record, given the node table
    (sorted nodes, their kept record, similarity to it, whether it is another node's kept record): removed ones
    and kept ones with duplicates."""
    order, exact, esize = ints(records, ORDER), ints(records, "_exact"), ints(records, "_esize")
    pos, hit = lookup_sorted(nodes, exact)
    fin = np.where(hit, final[pos] if len(nodes) else exact, exact)
    es = np.where(hit, esim[pos] if len(nodes) else 1.0, 1.0)
    kept_with = hit & (head[pos] if len(nodes) else False)
    member = (fin != order) | ((order == exact) & ((esize > 1) | kept_with))
    sel = np.flatnonzero(member)
    rows = records.select(["id", "source", "category"]).take(pa.array(sel))
    return pa.Table.from_arrays([pa.array(order[sel]), rows.column("id"), rows.column("source"),
                                 rows.column("category"), pa.array(exact[sel]), pa.array(fin[sel]),
                                 pa.array(es[sel])], schema=MEMBERS)


def _members_broadcast(batch: pa.Table, table: Any) -> pa.Table:
    """`_member_rows` with the node table broadcast."""
    return _member_rows(batch, *broadcast(table))


def _records_keyed(batch: pa.Table, parts: int) -> pa.Table:
    exact = ints(batch, "_exact")
    return table_of(MEMBER_JOIN, batch.num_rows, key=exact, _order=batch.column(ORDER), id=batch.column("id"),
                  source=batch.column("source"), category=batch.column("category"), _esize=batch.column("_esize"),
                  kind=np.zeros(batch.num_rows, np.int8), _p=partition_of(exact, parts))


def _nodes_keyed(batch: pa.Table, parts: int) -> pa.Table:
    node = ints(batch, "node")
    return table_of(MEMBER_JOIN, len(node), key=node, final=batch.column("final"), esim=batch.column("esim"),
                  head=batch.column("head"), kind=np.ones(len(node), np.int8), _p=partition_of(node, parts))


def _join_members(group: pa.Table) -> pa.Table:
    """Records keyed by their exact representative, with the node table's rows of those representatives."""
    kind = to_numpy(group.column("kind"))
    nodes = group.filter(bools(kind == 1))
    records = group.filter(bools(kind == 0)).rename_columns(
        [ORDER if c == ORDER else "_exact" if c == "key" else c for c in group.column_names])
    node = ints(nodes, "key")
    o = np.argsort(node, kind="stable")
    return _member_rows(records, node[o], ints(nodes, "final")[o], floats(nodes, "esim")[o],
                        to_numpy(nodes.column("head")).astype(bool)[o])


# ---- the report's lists, per cluster: the records of a cluster together (a groupby on `_final`)

ORDERS = pa.schema([(ORDER, pa.int64())])
# Rows of the report: a removed record (_row 0: REMOVED_SCHEMA's columns) or a cluster (_row 1: CLUSTERS_SCHEMA's)
REPORT_ROWS = pa.schema([("_row", pa.int8()), (ORDER, pa.int64()),
                         *[f for f in REMOVED_SCHEMA if f.name != "cluster"],
                         *[f for f in CLUSTERS_SCHEMA if f.name not in ("similarity",)]])


def _representative_orders(batch: pa.Table) -> pa.Table:
    """The `_order`s of the clusters' kept records (a member that is its own kept record)."""
    order = ints(batch, ORDER)
    return pa.table({ORDER: pa.array(order[order == ints(batch, "_final")], pa.int64())}, schema=ORDERS)


def _final_part(batch: pa.Table, parts: int) -> pa.Table:
    return batch.append_column("_p", pa.array(partition_of(ints(batch, "_final"), parts), pa.int64()))


def _split_origins(batch: pa.Table) -> pa.Table:
    """The kept records before the guard of the nodes it split off (one row per such node)."""
    origin = ints(batch, "origin")
    return pa.table({ORDER: pa.array(origin[origin != ints(batch, "final")], pa.int64())}, schema=ORDERS)


def _report_rows(group: pa.Table, reps: Any, lost: Any, keep_none: bool) -> pa.Table:
    """The members of some clusters: the local `report_lists` on them, each cluster numbered by its kept record's
    rank among all the clusters' (`reps`: their sorted `_order`s, broadcast), with the members the guard split off
    it (`lost`: sorted kept records and counts, broadcast); `keep_none`: keep="none"."""
    if group.num_rows == 0:
        return REPORT_ROWS.empty_table()
    group = group.drop_columns(["_p"])
    group = group.take(pc.sort_indices(group.column(ORDER)))
    order = ints(group, ORDER)
    exact, final = np.searchsorted(order, ints(group, "_exact")), np.searchsorted(order, ints(group, "_final"))
    ranks = broadcast(reps)
    lost_orders, lost_counts = broadcast(lost)
    pos, hit = lookup_sorted(lost_orders, order)
    lost_of = np.where(hit, lost_counts[pos] if len(lost_orders) else 0, 0).astype(np.int64)
    removed, clusters, gone = report_lists(group, exact, final, floats(group, "_esim"),
                                           lambda pos: np.searchsorted(ranks, order[pos]), lost=lost_of,
                                           keep_none=keep_none)
    rows = []
    for kind, table, orders in ((0, removed, order[gone]), (1, clusters, None)):
        columns = {name: table.column(name) for name in table.column_names}
        rows.append(table_of(REPORT_ROWS, table.num_rows, _row=np.full(table.num_rows, kind, np.int8),
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
    o = np.lexsort((ints(clusters, "cluster"), -ints(clusters, "size")))[:LARGEST_CLUSTERS]
    return clusters.select(CLUSTERS_SCHEMA.names).take(pa.array(o, pa.int64()))


def _summary(batch: pa.Table) -> pa.Table:
    """One row: the batch's exact duplicates, removed records, clusters under several categories, and its
    largest clusters (pickled)."""
    removed, clusters = _removed_rows(batch), _cluster_rows(batch)
    n_exact = int(pc.sum(pc.equal(removed.column("kind"), pa.array(["exact"])[0])).as_py() or 0)
    conflicts = int(np.count_nonzero(to_numpy(pc.list_value_length(clusters.column("categories"))) > 1)) \
        if clusters.num_rows else 0
    return blob_table((n_exact, removed.num_rows, conflicts, _largest(clusters)))


SPANS = pa.schema([("lo", pa.int64()), ("hi", pa.int64()), ("n", pa.int64()), ("ok", pa.bool_())])


def _span(batch: pa.Table) -> pa.Table:
    """Whether a batch is in `_order` order, and its first and last `_order`."""
    o = ints(batch, ORDER)
    ok = bool(len(o) < 2 or (o[1:] > o[:-1]).all())
    return pa.table({"lo": pa.array([o[0] if len(o) else 0], pa.int64()),
                     "hi": pa.array([o[-1] if len(o) else 0], pa.int64()),
                     "n": pa.array([len(o)], pa.int64()), "ok": pa.array([ok])})


# --------------------------------------------------------------------------- the driver

def dedup_on_ray(ds: Any, config: DedupConfig | None = None, *, rows_per_block: int = ROWS_PER_BLOCK,
                 components_bound: int = COMPONENTS_BOUND, sig_broadcast_bound: int = SIG_BROADCAST_BOUND,
                 shuffle_strategy: str | None = SHUFFLE, known: Any = None) -> RayDedup:
    """Remove exact and near duplicates from a Ray Dataset of valid records with an `_order` column, with the
    local `dedup`'s results: the kept records (a Ray Dataset in `_order` order, the input's columns), the removed
    records and the clusters (the local report's tables, equal), and a report whose ledger, clusters, largest
    clusters, category conflicts, bands/rows and pair counts are the local ones (timings and speed are this run's).

    `rows_per_block`: records per batch of the maps over the input (signing: a task a batch) and rows per partition
    key of the groupbys. `components_bound`: the most verified pairs whose connected components are found on the
    driver (its memory bound, about 100 bytes a pair); above it they are found on the cluster.
    `sig_broadcast_bound`: the most bytes of signatures (4 * num_perm a signed record) that every verification task
    reads from the object store (zero-copy where it runs on the node that holds them); above it the signatures
    are joined to the pairs by two shuffles.
    `shuffle_strategy`: the Ray Data shuffle the groupbys run on (a `ray.data.context.ShuffleStrategy` value; None:
    the input's). The default is the task-based sort shuffle: Ray's hash shuffles start pools of aggregator
    actors for every groupby, which on a small cluster cost seconds a stage and can wait on one another for
    resources forever. It is set on this run's own copy of the context, never on the caller's.
    `known`: a signature index of the config's parameters (`sigindex.SignatureIndex`, a build's parent version's),
    broadcast to the signing tasks: the texts it holds are not signed again."""
    from swcdata.engine import require_ray

    ray = require_ray()
    cfg = config or DedupConfig()
    c = cluster_on_ray(ray, ds, cfg, rows_per_block=rows_per_block, components_bound=components_bound,
                       sig_broadcast_bound=sig_broadcast_bound, member_floor=cfg.member_floor(),
                       shuffle_strategy=shuffle_strategy, known=known)
    t = time.perf_counter()
    per_task = task_rows(c.records, rows_per_block, cluster_cpus(ray))
    parts = partition_count(c.records, per_task)
    reps = np.sort(ints(collect(ray, mapped(c.members, _representative_orders), ORDERS), ORDER))
    rows = materialized(grouped(mapped(c.members, _final_part, None, parts=parts), _report_rows, parts,
                                reps=ray.put(reps), lost=ray.put(c.lost), keep_none=cfg.keep == "none"),
                        shuffle_strategy)
    removed = sorted_on(mapped(rows, _removed_rows), ORDER, shuffle_strategy).materialize()  # (read twice)
    clusters = sorted_on(mapped(rows, _cluster_rows), "cluster", shuffle_strategy)
    n_exact = n_removed = conflicts = 0
    largest = CLUSTERS_SCHEMA.empty_table()
    for e, r, k, top in unpickled(ray, mapped(rows, _summary)):
        n_exact, n_removed, conflicts = n_exact + e, n_removed + r, conflicts + k
        largest = _largest(pa.concat_tables([largest, top]))
    gone = np.sort(ints(collect(ray, mapped(removed, _orders_of), ORDERS), ORDER))
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
        split_off=c.split_off,
        timings={k: round(v, 3) for k, v in timings.items()},
        records_per_second=round(n / total, 1) if total > 0 else 0.0, backend=_native.backend(),
    )
    # the kept records: the input without the removed ones (an empty input as it is: a map would lose its schema);
    # when the input is not in `_order` order, sorted on a materialized copy (whose context is this run's)
    kept = mapped(ds, without_orders, batch_rows(per_task), removed=ray.put(gone)) if n else ds
    if not c.in_order and n:
        kept = sorted_on(kept, ORDER, shuffle_strategy)
    return RayDedup(kept, mapped(removed, _without_order), clusters, report, c.signed, removed)


NO_LOSSES: tuple[I64, I64] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
"""`RayClusters.lost` where the guard split nothing off."""


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
    lost: tuple[I64, I64] = NO_LOSSES  # (the sorted kept records that lost members to the guard, how many)
    signed: Any = None  # (the materialized signature rows of the unique records, JOIN: key, klen, sig, tkey)

    @property
    def split_off(self) -> int:
        """Unique records the guard split off their chain's cluster."""
        return int(self.lost[1].sum())


def cluster_on_ray(ray: Any, ds: Any, cfg: DedupConfig, *, all_pairs: bool = False,
                   verify_threshold: float | None = None, extra_bandings: list[tuple[int, int]] | None = None,
                   rows_per_block: int = ROWS_PER_BLOCK, components_bound: int = COMPONENTS_BOUND,
                   sig_broadcast_bound: int = SIG_BROADCAST_BOUND, member_floor: float | None = None,
                   shuffle_strategy: str | None = SHUFFLE, known: Any = None) -> RayClusters:
    """The local `cluster` on Ray: exact groups by id, then the connected components of the verified near
    duplicate pairs among one record per exact group, each cluster's kept record by the keep rule. `all_pairs`,
    `verify_threshold`, `extra_bandings` and `member_floor` are the local function's (the split's grouping uses
    the first three; dedup the guard against chains), and so is `known` (a signature index, broadcast)."""
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
    ordered = bool(ds.context.execution_options.preserve_order)  # (else the kept records are sorted)
    narrow = materialized(mapped(ds, _prepare, rows_per_block, keep=cfg.keep), shuffle_strategy)
    n = narrow.count()
    per_task = task_rows(n, rows_per_block, cluster_cpus(ray))
    parts = partition_count(n, per_task)
    spans = collect(ray, mapped(narrow, _span), SPANS)
    lo, hi = ints(spans, "lo")[ints(spans, "n") > 0], ints(spans, "hi")[ints(spans, "n") > 0]
    in_order = ordered and bool(pc.all(spans.column("ok")).as_py() is not False and (hi[:-1] < lo[1:]).all())

    # exact groups: a groupby on the id
    exact = grouped(mapped(narrow, _id_part, None, parts=parts), _exact_groups, parts).materialize()
    del narrow
    duplicates = np.sort(ints(collect(ray, mapped(exact, _duplicates), ORDERS), ORDER))
    timings["exact"] = time.perf_counter() - t

    n_candidates = n_verified = 0
    lost = NO_LOSSES
    node_table: Any = None  # a NodeTable on the driver, or a Ray Dataset of NODES rows
    signed: Any = None
    if cfg.near and n > 1:
        t = time.perf_counter()
        signed = materialized(mapped(ds, _sign, batch_rows(per_task), cfg=sign_cfg, parts=parts,
                                     duplicates=ray.put(duplicates),
                                     known=ray.put(known) if known is not None and len(known) else None),
                              shuffle_strategy)
        n_signed = signed.count()
        timings["minhash"] = time.perf_counter() - t
        t = time.perf_counter()
        if n_signed > 1:
            n_bands = n_signed * sum(b for b, _ in bandings)
            band_parts = partition_count(n_bands, max(rows_per_block, min(BAND_ROWS, task_rows(
                n_bands, n_bands, cluster_cpus(ray)))))
            band_rows = mapped(signed, _band_rows, None, bandings=bandings, num_perm=cfg.num_perm, parts=band_parts)
            broadcast_sigs = n_signed * 4 * cfg.num_perm <= sig_broadcast_bound
            pairs = grouped(band_rows, _stars, band_parts, parts=parts, all_pairs=all_pairs, by_member=broadcast_sigs)
            blocks = signed.to_arrow_refs() if broadcast_sigs else None
            if blocks is not None:
                checked = grouped(pairs, _verify_broadcast, parts, num_perm=cfg.num_perm, threshold=threshold,
                                  blocks=blocks).materialize()
            else:
                keyed_by_b = grouped(pairs.union(signed), _attach_head, parts, num_perm=cfg.num_perm, parts=parts)
                checked = grouped(keyed_by_b.union(signed), _verify, parts, num_perm=cfg.num_perm,
                                   threshold=threshold).materialize()
            n_candidates = checked.count()
            if n_candidates == 0:  # (a groupby of no pairs at all gives empty blocks of its input's schema)
                checked = ray.data.from_arrow(CHECKED.empty_table())
            timings["lsh"] = time.perf_counter() - t
            t = time.perf_counter()
            edges = verified_on_driver(ray, checked, components_bound)
            if edges is not None:
                n_verified = len(edges[0])
                node_table = components_on_driver(ray, edges, signed, parts, cfg.num_perm, blocks=blocks,
                                                  floor=member_floor)
                origins = node_table.origin[node_table.origin != node_table.final]
            else:
                n_verified = column_total(ray, checked, "ok")
                node_table = components_on_ray(ray, checked, signed, parts, cfg.num_perm, floor=member_floor)
                origins = ints(collect(ray, mapped(node_table, _split_origins), ORDERS), ORDER)
            lost = np.unique(origins, return_counts=True)
            timings["components"] = time.perf_counter() - t
        else:
            timings["lsh"] = time.perf_counter() - t

    # the records in clusters of more than one record, on the driver
    t = time.perf_counter()
    if node_table is None:
        node_table = NodeTable.empty()
    if isinstance(node_table, NodeTable):
        members = mapped(exact, _members_broadcast, None, table=ray.put(node_table[:4]))
    else:
        members = grouped(mapped(exact, _records_keyed, None, parts=parts).union(
            mapped(node_table, _nodes_keyed, None, parts=parts)), _join_members, parts)
    members = members.materialize()
    timings["members"] = time.perf_counter() - t
    return RayClusters(exact, members, n, bandings, n_candidates, n_verified, in_order, timings, t0,
                       (lost[0], lost[1].astype(np.int64)), signed)


