"""Issue 24: the build cache. Validation's code findings and augmentation's variants kept by text (`steps.memo`),
taken back by the next build (`registry.cache`): the same results as working on every text, on the seed corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.core.isolate import stream_isolated
from swcdata.registry.build import load_config, run_build
from swcdata.registry.cache import CACHE_DIR, BuildCache
from swcdata.similarity.sigindex import key_bytes, keys_from_bytes, text_keys
from swcdata.steps.audit import AuditConfig, Features, audit
from swcdata.steps.augment.step import AugmentConfig, VariantMemo, augment
from swcdata.steps.memo import Memo, MemoParams, read_memo, write_memo
from swcdata.steps.split import SplitConfig, split
from swcdata.steps.validate import CodeChecks, ValidateConfig, checks_params, load_valid


def _memo(values: dict[bytes, Any], step: str = "checks", **config: Any) -> Memo:
    keys = keys_from_bytes(b"".join(values))
    return Memo.of(MemoParams(step=step, config=config), keys,
                   [None if v is None else orjson.dumps(v) for v in values.values()])


def test_a_memo_round_trips_through_parquet_and_finds_its_keys(tmp_path: Path) -> None:
    a, b, c = key_bytes("a", "x"), key_bytes("b", "y"), key_bytes("c", "z")
    memo = _memo({b: [["no-code", "instruction", "none"]], a: None, c: {"k": 1}}, max_parse_chars=10)
    assert len(memo) == 3
    path = tmp_path / "m.parquet"
    write_memo(memo, path)
    back = read_memo(path)
    assert back.params == memo.params and (back.keys == memo.keys).all() and back.values == memo.values
    rows = back.find(keys_from_bytes(b + key_bytes("d", "w") + a))
    assert rows[1] == -1
    assert back.value(int(rows[0])) == [["no-code", "instruction", "none"]] and back.value(int(rows[2])) is None
    # the key is the signature index's: the exact bytes of both fields
    assert (keys_from_bytes(a) == text_keys(pa.array(["a"]), pa.array(["x"]))).all()


def test_a_key_given_twice_keeps_its_first_value() -> None:
    k = key_bytes("a", "x")
    memo = Memo.of(MemoParams(step="checks", config={}), keys_from_bytes(k + k), [b"1", b"2"])
    assert len(memo) == 1 and memo.values == [b"1"]


def test_what_is_no_memo_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="not a Parquet file"):
        read_memo(bad)
    memo = _memo({key_bytes("b", "y"): None, key_bytes("a", "x"): None})
    t = memo.table()
    shuffled = t.take(pa.array([1, 0])).replace_schema_metadata(t.schema.metadata)
    with pytest.raises(ValueError, match="not distinct and in key order"):
        Memo.from_table(shuffled)
    with pytest.raises(ValueError, match="no parameters"):
        Memo.from_table(t.replace_schema_metadata({}))


def test_params_say_what_differs() -> None:
    mine = MemoParams(step="checks", config={"max_parse_chars": 10}, tool="0.0.1")
    wanted = MemoParams(step="checks", config={"max_parse_chars": 20})
    diff = mine.differences(wanted)
    assert "max_parse_chars 10 (wanted 20)" in diff and any(d.startswith("tool '0.0.1'") for d in diff)
    assert not wanted.differences(wanted)


# --------------------------------------------------------------------------- validation


def _strip(report: Any) -> dict[str, Any]:
    return report.model_dump(exclude={"seconds", "records_per_second"})


def test_code_checks_taken_from_a_memo_give_the_full_result(seed_files: list[Path]) -> None:
    cfg = ValidateConfig()
    files = [str(f) for f in seed_files]
    plain = load_valid(files, cfg)
    first = CodeChecks(cfg)
    collected = load_valid(files, cfg, checks=first)
    assert first.reused == 0 and first.checked == plain[0].num_rows + sum(
        1 for q in plain[2] if any(r in cfg.drop_findings for r, _, _ in q.reasons))
    memo = first.memo()
    again = CodeChecks(cfg, memo)
    reused = load_valid(files, cfg, checks=again)
    assert again.reused == again.checked == first.checked  # not one text checked again
    for got in (collected, reused):
        assert got[0].equals(plain[0])
        assert _strip(got[1]) == _strip(plain[1])
        assert [q.to_json() for q in got[2]] == [q.to_json() for q in plain[2]]
    assert (again.memo().keys == memo.keys).all() and again.memo().values == memo.values
    # the seed corpus has code that does not parse, and no-op fixes: the memo holds their findings
    found = {rule for v in memo.values if v is not None for rule, _, _ in orjson.loads(v)}
    assert {"code-parse-error", "noop-fix"} <= found


def test_the_memo_is_what_is_read(tmp_path: Path) -> None:
    """A text the memo holds is not checked again: its findings are the memo's (here planted)."""
    code = "contract A { function f() public { x = 1; } }"
    line = {"instruction": f"Find the bug:\n```solidity\n{code}\n```", "response": "It is fine: nothing calls out.",
            "category": "SWC-107"}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    cfg = ValidateConfig()
    planted = Memo.of(checks_params(cfg), keys_from_bytes(key_bytes(line["instruction"], line["response"])),
                      [orjson.dumps([["code-parse-error", "instruction", "planted"]])])
    checks = CodeChecks(cfg, planted)
    _, report, _ = load_valid([str(path)], cfg, checks=checks)
    assert checks.reused == 1
    assert [(f.rule, f.message) for f in report.findings] == [("code-parse-error", "planted")]
    _, plain, _ = load_valid([str(path)], cfg)
    assert plain.findings == []


