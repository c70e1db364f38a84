"""augment: lineage, counts, untouched evaluation splits, consistent renaming, code that still parses,
deterministic output, deduplication against every split, templates of the record's own family, and the CLI."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from swcdata import templates
from swcdata.augment import TRANSFORMS, AugmentConfig, augment
from swcdata.cli import app
from swcdata.records import read_split_dir, write_jsonl, write_split_dir
from swcdata.solidity import _KEEP, code_tokens, extract_code, parse
from swcdata.validate import ValidateConfig, load_valid

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
SEED_DIR = Path(__file__).resolve().parents[2] / "shared" / "seed-data"
SEED_SKIP = "../shared/seed-data not present: real-data tests need the seed corpus beside the repository"
runner = CliRunner()


def _load(files: list[Path]) -> pa.Table:
    table, _, _ = load_valid([str(f) for f in files], ValidateConfig(check_code=False))
    return table


def _sample_splits() -> dict[str, pa.Table]:
    t = _load([SAMPLE])
    rest = t.num_rows - 80
    return {"train": t.slice(0, 80), "validation": t.slice(80, rest // 2), "test": t.slice(80 + rest // 2)}


@pytest.fixture(scope="module")
def sample_splits() -> dict[str, pa.Table]:
    return _sample_splits()


@pytest.fixture(scope="module")
def sample_result(sample_splits: dict[str, pa.Table]):  # type: ignore[no-untyped-def]
    return augment(sample_splits, AugmentConfig(factor=3, seed=0))


@pytest.fixture(scope="module")
def sample_plain(sample_splits: dict[str, pa.Table]):  # type: ignore[no-untyped-def]
    """Transforms only (no templates), so each variant's code spans line up with its parent's."""
    return augment(sample_splits, AugmentConfig(factor=3, seed=0, templates=False))


@pytest.fixture(scope="module")
def seed_splits() -> dict[str, pa.Table]:
    if not SEED_DIR.is_dir():
        pytest.skip(SEED_SKIP)
    table = _load(sorted(SEED_DIR.glob("solidity_vunerability_SWC-*.jsonl")))
    rows = pa.array(list(range(0, table.num_rows, 20)))  # 250 records, all five classes
    sample = table.take(rows)
    n = sample.num_rows
    return {"train": sample.slice(0, int(n * 0.8)), "validation": sample.slice(int(n * 0.8), n // 10),
            "test": sample.slice(int(n * 0.8) + n // 10)}


@pytest.fixture(scope="module")
def seed_plain(seed_splits: dict[str, pa.Table]):  # type: ignore[no-untyped-def]
    return augment(seed_splits, AugmentConfig(factor=3, seed=0, templates=False))


def _variants(table: pa.Table) -> list[dict]:
    return [r for r in table.to_pylist() if r["parent_id"] is not None]


def _bytes(splits: dict[str, pa.Table]) -> dict[str, bytes]:
    out = {}
    for name, t in splits.items():
        buf = io.BytesIO()
        write_jsonl(t, buf)
        out[name] = buf.getvalue()
    return out


# ------------------------------------------------------------------------------ counts and lineage


def test_factor_3_gives_about_three_times_train_with_lineage_on_every_variant(sample_splits, sample_result) -> None:
    out, rep = sample_result
    n_in, n_out = sample_splits["train"].num_rows, out["train"].num_rows
    assert 3 * n_in <= n_out <= 4 * n_in
    s = rep.splits["train"]
    assert s.variants_attempted == 3 * n_in
    assert s.variants_attempted == s.variants_added + s.duplicates_dropped + s.no_effect + s.parse_failed
    assert n_out == n_in + s.variants_added and rep.balanced
    variants = _variants(out["train"])
    assert len(variants) == s.variants_added
    parents: dict[str, list[dict]] = {}
    for r in sample_splits["train"].to_pylist():
        parents.setdefault(r["id"], []).append(r)  # the sample keeps a few exact duplicates on purpose
    per_parent = Counter(v["parent_id"] for v in variants)
    assert set(per_parent) <= set(parents) and max(per_parent.values()) <= 3
    for v in variants:
        assert v["transform"] in (*TRANSFORMS, "none")
        assert v["template"] is None or templates.get(v["template"]).family in templates.FAMILIES
        assert any(v["source"] == p["source"] and v["metadata"] == p["metadata"] for p in parents[v["parent_id"]])
        assert v["id"] not in parents
    assert sum(rep.variants_by_transform.values()) == s.variants_added
    # templates apply to most records of the sample (every family is represented)
    assert {f for f in rep.variants_by_family if f != "none"} == set(templates.FAMILIES)
    assert sum(1 for v in variants if v["template"]) >= 0.8 * len(variants)


def test_category_never_changes(sample_splits, sample_result) -> None:
    out, _ = sample_result
    parents = {r["id"]: r["category"] for r in sample_splits["train"].to_pylist()}
    for v in _variants(out["train"]):
        assert v["category"] == parents[v["parent_id"]]


def test_validation_and_test_are_untouched(sample_splits, sample_result) -> None:
    out, rep = sample_result
    for name in ("validation", "test"):
        assert out[name].equals(sample_splits[name])
        assert not rep.splits[name].augmented and rep.splits[name].variants_added == 0
    assert rep.warnings == []


def test_eval_splits_need_the_explicit_flag_and_warn(sample_splits) -> None:
    with pytest.raises(ValueError, match="allow_eval_splits"):
        AugmentConfig(splits=["train", "validation"])
    out, rep = augment(sample_splits, AugmentConfig(factor=1, splits=["validation"], allow_eval_splits=True))
    assert out["validation"].num_rows > sample_splits["validation"].num_rows
    assert out["train"].equals(sample_splits["train"]) and out["test"].equals(sample_splits["test"])
    assert any("validation" in w for w in rep.warnings)


def test_unknown_split_and_transform_are_refused(sample_splits) -> None:
    with pytest.raises(ValueError, match="no split named 'dev'"):
        augment(sample_splits, AugmentConfig(splits=["dev"], allow_eval_splits=True))
    with pytest.raises(ValueError, match="unknown transform"):
        AugmentConfig(transforms=["rename", "shuffle"])
    assert AugmentConfig(transforms=["layout", "rename"]).transforms == ["reflow_layout", "rename_identifiers"]


# ------------------------------------------------------------------------------ the code


def _check_renames(parents: dict[str, dict], variants: list[dict]) -> int:
    """Every renamed identifier is renamed the same way in all code of both fields, one to one, and no
    keyword, built-in or member name (after a `.`) is renamed. Returns how many variants were checked."""
    checked = 0
    for v in variants:
        if v["transform"] != "rename_identifiers":
            continue
        p = parents[v["parent_id"]]
        mapping: dict[str, str] = {}
        fields_renamed: set[str] = set()
        for f in ("instruction", "response"):
            before, after = extract_code(p[f]), extract_code(v[f])
            assert len(before) == len(after), (f, p[f], v[f])
            for a, b in zip(before, after, strict=True):
                ta, tb = code_tokens(a.text), code_tokens(b.text)
                assert len(ta) == len(tb)
                for i, (x, y) in enumerate(zip(ta, tb, strict=True)):
                    if x == y:
                        continue
                    fields_renamed.add(f)
                    assert x not in _KEEP and y not in _KEEP, (x, y)
                    assert i == 0 or ta[i - 1] != ".", f"member {x} renamed"
                    assert mapping.setdefault(x, y) == y, f"{x} renamed to {mapping[x]} and to {y}"
        assert mapping, "a rename variant renamed nothing"
        assert len(set(mapping.values())) == len(mapping), "two identifiers renamed to the same name"
        # an identifier of the instruction's code that also appears in the response's code is renamed there too
        ins = {t for s in extract_code(v["instruction"]) for t in code_tokens(s.text)}
        resp = {t for s in extract_code(v["response"]) for t in code_tokens(s.text)}
        assert not (set(mapping) & ins) and not (set(mapping) & resp), "an old name survived in the code"
        checked += 1
    return checked


def test_renames_are_consistent_in_instruction_and_response(sample_splits, sample_plain) -> None:
    out, _ = sample_plain
    parents = {r["id"]: r for r in sample_splits["train"].to_pylist()}
    assert _check_renames(parents, _variants(out["train"])) >= 50


def test_builtins_and_external_api_names_are_never_renamed() -> None:
    code = ("function payOut(address payee, uint256 owed) external onlyOwner {\n"
            "    require(token.transfer(payee, owed), \"t\");\n"
            "    (bool ok, ) = payable(msg.sender).call{value: msg.value}(\"\");\n"
            "    emit Transfer(address(this), payee, block.timestamp);\n"
            "    IERC20(token).balanceOf(address(this));\n"
            "}")
    rec = {"instruction": f"Find the bug in `payOut`:\n\n```solidity\n{code}\n```",
           "response": f"Reentrancy. Fixed:\n\n```solidity\n{code}\n```", "category": "SWC-107"}
    from swcdata.text import record_id

    row = {**rec, "id": record_id(rec["instruction"], rec["response"]), "source": {"file": "x", "line": 1},
           "metadata": None, "parent_id": None, "transform": None, "template": None}
    from swcdata.records import RECORD_SCHEMA

    out, _ = augment({"train": pa.Table.from_pylist([row], schema=RECORD_SCHEMA)},
                     AugmentConfig(factor=3, transforms=["rename"], templates=False))
    variants = _variants(out["train"])
    assert len(variants) == 3
    for v in variants:
        code_new = extract_code(v["instruction"])[-1].text
        for kept in ("msg.sender", "msg.value", ".transfer(", "block.timestamp", "call{value:", "emit Transfer(",
                     "IERC20(", ".balanceOf(", "onlyOwner", "require(", "payable(", "address(this)"):
            assert kept in code_new, (kept, code_new)
        assert "payee" not in code_new and "payOut" not in code_new and "owed" not in code_new
        new_name = code_new.split("function ", 1)[1].split("(", 1)[0]
        assert f"`{new_name}`" in v["instruction"], "the prose's quoted name follows the code"
        assert extract_code(v["response"])[-1].text == code_new, "instruction and response renamed alike"


def _one(instruction: str, response: str) -> pa.Table:
    from swcdata.records import RECORD_SCHEMA
    from swcdata.text import record_id

    return pa.Table.from_pylist([{"instruction": instruction, "response": response, "category": "SWC-107",
                                  "id": record_id(instruction, response), "source": {"file": "x", "line": 1}}],
                                schema=RECORD_SCHEMA)


def test_struct_keys_and_call_options_keep_their_names() -> None:
    """`Bid({bidder: bidder})` of a struct the code does not declare, and `{salt: salt}`: renaming the
    variable must not rename the key (the code would no longer compile, though it still parses)."""
    code = ("function placeBid(address bidder, uint256 amount, bytes32 salt) public {\n"
            "    bids.push(Bid({bidder: bidder, amount: amount}));\n"
            "    Wallet w = new Wallet{salt: salt}(bidder);\n"
            "}")
    table = _one(f"Find the bug:\n\n```solidity\n{code}\n```", f"Fixed:\n\n```solidity\n{code}\n```")
    out, _ = augment({"train": table}, AugmentConfig(factor=3, transforms=["rename"], templates=False))
    for v in _variants(out["train"]):
        code_new = extract_code(v["instruction"])[-1].text
        assert "Bid({bidder: bidder, amount: amount})" in code_new and "{salt: salt}" in code_new, code_new


def test_comments_are_toggled_in_the_instruction_only() -> None:
    """The response's comments are its explanation: never removed (nor added to)."""
    code = "function add(uint a) public {\n    total += a; // adds a\n}"
    fixed = "function add(uint a) public {\n    total = total + a; // Unchecked addition can overflow (SWC-101)\n}"
    table = _one(f"What is wrong here?\n\n```solidity\n{code}\n```", f"Overflow:\n\n```solidity\n{fixed}\n```")
    out, _ = augment({"train": table}, AugmentConfig(factor=1, transforms=["comments"], templates=False))
    (v,) = _variants(out["train"])
    assert "// adds a" not in v["instruction"] and v["response"] == table.column("response")[0].as_py()


