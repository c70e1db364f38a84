"""The Ray engine's split (`swcdata.engine.split.split_on_ray`) gives exactly the local `split`'s splits.

On the seed corpus and on a generated corpus of 20,000 records with planted near duplicates, with the input in
Ray blocks of 1, 7 and 500 records, stratified and not, connected components on the driver and (components_bound=0)
on the cluster, an input whose blocks are not in `_order` order, and against a holdout set (the seed test file;
generated records whose copies are in the corpus, with the n-gram rule): every split holds the local
split's records in the local order, and the report is the local report (its timing aside).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from ray_inputs import collected, file_line_order, ray_input

from swcdata.steps.split import SPLITS, SplitConfig, split
from swcdata.steps.validate import ValidateConfig, load_valid

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def _assert_same(ray: Any, table: pa.Table, ds: Any, cfg: SplitConfig, holdout: pa.Table | None = None,
                 **kwargs: Any) -> Any:
    from swcdata.engine.split import split_on_ray

    splits, report = split(table, cfg, holdout)
    result = split_on_ray(ds, cfg, holdout, **kwargs)
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


@pytest.fixture(scope="module")
def test_table(seed_test_file: Path) -> pa.Table:
    return load_valid([seed_test_file], ValidateConfig(check_code=False))[0]


def test_seed_corpus_against_its_test_file(ray_cluster: Any, seed_table: pa.Table, test_table: pa.Table) -> None:
    """The seed test file as the holdout: its copies in the corpus are removed (decontaminated), it is the test
    split."""
    cfg = SplitConfig(seed=1)
    result = _assert_same(ray_cluster, seed_table, ray_input(ray_cluster, seed_table, 500,
                                                             file_line_order(seed_table)), cfg, test_table,
                          rows_per_block=1000)
    assert len(result.report.decontaminated) >= 1000 and result.report.holdout_records > 0


def test_generated_corpus_against_a_holdout_of_its_own(ray_cluster: Any, generated_table: pa.Table) -> None:
    """A holdout of generated records whose near copies and renamed variants are in the corpus (blocks of 7), every
    rule counting (the n-gram rule too; the seed case above has the default rules)."""
    holdout, corpus = generated_table.slice(0, 300), generated_table.slice(300, 3000)
    cfg = SplitConfig(leak_rules=["exact", "near", "code", "ngram"])
    result = _assert_same(ray_cluster, corpus, ray_input(ray_cluster, corpus, 7), cfg, holdout, rows_per_block=400)
    kinds = {d.kind for d in result.report.decontaminated}
    assert {"exact", "near"} <= kinds or {"near", "code"} <= kinds, kinds


@pytest.mark.slow
def test_generated_corpus_200k(ray_cluster: Any, seed_dir: Path, tmp_path: Path) -> None:
    from ray_inputs import generated

    table = generated(seed_dir, tmp_path, 200_000)
    result = _assert_same(ray_cluster, table, ray_input(ray_cluster, table, 5000), SplitConfig(),
                          rows_per_block=50_000)
    assert result.report.multi_record_groups > 1000
