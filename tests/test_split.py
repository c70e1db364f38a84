"""split: no near-duplicate cluster crosses a split (proved by an independent pass), categories are
stratified, the split is deterministic, and a holdout decontaminates train and validation."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xxhash
from datasketch import MinHash, MinHashLSH
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.similarity.tokens import token_stream
from swcdata.steps import split as split_module
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


# --- assign_groups against the row-by-row version it replaced (dict of lists, Counter, a sort per stratum) ---


def _reference_order_key(seed: int, rep_id: str) -> int:
    return xxhash.xxh3_64_intdigest(f"{seed}:{rep_id}".encode())


def reference_assign_groups(group_of: np.ndarray, categories: list[str], ids: list[str], ratios: tuple[float, ...],
                            seed: int, stratify: bool,
                            order_key: Callable[[int, str], int] = _reference_order_key) -> np.ndarray:
    """`assign_groups` as it was written before issue 21 (commit b668e44), kept here as the reference."""
    n = len(group_of)
    out = np.full(n, -1, dtype=np.int64)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(group_of.tolist()):
        members[g].append(i)
    strata: dict[str, list[int]] = defaultdict(list)
    for g, mem in members.items():
        cats = Counter(categories[i] for i in mem)
        top = min(cats.items(), key=lambda kv: (-kv[1], kv[0]))[0] if stratify else "*"
        strata[top].append(g)
    r = np.asarray(ratios, dtype=float)
    for stratum in sorted(strata):
        groups = strata[stratum]
        key = {g: min(ids[i] for i in members[g]) for g in groups}
        groups.sort(key=lambda g: (order_key(seed, key[g]), key[g]))
        target = r * sum(len(members[g]) for g in groups)
        counts = np.zeros(len(r))
        for g in sorted((g for g in groups if len(members[g]) > 1), key=lambda g: -len(members[g])):
            k = int(np.argmax(np.where(r > 0, target - counts - len(members[g]), -np.inf)))
            counts[k] += len(members[g])
            out[members[g]] = k
        singles = [g for g in groups if len(members[g]) == 1]
        need = np.maximum(target - counts, 0)
        cuts = np.cumsum(need) / need.sum() if need.sum() > 0 else np.cumsum(r)
        for pos, g in enumerate(singles):
            k = min(int(np.searchsorted(cuts, (pos + 0.5) / len(singles), side="right")), len(r) - 1)
            while r[k] <= 0:
                k -= 1
            out[members[g]] = k
    return out


def test_assign_groups_identical_on_the_seed_data(swc_files: list[Path], seed_test_file: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call split() makes on the seed data (its real groups: near-duplicate clusters and shared code),
    stratified or not, with and without a holdout (a zero test share), gives the reference's split indices."""
    calls: list[bool] = []
    new = split_module.assign_groups

    def both(group_of, categories, ids, ratios, seed, stratify):  # type: ignore[no-untyped-def]
        got = new(group_of, categories, ids, ratios, seed, stratify)
        want = reference_assign_groups(group_of, categories.to_pylist(), ids.to_pylist(), ratios, seed, stratify)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        calls.append(bool(len(np.unique(group_of)) < len(group_of)))
        return got

    monkeypatch.setattr(split_module, "assign_groups", both)
    pool = _load(*swc_files)
    for cfg in (SplitConfig(ratios=(0.6, 0.3, 0.1)), SplitConfig(seed=7, stratify="none")):
        splits, rep = split(pool, cfg)
        assert rep.adds_up
        for c in rep.categories:  # the per-category counts, recounted from the split tables
            assert c.counts == {k: t.column("category").to_pylist().count(c.category) for k, t in splits.items()}
    split(pool, SplitConfig(seed=11), holdout=_load(seed_test_file))
    assert len(calls) == 3 and all(calls)  # (the seed data has groups of several records)


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, list[str], list[str]]:
    n = int(rng.choice([1, 2, 3, 5, 17, 60, 250]))
    shape = rng.integers(4)
    if shape == 0:  # all single records
        groups = rng.permutation(n)
    elif shape == 1:  # a few large groups
        groups = rng.integers(0, max(1, n // 10), n)
    elif shape == 2:  # mixed, with arbitrary labels (negative, large, not dense)
        groups = rng.choice(rng.integers(-(2**40), 2**40, max(1, n // 2)), n)
    else:  # one group
        groups = np.zeros(n, dtype=np.int64)
    names = ["SWC-101", "SWC-107", "b", "B", "é", "SWC-110", "z", "zz"][: int(rng.integers(1, 9))]
    if rng.random() < 0.3:  # a category per record: many single-record strata
        cats = [f"c{int(x)}" for x in rng.integers(0, n, n)]
    else:
        cats = [str(x) for x in rng.choice(names, n)]
    pool = [f"{int(x):016x}" for x in rng.integers(0, 2**63, n)]
    if rng.random() < 0.3:  # repeated ids: two groups with the same smallest id tie on (hash, id)
        pool = [str(x) for x in rng.choice(pool[: max(1, n // 4)], n)]
    return groups.astype(np.int64), cats, pool


RATIOS = ((0.8, 0.1, 0.1), (0.5, 0.5, 0.0), (0.7, 0.0, 0.3), (1.0, 0.0, 0.0), (0.34, 0.33, 0.33), (0.9, 0.1))


def test_assign_groups_identical_on_random_group_structures() -> None:
    rng = np.random.default_rng(21)
    for case in range(400):
        groups, cats, ids = _random_case(rng)
        ratios = RATIOS[case % len(RATIOS)]
        for stratify in (True, False):
            want = reference_assign_groups(groups, cats, ids, ratios, case, stratify)
            got = assign_groups(groups, cats, ids, ratios, case, stratify)
            assert np.array_equal(got, want), (case, stratify)
            arrow = assign_groups(groups, pa.chunked_array([cats[:3], cats[3:]], pa.string()), pa.array(ids), ratios,
                                  case, stratify)
            assert np.array_equal(arrow, want), (case, stratify)


def test_assign_groups_identical_when_the_seeded_hashes_tie(monkeypatch: pytest.MonkeyPatch) -> None:
    """A coarse hash (three values) makes most groups tie on it: the order then falls to the smallest id and,
    for equal ids, to the group's first appearance, as the reference's stable sort has it."""

    def coarse(seed: int, rep_id: str) -> int:
        return _reference_order_key(seed, rep_id) % 3

    def coarse_keys(seed: int, keys: pa.Array) -> np.ndarray:
        return np.array([coarse(seed, k) for k in keys.to_pylist()], dtype=np.uint64)

    monkeypatch.setattr(split_module, "_order_keys", coarse_keys)
    rng = np.random.default_rng(7)
    for case in range(300):
        groups, cats, ids = _random_case(rng)
        ratios = RATIOS[case % len(RATIOS)]
        for stratify in (True, False):
            want = reference_assign_groups(groups, cats, ids, ratios, case, stratify, order_key=coarse)
            assert np.array_equal(assign_groups(groups, cats, ids, ratios, case, stratify), want), (case, stratify)


def test_assign_groups_edge_cases() -> None:
    empty = assign_groups(np.zeros(0, dtype=np.int64), [], [], (0.8, 0.1, 0.1), 0, True)
    assert empty.dtype == np.int64 and len(empty) == 0
    # a category that is never a stratum (only ever the minority inside a group), and single-record strata
    groups = np.array([0, 0, 0, 1, 2, 3])
    cats = ["A", "A", "B", "C", "D", "A"]
    ids = ["5", "4", "3", "2", "1", "0"]
    for ratios in RATIOS:
        for stratify in (True, False):
            want = reference_assign_groups(groups, cats, ids, ratios, 1, stratify)
            assert np.array_equal(assign_groups(groups, cats, ids, ratios, 1, stratify), want)
    # the order key is the documented one
    assert split_module._order_keys(9, pa.array(["ab", "é"])).tolist() == [
        _reference_order_key(9, "ab"), _reference_order_key(9, "é")]
