"""`augment_on_ray`: variants of the train records on Ray Data, with exactly the local engine's records and report.

The input is a split's records as a Ray Dataset with `_order` (as the other stages of the engine). The stages:

1. generation (a map over each targeted split): each batch runs the local `_each_variants` (tree-sitter in a
   single-use child process, as locally: a crash costs the child, never the worker) and accounts each record with
   the local `SplitWork.account`; it yields the records, each followed by its variants (`_sub` 1, 2, ... after the
   record's 0, the variant's quality pickled in `_q`), and the batch's counts, pickled on its first row (`_stats`);
2. duplicate variants (a groupby on the id): a variant whose id is the id of an input record of any split, or of
   an earlier variant (in split, `_order`, `_sub` order: the local order), is dropped, as the local step drops it;
   only the dropped variants' keys come back to the driver, and a map filters them out;
3. the report: the batches' counts, merged on the driver in order (`SplitWork.merge`), and a map over the kept
   variants that counts them (by transform and template) and tallies their quality (`QualityTally`, merged in
   order); the few parents of the quality samples are fetched by a filter. `augment_report` (the local function)
   writes the report.

The variants of a record keep its `_order` (their `_sub` orders them after it). What the driver holds: one pickled
tally per batch, the dropped variants' keys, five sample parents; never the records.
"""

from __future__ import annotations

import pickle
import time
from collections import Counter
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from swcdata.core.arrow import bools, strings, to_numpy
from swcdata.core.isolate import ChildCrashed
from swcdata.core.records import RECORD_COLUMNS, RECORD_SCHEMA, table_from_rows
from swcdata.engine.blocks import (
    BLOBS,
    ORDER,
    ROWS_PER_BLOCK,
    SHUFFLE,
    blob_table,
    broadcast,
    collect,
    first_of_runs,
    grouped,
    ints,
    mapped,
    materialized,
    partition_count,
    table_of,
    unpickled,
)
from swcdata.steps.augment import quality as augment_quality
from swcdata.steps.augment.step import (
    AugmentConfig,
    AugmentReport,
    SplitAugment,
    SplitWork,
    VariantMemo,
    _each_variants,
    _Out,
    _Tally,
    augment_report,
    count_variant,
    targets_warnings,
)

SUB = "_sub"
Q = "_q"
STATS = "_stats"
MEMO = ("_mkey", "_mval")  # on a record's row, with a VariantMemo in use: its key and what became of it
MEMO_ROWS = pa.schema([("_mkey", pa.binary()), ("_mval", pa.binary())])
# Rows of the duplicate-variant groupby: kind 0 = an input record (its id), 1 = a variant (its id and key)
IDS = pa.schema([("id", pa.string()), ("kind", pa.int8()), ("split", pa.int64()), (ORDER, pa.int64()),
                 (SUB, pa.int64()), ("_p", pa.int64())])
PARENTS = RECORD_SCHEMA.append(pa.field(ORDER, pa.int64()))
KEYS = pa.schema([("split", pa.int64()), (ORDER, pa.int64()), (SUB, pa.int64())])


class RayAugment(NamedTuple):
    """The result of `augment_on_ray`: every split as a Ray Dataset (the targeted ones with their variants after
    each record; columns: the record's, `_order` and `_sub`) and the local step's report (its timing this run's)."""

    splits: dict[str, Any]
    report: AugmentReport


