"""`split_on_ray`: leak-free train / validation / test splits on Ray Data, with exactly the local engine's splits.

The input is a Ray Dataset of valid records with an `_order` column (as `swcdata.engine.dedup`). The stages:

1. grouping (the distributed part, `cluster_on_ray`): exact groups by id, then near-duplicate clusters with the
   local `split`'s settings: every pair of each LSH bucket (`all_pairs`), the config's banding and the more
   sensitive one of threshold 0.5, verified at `group_threshold`; connected components on the driver or the
   cluster as in dedup;
2. the code rule: each record's code (`record_code`: span extraction and lexing, the costly part) is a map over the
   input; the records that quote code long enough to match come back to the driver as their code tokens, where
   the local `join_code_groups` joins the groups whose code matches;
3. assignment on the driver: the local `assign_groups` over the narrow columns of every record (id, category,
   group: no texts), so the strata, the seeded order and the cuts are the local ones by construction;
4. the splits: a map tags each record with its split (the driver's assignment broadcast as two arrays), and each
   split is a filter of the tagged records, in `_order` order.

What the driver holds: the ids and categories of every record (Arrow, about 60 bytes a record) and three int64s
a record for the assignment; the code tokens of the records that quote code (Python lists, as the local step
holds them); the near-duplicate stage's bounds (see `swcdata.engine.dedup`).

With a holdout set (a table on the driver: an existing test set, the small side), the records are first audited
against it (`swcdata.engine.audit.leaks_on_ray`: the holdout broadcast, the records scanned by maps), the leaked
ones removed by a map, and the holdout becomes the test split, as locally.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from swcdata.core.arrow import bools
from swcdata.engine.blocks import (
    ORDER,
    ROWS_PER_BLOCK,
    SHUFFLE,
    broadcast,
    collect,
    ints,
    lookup_sorted,
    mapped,
    materialized,
    sorted_on,
    without_orders,
)
from swcdata.engine.components import COMPONENTS_BOUND
from swcdata.engine.dedup import cluster_on_ray
from swcdata.similarity import minhash
from swcdata.similarity.codematch import RecordCode, record_code
from swcdata.steps.split import (
    SPLITS,
    SplitConfig,
    SplitReport,
    assign_groups,
    decontaminations,
    holdout_audit_config,
    holdout_test,
    join_code_groups,
    split_report,
)

CODE = pa.schema([(ORDER, pa.int64()), ("spans", pa.list_(pa.list_(pa.string())))])
NARROW = pa.schema([(ORDER, pa.int64()), ("id", pa.string()), ("category", pa.string())])
SPLIT = "_split"


class RaySplit(NamedTuple):
    """The result of `split_on_ray`: each split (train, validation, test) as a Ray Dataset in `_order` order with
    the input's columns, and the local step's report (its timing this run's)."""

    splits: dict[str, Any]
    report: SplitReport


def _code_rows(batch: pa.Table, cfg: SplitConfig) -> pa.Table:
    """The code tokens (spans of tokens) of the records of a batch that quote code of at least `min_tokens`
    tokens (the only ones the code rule can match)."""
    codes = record_code(batch.column("instruction").to_pylist(), cfg.code)
    keep = [i for i, rc in enumerate(codes) if rc.needles(cfg.code.min_tokens)]
    order = ints(batch, ORDER)[keep] if keep else np.zeros(0, np.int64)
    return pa.Table.from_arrays([pa.array(order, pa.int64()),
                                 pa.array([codes[i].spans for i in keep], CODE.field("spans").type)], schema=CODE)


MEMBER_GROUPS = pa.schema([(ORDER, pa.int64()), ("_final", pa.int64())])


def _member_groups(batch: pa.Table) -> pa.Table:
    """A record in a cluster of more than one record, and its cluster (its kept record's `_order`)."""
    return batch.select([ORDER, "_final"])


def _narrow(batch: pa.Table) -> pa.Table:
    return batch.select([ORDER, "id", "category"])


def _tag(batch: pa.Table, table: Any) -> pa.Table:
    """The batch with each record's split (`table`: the sorted `_order`s and their split, broadcast)."""
    orders, which = broadcast(table)
    pos, hit = lookup_sorted(orders, ints(batch, ORDER))
    if not hit.all():
        raise AssertionError("a record has no split")
    return batch.append_column(SPLIT, pa.array(which[pos], pa.int8()))


def _only(batch: pa.Table, k: int) -> pa.Table:
    """The records of split k, without the tag."""
    keep = _split_of(batch) == k
    return batch.filter(bools(keep)).drop_columns([SPLIT])


def _split_of(batch: pa.Table) -> np.ndarray:
    return np.asarray(batch.column(SPLIT).to_numpy(), dtype=np.int8) if batch.num_rows else np.zeros(0, np.int8)


def split_on_ray(ds: Any, config: SplitConfig | None = None, holdout: pa.Table | None = None, *,
                 rows_per_block: int = ROWS_PER_BLOCK, components_bound: int = COMPONENTS_BOUND,
                 shuffle_strategy: str | None = SHUFFLE) -> RaySplit:
    """Split a Ray Dataset of valid records with an `_order` column as the local `split` splits the same records
    in `_order` order: the same records in each split, in the same order, and the same report. The keyword
    options are `dedup_on_ray`'s."""
    from swcdata.engine import require_ray
    from swcdata.engine.audit import leaks_on_ray

    ray = require_ray()
    cfg = config or SplitConfig()
    t0 = time.perf_counter()
    ratios = cfg.ratios
    decontaminated: list[Any] = []
    label_conflicts: list[Any] = []
    if holdout is not None:
        # decontamination: the corpus (the large side) audited against the holdout set (broadcast)
        acfg = holdout_audit_config(cfg)
        leaks = leaks_on_ray(holdout, ds, acfg, rows_per_block=rows_per_block)
        decontaminated = decontaminations(leaks.leaked, acfg)
        label_conflicts = leaks.label_conflicts
        if len(leaks.orders):
            ds = mapped(ds, without_orders, rows_per_block, removed=ray.put(leaks.orders)).materialize()
        ratios = (ratios[0] / (ratios[0] + ratios[1]), ratios[1] / (ratios[0] + ratios[1]), 0.0)
    sensitive = minhash.lsh_params(0.5, cfg.near.num_perm)  # (the local split's second banding)
    c = cluster_on_ray(ray, ds, cfg.near, all_pairs=True, verify_threshold=cfg.group_threshold,
                       extra_bandings=[sensitive], rows_per_block=rows_per_block, components_bound=components_bound,
                       shuffle_strategy=shuffle_strategy)
    n = c.records
    narrow = collect(ray, mapped(c.exact, _narrow), NARROW)
    narrow = narrow.take(pc.sort_indices(narrow.column(ORDER)))
    orders = ints(narrow, ORDER)
    groups = np.arange(n, dtype=np.int64)
    m = collect(ray, mapped(c.members, _member_groups), MEMBER_GROUPS)
    if m.num_rows:
        groups[np.searchsorted(orders, ints(m, ORDER))] = np.searchsorted(orders, ints(m, "_final"))

    code_groups = 0
    if cfg.counts("code") and n:
        code = collect(ray, mapped(ds, _code_rows, rows_per_block, cfg=cfg), CODE)
        code = code.take(pc.sort_indices(code.column(ORDER)))
        codes = [RecordCode(spans) for spans in code.column("spans").to_pylist()]
        groups, code_groups = join_code_groups(groups, codes, np.searchsorted(orders, ints(code, ORDER)), cfg)

    which = assign_groups(groups, narrow.column("category"), narrow.column("id"), ratios, cfg.seed,
                          cfg.stratify == "category")
    splits: dict[str, Any] = {}
    if n:
        tagged = materialized(mapped(ds, _tag, rows_per_block, table=ray.put((orders, which.astype(np.int8)))),
                              shuffle_strategy)
        for k, name in enumerate(SPLITS):
            part = mapped(tagged, _only, None, k=k)
            splits[name] = part if c.in_order else sorted_on(part, ORDER, shuffle_strategy)
    else:
        splits = {name: ds for name in SPLITS}
    sizes = {name: int((which == k).sum()) for k, name in enumerate(SPLITS)}
    holdout_duplicates: list[Any] = []
    if holdout is not None:  # the holdout set is the test split
        test, holdout_duplicates = holdout_test(holdout)
        splits["test"] = ray.data.from_arrow(test.append_column(ORDER, pa.array(np.arange(test.num_rows),
                                                                                pa.int64())))
        sizes["test"] = test.num_rows
    report = split_report(cfg, ratios, sizes, narrow.column("category"), which, groups,
                          decontaminated=decontaminated, label_conflicts=label_conflicts, code_groups=code_groups,
                          holdout_records=sizes["test"] if holdout is not None else 0,
                          holdout_duplicates=holdout_duplicates, started=t0)
    return RaySplit(splits, report)