def test_code_first_templates_are_not_chosen_for_prose_that_points_ahead() -> None:
    """'the following code:' read after the code (a code-first template) would point at nothing."""
    code = ("function withdraw() public {\n    msg.sender.call{value: bal[msg.sender]}(\"\");\n"
            "    bal[msg.sender] = 0;\n}")
    table = _one(f"Explain the vulnerability in the following code:\n\n```solidity\n{code}\n```",
                 "Reentrancy (SWC-107): the balance is cleared after the call.")
    out, _ = augment({"train": table}, AugmentConfig(factor=16, transforms=["layout"]))
    chosen = [templates._BY_ID[v["template"]] for v in _variants(out["train"]) if v["template"]]
    assert chosen and not any(t.code_first for t in chosen)
    for t, v in zip(chosen, [v for v in _variants(out["train"]) if v["template"]], strict=True):
        if t.uses_context:  # the kept prose keeps its colon: the code follows it
            assert "following code:" in v["instruction"], v["instruction"]


def test_transformed_code_still_parses(sample_splits, sample_plain) -> None:
    out, rep = sample_plain
    parents = {r["id"]: r for r in sample_splits["train"].to_pylist()}
    spans = 0
    for v in _variants(out["train"]):
        p = parents[v["parent_id"]]
        for f in ("instruction", "response"):
            before, after = extract_code(p[f]), extract_code(v[f])
            assert len(before) == len(after), "the variant's code is found as the same spans"
            for a, b in zip(before, after, strict=True):
                if a.text != b.text and parse(a.text).ok:
                    assert parse(b.text).ok, b.text
                    spans += 1
    assert spans > 100
    assert sum(rep.skipped_parse_failures.values()) == 0


