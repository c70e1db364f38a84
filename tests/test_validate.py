"""validate on the real seed corpus: exactly the records that lack a field are errors, and counts add up."""

from __future__ import annotations

import json
from pathlib import Path

from swcdata.validate import ValidateConfig, Validation, load_valid

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
    assert lg.balanced
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
