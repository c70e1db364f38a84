"""The Ray engine's split (`swcdata.engine.split.split_on_ray`) gives exactly the local `split`'s splits.

On the seed corpus and on a generated corpus of 20,000 records with planted near duplicates, with the input in
Ray blocks of 1, 7 and 500 records, stratified and not, connected components on the driver and (components_bound=0)
on the cluster, and an input whose blocks are not in `_order` order: every split holds the local split's records in
the local order, and the report is the local report (its timing aside).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from ray_inputs import collected, file_line_order, ray_input

from swcdata.steps.split import SPLITS, SplitConfig, split

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def _assert_same(ray: Any, table: pa.Table, ds: Any, cfg: SplitConfig, **kwargs: Any) -> Any:
    from swcdata.engine.split import split_on_ray

    splits, report = split(table, cfg)
    result = split_on_ray(ds, cfg, **kwargs)
    assert list(result.splits) == list(SPLITS)
    for name in SPLITS:
        got = collected(ray, result.splits[name])
        if splits[name].num_rows == 0:
            assert got is None or got.num_rows == 0, name
            continue
        order = got.column("_order").to_numpy()
        assert (np.diff(order) > 0).all(), f"{name} is not in _order order"
        assert got.drop_columns(["_order"]).equals(splits[name]), name
    assert result.report.model_dump(exclude={"seconds"}) == report.model_dump(exclude={"seconds"})
    assert result.report.adds_up
    return result


@pytest.mark.parametrize(("block", "bound", "stratify"), [(500, None, "category"), (7, 0, "none")])
def test_seed_corpus(ray_cluster: Any, seed_table: pa.Table, block: int, bound: int | None, stratify: str) -> None:
    cfg = SplitConfig(seed=3, stratify=stratify)  # type: ignore[arg-type]
    extra = {} if bound is None else {"components_bound": bound}
    result = _assert_same(ray_cluster, seed_table, ray_input(ray_cluster, seed_table, block,
                                                             file_line_order(seed_table)), cfg, rows_per_block=700,
                          **extra)
    assert result.report.multi_record_groups > 100 and result.report.code_groups > 0


def test_generated_corpus(ray_cluster: Any, generated_table: pa.Table) -> None:
    result = _assert_same(ray_cluster, generated_table, ray_input(ray_cluster, generated_table, 500),
                          SplitConfig(ratios=(0.7, 0.2, 0.1)), rows_per_block=4000)
    assert result.report.largest_group > 5 and result.report.multi_record_groups > 1000


def test_one_record_blocks_out_of_order(ray_cluster: Any, generated_table: pa.Table) -> None:
    """300 records, one per block, in no particular `_order` order; components on the cluster."""
    table = generated_table.slice(0, 300)
    perm = np.random.default_rng(1).permutation(table.num_rows)
    ds = ray_input(ray_cluster, table, 1, permutation=perm)
    assert ds.num_blocks() == 300
    result = _assert_same(ray_cluster, table, ds, SplitConfig(), rows_per_block=50, components_bound=0)
    assert result.report.multi_record_groups > 0


def test_a_holdout_is_refused_with_the_way_to_run_it(ray_cluster: Any, seed_table: pa.Table) -> None:
    from swcdata.core.errors import InputError
    from swcdata.engine.split import split_on_ray

    with pytest.raises(InputError, match="holdout") as e:
        split_on_ray(ray_input(ray_cluster, seed_table.slice(0, 10), 5), SplitConfig(), seed_table.slice(10, 5))
    assert "--engine local" in (e.value.hint or "")