def test_a_memo_of_other_parameters_is_not_used(seed_files: list[Path]) -> None:
    memo = CodeChecks(ValidateConfig(max_parse_chars=5000))
    load_valid([str(seed_files[0])], ValidateConfig(max_parse_chars=5000), checks=memo)
    checks = CodeChecks(ValidateConfig(), memo.memo())
    load_valid([str(seed_files[0])], ValidateConfig(), checks=checks)
    assert checks.known is None and checks.reused == 0
    assert checks.note is not None and "max_parse_chars 5000 (wanted 100000)" in checks.note


def test_a_worker_crash_with_a_memo_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           seed_files: list[Path]) -> None:
    """A line whose checks kill the worker is checked again in a single-use process, as without a memo: the same
    results, and its text is not kept (the next run checks it); every other text is."""
    from swcdata.core import isolate

    mark = "CrashMeNow"
    crash = json.dumps({"instruction": f"Find the bug:\n\n```solidity\ncontract {mark} {{\n    function f() public "
                                       "{ msg.sender.call{value: 1}(\"\"); }\n}\n```",
                        "response": "Fixed:\n```solidity\ncontract Safe {}\n```", "category": "SWC-107"})
    lines = seed_files[0].read_text(encoding="utf-8").splitlines()[:60]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([*lines[:30], crash, *lines[30:]]) + "\n", encoding="utf-8")
    cfg = ValidateConfig(workers=2, chunk_size=7)
    first = CodeChecks(cfg)
    clean = load_valid([str(src)], cfg, checks=first)  # (no crash: every text kept)
    marked = keys_from_bytes(key_bytes(json.loads(crash)["instruction"], json.loads(crash)["response"]))
    monkeypatch.setenv(isolate.TEST_CRASH_ENV, mark)
    plain = load_valid([str(src)], cfg)
    checks = CodeChecks(cfg)
    got = load_valid([str(src)], cfg, checks=checks)
    assert got[0].equals(plain[0]) and _strip(got[1]) == _strip(plain[1])
    assert [f.line for f in got[1].findings if f.rule == "parser-crashed"] == [31]
    assert checks.memo().find(marked)[0] == -1 and len(checks.memo()) == len(first.memo()) - 1
    # with the memo of the clean run the marked text is not parsed at all: no crash, the clean run's findings
    again = CodeChecks(cfg, first.memo())
    got = load_valid([str(src)], cfg, checks=again)
    assert got[0].equals(clean[0]) and _strip(got[1]) == _strip(clean[1])
    assert again.reused == again.checked and again.memo().find(marked)[0] >= 0