def test_a_transform_that_breaks_the_parse_skips_the_record_and_is_counted(sample_splits, monkeypatch) -> None:
    from swcdata import augment as aug

    def breaker(rec, key, cache):  # type: ignore[no-untyped-def]
        new = tuple([s.text.replace("{", "{ }}}", 1) if "{" in s.text else s.text for s in f.spans]
                    for f in rec.fields)
        return aug._edit(rec, (new[0], new[1]))

    monkeypatch.setitem(aug._TRANSFORM_FNS, "reflow_layout", breaker)
    out, rep = augment(sample_splits, AugmentConfig(factor=3, transforms=["layout"], templates=False))
    assert rep.skipped_parse_failures["reflow_layout"] > 0
    assert rep.splits["train"].parse_failed == (rep.skipped_parse_failures["reflow_layout"]
                                                + rep.skipped_code_lost["reflow_layout"])
    assert rep.balanced
    parents = {r["id"]: r for r in sample_splits["train"].to_pylist()}
    for v in _variants(out["train"]):  # a variant survives only where no parsing span was broken
        p = parents[v["parent_id"]]
        for a, b in zip(extract_code(p["instruction"]), extract_code(v["instruction"]), strict=False):
            assert parse(b.text).ok or not parse(a.text).ok


def test_templates_come_from_the_records_own_family_and_keep_the_code(sample_splits, sample_result) -> None:
    out, _ = sample_result
    parents = {r["id"]: r for r in sample_splits["train"].to_pylist()}
    checked = 0
    for v in _variants(out["train"]):
        p = parents[v["parent_id"]]
        if v["template"] is None:
            continue
        assert templates.get(v["template"]).family == templates.family_for(p["instruction"], p["response"])
        if v["transform"] in ("reflow_layout", "rename_identifiers"):
            def key(text: str) -> list[str]:
                return sorted(" ".join(code_tokens(s.text, abstract_identifiers=True)) for s in extract_code(text))
            assert key(v["instruction"]) == key(p["instruction"]), (p["instruction"], v["instruction"])
            checked += 1
        assert v["response"] != "" and v["category"] == p["category"]
    assert checked >= 40


