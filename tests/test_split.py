"""split: no near-duplicate cluster crosses a split (proved by an independent pass), categories are
stratified, the split is deterministic, and a holdout decontaminates train and validation."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from datasketch import MinHash, MinHashLSH
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.similarity.tokens import token_stream
from swcdata.steps.audit import audit
from swcdata.steps.split import SplitConfig, assign_groups, split
from swcdata.steps.validate import ValidateConfig, load_valid

runner = CliRunner()
DATASET = Path(__file__).resolve().parents[1] / "dataset"


def _load(*paths: Path) -> pa.Table:
    table, _, _ = load_valid(list(paths), ValidateConfig(check_code=False))
    return table


@pytest.fixture(scope="module")
def seed_split(swc_files: list[Path]) -> tuple[dict[str, pa.Table], object]:
    return split(_load(*swc_files), SplitConfig(seed=7))


def _shingles(table: pa.Table) -> list[set[str]]:
    out = []
    for i, r in zip(table.column("instruction").to_pylist(), table.column("response").to_pylist(), strict=True):
        toks = [*token_stream(i), "\x00", *token_stream(r)]
        out.append({" ".join(toks[j : j + 5]) for j in range(max(len(toks) - 4, 1))})
    return out


def test_no_near_duplicate_crosses_splits_independent_check(seed_split: tuple[dict[str, pa.Table], object]) -> None:
    """An independent pass: datasketch LSH for candidates, then EXACT Jaccard of the shingle sets."""
    splits, _ = seed_split
    lsh = MinHashLSH(threshold=0.6, num_perm=128)
    sets: dict[str, set[str]] = {}
    for name, table in splits.items():
        for k, sh in enumerate(_shingles(table)):
            m = MinHash(num_perm=128)
            m.update_batch([s.encode() for s in sh])
            key = f"{name}:{k}"
            sets[key] = sh
            lsh.insert(key, m)
    leaks = []
    for key, sh in sets.items():
        m = MinHash(num_perm=128)
        m.update_batch([s.encode() for s in sh])
        for other in lsh.query(m):
            if other.split(":")[0] != key.split(":")[0] and key < other:
                j = len(sh & sets[other]) / len(sh | sets[other])
                if j >= 0.75:
                    leaks.append((key, other, round(j, 3)))
    assert leaks == []


def test_audit_between_splits_finds_nothing(seed_split: tuple[dict[str, pa.Table], object]) -> None:
    splits, _ = seed_split
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        s = audit(splits[a], splits[b]).summary
        assert (s.exact, s.near) == (0, 0), (a, b, s)
    ids = [set(t.column("id").to_pylist()) for t in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_stratified_within_two_points(seed_split: tuple[dict[str, pa.Table], object], swc_files: list[Path]) -> None:
    splits, rep = seed_split
    assert rep.within_tolerance  # type: ignore[attr-defined]
    total = sum(t.num_rows for t in splits.values())
    assert total == 4998 and rep.adds_up  # type: ignore[attr-defined]
    for name, target in zip(("train", "validation", "test"), (0.8, 0.1, 0.1), strict=True):
        cats = splits[name].column("category").to_pylist()
        for c in set(cats):
            n_c = sum(t.column("category").to_pylist().count(c) for t in splits.values())
            assert abs(cats.count(c) / n_c - target) <= 0.02


def test_deterministic_for_a_seed(swc_files: list[Path]) -> None:
    t = _load(swc_files[0])
    a, _ = split(t, SplitConfig(seed=1))
    b, _ = split(t, SplitConfig(seed=1))
    c, _ = split(t, SplitConfig(seed=2))
    assert all(a[k].equals(b[k]) for k in a)
    assert not all(a[k].equals(c[k]) for k in a)


def test_groups_never_straddle() -> None:
    import numpy as np

    groups = np.array([0, 0, 0, 1, 2, 2, 3, 4, 5, 6])
    which = assign_groups(groups, ["A"] * 10, [f"id{i}" for i in range(10)], (0.8, 0.1, 0.1), 0, True)
    for g in set(groups.tolist()):
        assert len(set(which[groups == g].tolist())) == 1


def test_holdout_decontaminates(swc_files: list[Path], seed_test_file: Path) -> None:
    pool = _load(*swc_files)
    hold = _load(seed_test_file)
    splits, rep = split(pool, SplitConfig(), holdout=hold)
    # the seed's test file holds one record twice (same normalised text): the test split keeps one copy
    assert splits["test"].num_rows == 999 and len(rep.holdout_duplicates) == 1
    assert rep.holdout_duplicates[0].id in set(splits["test"].column("id").to_pylist())
    assert len(rep.decontaminated) >= 1000  # the evaluation file was drawn from this pool
    assert rep.adds_up
    for a in ("train", "validation"):
        s = audit(hold, splits[a]).summary
        assert (s.exact, s.near) == (0, 0)
    d = rep.decontaminated[0]
    assert d.matches.source.file.endswith("test_data.jsonl")


def test_cli_split(tmp_path: Path) -> None:
    r = runner.invoke(app, ["split", str(DATASET), "--out", str(tmp_path / "s"), "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    sizes = {p.stem: len(p.read_text().splitlines()) for p in (tmp_path / "s").glob("*.jsonl")}
    assert sizes == {"train": 84, "validation": 10, "test": 10}
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["within_tolerance"] is True
    bad = runner.invoke(app, ["split", str(DATASET), "--out", str(tmp_path / "x"), "--ratios", "0.9,0.2,0.1"])
    assert bad.exit_code == 2 and "sum to 1" in bad.output


def test_editing_one_record_keeps_every_other_record_in_its_split(tmp_path: Path) -> None:
    lines = (DATASET / "swc_sample.jsonl").read_text().splitlines()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(lines) + "\n")
    edited = json.loads(lines[4])
    edited["response"] += " (Edited: see also SWC registry guidance.)"
    b.write_text("\n".join([*lines[:4], json.dumps(edited), *lines[5:]]) + "\n")
    where = []
    for path in (a, b):
        splits, _ = split(_load(path))
        where.append({(s["line"]): name for name, t in splits.items() for s in t.column("source").to_pylist()})
    moved = [line for line in where[0] if line != 5 and where[0][line] != where[1][line]]
    assert len(moved) <= 1, moved  # at most one neighbour at a cut moves
