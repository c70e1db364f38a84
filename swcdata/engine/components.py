"""Connected components of the verified near-duplicate pairs, for `swcdata.engine.dedup`: on the driver
(`minhash.components`) while there are at most `COMPONENTS_BOUND` verified pairs, above it on the cluster by
large-star / small-star (Kiveris et al., "Connected Components in MapReduce and Beyond", 2014) as alternating
groupbys, iterated until a round changes no edge. Either way the result is the node table: each node of the
pairs with its component's kept record by the local rule (`_representatives` over (klen, `_order`)) and its
`minhash.similarity` to it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from swcdata.core.arrow import bools, to_numpy
from swcdata.engine.blocks import (
    I64,
    SIG,
    broadcast,
    collect,
    column_total,
    dense_ranks,
    first_of_runs,
    floats,
    grouped,
    ints,
    lookup_sorted,
    mapped,
    pair_similarity,
    partition_of,
    rows_of,
    sig_column,
    sig_matrix,
    signature_index,
    table_of,
    unique_pairs,
)
from swcdata.similarity import minhash
from swcdata.steps.dedup import guarded

COMPONENTS_BOUND = 5_000_000
"""Verified pairs up to which connected components are found on the driver (its memory bound: ~100 bytes a pair)."""
MAX_ROUNDS = 200  # large-star/small-star rounds before giving up (it converges in O(log^2 n) rounds)

EDGES = pa.schema([("u", pa.int64()), ("v", pa.int64()), ("changed", pa.int64()), ("_p", pa.int64())])
NODES = pa.schema([("node", pa.int64()), ("final", pa.int64()), ("esim", pa.float64()), ("head", pa.bool_()),
                   ("origin", pa.int64())])
"""A node of the verified pairs: its kept record, its similarity to it, whether it is the kept record of another
node (a node the guard split off alone is not), and its component's kept record before the guard (the node was
split off its chain where that is not its kept record)."""
# Rows keyed by a node: kind 0 = a node (with its klen), 1 = a star edge (its root), 2 = a signature; 3 = a node with
# its root and signature (the output, keyed by its root).
NODE_JOIN = pa.schema([("node", pa.int64()), ("klen", pa.int64()), ("root", pa.int64()), ("sig", SIG),
                       ("kind", pa.int8()), ("_p", pa.int64())])


def _edges_of_pairs(batch: pa.Table) -> pa.Table:
    ok = batch.filter(batch.column("ok"))
    a, b = ints(ok, "a"), ints(ok, "b")
    return table_of(EDGES, len(a), u=a, v=b, changed=np.zeros(len(a), np.int64), _p=np.zeros(len(a), np.int64))


def _both_ways(batch: pa.Table, parts: int) -> pa.Table:
    """Each edge in both directions, keyed by its first end (the large-star step's neighbourhoods); a round's
    change count starts from 0 here."""
    u, v = ints(batch, "u"), ints(batch, "v")
    uu, vv = np.concatenate([u, v]), np.concatenate([v, u])
    return table_of(EDGES, len(uu), u=uu, v=vv, changed=np.zeros(len(uu), np.int64), _p=partition_of(uu, parts))


def _neighbourhoods(group: pa.Table) -> tuple[int, I64, I64, npt.NDArray[np.bool_], I64]:
    """A star step's input: (edges changed in the last round, the distinct edges (u, v) without loops sorted by
    (u, v), where each node's run starts, the runs' starts)."""
    carried = int(ints(group, "changed").sum())
    u, v = unique_pairs(ints(group, "u"), ints(group, "v"))
    loop = u == v
    u, v = u[~loop], v[~loop]
    first = first_of_runs(u) if len(u) else np.zeros(0, dtype=bool)
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
    return _carry(table_of(EDGES, len(out_u), u=out_u, v=out_v, changed=changed, _p=np.zeros(len(out_u), np.int64)),
                  carried)


def _oriented(batch: pa.Table, parts: int) -> pa.Table:
    """Each edge as (larger end, smaller end), keyed by the larger (the small-star step's neighbourhoods)."""
    u, v = ints(batch, "u"), ints(batch, "v")
    hi, lo = np.maximum(u, v), np.minimum(u, v)
    return table_of(EDGES, len(hi), u=hi, v=lo, changed=ints(batch, "changed"), _p=partition_of(hi, parts))


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
    return _carry(table_of(EDGES, len(out_u), u=out_u, v=out_v, changed=changed, _p=np.zeros(len(out_u), np.int64)),
                  carried)


def _carry(out: pa.Table, carried: int) -> pa.Table:
    """Adds the changes counted by the previous step to the first row (a step never empties a non-empty group)."""
    if carried == 0:
        return out
    if out.num_rows == 0:
        raise AssertionError("changes but no edges")
    ch = ints(out, "changed").copy()
    ch[0] += carried
    return out.set_column(out.schema.get_field_index("changed"), "changed", pa.array(ch, pa.int64()))


def _node_rows_of_pairs(batch: pa.Table, parts: int) -> pa.Table:
    ok = batch.filter(batch.column("ok"))
    node = np.concatenate([ints(ok, "a"), ints(ok, "b")])
    klen = np.concatenate([ints(ok, "a_klen"), ints(ok, "b_klen")])
    return table_of(NODE_JOIN, len(node), node=node, klen=klen, kind=np.zeros(len(node), np.int8),
                  _p=partition_of(node, parts))


def _node_rows_of_stars(batch: pa.Table, parts: int) -> pa.Table:
    u, v = ints(batch, "u"), ints(batch, "v")
    return table_of(NODE_JOIN, len(u), node=u, root=v, kind=np.ones(len(u), np.int8),
                  _p=partition_of(u, parts))


def _node_rows_of_sigs(batch: pa.Table, parts: int) -> pa.Table:
    key = ints(batch, "key")
    return table_of(NODE_JOIN, len(key), node=key, klen=batch.column("klen"), sig=batch.column("sig"),
                  kind=np.full(len(key), 2, np.int8), _p=partition_of(key, parts))


def _join_nodes(group: pa.Table, parts: int) -> pa.Table:
    """Nodes (kind 0), star edges (kind 1: a node's root) and signatures (kind 2) of some nodes: each node with
    its root (itself when it has no star edge: a root) and signature, keyed by its root."""
    kind = to_numpy(group.column("kind"))
    node = ints(group, "node")
    nodes = minhash.unique(node[kind == 0])
    stars = group.filter(bools(kind == 1))
    s_node, s_root = ints(stars, "node"), ints(stars, "root")
    o = np.argsort(s_node, kind="stable")
    pos, hit = lookup_sorted(s_node[o], nodes)
    root = np.where(hit, s_root[o][pos] if len(o) else nodes, nodes)
    sigs = group.filter(bools(kind == 2))
    at = pa.array(rows_of(ints(sigs, "node"), nodes, "a node has no signature"))
    return table_of(NODE_JOIN, len(nodes), node=nodes, klen=sigs.column("klen").take(at), root=root,
                  sig=sigs.column("sig").take(at), kind=np.full(len(nodes), 3, np.int8), _p=partition_of(root, parts))


def _nodes_of_signed(batch: pa.Table, table: Any, parts: int) -> pa.Table:
    """The driver path's node rows: the signed records that are nodes (`table`: sorted nodes and their roots,
    broadcast), each with its root and signature, keyed by the root."""
    nodes, roots = broadcast(table)
    key = ints(batch, "key")
    pos, hit = lookup_sorted(nodes, key)
    sel = np.flatnonzero(hit)
    at = pa.array(sel)
    root = roots[pos[sel]]
    return table_of(NODE_JOIN, len(sel), node=key[sel], klen=batch.column("klen").take(at), root=root,
                  sig=batch.column("sig").take(at), kind=np.full(len(sel), 3, np.int8), _p=partition_of(root, parts))


def _cluster_reps(group: pa.Table, num_perm: int, floor: float | None) -> pa.Table:
    """The nodes of some components (keyed by root): each component keeps its smallest (klen, order), the local
    `_representatives` rule, guarded against chains at `floor` (`guarded`, the local function); every node gets
    its kept record and its `minhash.similarity` to it (1.0 for itself)."""
    node, klen, root = ints(group, "node"), ints(group, "klen"), ints(group, "root")
    if len(node) == 0:
        return NODES.empty_table()
    sig = sig_matrix(group.column("sig"), num_perm)
    rep, esim, origin = guarded(root, dense_ranks(klen, node), lambda i, j: pair_similarity(sig[i], sig[j]), floor)
    return pa.Table.from_arrays([pa.array(node), pa.array(node[rep]), pa.array(esim), pa.array(heads(rep)),
                                 pa.array(node[origin])], schema=NODES)


def heads(rep: I64) -> npt.NDArray[np.bool_]:
    """Whether each element is the representative (`rep`: positions) of another one."""
    out = np.zeros(len(rep), dtype=bool)
    out[rep[rep != np.arange(len(rep))]] = True
    return out


class Edges(NamedTuple):
    """The verified pairs (a, b) on the driver, with each end's klen."""

    a: I64
    b: I64
    a_klen: I64
    b_klen: I64


def verified_on_driver(ray: Any, checked: Any, bound: int) -> Edges | None:
    """The verified pairs read block by block from `checked`, or None when there are more than `bound` (counted
    on the cluster first: the driver never holds more than `bound` pairs)."""
    if column_total(ray, checked, "ok") > bound:
        return None
    cols: list[list[I64]] = [[], [], [], []]
    for ref in checked.to_arrow_refs():
        block = ray.get(ref)
        ok = block.filter(block.column("ok"))
        for got, name in zip(cols, ("a", "b", "a_klen", "b_klen"), strict=True):
            got.append(ints(ok, name))
    return Edges(*(np.concatenate(c) if c else np.zeros(0, np.int64) for c in cols))


class NodeTable(NamedTuple):
    """The node table on the driver: the sorted nodes, each one's kept record and similarity to it, whether it is
    the kept record of another node, and its component's kept record before the guard (see NODES)."""

    nodes: I64
    final: I64
    esim: npt.NDArray[np.float64]
    head: npt.NDArray[np.bool_]
    origin: I64

    @classmethod
    def empty(cls) -> NodeTable:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool), np.zeros(0, np.int64))