def _generate(batch: pa.Table, cfg: AugmentConfig, memo: bool = False, known: Any = None) -> pa.Table:
    """The batch's records, each followed by its variants, and the batch's counts (see the module doc). `memo`: the
    run keeps augmentation by text (`VariantMemo`), `known` its memo (broadcast): a record it holds is not worked
    on again, and what became of each record goes back on its row (`MEMO`)."""
    rows = batch.select(list(RECORD_COLUMNS)).to_pylist()
    orders = ints(batch, ORDER).tolist()
    work, tally, by_finding = SplitWork(), _Tally(), Counter[str]()
    todo = [row for row in rows if row.get("parent_id") is None]
    vm = VariantMemo(cfg, broadcast(known) if known is not None else None) if memo else None
    results = vm.outcomes(todo, cfg) if vm is not None else ((b"", got) for got in _each_variants(todo, cfg))
    out: list[dict[str, Any]] = []
    order: list[int] = []
    sub: list[int] = []
    q: list[bytes | None] = []
    memo_cols: tuple[list[bytes | None], list[bytes | None]] = ([], [])
    for row, o in zip(rows, orders, strict=True):
        out.append(row)
        order.append(o)
        sub.append(0)
        q.append(None)
        got: _Out | ChildCrashed | None = None
        entry: tuple[bytes | None, bytes | None] = (None, None)
        if row.get("parent_id") is None:
            key, got = next(results)
            if vm is not None and not isinstance(got, ChildCrashed):
                entry = (key, vm.values[-1])
        memo_cols[0].append(entry[0])
        memo_cols[1].append(entry[1])
        variants = work.account(row, got, tally, by_finding)
        for k, v in enumerate(variants, 1):
            q.append(pickle.dumps(v.pop("_q")))
            out.append(v)
            order.append(o)
            sub.append(k)
            memo_cols[0].append(None)
            memo_cols[1].append(None)
    stats: list[bytes | None] = [None] * len(out)
    if out:
        stats[0] = pickle.dumps((work, tally, by_finding, vm.reused if vm is not None else 0))
    table = (table_from_rows(out).append_column(ORDER, pa.array(order, pa.int64()))
             .append_column(SUB, pa.array(sub, pa.int64())).append_column(Q, pa.array(q, pa.binary()))
             .append_column(STATS, pa.array(stats, pa.binary())))
    if memo:
        for name, values in zip(MEMO, memo_cols, strict=True):
            table = table.append_column(name, pa.array(values, pa.binary()))
    return table


def _memo_rows(batch: pa.Table) -> pa.Table:
    """The (key, value) of the batch's records that `_generate` kept for the memo, in order."""
    rows = batch.select(list(MEMO))
    return rows.filter(pc.is_valid(rows.column(MEMO[0]))).cast(MEMO_ROWS)


def _stats(batch: pa.Table) -> pa.Table:
    """The pickled counts that `_generate` puts on the first row of each batch, as BLOBS rows."""
    return pa.table({"blob": batch.column(STATS).filter(pc.is_valid(batch.column(STATS)))}, schema=BLOBS)


def _id_part(ids: pa.Array | pa.ChunkedArray, parts: int) -> np.ndarray:
    h = np.fromiter((xxhash.xxh3_64_intdigest(s.encode()) for s in ids.to_pylist()), dtype=np.uint64,
                    count=len(ids))
    return (h % np.uint64(parts)).astype(np.int64)


def _input_ids(batch: pa.Table, parts: int) -> pa.Table:
    n = batch.num_rows
    zero = np.zeros(n, np.int64)  # (an input record comes first among the rows of its id, whatever its key)
    return table_of(IDS, n, id=batch.column("id"), kind=np.zeros(n, np.int8), split=zero, _order=zero, _sub=zero,
                  _p=_id_part(batch.column("id"), parts))


def _variants_of(batch: pa.Table) -> pa.Table:
    """The batch's variants (`_sub` > 0), without the records they came from."""
    return batch.filter(pc.greater(batch.column(SUB), pa.array([0], pa.int64())[0]))


def _variant_ids(batch: pa.Table, split: int, parts: int) -> pa.Table:
    v = _variants_of(batch)
    n = v.num_rows
    return table_of(IDS, n, id=v.column("id"), kind=np.ones(n, np.int8), split=np.full(n, split, np.int64),
                  _order=v.column(ORDER), _sub=v.column(SUB), _p=_id_part(v.column("id"), parts))