def test_same_seed_same_bytes_other_seed_other_variants(sample_splits, sample_result) -> None:
    out, rep = sample_result
    again, rep2 = augment(sample_splits, AugmentConfig(factor=3, seed=0))
    assert _bytes(again) == _bytes(out)
    assert rep2.model_dump(exclude={"seconds"}) == rep.model_dump(exclude={"seconds"})
    other, _ = augment(sample_splits, AugmentConfig(factor=3, seed=1))
    assert _bytes(other)["train"] != _bytes(out)["train"]


def test_variants_are_deduplicated_against_every_split(sample_splits, sample_result) -> None:
    out, rep = sample_result
    first = _variants(out["train"])[0]
    planted = {k: (v if k != "validation" else pa.concat_tables([
        v, pa.Table.from_pylist([{**first, "parent_id": None, "transform": None, "template": None}],
                                schema=v.schema)])) for k, v in sample_splits.items()}
    out2, rep2 = augment(planted, AugmentConfig(factor=3, seed=0))
    assert first["id"] not in {r["id"] for r in out2["train"].to_pylist()}
    assert rep2.duplicates_dropped == rep.duplicates_dropped + 1
    originals = {r["id"] for t in planted.values() for r in t.to_pylist()}
    variant_ids = [v["id"] for v in _variants(out2["train"])]
    assert len(variant_ids) == len(set(variant_ids)) and not set(variant_ids) & originals
    assert rep2.balanced


