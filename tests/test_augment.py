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

from swcdata.cli.main import app
from swcdata.core.records import write_jsonl
from swcdata.solidity.lexer import _KEEP, code_tokens
from swcdata.solidity.spans import extract_code
from swcdata.solidity.treesitter import parse
from swcdata.steps.augment import templates
from swcdata.steps.augment.step import TRANSFORMS, AugmentConfig, augment
from swcdata.steps.split_dir import read_split_dir, write_split_dir
from swcdata.steps.validate import ValidateConfig, load_valid

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
    assert s.skipped_by_finding == rep.skipped_by_finding["noop-fix"] >= 1  # (the sample has a no-op fix)
    assert s.variants_attempted == 3 * (n_in - s.skipped_by_finding)
    assert s.variants_attempted == s.variants_added + s.duplicates_dropped + s.no_effect + s.parse_failed
    assert n_out == n_in + s.variants_added and rep.adds_up
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
    # templates apply to most records of the sample (every family of its requests is represented)
    assert {"find", "explain_fix", "classify", "rewrite"} <= set(rep.variants_by_family) <= {*templates.FAMILIES,
                                                                                           "none"}
    # (the sample's requests are often specific: a template is used only where it loses nothing)
    assert sum(1 for v in variants if v["template"]) >= 0.4 * len(variants)


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
    from swcdata.core.text import record_id

    row = {**rec, "id": record_id(rec["instruction"], rec["response"]), "source": {"file": "x", "line": 1},
           "metadata": None, "parent_id": None, "transform": None, "template": None}
    from swcdata.core.records import RECORD_SCHEMA

    out, _ = augment({"train": pa.Table.from_pylist([row], schema=RECORD_SCHEMA)},
                     AugmentConfig(factor=3, transforms=["rename"], templates=False, skip_findings=[]))
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
    from swcdata.core.records import RECORD_SCHEMA
    from swcdata.core.text import record_id

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
    out, _ = augment({"train": table}, AugmentConfig(factor=3, transforms=["rename"], templates=False,
                                                     skip_findings=[]))
    assert _variants(out["train"])
    for v in _variants(out["train"]):
        code_new = extract_code(v["instruction"])[-1].text
        assert "Bid({bidder: bidder, amount: amount})" in code_new and "{salt: salt}" in code_new, code_new


def test_a_reflow_drops_no_break_spaces_as_layout() -> None:
    """Code pasted from a web page is indented with no-break spaces (U+00A0): the one lexer keeps such a
    character as a token (Solidity rejects it), but augmentation reads it as blank, so a reflow drops it."""
    nbsp = "\u00a0"
    code = (f"function f(uint a) public {{\n{nbsp} {nbsp} if (a > 1) {{\n{nbsp} {nbsp} {nbsp} total += a;\n"
            f"{nbsp} {nbsp} }}\n}}")
    table = _one(f"Find the bug:\n\n```solidity\n{code}\n```", f"Fixed:\n\n```solidity\n{code}\n```")
    out, _ = augment({"train": table}, AugmentConfig(factor=2, transforms=["layout"], templates=False,
                                                     skip_findings=[]))
    variants = _variants(out["train"])
    assert variants
    for v in variants:
        assert nbsp not in extract_code(v["instruction"])[-1].text, v["instruction"]


def test_comments_are_toggled_in_the_instruction_only() -> None:
    """The response's comments are its explanation: never removed (nor added to)."""
    code = "function add(uint a) public {\n    total += a; // adds a\n}"
    fixed = "function add(uint a) public {\n    total = total + a; // Unchecked addition can overflow (SWC-101)\n}"
    table = _one(f"What is wrong here?\n\n```solidity\n{code}\n```", f"Overflow:\n\n```solidity\n{fixed}\n```")
    out, _ = augment({"train": table}, AugmentConfig(factor=1, transforms=["comments"], templates=False))
    (v,) = _variants(out["train"])
    assert "// adds a" not in v["instruction"] and v["response"] == table.column("response")[0].as_py()


