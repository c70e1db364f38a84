"""The Ray engine's augmentation (`swcdata.engine.augment.augment_on_ray`) gives exactly the local `augment`'s
records and report.

The splits are seed records with what the local step must handle: exact copies in train (their variants are
dropped as duplicates of the first copy's), a variant of a train record placed in validation (an input id: the
same variant made from train is dropped; in validation it carries lineage and is not augmented again), the
evaluation split targeted (its warning), and one split left alone. Blocks of 1, 7 and 500 records.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from ray_inputs import collected, ray_input

from swcdata.steps.augment.step import AugmentConfig, augment

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@pytest.fixture(scope="module")
def splits(seed_table: pa.Table) -> dict[str, pa.Table]:
    train = seed_table.take(pa.array(range(0, 4800, 20)))  # 240 records of every class
    train = pa.concat_tables([train, train.slice(0, 3)])  # exact copies
    out, _ = augment({"train": train.slice(0, 10)}, AugmentConfig(factor=2, seed=0))
    variant = out["train"].filter(pa.compute.is_valid(out["train"].column("parent_id"))).slice(0, 1)
    assert variant.num_rows == 1
    validation = pa.concat_tables([seed_table.slice(4850, 30), variant])
    return {"train": train, "validation": validation, "test": seed_table.slice(4900, 20)}


def _assert_same(ray: Any, splits: dict[str, pa.Table], cfg: AugmentConfig, block: int) -> Any:
    from swcdata.engine.augment import augment_on_ray

    local, report = augment(splits, cfg)
    result = augment_on_ray({k: ray_input(ray, t, block) for k, t in splits.items()}, cfg, rows_per_block=block * 3)
    assert list(result.splits) == list(local)
    for name, table in local.items():
        got = collected(ray, result.splits[name])
        assert got.drop_columns([c for c in got.column_names if c.startswith("_")]).equals(table), name
    assert result.report.model_dump(exclude={"seconds"}) == report.model_dump(exclude={"seconds"})
    return result


@pytest.mark.parametrize("block", [7, 500])
def test_equals_local(ray_cluster: Any, splits: dict[str, pa.Table], block: int) -> None:
    cfg = AugmentConfig(factor=2, seed=1, splits=["train", "validation"], allow_eval_splits=True)
    result = _assert_same(ray_cluster, splits, cfg, block)
    rep = result.report
    assert rep.duplicates_dropped >= 4 and rep.splits["validation"].records_out > 31
    assert any("lineage" in w for w in rep.warnings) and any("evaluation split" in w for w in rep.warnings)
    assert rep.quality.samples and rep.splits["test"].augmented is False


def test_one_record_blocks(ray_cluster: Any, splits: dict[str, pa.Table]) -> None:
    small = {"train": splits["train"].slice(0, 40), "test": splits["test"]}
    _assert_same(ray_cluster, small, AugmentConfig(factor=3, seed=0, templates=False), 1)


@pytest.mark.slow
def test_generated_train_split_20k(ray_cluster: Any, generated_table: pa.Table) -> None:
    """The generated corpus's 20,000 records as a train split (many near copies: many duplicate variants)."""
    rep = _assert_same(ray_cluster, {"train": generated_table}, AugmentConfig(factor=2, seed=3), 2000).report
    assert rep.duplicates_dropped > 0 and rep.splits["train"].variants_added > 10_000
