"""audit: the seed evaluation file is contaminated (drawn from the training pool); a clean set is clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.steps.audit import AuditConfig, audit
from swcdata.steps.validate import ValidateConfig, load_valid

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
    from swcdata.cli.main import expand_multi_value_options as expand

    assert expand(["audit", "--reference", "a", "b", "--candidate", "c", "d", "--threshold", "0.8"]) == [
        "audit", "--reference", "a", "--reference", "b", "--candidate", "c", "--candidate", "d", "--threshold", "0.8"]
    assert expand(["audit", "-r=a", "b", "-c", "c"]) == ["audit", "-r=a", "-r", "b", "-c", "c"]
    assert expand(["split", "a", "b", "--holdout", "h", "x"]) == ["split", "a", "b", "--holdout", "h", "x"]


def test_cli_audit_takes_the_seed_files_as_the_shell_expands_them(swc_files: list[Path], seed_test_file: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from swcdata.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["audit", "--reference", *map(str, swc_files), "--candidate", str(seed_test_file), "--json"])
    assert e.value.code == 0
    s = json.loads(capsys.readouterr().out)["summary"]
    assert (s["reference_records"], s["candidate_records"], s["leaked"]) == (4998, 1000, 1000)


def _table(pairs: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from swcdata.core.records import RECORD_SCHEMA
    from swcdata.core.text import record_id

    return pa.Table.from_pylist([
        {"id": record_id(i, r), "instruction": i, "response": r, "category": "SWC-101",
         "source": {"file": "x.jsonl", "line": k + 1}} for k, (i, r) in enumerate(pairs)], schema=RECORD_SCHEMA)


def _brute_longest(ref_words: list[str], cand: str, n: int = 13) -> int:
    """Longest run of words that the candidate shares with one reference (0 below n)."""
    a, best = cand.split(), 0
    for ref in ref_words:
        b = ref.split()
        prev = [0] * (len(b) + 1)
        for i in range(1, len(a) + 1):
            cur = [0] * (len(b) + 1)
            for j in range(1, len(b) + 1):
                if a[i - 1] == b[j - 1]:
                    cur[j] = prev[j - 1] + 1
                    best = max(best, cur[j])
            prev = cur
    return best if best >= n else 0


def test_longest_shared_span_is_held_by_one_reference() -> None:
    """Two references that each share 13 words, overlapping in the candidate: the longest span any one
    of them holds is 13 words, not the 14 that stitching them gives; the same for one reference that
    holds the two 13-word spans apart."""
    w = [f"w{k}" for k in range(30)]
    cand = _table([(" ".join(w[0:14]), "other words")])
    for refs in ([(" ".join(w[0:13]) + " zz", "one"), ("yy " + " ".join(w[1:14]), "two")],
                 [(" ".join(w[0:13]) + " zz " + " ".join(w[1:14]), "one")]):
        c = audit(_table(refs), cand).candidates[0]
        assert c.longest_ngram == 13 and c.shared_text == " ".join(w[0:13])


def test_longest_shared_span_matches_brute_force_on_seed_records(swc_files: list[Path],
                                                                  seed_test_file: Path) -> None:
    import random

    from swcdata.steps.audit import _words

    ref, cand = _load(*swc_files), _load(seed_test_file)
    rng = random.Random(1)
    ref = ref.take(rng.sample(range(ref.num_rows), 250))
    cand = cand.take(rng.sample(range(cand.num_rows), 40))
    rep = audit(ref, cand)
    ref_words, cand_words = _words(ref), _words(cand)
    words_of = dict(zip(ref.column("id").to_pylist(), ref_words, strict=True))
    for k, c in enumerate(rep.candidates):
        assert c.longest_ngram == _brute_longest(ref_words, cand_words[k]), k
        if c.longest_ngram:  # the span shown is in the reference named as its holder
            assert c.ngram_match is not None and c.shared_text is not None
            assert f" {c.shared_text[:200]}" in f" {words_of[c.ngram_match.id]}"


def test_every_candidate_whose_estimate_reaches_the_threshold_is_a_near_match(swc_files: list[Path]) -> None:
    """Recall of the audit's candidate search, against checking every (reference, candidate) pair's
    MinHash estimate: LSH at the threshold alone missed about one in five (a leak called clean)."""
    import random

    import pyarrow as pa

    from swcdata.steps.dedup import DedupConfig, table_signatures

    pool = _load(*swc_files)
    rows = random.Random(1).sample(range(pool.num_rows), 2400)
    ref, cand = pool.take(rows[:1200]), pool.take(rows[1200:])
    cfg = AuditConfig(near=DedupConfig(workers=1))
    rep = audit(ref, cand, cfg)
    sig = table_signatures(pa.concat_tables([ref, cand]), cfg.near)
    nr = ref.num_rows
    eligible = 0
    for j, c in enumerate(rep.candidates):
        if c.status == "exact":
            continue
        best = (sig[:nr] == sig[nr + j]).mean(axis=1).max()
        if best >= cfg.near.threshold:
            eligible += 1
            assert c.status == "near" and c.similarity == round(float(best), 4), j
    assert eligible >= 20  # (the sample holds that many)


def test_an_exact_match_names_the_first_reference_record_with_that_id(swc_files: list[Path]) -> None:
    """The reference's ids stay Arrow (`index_in`): a candidate whose id the reference holds several times, in
    several chunks, is matched to the first; only the records a result names are read back."""
    import pyarrow as pa

    ref = _load(swc_files[0]).slice(0, 40)
    twice = pa.concat_tables([ref.slice(0, 20), ref.slice(0, 40)])  # (ids 0-19 twice, the second copy later)
    rep = audit(twice, ref.slice(10, 20))
    assert rep.summary.exact == 20
    for k, c in enumerate(rep.candidates):
        assert c.status == "exact" and c.match is not None
        assert c.match.id == ref.column("id")[10 + k].as_py()
        first = 10 + k if 10 + k < 20 else 30 + k  # (rows 20-29 are only in the second copy)
        assert c.match.source.model_dump() == twice.column("source")[first].as_py()
    empty = audit(ref.slice(0, 0), ref.slice(0, 3))
    assert empty.summary.exact == 0 and empty.summary.clean + empty.summary.ngram_only == 3