def test_a_kept_description_keeps_the_code_after_it_and_the_request_is_rewritten() -> None:
    """A description the template cannot say ("The following constructor ...") stays before the request; the
    code comes after a sentence that ends with a colon, never first (it would point at nothing)."""
    code = ("constructor(uint256 _unlock) public {\n    creator = msg.sender;\n    unlockTime = now + _unlock;\n}")
    instruction = ("The following constructor initializes a PiggyBank contract by setting the creator and an unlock "
                   f"time. Can you review the code and check for any potential issue?\n\n{code}")
    fixed = code.replace("now + _unlock", "now.add(_unlock)")
    table = _one(instruction, "The unlock time can overflow (SWC-101). Fixed:\n\n```solidity\n" + fixed + "\n```")
    out, _ = augment({"train": table}, AugmentConfig(factor=8, transforms=["layout"]))
    chosen = [v for v in _variants(out["train"]) if v["template"]]
    assert len(chosen) >= 6
    for v in chosen:
        assert not templates.get(v["template"]).code_first
        assert v["instruction"].startswith("The following constructor initializes a PiggyBank contract")
        assert "Can you review the code" not in v["instruction"], "the request is rewritten, not repeated"
        head = v["instruction"][: extract_code(v["instruction"])[0].start]
        assert head.rstrip().endswith(":"), head


def test_focus_topic_and_questions_of_the_request_survive_the_template() -> None:
    code = "function setRelease() public {\n    releaseTime = now + month;\n    paid = false;\n}"
    instruction = ("Review the following Solidity code for reentrancy vulnerabilities, particularly in the line "
                   f"'releaseTime = now + month;':\n\n{code}\n\nCould the release ever be delayed?")
    table = _one(instruction, "Use block.timestamp:\n\n```solidity\n" + code.replace("now", "block.timestamp")
                 + "\n```")
    out, _ = augment({"train": table}, AugmentConfig(factor=6, transforms=["layout"]))
    chosen = [v for v in _variants(out["train"]) if v["template"]]
    assert chosen
    for v in chosen:
        text = v["instruction"]
        assert "'releaseTime = now + month;'" in text, text  # the focus, in the record's own words
        assert "reentrancy" in text.lower()  # the topic
        assert text.rstrip().endswith("Could the release ever be delayed?")  # the specific question, last
        assert "particularly in the line" not in text  # (the request itself is said in other words)


def test_a_request_with_details_a_template_cannot_say_keeps_its_own_wording() -> None:
    code = "function f(uint a) public {\n    total += a;\n}"
    table = _one(f"Port this pre-0.8 function to Solidity 0.8 in a way that removes its overflow risk:\n\n{code}",
                 "Overflow (SWC-101):\n\n```solidity\nfunction f(uint a) public { total = total + a; }\n```")
    out, _ = augment({"train": table}, AugmentConfig(factor=3))
    variants = _variants(out["train"])
    assert variants and all(v["template"] is None for v in variants)
    assert all(v["instruction"].startswith("Port this pre-0.8 function to Solidity 0.8") for v in variants)


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
    from swcdata.steps.augment import record
    from swcdata.steps.augment import step as aug

    def breaker(rec, key, cache):  # type: ignore[no-untyped-def]
        new = tuple([s.text.replace("{", "{ }}}", 1) if "{" in s.text else s.text for s in f.spans]
                    for f in rec.fields)
        return record.edit(rec, (new[0], new[1]))

    monkeypatch.setitem(aug._TRANSFORM_FNS, "reflow_layout", breaker)
    out, rep = augment(sample_splits, AugmentConfig(factor=3, transforms=["layout"], templates=False))
    assert rep.skipped_parse_failures["reflow_layout"] > 0
    assert rep.splits["train"].parse_failed == (rep.skipped_parse_failures["reflow_layout"]
                                                + rep.skipped_code_lost["reflow_layout"])
    assert rep.adds_up
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
    assert rep2.adds_up


def test_records_with_lineage_are_not_augmented_again(sample_result) -> None:
    out, _ = sample_result
    _, rep = augment({"train": out["train"]}, AugmentConfig(factor=1))
    n_variants = len(_variants(out["train"]))
    s = rep.splits["train"]
    assert s.sources == out["train"].num_rows - n_variants - s.skipped_by_finding
    assert any("lineage" in w for w in rep.warnings)


# ------------------------------------------------------------------------------ templates