# --------------------------------------------------------------------------- augmentation


@pytest.fixture(scope="module")
def small_splits(swc_files: list[Path]) -> dict[str, pa.Table]:
    table, _, _ = load_valid([str(f) for f in swc_files], ValidateConfig(check_code=False))
    table = table.take(pa.array(np.arange(0, table.num_rows, 25)))  # (every 25th record: ~200, all five classes)
    splits, _ = split(table, SplitConfig())
    return splits


def test_variants_taken_from_a_memo_give_the_full_result(small_splits: dict[str, pa.Table]) -> None:
    cfg = AugmentConfig()
    plain, prep = augment(small_splits, cfg)
    first = VariantMemo(cfg)
    collected, crep = augment(small_splits, cfg, memo=first)
    memo = first.memo()
    assert first.reused == 0 and first.texts == small_splits["train"].num_rows and len(memo) > 0
    again = VariantMemo(cfg, memo)
    reused, rrep = augment(small_splits, cfg, memo=again)
    assert again.reused == again.texts == first.texts
    for out, rep in ((collected, crep), (reused, rrep)):
        assert all(out[k].equals(plain[k]) for k in plain)
        assert rep.model_dump(exclude={"seconds"}) == prep.model_dump(exclude={"seconds"})
    assert prep.splits["train"].variants_added > 0


def test_a_record_of_another_category_is_augmented_again(small_splits: dict[str, pa.Table]) -> None:
    cfg = AugmentConfig()
    first = VariantMemo(cfg)
    augment(small_splits, cfg, memo=first)
    train = small_splits["train"]
    cats = train.column("category").to_pylist()
    moved = ["SWC-101" if c != "SWC-101" else "SWC-107" for c in cats]
    relabelled = {**small_splits, "train": train.set_column(train.schema.get_field_index("category"), "category",
                                                                pa.array(moved))}
    again = VariantMemo(cfg, first.memo())
    out, _ = augment(relabelled, cfg, memo=again)
    plain, _ = augment(relabelled, cfg)
    assert again.reused == 0 and out["train"].equals(plain["train"])


def test_a_memo_of_another_seed_is_not_used(small_splits: dict[str, pa.Table]) -> None:
    first = VariantMemo(AugmentConfig(seed=1))
    augment({"train": small_splits["train"].slice(0, 5)}, AugmentConfig(seed=1), memo=first)
    again = VariantMemo(AugmentConfig(), first.memo())
    assert again.known is None and again.note is not None and "seed 1 (wanted 0)" in again.note


# --------------------------------------------------------------------------- the audit's features


def test_features_kept_across_audits_give_the_same_reports(small_splits: dict[str, pa.Table]) -> None:
    cfg = AuditConfig()
    pairs = (("train", "validation"), ("train", "test"), ("validation", "test"))
    features = Features()
    for a, b in pairs:
        plain = audit(small_splits[a], small_splits[b], cfg).model_dump(exclude={"seconds", "timings"})
        kept = audit(small_splits[a], small_splits[b], cfg, features=features).model_dump(
            exclude={"seconds", "timings"})
        assert kept == plain
    assert len(features._of) == 3


# --------------------------------------------------------------------------- builds


