"""Near-duplicates planted into real seed records are found at the default dedup settings (issue 3).

Uses the planting of ``swcdata.synthetic.planted`` (with which ``bench/dedup_curve.py`` chose the defaults)
on a small sample: 300 base records, 100 variants (identifiers renamed, code reflowed, lead phrase reworded, a comment
line added) and 50 hard negatives (same prose, different code).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swcdata.steps.dedup import DedupConfig
from swcdata.synthetic.planted import TARGET_PRECISION, TARGET_RECALL, Planted, base_pool, plant, score

SEED_DIR = Path(__file__).resolve().parents[2] / "shared" / "seed-data"


@pytest.fixture(scope="module")
def planted() -> Planted:
    if not SEED_DIR.is_dir():
        pytest.skip(f"../shared/seed-data not present: planted-duplicate test needs the seed corpus at {SEED_DIR}")
    return plant(base_pool(SEED_DIR), n_base=300, n_plant=100, n_hard=50, seed=0)


def test_planting_is_complete(planted: Planted) -> None:
    assert len(planted.variants) == 100
    assert len(planted.hard) == 50
    assert planted.table.num_rows == 450
    bases = [b for b, _ in planted.variants] + [a for a, _ in planted.hard]
    assert len(set(bases)) == len(bases)  # every planted record has its own base record


def test_planting_is_deterministic(planted: Planted) -> None:
    again = plant(base_pool(SEED_DIR), n_base=300, n_plant=100, n_hard=50, seed=0)
    assert again.table.column("id").to_pylist() == planted.table.column("id").to_pylist()


def test_defaults_meet_the_target_on_planted_pairs(planted: Planted) -> None:
    s = score(planted, DedupConfig())
    assert s.recall >= TARGET_RECALL, f"recall {s.recall:.3f} ({s.true_positives}/{len(planted.variants)})"
    assert s.precision >= TARGET_PRECISION, f"precision {s.precision:.3f} ({s.true_positives}/{s.predicted})"
    assert s.hard_merged == 0, f"{s.hard_merged} hard negatives merged"