def test_each_family_has_at_least_eight_distinct_phrasings() -> None:
    assert set(templates.FAMILIES) == {"find", "review", "explain_fix", "classify", "rewrite"}
    for fam in templates.FAMILIES:
        ts = templates.templates(fam)
        assert len(ts) >= 8 and len({t.text for t in ts}) == len(ts)
        assert len({t.id for t in ts}) == len(ts) and all(t.family == fam for t in ts)


def test_code_never_sits_inside_a_sentence() -> None:
    """In every template the code comes first, or after a sentence that ends with a colon, and is followed
    by nothing or a new paragraph; no template only puts a header in front of the record's own words."""
    for t in templates.TEMPLATES.values():
        for tpl in t:
            assert tpl.text.count("{code}") == 1 and "{context}" not in tpl.text
            before, after = tpl.text.split("{code}")
            assert before == "" or before.endswith(":\n\n"), tpl.id
            assert after == "" or after.startswith("\n\n"), tpl.id
            for obj in ("function", "code", "modifier", "contract"):
                text = templates.render(tpl, "CODE", obj=obj, topics=("reentrancy",), focus=["the line `x`"])
                assert "  " not in text and "{" not in text and " ." not in text, text


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


def test_choose_is_deterministic_varies_with_k_and_is_balanced() -> None:
    picks = [templates.choose("abc", "find", k, seed=0).id for k in range(3)]
    assert picks == [templates.choose("abc", "find", k, seed=0).id for k in range(3)]
    assert len(set(picks)) == 3
    assert not any(templates.choose("abc", "find", k, code_first=False).code_first for k in range(12))
    for fam, ts in templates.TEMPLATES.items():  # over many records every template gets about its fair share
        n = 4000
        counts = Counter(templates.choose(f"r{i}", fam, k, seed=7).id for i in range(n) for k in range(3))
        fair = 3 * n / len(ts)
        assert set(counts) == {t.id for t in ts} and max(counts.values()) < 1.2 * fair, (fam, counts)


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
    assert rep.adds_up


def test_seed_records_with_templates(seed_splits) -> None:
    out, rep = augment(seed_splits, AugmentConfig(factor=3, seed=0))
    n_in = seed_splits["train"].num_rows
    assert 3 * n_in <= out["train"].num_rows <= 4 * n_in
    assert rep.adds_up and rep.variants_by_family.get("none", 0) < 0.3 * rep.splits["train"].variants_added
    again, rep2 = augment(seed_splits, AugmentConfig(factor=3, seed=0))
    assert _bytes(again) == _bytes(out)  # (the same seed: the same bytes)
    assert rep2.model_dump(exclude={"seconds"}) == rep.model_dump(exclude={"seconds"})


# ------------------------------------------------------------------------------ a seed build (issue 20's checks)


@pytest.fixture(scope="module")
def seed_version(seed_build_root: Path):  # type: ignore[no-untyped-def]
    """The user's build (conftest's `seed_build_root`: the five SWC files, test_data.jsonl as the holdout,
    augmentation on: the defaults). Returns the train split's rows, the manifest, the augment step's summary and
    the build's ledger (as the manifest records it)."""
    from swcdata.registry.build import BuildLedger
    from swcdata.registry.store import Registry

    dd, m = Registry(seed_build_root / "registry").load("swc@v1")
    summary = next(st for st in m.steps if st.name == "augment").summary
    ledger = BuildLedger.model_validate({k: v for k, v in m.ledger.items() if k != "contamination"})
    return dd["train"].to_list(), m, summary, ledger


def _pairs(rows: list[dict]) -> list[tuple[dict, dict]]:
    by_id = {r["id"]: r for r in rows if r["parent_id"] is None}
    return [(by_id[r["parent_id"]], r) for r in rows if r["parent_id"] is not None]


def test_seed_build_variants_rarely_only_add_a_header(seed_version) -> None:
    from swcdata.steps.augment.quality import adds_only_header

    rows, _, summary, _ = seed_version
    pairs = _pairs(rows)
    assert len(pairs) > 6000
    header = sum(adds_only_header(p["instruction"], v["instruction"], extract_code(p["instruction"]),
                                  extract_code(v["instruction"])) for p, v in pairs)
    assert header <= 0.10 * len(pairs), header
    assert summary["quality"]["header_only"] == header
    templated = sum(1 for _, v in pairs if v["template"])
    assert templated >= 0.75 * len(pairs)  # (the rest keep the record's own, specific wording)


