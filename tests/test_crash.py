"""No crash from one record (issue 18, item 1): a huge code span is not parsed (`code-too-large`), and a
worker that dies in native code (a tree-sitter SIGSEGV) costs that record a finding, not the run.

The worker crashes are forced through the test-only hook of swcdata.core.isolate: with
SWCDATA_TEST_CRASH_ON=<mark> set, a worker process about to parse a span containing <mark> kills
itself with SIGSEGV (the command's own process never arms it)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.core import isolate
from swcdata.registry.store import Registry
from swcdata.solidity import treesitter
from swcdata.steps.augment.step import AugmentConfig, augment
from swcdata.steps.validate import ValidateConfig, Validation, load_valid

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
MARK = "CrashMeNow"
runner = CliRunner()


def segv_line() -> str:
    """The issue's reproduction: ~400 KB of code that segfaults tree-sitter (in the function wrapping)."""
    c = "contract A { function f() public { uint x = 1; } }\n" + "// c\n" * 80000 + "x"
    return json.dumps({"instruction": "Bug:\n\n```solidity\n" + c + "\n```",
                       "response": "Fixed:\n```solidity\ncontract A {}\n```", "category": "SWC-107"})


def crash_line(name: str = MARK) -> str:
    """An ordinary record whose code carries the crash hook's mark."""
    return json.dumps({"instruction": f"Find the bug:\n\n```solidity\ncontract {name} {{\n    function f() public "
                                      "{ msg.sender.call{value: 1}(\"\"); }\n}\n```",
                       "response": "Fixed:\n```solidity\ncontract Safe {}\n```", "category": "SWC-107"})


