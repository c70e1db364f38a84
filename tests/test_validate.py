"""validate on the real seed corpus: exactly the records that lack a field are errors, and counts add up."""

from __future__ import annotations

import json
from pathlib import Path

from swcdata.steps.validate import ValidateConfig, Validation, load_valid

MISSING = {("solidity_vunerability_SWC-107_Reentrancy.jsonl", 415),
           ("solidity_vunerability_SWC-113_DoS_with_Failed_Call.jsonl", 898)}


def _expected_missing(files: list[Path]) -> set[tuple[str, int]]:
    """Independently of swcdata: the lines whose object lacks one of the three fields."""
    out = set()
    for f in files:
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            obj = json.loads(line)
            if not {"instruction", "response", "category"} <= obj.keys():
                out.add((f.name, i))
    return out


def test_seed_errors_are_exactly_the_records_lacking_a_field(seed_files: list[Path]) -> None:
    assert _expected_missing(seed_files) == MISSING
    quarantined = []
    rep = Validation(ValidateConfig(check_code=False)).run(seed_files, on_quarantine=quarantined.extend)
    errors = {(Path(f.file).name, f.line) for f in rep.findings if f.severity == "error"}
    assert errors == MISSING
    assert {(Path(q.file).name, q.line) for q in quarantined} == MISSING
    assert all(f.rule == "missing-field" and f.field == "response" for f in rep.findings if f.severity == "error")
    lg = rep.ledger
    assert (lg.lines_read, lg.blank_lines, lg.valid, lg.quarantined) == (6000, 0, 5998, 2)
    assert lg.adds_up
    # the quarantined lines are the input lines verbatim
    for q in quarantined:
        original = Path(q.file).read_text(encoding="utf-8").splitlines()[q.line - 1]
        assert q.text == original


def test_seed_duplicate_key_found(seed_files: list[Path]) -> None:
    rep = Validation(ValidateConfig(check_code=False)).run(seed_files)
    dups = [(Path(f.file).name, f.line, f.field) for f in rep.findings if f.rule == "duplicate-key"]
    assert dups == [("solidity_vunerability_SWC-107_Reentrancy.jsonl", 961, "response")]


def test_load_valid_gives_provenance_and_stable_ids(seed_files: list[Path]) -> None:
    table, rep, _ = load_valid(seed_files, ValidateConfig(check_code=False))
    assert table.num_rows == 5998 == rep.ledger.valid
    src = table.column("source").to_pylist()
    assert src[0] == {"file": str(seed_files[0]), "line": 1}
    ids = table.column("id").to_pylist()
    assert all(len(i) == 16 for i in ids)
    again, _, _ = load_valid(seed_files, ValidateConfig(check_code=False, workers=1, chunk_size=7))
    assert again.equals(table)  # same content whatever the chunking


def test_workers_do_not_change_the_result(seed_files: list[Path]) -> None:
    one = Validation(ValidateConfig(workers=1)).run(seed_files[:1])
    two = Validation(ValidateConfig(workers=2, chunk_size=50)).run(seed_files[:1])
    assert one.findings == two.findings and one.ledger == two.ledger


def test_record_ids_equal_record_id() -> None:
    """The batched (numpy) record ids are exactly `record_id`, blanks, case and typography included."""
    import random

    from swcdata.core.text import record_id, record_ids

    alphabet = [*"ab XY09_;{}().'\"-`", *"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x00\x7f", "\u2019", "\u201c", "\u2014",
                "\u2026", "\u00a0", "\u200b", "\u3000", "\u2028", "\x85", "ß", "É", "ﬁ", "e\u0301"]
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(0, 20)
        ins = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(n)]
        res = ["".join(rng.choice(alphabet[:25]) for _ in range(rng.randint(0, 30))) for _ in range(n)]
        assert record_ids(ins, res) == [record_id(a, b) for a, b in zip(ins, res, strict=True)]


def test_record_ids_of_different_fields_never_collide_on_the_separator() -> None:
    """The separator between the fields is a NUL; a NUL inside a field is escaped, so moving text
    across the separator changes the id. Fields without a NUL keep their ids."""
    from swcdata.core.text import record_id, record_ids

    a = ("Review this \x00 EXTRA", "It is fine")
    b = ("Review this", "EXTRA \x00 It is fine")
    assert record_id(*a) != record_id(*b)
    assert record_ids([a[0], b[0]], [a[1], b[1]]) == [record_id(*a), record_id(*b)]
    assert record_id("Review this code", "It is fine") == "27dc85980ea88a89"  # (the id before the escape)


def test_parse_check_agrees_with_parse(seed_files: list[Path]) -> None:
    """The wrapping chosen from lexical cues gives parse()'s ok and error count, mostly in one parse."""
    from swcdata.solidity import treesitter
    from swcdata.solidity.spans import extract_code

    spans = []
    for line in seed_files[0].read_text(encoding="utf-8").splitlines()[:150]:
        obj = json.loads(line)
        for name in ("instruction", "response"):
            if isinstance(obj.get(name), str):
                spans += [s.text for s in extract_code(obj[name])]
    assert len(spans) > 200
    for text in spans:
        a, b = treesitter.parse_check(text), treesitter.parse(text)
        assert a.ok == b.ok and (a.ok or a.error_count == b.error_count), text