def test_seed_build_no_template_exceeds_twice_its_fair_share(seed_version) -> None:
    rows, _, summary, _ = seed_version
    used = Counter(v["template"] for _, v in _pairs(rows) if v["template"])
    per_family = Counter()
    for t, n in used.items():
        per_family[t.split("/")[0]] += n
    for t, n in used.items():
        fam = t.split("/")[0]
        fair = per_family[fam] / len(templates.templates(fam))
        assert n <= 2 * fair, (t, n, fair)
    for fam in ("find", "review", "explain_fix"):  # the seed's main families use every phrasing they have
        assert sum(1 for t in used if t.startswith(fam + "/")) == len(templates.templates(fam)) >= 8
    assert summary["quality"]["max_template_over_fair"] <= 2.0


def test_seed_build_never_renames_a_bool_to_an_address_or_constant_name(seed_version) -> None:
    from swcdata.solidity.declarations import facts, type_kind
    from swcdata.steps.augment import namepools

    rows, _, summary, _ = seed_version
    checked = renamed = 0
    for p, v in _pairs(rows):
        if v["transform"] != "rename_identifiers":
            continue
        bools = {d.name for f in ("instruction", "response") for s in extract_code(p[f])
                 for d in facts(s.text, bodies=False).decls if type_kind(d.type) == "bool"}
        if not bools:
            continue
        for f in ("instruction", "response"):
            shapes: dict[str, list[str]] = {}
            for a in extract_code(p[f]):
                shapes.setdefault(" ".join(code_tokens(a.text, abstract_identifiers=True)), []).append(a.text)
            for b in extract_code(v[f]):
                same = shapes.get(" ".join(code_tokens(b.text, abstract_identifiers=True)))
                if not same:
                    continue
                for x, y in zip(code_tokens(same.pop(0)), code_tokens(b.text), strict=True):
                    if x != y and x in bools:
                        renamed += 1
                        roles = namepools.roles_of(y)
                        assert not roles & {"addr", "const_addr", "const_amount", "const_time", "const_rate"}, (x, y)
                        assert not y.lstrip("_").isupper(), (x, y)
                        assert roles & {"bool_on", "bool_off", "bool_done"}, (x, y)
        checked += 1
    assert checked > 50 and renamed > 50
    assert summary["quality"]["bool_renamed_off_type"] == []
    assert summary["quality"]["type_pool_match_rate"] >= 0.99


def test_seed_build_keeps_noop_fix_records_out_of_augmentation(seed_version) -> None:
    import orjson

    from swcdata.steps.validate import ValidateConfig, check_lines

    rows, m, summary, ledger = seed_version
    skipped = summary["skipped_by_finding"]["noop-fix"]
    assert skipped > 50 and summary["splits"]["train"]["skipped_by_finding"] == skipped
    assert ledger.not_augmented_by_finding == skipped and m.ledger["not_augmented_by_finding"] == skipped
    assert ledger.adds_up
    parents = {p["id"]: p for p, _ in _pairs(rows)}
    lines = [(k, orjson.dumps({f: p[f] for f in ("instruction", "response", "category")}))
             for k, p in enumerate(parents.values(), 1)]
    found = check_lines("parents", lines, ValidateConfig(), batch=False).findings
    assert not [f for f in found if f[0] == "noop-fix"], "a no-op fix was augmented"