def sample_lines(n: int) -> list[str]:
    """The first n lines of the embedded sample that have all three fields (valid records)."""
    out = [x for x in SAMPLE.read_text(encoding="utf-8").splitlines() if '"response"' in x]
    return out[:n]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def validate_cli(src: Path, out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    r = runner.invoke(app, ["validate", str(src), "--out", str(out), "--json", *args])
    assert "Traceback" not in r.output, r.output
    return r.exit_code, json.loads(r.stdout), r.output


# ---- the bound ------------------------------------------------------------------------------------------


def test_every_parse_entry_refuses_a_span_over_the_bound() -> None:
    big = "x = 1;\n" * (treesitter.MAX_PARSE_CHARS // 7 + 1)
    for fn in (treesitter.parse, treesitter.parse_check, treesitter.identifier_nodes):
        with pytest.raises(treesitter.CodeTooLarge, match="over the parse bound of 100,000"):
            fn(big)
        with pytest.raises(treesitter.CodeTooLarge):
            fn("x = 1;", max_chars=5)
    assert treesitter.parse("x = 1;", max_chars=6).ok
    assert ValidateConfig().max_parse_chars == AugmentConfig().max_parse_chars == treesitter.MAX_PARSE_CHARS


def test_the_worst_span_at_the_bound_does_not_crash_tree_sitter() -> None:
    """The crash needs ~58,000 line comments after a syntax error (8 MiB stack); the bound holds at most
    ~33,000 (3 characters each). Checked in a subprocess, so that a crash fails this test, not the run."""
    prog = ("from swcdata.solidity import treesitter\n"
            "c = 'contract A {}\\n' + '//\\n' * ((treesitter.MAX_PARSE_CHARS - 14) // 3)\n"
            "assert len(c) <= treesitter.MAX_PARSE_CHARS\n"
            "print(treesitter.parse(c).ok, len(treesitter.identifier_nodes(c)))\n")
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"tree-sitter crashed below MAX_PARSE_CHARS (exit {r.returncode}): {r.stderr[-500:]}"


@pytest.mark.parametrize("workers", [["--workers", "1"], []], ids=["workers-1", "default-workers"])
def test_validate_the_reproduction_gives_code_too_large(tmp_path: Path, workers: list[str]) -> None:
    src = write(tmp_path / "segv.jsonl", [*sample_lines(10), segv_line(), *sample_lines(12)[10:]])
    code, rep, _ = validate_cli(src, tmp_path / "v.jsonl", *workers)
    assert code == (1 if rep["errors"] else 0)  # warnings alone: 0
    assert [(f["line"], f["field"]) for f in rep["findings"] if f["rule"] == "code-too-large"] == [(11, "instruction")]
    assert not [f for f in rep["findings"] if f["line"] == 11 and f["rule"] in ("code-parse-error", "parser-crashed")]
    lg = rep["ledger"]
    assert lg["lines_read"] == 13 == lg["blank_lines"] + lg["valid"] + lg["quarantined"]
    assert lg["valid"] == 13  # a warning keeps the record
    assert len((tmp_path / "v.jsonl").read_text(encoding="utf-8").splitlines()) == 13
    assert leftovers(tmp_path) == []


def test_build_with_the_reproduction_publishes(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "sample.jsonl", SAMPLE.read_text(encoding="utf-8").splitlines())
    write(tmp_path / "data" / "segv.jsonl", [segv_line()])
    (tmp_path / "b.toml").write_text('name = "crash"\ninputs = ["data/"]\n[augment]\nenabled = true\n',
                                     encoding="utf-8")
    r = runner.invoke(app, ["build", "--config", str(tmp_path / "b.toml"), "--home", str(tmp_path / "reg")])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    [m] = Registry(tmp_path / "reg").versions("crash")
    [v] = [s for s in m.model_dump()["steps"] if s["name"] == "validate"]
    assert v["summary"]["rules"]["code-too-large"] == 1
    lg = v["summary"]["ledger"]
    assert lg["lines_read"] == lg["blank_lines"] + lg["valid"] + lg["quarantined"]


# ---- a worker that dies -------------------------------------------------------------------------------------


def test_stream_isolated_keeps_what_came_before_a_crash() -> None:
    got = []
    with pytest.raises(isolate.ChildCrashed) as e:
        for x in isolate.stream_isolated(_count_then_die, 3):
            got.append(x)
    assert got == [0, 1, 2]
    assert e.value.status == -signal.SIGSEGV and e.value.why == "signal SIGSEGV"
    assert list(isolate.stream_isolated(_count_then_die, 3, False)) == [0, 1, 2]
    with pytest.raises(ValueError, match="raised in the child"):
        list(isolate.stream_isolated(_raise_in_child))
    assert isolate.describe_exit(3) == "exit status 3"


def _count_then_die(n: int, die: bool = True) -> Any:
    yield from range(n)
    if die:
        isolate.die_by_sigsegv()


def _raise_in_child() -> Any:
    yield 1
    raise ValueError("raised in the child")


def test_the_hook_is_never_armed_in_the_commands_own_process() -> None:
    """Only the worker entries read the variable: a process that parses directly is not armed."""
    prog = f"from swcdata.solidity import treesitter\nprint(treesitter.parse_check('contract {MARK} {{}}').ok)\n"
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=120,
                       env={**os.environ, isolate.TEST_CRASH_ENV: MARK})
    assert (r.returncode, r.stdout) == (0, "True\n"), r.stderr[-500:]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_worker_crash_costs_one_finding_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              workers: str) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    src = write(tmp_path / "in.jsonl", [*lines[:40], crash_line(), *lines[40:]])
    code0, plain, _ = validate_cli(src, tmp_path / "plain.jsonl", "--workers", workers)
    monkeypatch.setenv(isolate.TEST_CRASH_ENV, MARK)
    code, rep, _ = validate_cli(src, tmp_path / "v.jsonl", "--workers", workers)
    assert [(f["rule"], f["line"], f["severity"]) for f in rep["findings"] if f["rule"] == "parser-crashed"] \
        == [("parser-crashed", 41, "warning")]
    assert "SIGSEGV" in next(f["message"] for f in rep["findings"] if f["rule"] == "parser-crashed")
    assert rep["ledger"] == plain["ledger"] and rep["ledger"]["lines_read"] == len(lines) + 1
    assert code == code0 == (1 if rep["errors"] else 0)
    # every other finding as without the crash (the crashed record's code is not checked); it is kept as it is
    code_rules = {"no-code", "code-parse-error", "code-too-large", "noop-fix"}
    assert {(f["rule"], f["line"]) for f in rep["findings"] if f["rule"] != "parser-crashed"} \
        == {(f["rule"], f["line"]) for f in plain["findings"] if not (f["line"] == 41 and f["rule"] in code_rules)}
    assert (tmp_path / "v.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()
    assert leftovers(tmp_path) == []


def test_crashes_in_several_tasks_in_flight_keep_the_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = sample_lines(60)
    for at in (55, 31, 30, 3):  # two crashes in one chunk, others in other chunks in flight at the same time
        lines.insert(at, crash_line(f"{MARK}{at}"))
    marked = [i for i, x in enumerate(lines, 1) if MARK in x]
    assert marked[1:3] == [32, 34]  # (both in the chunk of lines 29-35)
    src = write(tmp_path / "in.jsonl", lines)
    cfg = ValidateConfig(workers=2, chunk_size=7)
    plain, prep, _ = load_valid([src], cfg)
    monkeypatch.setenv(isolate.TEST_CRASH_ENV, MARK)
    table, rep, _ = load_valid([src], cfg)
    crashed = [f.line for f in rep.findings if f.rule == "parser-crashed"]
    assert crashed == marked
    assert table.equals(plain)  # every record, in input order
    assert rep.ledger == prep.ledger and rep.ledger.adds_up


def test_a_real_tree_sitter_crash_is_survived_with_the_bound_lifted(tmp_path: Path) -> None:
    """No hook: the reproduction itself, max_parse_chars lifted, in validate (--workers 1) and augment. In a
    subprocess (no pytest faulthandler dump from the dying workers)."""
    src = write(tmp_path / "segv.jsonl", [*sample_lines(2), segv_line()])
    prog = f"""
from swcdata.steps.augment.step import AugmentConfig, augment
from swcdata.steps.validate import ValidateConfig, Validation, load_valid
rep = Validation(ValidateConfig(max_parse_chars=10**9, workers=1)).run([{str(src)!r}])
assert rep.ledger.adds_up and rep.ledger.valid == 3, rep.ledger
print(sorted(f.rule for f in rep.findings if f.line == 3 and f.rule in ("parser-crashed", "code-parse-error")))
table, _, _ = load_valid([{str(src)!r}], ValidateConfig(check_code=False))
_, arep = augment({{"train": table}}, AugmentConfig(factor=1, max_parse_chars=10**9))
s = arep.splits["train"]
assert arep.adds_up and s.records_out == 3 + s.variants_added, s
print(s.parser_crashed + s.sources)
"""
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # parser-crashed with today's tree-sitter (code-parse-error if a release stops crashing); either way one
    # finding, and the record is either augmented or counted as crashed
    assert r.stdout.splitlines()[0] in ("['parser-crashed']", "['code-parse-error']")
    assert r.stdout.splitlines()[1] == "3"


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the patched checker reaches workers by fork")
def test_a_line_that_kills_even_the_schema_checks_is_quarantined(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata.steps import validate

    real = validate.check_lines

    def killer(file: str, lines: list[tuple[int, bytes]], *args: Any, **kwargs: Any) -> Any:
        if any(b"KillTheChecker" in raw for _, raw in lines):
            isolate.die_by_sigsegv()
        return real(file, lines, *args, **kwargs)

    monkeypatch.setattr(validate, "check_lines", killer)
    lines = sample_lines(12)
    cfg = ValidateConfig(workers=2, chunk_size=4)
    plain = Validation(cfg.model_copy(update={"check_code": False})).run([write(tmp_path / "ok.jsonl", lines)])
    lines.insert(5, crash_line("KillTheChecker"))
    src = write(tmp_path / "in.jsonl", lines)
    quarantined: list[Any] = []
    batches: list[pa.RecordBatch] = []
    rep = Validation(cfg).run([src], on_quarantine=quarantined.extend, on_batch=batches.append)
    assert [(f.rule, f.line, f.severity) for f in rep.findings if "crashed" in f.rule] == [
        ("check-crashed", 6, "error")]
    [q] = [q for q in quarantined if q.line == 6]
    assert (q.text, [r[0] for r in q.reasons]) == (lines[5], ["check-crashed"])
    assert rep.ledger.valid == plain.ledger.valid == sum(b.num_rows for b in batches)
    assert rep.ledger.quarantined == plain.ledger.quarantined + 1 and rep.ledger.adds_up


# ---- augment -------------------------------------------------------------------------------------------------


def _train(tmp_path: Path, extra: list[str]) -> pa.Table:
    table, _, _ = load_valid([write(tmp_path / "train.jsonl", [*sample_lines(12), *extra])],
                             ValidateConfig(check_code=False))
    return table


def _id_of(table: pa.Table, needle: str) -> str:
    [rid] = [r["id"] for r in table.to_pylist() if needle in r["instruction"]]
    return rid


def test_augment_leaves_a_record_with_a_huge_span_as_it_is(tmp_path: Path) -> None:
    train = _train(tmp_path, [segv_line()])
    big_id = _id_of(train, "// c\n// c\n")
    n = train.num_rows - 1
    out, rep = augment({"train": train}, AugmentConfig(factor=2))
    s = rep.splits["train"]
    assert (s.too_large, s.parser_crashed, s.sources) == (1, 0, n)
    assert rep.adds_up
    assert any("max_parse_chars (100,000 characters)" in w and big_id in w for w in rep.warnings)
    rows = out["train"].to_pylist()
    assert big_id in {r["id"] for r in rows} and big_id not in {r["parent_id"] for r in rows}


def test_augment_goes_on_after_a_parser_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = _train(tmp_path, [crash_line()])
    crashed_id = _id_of(train, MARK)
    n = train.num_rows - 1
    plain, _ = augment({"train": train}, AugmentConfig(factor=2))
    monkeypatch.setenv(isolate.TEST_CRASH_ENV, MARK)
    out, rep = augment({"train": train}, AugmentConfig(factor=2))
    s = rep.splits["train"]
    assert (s.parser_crashed, s.too_large, s.sources) == (1, 0, n) and rep.adds_up
    assert any("SIGSEGV" in w and crashed_id in w for w in rep.warnings)
    # the other records' variants are exactly those of a run without the crash
    expect = [r for r in plain["train"].to_pylist() if r["parent_id"] != crashed_id]
    assert out["train"].to_pylist() == expect


def test_cli_augment_with_the_reproduction(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "train.jsonl", [*sample_lines(6), segv_line()])
    write(tmp_path / "in" / "test.jsonl", sample_lines(9)[6:])
    r = runner.invoke(app, ["augment", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--factor", "2",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    rep = json.loads(r.stdout)
    assert rep["splits"]["train"]["too_large"] == 1
    assert rep["splits"]["train"]["records_out"] == 7 + rep["splits"]["train"]["variants_added"]
    assert leftovers(tmp_path / "out") == []