def _build(home: Path, inputs: list[Path], cache: bool = True, **overrides: Any) -> Any:
    cfg, base = load_config(None, {"name": "s", "inputs": [str(p) for p in inputs], **overrides})
    return run_build(cfg, base, home=home, cache=cache)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, swc_files: list[Path]) -> dict[str, Any]:
    """v1 of one SWC file; v2 of two in the same registry (its cache from v1), and the same v2 in a fresh registry
    without a cache."""
    root = tmp_path_factory.mktemp("cache")
    v1 = _build(root / "a", swc_files[:1])
    v2 = _build(root / "a", swc_files[:2])
    full = _build(root / "b", swc_files[:2], cache=False)
    return {"root": root, "v1": v1, "v2": v2, "full": full}


def test_a_build_takes_the_texts_it_has_seen_from_the_cache(builds: dict[str, Any]) -> None:
    v1, v2, full, root = builds["v1"], builds["v2"], builds["full"], builds["root"]
    assert v2.content_hash == full.content_hash and v2.ref == "s@v2"
    assert v1.cache["checks"].reused == 0 and v1.cache["augment"].reused == 0
    # every record of the first file was checked by v1; the second file's are new
    assert v2.cache["checks"].reused == v1.cache["checks"].texts < v2.cache["checks"].texts
    assert 0 < v2.cache["augment"].reused < v2.cache["augment"].texts
    assert full.cache == {}
    assert not (root / "b" / "s" / CACHE_DIR).exists()
    cache = BuildCache(root / "a", "s")
    memo, note = cache.read("checks")
    assert note is None and memo is not None and len(memo) == v2.cache["checks"].kept
    # the cache is no part of the version: the registry reads and verifies it as before
    from swcdata.registry.store import Registry

    reg = Registry(root / "a")
    assert reg.names() == ["s"] and [m.version for m in reg.versions("s")] == [1, 2] and reg.verify("s@v2").ok


def test_a_cache_that_cannot_be_read_is_not_used(builds: dict[str, Any], tmp_path: Path,
                                                 swc_files: list[Path]) -> None:
    import shutil

    home = tmp_path / "reg"
    shutil.copytree(builds["root"] / "a", home)
    (home / "s" / CACHE_DIR / "checks.parquet").write_bytes(b"truncated")
    shutil.rmtree(home / "s" / CACHE_DIR / "inputs")  # (else the files are taken whole, their checks with them)
    again = _build(home, swc_files[:2])
    assert again.content_hash == builds["full"].content_hash and not again.created
    use = again.cache["checks"]
    assert use.reused == 0 and use.note is not None and "cannot be read as a memo" in use.note
    assert again.cache["augment"].reused == again.cache["augment"].texts  # (the other step's memo is whole)
    memo, note = BuildCache(home, "s").read("checks")  # (replaced by this build's)
    assert note is None and memo is not None


def test_build_json_and_table_name_the_cache(tmp_path: Path, swc_files: list[Path]) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(f'name = "s"\ninputs = ["{swc_files[0]}"]\n[augment]\nenabled = false\n', encoding="utf-8")
    runner = CliRunner()
    first = runner.invoke(app, ["build", "--config", str(toml), "--home", str(tmp_path / "r"), "--json"])
    assert first.exit_code == 0, first.output
    assert set(json.loads(first.stdout)["cache"]) == {"checks", "inputs", "audit"}
    again = runner.invoke(app, ["build", "--config", str(toml), "--home", str(tmp_path / "r")])
    assert again.exit_code == 0, again.output
    assert "build cache, code checks:" in again.stdout and "taken from it" in again.stdout
    off = runner.invoke(app, ["build", "--config", str(toml), "--home", str(tmp_path / "r"), "--no-cache", "--json"])
    assert off.exit_code == 0 and json.loads(off.stdout)["cache"] == {}