def test_records_with_lineage_are_not_augmented_again(sample_result) -> None:
    out, _ = sample_result
    _, rep = augment({"train": out["train"]}, AugmentConfig(factor=1))
    n_variants = len(_variants(out["train"]))
    assert rep.splits["train"].sources == out["train"].num_rows - n_variants
    assert any("lineage" in w for w in rep.warnings)


# ------------------------------------------------------------------------------ templates


def test_each_family_has_at_least_eight_distinct_phrasings() -> None:
    for fam in templates.FAMILIES:
        free = templates.templates(fam, free=True)
        assert len(free) >= 8 and len({t.text for t in free}) == len(free)
        assert all("{code}" in t.text for t in templates.templates(fam))
        assert len({t.id for t in templates.templates(fam)}) == len(templates.templates(fam))


@pytest.mark.parametrize(("instruction", "family"), [
    ("Which SWC identifier fits this function best?\n\nfunction f() public { x = 1; }", "classify"),
    ("Find the vulnerability in this code:\n\nfunction f() public { x = 1; }", "find"),
    ("Analyze the function for reentrancy and provide a modified version.\n\nfunction f() public { x = 1; }",
     "explain_fix"),
    ("Rewrite this function securely:\n\nfunction f() public { x = 1; }", "rewrite"),
    ("Hello there.\n\nfunction fixFee() public { x = 1; }", None),
])
def test_task_family_is_recognised_from_the_prose(instruction: str, family: str | None) -> None:
    assert templates.task_family(instruction) == family


def test_choose_is_deterministic_and_varies_with_k() -> None:
    picks = [templates.choose("abc", "find", k, seed=0).id for k in range(3)]
    assert picks == [templates.choose("abc", "find", k, seed=0).id for k in range(3)]
    assert len(set(picks)) == 3
    assert all(templates.choose("abc", "find", k, generic=False).uses_context for k in range(8))


# ------------------------------------------------------------------------------ real seed data