def components_on_driver(ray: Any, edges: Edges, signed: Any, parts: int, num_perm: int, *,
                         blocks: list[Any] | None = None, floor: float | None = None) -> NodeTable:
    """Connected components of the verified pairs on the driver (`minhash.components` over dense ids). Each
    component's kept record (the local rule over the nodes' (klen, `_order`), guarded against chains at `floor`:
    `guarded`) is found here too, and each moved node's similarity to it on the cluster: with the signed blocks'
    refs (`blocks`), by a map over the (node, kept) pairs that reads the signatures from the object store (one
    execution per round of the guard); without, by a groupby of the nodes' signature rows on their component
    (`_cluster_reps`)."""
    a, b = edges.a, edges.b
    if len(a) == 0:
        return NodeTable.empty()
    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    comp = minhash.components(np.stack([inv[: len(a)], inv[len(a) :]], axis=1), len(nodes))
    roots = nodes[comp]  # each node's component, named by its smallest `_order`
    if blocks is None:
        rows = mapped(signed, _nodes_of_signed, None, table=ray.put((nodes, roots)), parts=parts)
        table = collect(ray, grouped(rows, _cluster_reps, parts, num_perm=num_perm, floor=floor), NODES)
        table = table.take(pc.sort_indices(table.column("node")))
        return NodeTable(ints(table, "node"), ints(table, "final"), floats(table, "esim"),
                         to_numpy(table.column("head")).astype(bool), ints(table, "origin"))
    klen = np.empty(len(nodes), dtype=np.int64)
    klen[inv[: len(a)]] = edges.a_klen
    klen[inv[len(a) :]] = edges.b_klen

    def on_cluster(fn: Any, schema: pa.Schema, **columns: I64) -> pa.Table:
        """A map of `fn` over the given columns, a partition's worth a task, its rows collected in order."""
        import ray.data

        table = pa.table(columns)
        step = max(1, -(-table.num_rows // parts))
        return collect(ray, mapped(ray.data.from_arrow([table.slice(k, step) for k in range(0, table.num_rows, step)]),
                                   fn, None, num_perm=num_perm, blocks=blocks), schema)

    held: list[tuple[I64, minhash.U32]] = []  # (the guard's later rounds: their nodes' signatures, fetched once)
    rounds = [0]

    def similar(i: I64, j: I64) -> npt.NDArray[np.float64]:
        """The guard's similarities: its first round's on the cluster; every later round's pairs are among the
        nodes of the second's (the members split off, and their new kept records), whose signatures come to the
        driver once (4 bytes a permutation a node) instead of a Ray Data execution a round (39 rounds at 1M)."""
        rounds[0] += 1
        if rounds[0] == 1:
            return floats(on_cluster(_moved_similarity, SIMS, node=nodes[i], final=nodes[j]), "esim")
        if not held:
            keys = np.unique(np.concatenate([nodes[i], nodes[j]]))
            held.append((keys, sig_matrix(on_cluster(_signatures_of, SIGNATURES, node=keys).column("sig"), num_perm)))
        keys, sig = held[0]
        (a, a_in), (b, b_in) = lookup_sorted(keys, nodes[i]), lookup_sorted(keys, nodes[j])
        if not (a_in.all() and b_in.all()):
            raise AssertionError("a later round of the guard left the second round's nodes")
        return minhash.similarity(sig, np.stack([a, b], axis=1))

    rep, esim, origin = guarded(comp, dense_ranks(klen, nodes), similar, floor)
    return NodeTable(nodes, nodes[rep], esim, heads(rep), nodes[origin])


SIMS = pa.schema([("esim", pa.float64())])


SIGNATURES = pa.schema([("sig", SIG)])


def _signatures_of(batch: pa.Table, num_perm: int, blocks: list[Any]) -> pa.Table:
    """The signatures of the batch's nodes, in its order, read from the object store."""
    sig, where, _ = signature_index(blocks, num_perm).gathered(ints(batch, "node"))
    return pa.table({"sig": sig_column(sig[where])}, schema=SIGNATURES)


def _moved_similarity(batch: pa.Table, num_perm: int, blocks: list[Any]) -> pa.Table:
    """`minhash.similarity` of each (node, kept record) pair, the signatures read from the object store."""
    sim, _, _ = signature_index(blocks, num_perm).similarity(ints(batch, "node"), ints(batch, "final"))
    return pa.table({"esim": pa.array(sim, pa.float64())}, schema=SIMS)


def components_on_ray(ray: Any, checked: Any, signed: Any, parts: int, num_perm: int, *,
                      floor: float | None = None) -> Any:
    """Connected components of the verified pairs on the cluster: large-star / small-star rounds until a round
    changes no edge (then every component is a star around its smallest node), then each node joined with its
    root and signature, and `_cluster_reps` (guarded at `floor`). Returns the node table as a materialized Ray
    Dataset of NODES rows."""
    edges = mapped(checked, _edges_of_pairs).materialize()
    for _ in range(MAX_ROUNDS):
        large = grouped(mapped(edges, _both_ways, None, parts=parts), _large_star, parts)
        small = grouped(mapped(large, _oriented, None, parts=parts), _small_star, parts).materialize()
        changed = column_total(ray, small, "changed")
        edges = small
        if changed == 0:
            break
    else:
        raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
    nodes = mapped(checked, _node_rows_of_pairs, None, parts=parts).union(
        mapped(edges, _node_rows_of_stars, None, parts=parts),
        mapped(signed, _node_rows_of_sigs, None, parts=parts))
    joined = grouped(nodes, _join_nodes, parts, parts=parts)
    return grouped(joined, _cluster_reps, parts, num_perm=num_perm, floor=floor).materialize()