def test_a_cache_that_cannot_be_written_does_not_fail_the_build(tmp_path: Path, swc_files: list[Path]) -> None:
    home = tmp_path / "reg"
    (home / "s").mkdir(parents=True)
    (home / "s" / CACHE_DIR).write_text("a file where the cache folder goes", encoding="utf-8")
    first = _build(home, swc_files[:1], **{"augment.enabled": False})
    assert first.created and first.ref == "s@v1"
    use = first.cache["checks"]
    assert use.kept == 0 and use.note is not None and "cannot write" in use.note
    assert first.content_hash == _build(tmp_path / "other", swc_files[:1], cache=False,
                                        **{"augment.enabled": False}).content_hash


def test_a_memo_value_of_the_wrong_shape_is_worked_on_again(tmp_path: Path, small_splits: dict[str, pa.Table],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """What a cache holds is read with care: a value that is not what the step writes is a miss, not a crash."""
    cfg = AugmentConfig()
    train = {"train": small_splits["train"].slice(0, 6)}
    plain, prep = augment(train, cfg)
    first = VariantMemo(cfg)
    augment(train, cfg, memo=first)
    memo = first.memo()
    def spoilt(k: int, v: bytes) -> bytes:  # (of the record's category, then JSON that does not parse, then none)
        category = orjson.dumps(orjson.loads(v)["category"])
        return [orjson.dumps({"category": orjson.loads(category), "variants": [["x"]]}),
                b'{"category":' + category + b",not json", b"not json"][k % 3]

    broken = [spoilt(k, v) if v else v for k, v in enumerate(memo.values)]
    again = VariantMemo(cfg, Memo(memo.params, memo.keys, broken))
    from swcdata.steps.augment import step as augment_step

    children: list[int] = []

    def counted(fn: Any, rows: list[Any], *args: Any) -> Any:
        children.append(len(rows))
        return stream_isolated(fn, rows, *args)

    monkeypatch.setattr(augment_step, "stream_isolated", counted)
    out, rep = augment(train, cfg, memo=again)
    assert again.reused == 0 and out["train"].equals(plain["train"])
    # (the values that are no memo's: one child for them all, beside the one for the records not held)
    assert sorted(children) == [2, 4]
    assert rep.model_dump(exclude={"seconds"}) == prep.model_dump(exclude={"seconds"})
    # validation: a value that is no list of findings
    line = {"instruction": "Fix:\n```solidity\ncontract A { function f() public { x = 1; } }\n```",
            "response": "Nothing to fix here, the code is fine.", "category": "SWC-107"}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    vcfg = ValidateConfig()
    key = keys_from_bytes(key_bytes(line["instruction"], line["response"]))
    for bad in ([["not-a-rule", None, "x"]], {"a": 1}, [[1, 2]]):
        checks = CodeChecks(vcfg, Memo.of(checks_params(vcfg), key, [orjson.dumps(bad)]))
        _, report, _ = load_valid([str(path)], vcfg, checks=checks)
        assert checks.reused == 0 and _strip(report) == _strip(load_valid([str(path)], vcfg)[1])


def test_a_build_that_does_not_publish_leaves_the_cache_as_it_was(builds: dict[str, Any], tmp_path: Path,
                                                                  swc_files: list[Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The memos a build writes while it works (in threads, beside the cache's) replace the cache's only once its
    version is published: a build that fails at its publication leaves every cache file as it was, and nothing
    of its own there."""
    import shutil

    from swcdata.registry.store import Registry

    home = tmp_path / "reg"
    shutil.copytree(builds["root"] / "a", home)
    folder = home / "s" / CACHE_DIR
    shutil.rmtree(folder / "inputs")  # (the files validated again: every step makes and writes its memo)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Registry, "publish", refused)
    with pytest.raises(OSError, match="No space left"):
        _build(home, swc_files[:3])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.undo()
    again = _build(home, swc_files[:3])  # (and one that publishes replaces them)
    assert again.created and len(read_memo(folder / "checks.parquet")) == again.cache["checks"].kept > len(
        read_memo(builds["root"] / "a" / "s" / CACHE_DIR / "checks.parquet"))
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