def test_findings_are_the_same_without_batches(seed_files: list[Path]) -> None:
    """`validate` without an output asks for no Arrow batches (and computes no ids it would not
    check): the findings and the ledger must not change."""
    cfg = ValidateConfig(check_code=False)
    batches: list[object] = []
    with_b = Validation(cfg).run(seed_files, on_batch=batches.append)
    without = Validation(cfg).run(seed_files)
    assert with_b.findings == without.findings and with_b.ledger == without.ledger
    assert sum(b.num_rows for b in batches) == without.ledger.valid  # type: ignore[attr-defined]


def test_id_mismatch_is_checked_without_batches() -> None:
    import orjson

    from swcdata.core.text import record_id
    from swcdata.steps.validate import check_lines

    ins, res = "Find the bug in `x = 1;`", "No bug: `x = 1;` is fine here."
    good = {"id": record_id(ins, res), "instruction": ins, "response": res, "category": "SWC-101"}
    bad = {**good, "id": "0000000000000000"}
    lines = [(1, orjson.dumps(good)), (2, orjson.dumps(bad))]
    for batch in (True, False):
        r = check_lines("f", lines, ValidateConfig(check_code=False), batch=batch)
        assert r.valid == 2
        assert [(f[0], f[1]) for f in r.findings if f[0] == "id-mismatch"] == [("id-mismatch", 2)]
        assert (r.batch is not None) is batch


def test_contradiction_chunk_fast_path_agrees() -> None:
    """The chunk-level shortcut (no "swc"/"Swc" anywhere: one upper-case scan of both fields) names
    the same classes as the per-field rule, mentions at the field boundary included; a JSON escape
    of a letter sends the chunk the per-field way."""
    import random

    from swcdata.steps.validate import _contradiction, check_lines

    parts = ["SWC", "SWC-", "SWC_", "SWC ", "XSWC-", "107", "110", "113", "1070", "999", " ", "\n", "-", "a", "\x00"]
    rng = random.Random(1)
    for _ in range(3000):
        i = "".join(rng.choice(parts) for _ in range(rng.randint(0, 6)))
        r = "".join(rng.choice(parts) for _ in range(rng.randint(0, 6)))
        cat = rng.choice(["SWC-107", "SWC-110"])
        assert _contradiction(cat, i, r, False) == _contradiction(cat, i, r, True), (i, r)
    rec = (b'{"instruction": "Is this \\u0073wc-110? `x = a + b;`", '
           b'"response": "It is an integer overflow, not that.", "category": "SWC-101"}')
    found = check_lines("f", [(1, rec)], ValidateConfig(check_code=False), batch=False).findings
    assert [f[0] for f in found] == ["category-contradiction"] and "SWC-110" in found[0][3]


def test_every_rule_is_in_the_readmes_rules_table() -> None:
    """The README's "validate: the rules" table names every rule of the RULES table (and its severity)."""
    import re

    from swcdata.steps.validate import RULES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### validate: the rules", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        for name in re.findall(r"`([a-z0-9-]+)`", cells[0]):
            rows[name] = cells[1]
    assert {name: sev.value for name, (sev, _) in RULES.items()} == rows


def test_a_span_over_max_parse_chars_is_not_parsed() -> None:
    import orjson

    from swcdata.steps.validate import check_lines

    code = "contract A {\n" + "    uint x;\n" * 12 + "}"
    rec = orjson.dumps({"instruction": f"Find the bug:\n\n```solidity\n{code}\n```",
                        "response": "Fixed:\n```solidity\ncontract B { uint y; }\n```", "category": "SWC-101"})
    small = ValidateConfig(max_parse_chars=len(code) - 1)
    found = check_lines("f", [(1, rec)], small, batch=False).findings
    assert [(f[0], f[2]) for f in found] == [("code-too-large", "instruction")]
    assert f"has {len(code)} characters, over max_parse_chars ({len(code) - 1})" in found[0][3]
    assert check_lines("f", [(1, rec)], ValidateConfig(), batch=False).findings == []


def test_drop_findings_quarantines_the_noop_fixes_with_that_reason(swc_files: list[Path]) -> None:
    import pytest
    from pydantic import ValidationError

    base = Validation(ValidateConfig()).run(swc_files)
    noop = next(r.count for r in base.rules if r.rule == "noop-fix")
    assert noop > 100
    quarantined: list = []
    rep = Validation(ValidateConfig(drop_findings=["noop-fix"])).run(swc_files, on_quarantine=quarantined.extend)
    assert rep.ledger.quarantined == base.ledger.quarantined + noop and rep.ledger.adds_up
    assert rep.ledger.valid == base.ledger.valid - noop
    assert rep.config["drop_findings"] == ["noop-fix"]
    dropped = [q for q in quarantined if any(r == "noop-fix" for r, _, _ in q.reasons)]
    assert len(dropped) == noop
    assert all(m.startswith("dropped by validate.drop_findings: ") for q in dropped for _, _, m in q.reasons)
    assert [q.line for q in quarantined if q.file == quarantined[0].file] == sorted(
        q.line for q in quarantined if q.file == quarantined[0].file)
    with pytest.raises(ValidationError, match="not a warning rule: 'missing-field'"):
        ValidateConfig(drop_findings=["missing-field"])
