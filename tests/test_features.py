"""Issue 24: the audit's features kept by text (`steps.features`). What the rules read of each record (word n-gram
hashes, code, code windows and signatures) taken from a memo of an earlier build gives exactly the reports that
computing them gives, on the seed corpus, whole or in part; a memo of other parameters, or damaged, is not used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from swcdata.registry.build import load_config, run_build
from swcdata.registry.cache import CACHE_DIR, BuildCache
from swcdata.steps.audit import AuditConfig, audit
from swcdata.steps.features import (
    FeatureMemo,
    Features,
    LazyWords,
    _words,
    computed,
    features_params,
    read_features,
    write_features,
)
from swcdata.steps.split import SplitConfig, split
from swcdata.steps.validate import ValidateConfig, load_valid

PAIRS = (("train", "validation"), ("train", "test"), ("validation", "test"))


@pytest.fixture(scope="module")
def splits(swc_files: list[Path], seed_test_file: Path) -> dict[str, pa.Table]:
    """Every 4th seed record split three ways, and the evaluation file's records in test (it leaks at every level:
    exact, near, code and n-gram matches)."""
    table, _, _ = load_valid([str(f) for f in swc_files], ValidateConfig(check_code=False))
    table = table.take(pa.array(np.arange(0, table.num_rows, 4)))
    out, _ = split(table, SplitConfig())
    held, _, _ = load_valid([str(seed_test_file)], ValidateConfig(check_code=False))
    out["test"] = pa.concat_tables([out["test"], held.select(out["test"].column_names).cast(out["test"].schema)])
    return out


def _reports(splits: dict[str, pa.Table], cfg: AuditConfig, features: Features | None) -> list[dict[str, Any]]:
    return [audit(splits[a], splits[b], cfg, features=features).model_dump(exclude={"timings"}) for a, b in PAIRS]


def test_features_from_a_memo_give_the_same_reports(splits: dict[str, pa.Table], tmp_path: Path) -> None:
    cfg = AuditConfig()
    params = features_params(cfg)
    plain = _reports(splits, cfg, None)
    first = Features()
    assert _reports(splits, cfg, first) == plain
    assert first.texts == sum(t.num_rows for t in splits.values()) and first.reused == 0
    # the rules find something at every level here: the test means something
    summaries = [r["summary"] for r in plain]
    assert all(sum(s[k] for s in summaries) > 0 for k in ("exact", "near", "code_pairs", "ngram_only"))
    path = tmp_path / "audit.parquet"
    write_features(first.memo(params), path)
    memo = read_features(path)
    assert len(memo) == len(first.memo(params)) > 0
    again = Features(memo, params)
    assert _reports(splits, cfg, again) == plain
    assert again.reused == again.texts == first.texts and again.note is None
    # a memo of part of the records: the others are computed, in their places
    part = FeatureMemo.of(params, [computed(splits["train"].slice(0, splits["train"].num_rows // 2), cfg),
                                   computed(splits["test"].slice(5, 20), cfg)])
    mixed = Features(part, params)
    assert _reports(splits, cfg, mixed) == plain
    assert 0 < mixed.reused < mixed.texts
    for table in splits.values():  # (row for row, the features computed)
        assert mixed.rows(table, cfg).equals(computed(table, cfg))


def test_a_memo_of_other_parameters_is_not_used(splits: dict[str, pa.Table]) -> None:
    cfg = AuditConfig()
    other = AuditConfig(overlap_n=8)
    memo = FeatureMemo.of(features_params(other), [computed(splits["train"], other)])
    f = Features(memo, features_params(cfg))
    assert f.known is None and f.note is not None and "overlap_n" in f.note
    assert _reports(splits, cfg, f) == _reports(splits, cfg, None) and f.reused == 0


def test_lazy_words_are_the_words(splits: dict[str, pa.Table]) -> None:
    t = splits["validation"]
    lazy = LazyWords(t)
    words = _words(t)
    assert len(lazy) == len(words) and lazy[3] == words[3] and lazy[-1] == words[-1] and lazy[1:4] == words[1:4]


def test_what_is_no_features_memo_is_refused(splits: dict[str, pa.Table], tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 no")
    with pytest.raises(ValueError, match="not a Parquet file"):
        read_features(bad)
    cfg = AuditConfig()
    memo = FeatureMemo.of(features_params(cfg), [computed(splits["validation"], cfg)])
    t = memo.table()
    with pytest.raises(ValueError, match="not the audit's features"):
        FeatureMemo.from_table(t.replace_schema_metadata(None))
    with pytest.raises(ValueError, match="not distinct and in key order"):
        FeatureMemo.from_table(t.take(pa.array(np.arange(t.num_rows)[::-1])))


def _build(home: Path, inputs: list[Path], cache: bool = True) -> Any:
    cfg, base = load_config(None, {"name": "s", "inputs": [str(p) for p in inputs], "augment.enabled": False})
    return run_build(cfg, base, home=home, cache=cache)


def test_a_build_takes_the_features_of_the_records_it_has_audited(swc_files: list[Path], tmp_path: Path) -> None:
    v1 = _build(tmp_path / "a", swc_files[:2])
    v2 = _build(tmp_path / "a", swc_files[:3])
    full = _build(tmp_path / "b", swc_files[:3], cache=False)
    assert v2.content_hash == full.content_hash and v2.contamination == full.contamination
    assert v1.cache["audit"].reused == 0 and v1.cache["audit"].kept > 0
    assert 0 < v2.cache["audit"].reused < v2.cache["audit"].texts == sum(v2.ledger.splits.values())
    memo, note = BuildCache(tmp_path / "a", "s").read("audit", read_features)
    assert note is None and len(memo) == v2.cache["audit"].kept
    # damaged: not used, said so, and replaced
    (tmp_path / "a" / "s" / CACHE_DIR / "audit.parquet").write_bytes(b"truncated")
    v3 = _build(tmp_path / "a", swc_files[:3])
    assert not v3.created and v3.content_hash == full.content_hash
    assert v3.cache["audit"].reused == 0 and "cannot be read as a memo" in (v3.cache["audit"].note or "")
    assert BuildCache(tmp_path / "a", "s").read("audit", read_features)[1] is None


def test_many_needles_are_counted_as_few_are(splits: dict[str, pa.Table]) -> None:
    """`_Needles.counts_in`: a large set's needles against a few hays (each distinct hay window looked up among
    the needles') count what looking each needle window up among the hays counts."""
    from swcdata.similarity.codematch import CodeMatchConfig, _hays, _needles, record_code

    cfg = CodeMatchConfig()
    big = _needles(record_code(splits["train"].column("instruction").to_pylist(), cfg), cfg.min_tokens)
    few = _hays(record_code(splits["validation"].column("instruction").to_pylist(), cfg)[:10])
    assert len(big.w) > 4 * len(few.w_sorted) > 0
    looked_up = np.searchsorted(few.w_sorted, big.w, side="right") - np.searchsorted(few.w_sorted, big.w, side="left")
    counted = big.counts_in(few)
    assert counted.sum() > 0 and np.array_equal(counted, looked_up)


def test_the_split_reads_the_code_of_its_records_from_the_features(splits: dict[str, pa.Table]) -> None:
    """The split's code rule with the build's features (a memo of part of the records) groups as without them."""
    from swcdata.steps.split import holdout_audit_config

    table = pa.concat_tables([splits["train"], splits["validation"]])
    cfg = SplitConfig()
    acfg = holdout_audit_config(cfg)
    params = features_params(acfg)
    memo = FeatureMemo.of(params, [computed(table.slice(0, table.num_rows * 2 // 3), acfg)])
    plain, prep = split(table, cfg)
    features = Features(memo, params)
    got, grep_ = split(table, cfg, features=features)
    assert prep.code_groups > 0 and grep_.code_groups == prep.code_groups
    assert all(got[k].equals(plain[k]) for k in plain)
    assert features.texts == 0  # (the split's reads are not the audit's: not counted, not kept)