def test_seed_build_reports_the_augmentation_quality(seed_version) -> None:
    from swcdata.evaluation.stats import stats

    rows, _, summary, _ = seed_version
    q = summary["quality"]
    assert len(q["samples"]) == 5 and all(s["instruction_after"] != s["instruction_before"] for s in q["samples"])
    assert q["parse_rate_before"] >= 0.95 and q["parse_rate_after"] >= q["parse_rate_before"] - 0.005
    assert set(q["transform_shares"]) >= {"rename_identifiers", "reflow_layout", "toggle_comments"}
    # `swcdata stats` measures the published records the same way
    table = pa.Table.from_pylist(rows)
    rep, _ = stats({"train": table})
    sq = rep.splits[0].augmentation
    assert sq is not None
    assert sq.header_only == q["header_only"] and sq.template_shares == q["template_shares"]
    assert sq.renames_typed == q["renames_typed"] and sq.parse_rate_after == q["parse_rate_after"]


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
    assert "Augment ledger" in r.output and "ledger adds up" in r.output
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
    assert data["config"]["templates"] is False and data["config"]["skip_findings"] == ["noop-fix"]
    assert data["quality"]["variants"] == data["splits"]["train"]["variants_added"]
    r = runner.invoke(app, ["augment", str(split_dir), "--out", str(tmp_path / "o2"), "--json", "--factor", "1",
                            "--skip-findings", ""])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["splits"]["train"]["skipped_by_finding"] == 0
    first = json.loads((tmp_path / "o" / "train.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]


@pytest.mark.parametrize("args", [
    ["--factor", "0"],
    ["--transforms", "rename,shuffle"],
    ["--format", "xml"],
    ["--splits", "train,test"],
    ["--splits", "holdout"],
    ["--skip-findings", "missing-field"],
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


# ------------------------------------------------------------------------------ renames that respect the code


_TYPED = """contract Escrow2 {
    bool public stopped;
    bool internal success_;
    address payable public payoutWallet;
    uint256 public unlockDate;
    uint256 public constant MIN_AMOUNT = 1 ether;
    mapping(address => uint256) public credits;
    event Deposited2(address indexed who, uint256 amount);
    modifier onlyBoss() { require(msg.sender == payoutWallet); _; }
    function depositFunds() public payable {
        require(!stopped && msg.value >= MIN_AMOUNT);
        credits[msg.sender] += msg.value;
        emit Deposited2(msg.sender, msg.value);
    }
    function releaseAll() public onlyBoss {
        require(now >= unlockDate);
        success_ = payoutWallet.send(address(this).balance);
    }
}"""


def _renames(parent: str, variant: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for a, b in zip(extract_code(parent), extract_code(variant), strict=True):
        for x, y in zip(code_tokens(a.text), code_tokens(b.text), strict=True):
            if x != y:
                out[x] = y
    return out


def test_renames_take_names_of_the_declared_type_and_role() -> None:
    from swcdata.solidity.declarations import facts
    from swcdata.steps.augment import namepools

    table = _one(f"Find the bug in this contract:\n\n```solidity\n{_TYPED}\n```",
                 "Reentrancy is not the issue here; `send` can fail silently (SWC-113).")
    out, _ = augment({"train": table}, AugmentConfig(factor=12, transforms=["rename"], templates=False, seed=3))
    variants = _variants(out["train"])
    assert len(variants) >= 8
    decls = {d.name: d for d in facts(_TYPED).decls}
    seen: dict[str, set[str]] = {}
    for v in variants:
        for old, new in _renames(table.column("instruction")[0].as_py(), v["instruction"]).items():
            seen.setdefault(old, set()).add(new)
    for old, news in seen.items():
        for new in news:
            roles = namepools.roles_of(new)
            assert roles, (old, new)
            d = decls.get(old)
            if old in ("stopped",):
                assert roles == {"bool_off"}, new  # a flag that means "off" stays one (never `isLive`)
            elif d is not None and d.type == "bool":
                assert roles <= {"bool_on", "bool_off", "bool_done"}, new
            elif d is not None and d.type and d.type.startswith("address"):
                assert roles == {"addr"}, new
            elif old == "MIN_AMOUNT":
                assert roles <= {"const_amount", "const_rate", "const_time"} and new.isupper(), new
            elif old == "unlockDate":
                assert roles <= {"time_end", "time_start", "time_at"}, new  # compared with `now`: a time
            elif old == "credits":
                assert roles == {"map_amount"}, new
            elif old in ("depositFunds", "releaseAll"):
                assert roles == {"func_action"}, new
            elif old == "onlyBoss":
                assert roles == {"modifier_only"}, new
            elif old == "Escrow2":
                assert roles == {"contract"}, new
            elif old == "Deposited2":
                assert roles == {"event"}, new
    assert {"stopped", "payoutWallet", "unlockDate", "credits", "onlyBoss"} <= set(seen)


def test_names_the_prose_describes_in_plain_words_are_not_renamed() -> None:
    code = ("function setExternalDependencies(address[] _deps) public onlyOwner {\n"
            "    for (uint i = 0; i < _deps.length; i++) { deps.push(_deps[i]); }\n    helperTotal = sqrt(i);\n}")
    table = _one(f"What is wrong here?\n\n```solidity\n{code}\n```",
                 "The function updates the external dependencies without any bound on the loop (SWC-113).")
    out, _ = augment({"train": table}, AugmentConfig(factor=6, transforms=["rename"], templates=False))
    variants = _variants(out["train"])
    assert variants
    for v in variants:
        assert "setExternalDependencies" in v["instruction"], "the prose says what it does: the name stays"
        assert "sqrt(" in v["instruction"], "an undeclared helper that may compute anything keeps its name"


# ------------------------------------------------------------------------------ comments


def test_added_comments_are_natspec_above_the_declaration_and_say_what_it_does() -> None:
    code = ("contract Bank {\n    mapping(address => uint) balances;\n"
            "    function withdraw() public {\n        uint amount = balances[msg.sender];\n"
            "        msg.sender.call.value(amount)();\n        balances[msg.sender] = 0;\n    }\n"
            "    function peek(address a) public view returns (uint) {\n        return balances[a];\n    }\n}")
    table = _one(f"Find the bug in this contract:\n\n```solidity\n{code}\n```",
                 "Reentrancy (SWC-107): clear the balance before the call.")
    out, _ = augment({"train": table}, AugmentConfig(factor=4, transforms=["comments"], templates=False))
    variants = _variants(out["train"])
    assert len(variants) >= 2  # (four NatSpec forms; two variants that chose the same one are one record)
    for v in variants:
        new = extract_code(v["instruction"])[0].text
        lines = new.split("\n")
        for i, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith("function "):
                above = lines[i - 1]
                assert above.strip().endswith(("*/", ".")) and "@" in "\n".join(lines[max(0, i - 3) : i]), new
                indent = line[: len(line) - len(line.lstrip())]
                assert above.startswith(indent) and above[len(indent)] in "/ ", "indented like the declaration"
        comments = [ln.strip() for ln in lines if ln.strip().startswith(("/", "*")) and "@" in ln]
        assert len(comments) == 2
        assert not any("withdraw" in c or "peek" in c for c in comments), "a comment never repeats the name"
        assert any("sends ether" in c and "updates storage" in c and "Callable by anyone" in c for c in comments)
        assert any("reads state without changing it" in c for c in comments)
        assert "{ /" not in new and "{/" not in new, "nothing is put inside a body"
        assert parse(new).ok


def test_a_single_unfenced_function_is_fenced_to_take_its_comment() -> None:
    code = ("function withdraw() public {\n    msg.sender.transfer(balance[msg.sender]);\n"
            "    balance[msg.sender] = 0;\n}")
    table = _one(f"Review the following function for potential issues:\n\n{code}",
                 "Reentrancy-safe? `transfer` forwards 2300 gas; clear the balance first (SWC-107).")
    out, _ = augment({"train": table}, AugmentConfig(factor=2, transforms=["comments"], templates=False))
    for v in _variants(out["train"]):
        assert v["instruction"].startswith("Review the following function for potential issues:\n\n```solidity\n")
        (span,) = extract_code(v["instruction"])
        first, second = span.text.split("\n")[:2]
        assert first.startswith(("///", "/**")) and (second.startswith("function") or second.startswith(" *"))


def test_removing_comments_keeps_the_indentation_of_the_rest() -> None:
    code = ("    // pays the caller\n    function withdraw() public {\n        uint a = bal[msg.sender]; // read\n"
            "        msg.sender.transfer(a);\n    }")
    fixed = "function withdraw() public {\n    uint a = bal[msg.sender];\n    bal[msg.sender] = 0;\n}"
    table = _one(f"What is wrong here?\n\n```solidity\n{code}\n```", f"Clear first:\n\n```solidity\n{fixed}\n```")
    out, _ = augment({"train": table}, AugmentConfig(factor=1, transforms=["comments"], templates=False))
    (v,) = _variants(out["train"])
    new = extract_code(v["instruction"])[0].text
    assert new == "function withdraw() public {\n    uint a = bal[msg.sender];\n    msg.sender.transfer(a);\n}", new
