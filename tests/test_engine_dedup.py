"""The Ray engine's dedup (`swcdata.engine.dedup.dedup_on_ray`) gives exactly the local `dedup`'s results.

On the seed corpus, on a generated corpus of 20,000 records with planted near duplicates (swcdata.synthetic.corpus:
exact copies, near copies and consistently renamed variants of seed records) and on a slice of it, with the input
in Ray blocks of 1, 7 and 500 records, keep="first" and keep="longest", connected components on the driver and
(components_bound=0) on the cluster, the signatures read by the verification from the object store and
(sig_broadcast_bound=0) joined by shuffles, and an input whose blocks are not in `_order` order: the kept records equal
the local ones (in `_order` order), the removed and clusters tables are equal, and so are the report's summary
fields. One local Ray cluster serves the whole session (the `ray_cluster` fixture); each input is built once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from ray_inputs import file_line_order, generated, ray_input

from swcdata.steps.dedup import CLUSTERS_SCHEMA, REMOVED_SCHEMA, DedupConfig, dedup

# (Ray's own: its DataContext copies read deprecated settings when a dataset is materialized)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

SUMMARY = ("ledger", "clusters", "largest_clusters", "category_conflicts", "bands", "rows", "candidate_pairs",
           "verified_pairs", "split_off")


def _assert_same(ray: Any, table: pa.Table, ds: Any, cfg: DedupConfig, **kwargs: Any) -> Any:
    """dedup_on_ray(ds) against dedup(table): kept records, removed and clusters tables, report summary."""
    from swcdata.engine.dedup import dedup_on_ray

    kept, report = dedup(table, cfg)
    result = dedup_on_ray(ds, cfg, **kwargs)
    got = pa.concat_tables(ray.get(result.kept.to_arrow_refs()))
    order = got.column("_order").to_numpy()
    assert (np.diff(order) > 0).all(), "the kept records are not in _order order"
    assert got.drop_columns(["_order"]).equals(kept)
    for got_ds, want, schema in ((result.removed, report.removed_table, REMOVED_SCHEMA),
                                 (result.clusters, report.clusters_table, CLUSTERS_SCHEMA)):
        tables = [t for t in ray.get(got_ds.to_arrow_refs()) if t.num_rows]
        got_table = pa.concat_tables(tables) if tables else schema.empty_table()
        assert got_table.schema.equals(schema) and got_table.equals(want)
    for field in SUMMARY:
        assert getattr(result.report, field) == getattr(report, field), field
    assert result.report.ledger.adds_up
    return result


# (the signatures read from the object store or joined by shuffles; the components on the driver or the cluster)
ON_RAY = {"components_bound": 0}
SHUFFLED = {"sig_broadcast_bound": 0}


@pytest.mark.parametrize(("keep", "block", "extra"), [("first", 500, {}), ("longest", 7, {**ON_RAY, **SHUFFLED}),
                                                    ("none", 500, ON_RAY)])
def test_seed_corpus(ray_cluster: Any, seed_table: pa.Table, keep: str, block: int, extra: dict[str, int]) -> None:
    order = file_line_order(seed_table)
    cfg = DedupConfig(keep=keep)  # type: ignore[arg-type]
    result = _assert_same(ray_cluster, seed_table, ray_input(ray_cluster, seed_table, block, order), cfg,
                          rows_per_block=700, **extra)
    assert result.report.ledger.near_duplicates > 100 and result.report.category_conflicts > 0


@pytest.mark.parametrize(("keep", "block", "extra"), [("first", 7, SHUFFLED), ("longest", 500, ON_RAY)])
def test_generated_corpus(ray_cluster: Any, generated_table: pa.Table, keep: str, block: int,
                          extra: dict[str, int]) -> None:
    cfg = DedupConfig(keep=keep)  # type: ignore[arg-type]
    result = _assert_same(ray_cluster, generated_table, ray_input(ray_cluster, generated_table, block), cfg,
                          rows_per_block=4000, **extra)
    report = result.report
    assert report.ledger.exact_duplicates > 0 and report.ledger.near_duplicates > 10_000
    assert report.verified_pairs > 20_000 and report.clusters > 1000


def test_one_record_blocks(ray_cluster: Any, generated_table: pa.Table) -> None:
    """300 records, one per block; components on the cluster."""
    table = generated_table.slice(0, 300)
    ds = ray_input(ray_cluster, table, 1)
    assert ds.num_blocks() == 300
    result = _assert_same(ray_cluster, table, ds, DedupConfig(), rows_per_block=50, components_bound=0)
    assert result.report.ledger.near_duplicates > 0


def test_input_out_of_order(ray_cluster: Any, generated_table: pa.Table) -> None:
    """Blocks in no particular `_order` order: the kept records still come in `_order` order."""
    table = generated_table.slice(300, 600)
    perm = np.random.default_rng(0).permutation(table.num_rows)
    _assert_same(ray_cluster, table, ray_input(ray_cluster, table, 7, permutation=perm),
                 DedupConfig(keep="longest"), rows_per_block=100)


@pytest.mark.slow
def test_generated_corpus_200k(ray_cluster: Any, seed_dir: Path, tmp_path: Path) -> None:
    table = generated(seed_dir, tmp_path, 200_000)
    result = _assert_same(ray_cluster, table, ray_input(ray_cluster, table, 5000), DedupConfig(keep="longest"),
                          rows_per_block=50_000)
    assert result.report.ledger.near_duplicates > 100_000


def test_no_candidate_pairs_at_all(ray_cluster: Any, seed_table: pa.Table) -> None:
    """Records no LSH bucket pairs (the verification's groupby then has no rows): nothing is removed as a near
    duplicate, as locally."""
    table = seed_table.take(pa.array(np.arange(0, seed_table.num_rows, 97)[:6]))
    _, report = dedup(table, DedupConfig())
    assert report.candidate_pairs == 0  # (the premise)
    for extra in ({}, SHUFFLED):
        _assert_same(ray_cluster, table, ray_input(ray_cluster, table, 2), DedupConfig(), **extra)


def test_star_pairs_and_unique_pairs_against_sorting() -> None:
    """The LSH partition's star pairs (polars' window and unique) are those of the definition: in each (band,
    hash) bucket every member with the bucket's smallest key, each pair once, sorted; `unique_pairs` is the sorted
    distinct pairs. Random buckets of many sizes, hashes shared between bands."""
    from swcdata.engine.blocks import unique_pairs
    from swcdata.engine.dedup import _star_pairs

    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 50, 20_000):
        band = rng.integers(0, 4, n)
        h = rng.integers(0, max(1, n // 5), n).astype(np.uint64)  # (buckets of about five rows)
        key = rng.permutation(n * 3)[:n].astype(np.int64)
        want: set[tuple[int, int]] = set()
        buckets: dict[tuple[int, int], list[int]] = {}
        for b_, h_, k in zip(band.tolist(), h.tolist(), key.tolist(), strict=True):
            buckets.setdefault((b_, h_), []).append(k)
        for members in buckets.values():
            want |= {(min(members), k) for k in members if k != min(members)}
        group = pa.table({"band": pa.array(band, pa.int64()), "hash": pa.array(h, pa.uint64()),
                          "key": pa.array(key, pa.int64())})
        a, b = _star_pairs(group)
        assert list(zip(a.tolist(), b.tolist(), strict=True)) == sorted(want), n
        x, y = rng.integers(0, 6, 3 * n), rng.integers(0, 6, 3 * n)
        ua, ub = unique_pairs(x, y)
        assert list(zip(ua.tolist(), ub.tolist(), strict=True)) == sorted(set(zip(x.tolist(), y.tolist(),
                                                                              strict=True))), n
        assert ua.flags.writeable and ua.dtype == np.int64


@pytest.mark.parametrize("extra", [{}, ON_RAY, SHUFFLED])
def test_chain_guard_as_locally(ray_cluster: Any, tmp_path: Path, extra: dict[str, int]) -> None:
    """A chain X0 ~ X1 ~ X2 ~ X3 (~ X4, a pair LSH does not find), each the last with another 40 of 300 words
    replaced (neighbours share about 0.75 of their shingles, records two steps apart about 0.55), and an exact
    copy of X1: the guard splits X2 and X3 off X0's cluster into one of their own, kept by X2 (a second round:
    on the driver path, from the signatures fetched once), on Ray as locally (the guard on the driver, in the
    components' groupby on the cluster, and with the signatures joined by shuffles)."""
    import json
    import random

    from swcdata.steps.validate import ValidateConfig, load_valid

    rng = random.Random(5)
    vocab = [f"w{k}" for k in range(5000)]
    chain = [[rng.choice(vocab) for _ in range(300)]]
    for lo in (0, 260, 100, 180):
        chain.append(chain[-1][:lo] + [rng.choice(vocab) for _ in range(40)] + chain[-1][lo + 40:])
    path = tmp_path / "chain.jsonl"
    path.write_text("".join(json.dumps({"instruction": "Explain this.", "response": " ".join(t),
                                        "category": "SWC-107"}) + "\n" for t in (*chain, chain[1])))
    table, _, _ = load_valid([path], ValidateConfig(check_code=False))
    cfg = DedupConfig(num_perm=256)
    result = _assert_same(ray_cluster, table, ray_input(ray_cluster, table, 2), cfg, rows_per_block=2, **extra)
    assert result.report.split_off == 2 and result.report.ledger.kept == 3 and result.report.clusters == 2  # X0, X2
    assert [c.split_off for c in result.report.largest_clusters] == [2, 0]  # (X0's: 3 records; X2's: 2)