def _dropped(group: pa.Table) -> pa.Table:
    """The variants of a partition that the local step drops: the id is an input record's, or an earlier
    variant's (in (split, `_order`, `_sub`) order)."""
    if group.num_rows == 0:
        return KEYS.empty_table()
    label = to_numpy(pc.dictionary_encode(group.column("id").combine_chunks()).indices).astype(np.int64)
    kind, split, order, sub = (ints(group, c) for c in ("kind", "split", ORDER, SUB))
    o = np.lexsort((sub, order, split, kind, label))
    first = first_of_runs(label[o])
    drop = (kind[o] == 1) & ~(first & (kind[o] == 1))
    sel = o[drop]
    return pa.Table.from_arrays([pa.array(split[sel]), pa.array(order[sel]), pa.array(sub[sel])], schema=KEYS)


def _key_strings(split: int | np.ndarray, order: pa.Array | pa.ChunkedArray | np.ndarray,
                 sub: pa.Array | pa.ChunkedArray | np.ndarray) -> pa.Array:
    """One string per (split, `_order`, `_sub`) key (for a hashed set lookup)."""
    n = len(order)
    sp = pa.array(np.broadcast_to(np.asarray(split, dtype=np.int64), (n,)), pa.int64()).cast(pa.string())
    return pc.binary_join_element_wise(sp, pa.array(order, pa.int64()).cast(pa.string()),
                                       pa.array(sub, pa.int64()).cast(pa.string()), strings([":"])[0])


def _drop_variants(batch: pa.Table, split: int, dropped: Any) -> pa.Table:
    """The batch without the dropped variants (`dropped`: their key strings, broadcast) and without the stats (nor
    the memo's columns)."""
    batch = batch.drop_columns([STATS, *(c for c in MEMO if c in batch.column_names)])
    gone = broadcast(dropped)
    if len(gone) == 0 or batch.num_rows == 0:
        return batch
    hit = pc.is_in(_key_strings(split, batch.column(ORDER), batch.column(SUB)), value_set=gone)
    return batch.filter(pc.invert(hit))


def _count_variants(batch: pa.Table, split: int, seed: int) -> pa.Table:
    """One row: the pickled (variants, tally by transform and template, quality tally) of the batch's variants;
    a sample's parent is named by its key (split, `_order`)."""
    v = _variants_of(batch)
    tally, quality = _Tally(), augment_quality.QualityTally(seed)
    rows = v.select(list(RECORD_COLUMNS)).to_pylist()
    for row, o, q in zip(rows, ints(v, ORDER).tolist(), v.column(Q).to_pylist(), strict=True):
        count_variant(row, tally)
        quality.add((split, o), row, augment_quality.VariantQuality.of(pickle.loads(q)))
    return blob_table((len(rows), tally, quality))


def _parents(batch: pa.Table, keys: Any) -> pa.Table:
    """The records (`_sub` 0) whose `_order` is in `keys` (broadcast)."""
    wanted = broadcast(keys)
    hit = pc.and_(pc.equal(batch.column(SUB), pa.array([0], pa.int64())[0]),
                  pc.is_in(batch.column(ORDER), value_set=pa.array(wanted, pa.int64())))
    return batch.filter(hit).select([*RECORD_COLUMNS, ORDER])