def test_seed_records_rename_consistently_and_still_parse(seed_splits, seed_plain) -> None:
    out, rep = seed_plain
    parents = {r["id"]: r for r in seed_splits["train"].to_pylist()}
    variants = _variants(out["train"])
    assert _check_renames(parents, variants) >= 40
    for v in variants:
        p = parents[v["parent_id"]]
        assert v["category"] == p["category"]
        for f in ("instruction", "response"):
            for a, b in zip(extract_code(p[f]), extract_code(v[f]), strict=True):
                if parse(a.text).ok:
                    assert parse(b.text).ok
    n_in = seed_splits["train"].num_rows
    assert 3 * n_in <= out["train"].num_rows <= 4 * n_in
    assert out["validation"].equals(seed_splits["validation"]) and out["test"].equals(seed_splits["test"])
    assert rep.balanced


def test_seed_records_with_templates(seed_splits) -> None:
    out, rep = augment(seed_splits, AugmentConfig(factor=3, seed=0))
    n_in = seed_splits["train"].num_rows
    assert 3 * n_in <= out["train"].num_rows <= 4 * n_in
    assert rep.balanced and rep.variants_by_family.get("none", 0) < 0.3 * rep.splits["train"].variants_added


# ------------------------------------------------------------------------------ CLI


@pytest.fixture
def split_dir(tmp_path: Path) -> Path:
    d = tmp_path / "splits"
    write_split_dir(_sample_splits(), d)
    return d


def test_cli_augments_train_and_copies_the_others(split_dir: Path, tmp_path: Path) -> None:
    out_dir, rep_path = tmp_path / "aug", tmp_path / "rep.json"
    r = runner.invoke(app, ["augment", str(split_dir), "--out", str(out_dir), "--factor", "3", "--report",
                            str(rep_path)])
    assert r.exit_code == 0, r.output
    assert "Augment ledger" in r.output and "balanced" in r.output
    result = read_split_dir(out_dir)
    src = read_split_dir(split_dir)
    assert 3 * src["train"].num_rows <= result["train"].num_rows <= 4 * src["train"].num_rows
    for name in ("validation", "test"):
        assert (out_dir / f"{name}.jsonl").read_bytes() == (split_dir / f"{name}.jsonl").read_bytes()
    report = json.loads(rep_path.read_text())
    assert report["splits"]["train"]["records_out"] == result["train"].num_rows
    lines = [json.loads(x) for x in (out_dir / "train.jsonl").read_text().splitlines()]
    assert all({"parent_id", "transform"} <= set(x) for x in lines if "parent_id" in x)


def test_cli_json_and_formats(split_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["augment", str(split_dir), "--out", str(tmp_path / "o"), "--json", "--factor", "1",
                            "--format", "chat", "--transforms", "rename,comments", "--no-templates"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    import jsonschema

    schema = Path(__file__).resolve().parents[1] / "schemas" / "augment-report.schema.json"
    jsonschema.validate(data, json.loads(schema.read_text()))
    assert data["config"]["transforms"] == ["rename_identifiers", "toggle_comments"]
    assert data["config"]["templates"] is False
    first = json.loads((tmp_path / "o" / "train.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]


@pytest.mark.parametrize("args", [
    ["--factor", "0"],
    ["--transforms", "rename,shuffle"],
    ["--format", "xml"],
    ["--splits", "train,test"],
    ["--splits", "holdout"],
])
def test_cli_config_errors_exit_2_without_traceback(split_dir: Path, tmp_path: Path, args: list[str]) -> None:
    r = runner.invoke(app, ["augment", str(split_dir), "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and "Traceback" not in r.output


def test_cli_bad_directory_exits_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["augment", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a split directory" in r.output


def test_cli_eval_split_with_flag_warns(split_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["augment", str(split_dir), "--out", str(tmp_path / "o"), "--splits", "train,test",
                            "--allow-eval-splits", "--factor", "1"])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "test" in r.output
