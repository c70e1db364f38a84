"""audit: the seed evaluation file is contaminated (drawn from the training pool); a clean set is clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swcdata.audit import AuditConfig, audit
from swcdata.cli import app
from swcdata.validate import ValidateConfig, load_valid

runner = CliRunner()


def _load(*paths: Path):  # type: ignore[no-untyped-def]
    table, _, _ = load_valid(list(paths), ValidateConfig(check_code=False))
    return table


def test_seed_test_set_is_contaminated_with_a_match_for_each(swc_files: list[Path], seed_test_file: Path) -> None:
    rep = audit(_load(*swc_files), _load(seed_test_file))
    s = rep.summary
    assert s.candidate_records == 1000 and s.contamination_rate >= 0.99
    for c in rep.leaked:
        assert c.match is not None and c.match.source.file.endswith(".jsonl") and c.match.source.line >= 1
        assert c.longest_ngram >= 13


def test_disjoint_sets_are_clean(swc_files: list[Path]) -> None:
    reentrancy = next(f for f in swc_files if "SWC-107" in f.name)
    overflow = next(f for f in swc_files if "SWC-101" in f.name)
    rep = audit(_load(reentrancy), _load(overflow))
    assert rep.summary.exact == 0
    assert rep.summary.contamination_rate < 0.05


def test_shared_13_gram_is_reported(tmp_path: Path) -> None:
    shared = "the external call happens before the balance is set to zero so an attacker can re enter withdraw"
    ref = tmp_path / "ref.jsonl"
    cand = tmp_path / "cand.jsonl"
    ref.write_text(json.dumps({"instruction": "Explain the bug in this vault contract please.",
                               "response": "Because " + shared + " many times.", "category": "SWC-107"}) + "\n")
    cand.write_text(json.dumps({"instruction": "Describe the flaw of the lottery payout code.",
                                "response": "Note that " + shared + " again.", "category": "SWC-107"}) + "\n")
    rep = audit(_load(ref), _load(cand), AuditConfig())
    [c] = rep.candidates
    assert c.status == "ngram" and c.longest_ngram == len(shared.split())
    assert c.shared_text == shared and c.ngram_match is not None and c.ngram_match.source.line == 1
    assert rep.summary.leaked == 0
    assert audit(_load(ref), _load(cand), AuditConfig(ngram_counts_as_leak=True)).summary.leaked == 1


def test_cli_fail_on_leak(swc_files: list[Path], seed_test_file: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["audit", "--reference", str(swc_files[0]), "--candidate", str(seed_test_file),
                            "--fail-on-leak", "--json"])
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["summary"]["leaked"] > 0
    ok = runner.invoke(app, ["audit", "-r", str(swc_files[0]), "-c", str(swc_files[0]), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["summary"]["contamination_rate"] == 1.0


def test_several_paths_after_one_option_as_a_shell_glob_gives_them() -> None:
    from swcdata.cli import expand_multi_value_options as expand

    assert expand(["audit", "--reference", "a", "b", "--candidate", "c", "d", "--threshold", "0.8"]) == [
        "audit", "--reference", "a", "--reference", "b", "--candidate", "c", "--candidate", "d", "--threshold", "0.8"]
    assert expand(["audit", "-r=a", "b", "-c", "c"]) == ["audit", "-r=a", "-r", "b", "-c", "c"]
    assert expand(["split", "a", "b", "--holdout", "h", "x"]) == ["split", "a", "b", "--holdout", "h", "x"]


def test_cli_audit_takes_the_seed_files_as_the_shell_expands_them(swc_files: list[Path], seed_test_file: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from swcdata.cli import main

    with pytest.raises(SystemExit) as e:
        main(["audit", "--reference", *map(str, swc_files), "--candidate", str(seed_test_file), "--json"])
    assert e.value.code == 0
    s = json.loads(capsys.readouterr().out)["summary"]
    assert (s["reference_records"], s["candidate_records"], s["leaked"]) == (4998, 1000, 1000)