def augment_on_ray(splits: dict[str, Any], config: AugmentConfig | None = None, *,
                   rows_per_block: int = ROWS_PER_BLOCK, shuffle_strategy: str | None = SHUFFLE,
                   memo: VariantMemo | None = None) -> RayAugment:
    """Augment the targeted splits (Ray Datasets of records with `_order`, in `_order` order) as the local `augment`
    augments the same records: the same records and variants in the same order, and the same report. Raises
    ValueError when a targeted split is missing, as locally. `memo`: augmentation kept by text, as the local step
    takes it (its memo broadcast to the workers; what became of each record gathered here, in the local order)."""
    from swcdata.engine import require_ray

    ray = require_ray()
    cfg = config or AugmentConfig()
    t0 = time.perf_counter()
    warnings = targets_warnings(cfg, list(splits))
    sizes = {name: ds.count() for name, ds in splits.items()}
    generated: dict[str, Any] = {}
    known = ray.put(memo.known) if memo is not None and memo.known is not None else None
    for name, ds in splits.items():
        if name in cfg.splits and sizes[name]:
            generated[name] = materialized(mapped(ds, _generate, max(1, min(rows_per_block, 2_000)), cfg=cfg,
                                                  memo=memo is not None, known=known), shuffle_strategy)
            if memo is not None:
                rows = collect(ray, mapped(generated[name], _memo_rows), MEMO_ROWS)
                memo.extend(rows.column(MEMO[0]).to_pylist(), rows.column(MEMO[1]).to_pylist())
    # duplicate variants: a groupby on the id of every input record and every variant
    dropped: dict[int, pa.Array] = {}
    if generated:
        pos = {name: k for k, name in enumerate(splits)}
        n_ids = sum(sizes.values()) + sum(g.count() for g in generated.values())
        parts = partition_count(n_ids, rows_per_block)
        rows = [mapped(ds, _input_ids, None, parts=parts) for name, ds in splits.items() if sizes[name]]
        rows += [mapped(g, _variant_ids, None, split=pos[name], parts=parts) for name, g in generated.items()]
        keyed = rows[0].union(*rows[1:]) if len(rows) > 1 else rows[0]
        keys = collect(ray, grouped(keyed, _dropped, parts), KEYS)
        for k in np.unique(ints(keys, "split")).tolist():
            sel = keys.filter(bools(ints(keys, "split") == k))
            dropped[k] = _key_strings(k, sel.column(ORDER), sel.column(SUB))

    tally, by_finding = _Tally(), Counter[str]()
    quality = augment_quality.QualityTally(cfg.seed)
    out: dict[str, Any] = {}
    counts: dict[str, SplitAugment] = {}
    for k, (name, ds) in enumerate(splits.items()):
        if name not in cfg.splits:
            out[name] = ds
            counts[name] = SplitAugment(records_in=sizes[name], augmented=False, records_out=sizes[name])
            continue
        work = SplitWork()
        if name in generated:
            g = generated[name]
            for w, t, f, reused in unpickled(ray, mapped(g, _stats)):
                work.merge(w)
                tally.add(t)
                by_finding.update(f)
                if memo is not None:
                    memo.reused += reused
            gone = dropped.get(k, strings([]))
            work.dropped = len(gone)
            kept = mapped(g, _drop_variants, None, split=k, dropped=ray.put(gone))
            for added, t, qt in unpickled(ray, mapped(kept, _count_variants, None, split=k, seed=cfg.seed)):
                work.added += added
                tally.add(t)
                quality.merge(qt)
            out[name] = kept.drop_columns([Q])
        else:
            out[name] = ds
        counts[name] = work.summary(name, sizes[name], sizes[name] + work.added, cfg, warnings)
    # the parents of the quality samples
    parents: dict[Any, dict[str, Any]] = {}
    wanted: dict[int, list[int]] = {}
    for _, _, key, _ in quality.chosen():
        wanted.setdefault(key[0], []).append(key[1])
    names = list(splits)
    for k, orders in wanted.items():
        got = collect(ray, mapped(generated[names[k]], _parents, None, keys=ray.put(orders)), PARENTS)
        for row, o in zip(got.select(list(RECORD_COLUMNS)).to_pylist(), ints(got, ORDER).tolist(), strict=True):
            parents[(k, o)] = row
    report = augment_report(cfg, counts, tally, by_finding, quality.finish(parents), warnings, t0)
    return RayAugment(out, report)
