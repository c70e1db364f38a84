"""`dedup --against name@vN --engine ray`: the local `dedup_against` on Ray, with its results.

The version (`steps.against.Reference`: its ids, sources, signatures and LSH buckets, read on the driver from the
registry) is broadcast once; a map over the input matches each block's records against it (`steps.against.match`:
a function of a record and the reference only, so block by block gives the local result), and returns the removed
rows of the matched records with their `_order` (few: they are gathered on the driver). The other records go
through `dedup_on_ray`, and the two lists of removed records merge in input order as the Parquet file is written
(`merged_removed`: the cluster's list streams, the version's rows slot in between its blocks).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from swcdata.core.arrow import int64s
from swcdata.engine.blocks import ORDER, broadcast, collect, ints, mapped, without_orders
from swcdata.engine.dedup import RayDedup, dedup_on_ray
from swcdata.steps.against import Reference, match, merged_report, removed_rows
from swcdata.steps.dedup import REMOVED_SCHEMA, DedupConfig

MATCHED = pa.schema([pa.field(ORDER, pa.int64()), *REMOVED_SCHEMA])


def _matched(batch: pa.Table, cfg: DedupConfig, ref: Any) -> pa.Table:
    """The block's records that duplicate one of the broadcast reference's: their removed rows, with `_order`."""
    reference: Reference = broadcast(ref)
    hit = match(batch, cfg, reference)
    rows = removed_rows(batch, hit, reference)
    return rows.add_column(0, ORDER, batch.column(ORDER).take(int64s(hit.rows)))


class RayAgainst(NamedTuple):
    """`dedup_against_on_ray`'s result: the dedup of the records the version did not take (`dedup`, whose report is
    the report of all the input's records), and the version's removed rows with their `_order` (`matched`, on the
    driver, in input order)."""

    dedup: RayDedup
    matched: pa.Table


def dedup_against_on_ray(ds: Any, config: DedupConfig, ref: Reference) -> RayAgainst:
    """The local `dedup_against` of a Ray Dataset of valid records with `_order` (see the module's docstring)."""
    from swcdata.engine import require_ray

    ray = require_ray()
    t0 = time.perf_counter()
    n = ds.count()
    sign_cfg = config.model_copy(update={"workers": 1})
    matched = collect(ray, mapped(ds, _matched, None, cfg=sign_cfg, ref=ray.put(ref)), MATCHED)
    matched = matched.take(pc.sort_indices(matched, [(ORDER, "ascending")]))
    t_match = time.perf_counter() - t0
    gone = np.sort(ints(matched, ORDER))
    rest = mapped(ds, without_orders, None, removed=ray.put(gone)) if len(gone) else ds
    result = dedup_on_ray(rest, config)
    report = merged_report(result.report, n, matched.drop_columns([ORDER]), ref, t_match, t0)
    return RayAgainst(result._replace(report=report), matched)


def merged_removed(result: RayAgainst) -> Iterator[pa.Table]:
    """The removed rows of a `dedup_against_on_ray` in input order (REMOVED_SCHEMA), a block at a time: the
    cluster's rows as they stream, the version's matched rows slotted in by `_order`."""
    extra, done = result.matched, 0
    orders = ints(extra, ORDER)
    for batch in result.dedup.removed_ordered.iter_batches(batch_format="pyarrow", batch_size=None):
        if not batch.num_rows:
            continue
        upto = int(np.searchsorted(orders, int(pc.max(batch.column(ORDER)).as_py()), side="right"))
        both = pa.concat_tables([batch.select(MATCHED.names).cast(MATCHED), extra.slice(done, upto - done)])
        done = upto
        yield both.take(pc.sort_indices(both, [(ORDER, "ascending")])).drop_columns([ORDER])
    if done < extra.num_rows:
        yield extra.slice(done).drop_columns([ORDER])
