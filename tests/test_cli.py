"""The CLI through Typer's CliRunner and as a real subprocess: exit codes, one-line errors, JSON, start-up."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema as js
import pytest
from typer.testing import CliRunner

from swcdata import __version__
from swcdata.cli.main import app

runner = CliRunner()
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
GOOD = ('{"instruction": "Find the bug:\\n\\nfunction f() public { x += 1; }", '
        '"response": "Use SafeMath for the addition.", "category": "SWC-101"}')


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    p = tmp_path / "good.jsonl"
    p.write_text(GOOD + "\n" + GOOD.replace("x += 1", "y -= 2") + "\n")
    return p


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    p = tmp_path / "bad.jsonl"
    p.write_text(GOOD + "\n{not json\n" + '{"instruction": "function g() {}", "category": "SWC-107"}\n')
    return p


def test_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output


def test_help_paragraphs_flow_to_the_terminal_width() -> None:
    """Each paragraph of a command's help is one line of help text, so an 80-column terminal wraps it
    evenly (typer keeps a docstring's own line breaks and wraps each line again)."""
    from swcdata.cli.main import reflow

    assert reflow("First.\n\n    One paragraph\n    over two lines.\n\n    - a\n    - b\n") == (
        "First.\n\nOne paragraph over two lines.\n\n- a\n- b")
    for info in app.registered_commands:
        assert info.help, info.callback
        for para in info.help.split("\n\n"):
            assert "\n" not in para or all(line.startswith(("- ", "* ", " ")) for line in para.splitlines()[1:])
    res = CliRunner().invoke(app, ["validate", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert any("a bad category, metadata nested" in line for line in res.output.splitlines()), res.output
    # a flag shows no type (typer's `--strict <bool>` reads as if it took a value); options keep theirs
    assert "<bool>" not in res.output and "<int range>" in res.output


def test_a_short_flag_means_one_thing_in_every_command() -> None:
    """One vocabulary: a short flag names the same long option in every command and subcommand (`-c` once
    meant --candidate in audit and --config in build), help included; and audit's multi-value options
    name exactly its flags."""
    import typer

    from swcdata.cli.main import MULTI_VALUE_OPTIONS

    meaning: dict[str, dict[tuple[str, ...], list[str]]] = {}
    flags_of: dict[str, set[str]] = {}

    def walk(command, name: str, parent) -> None:  # click's Command and Context (typer vendors its own click)
        ctx = command.make_context(name, [], parent=parent, resilient_parsing=True)
        for param in command.get_params(ctx):
            if param.param_type_name != "option":
                continue
            opts = [*param.opts, *param.secondary_opts]
            longs = tuple(sorted(o for o in opts if o.startswith("--")))
            flags_of.setdefault(ctx.command_path, set()).update(opts)
            for short in (o for o in opts if not o.startswith("--")):
                meaning.setdefault(short, {}).setdefault(longs, []).append(ctx.command_path)
        for sub_name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, sub_name, ctx)

    walk(typer.main.get_command(app), "swcdata", None)
    assert len(flags_of) > 15  # every command was walked
    clashes = {short: longs for short, longs in meaning.items() if len(longs) > 1}
    assert not clashes, f"short flags with more than one meaning: {clashes}"
    assert set(meaning["-h"][("--help",)]) == set(flags_of)  # -h is help everywhere
    for command, multi in MULTI_VALUE_OPTIONS.items():
        path = f"swcdata {command}"
        assert multi <= flags_of[path], (command, multi - flags_of[path])  # no stale flag
        for short, longs in meaning.items():  # and a multi-value option's short form is listed with its long one
            (long_names, commands), = longs.items()
            if path in commands:
                assert (short in multi) == bool(set(long_names) & multi), (command, short, long_names)


def test_validate_clean_exits_0(good_file: Path) -> None:
    r = runner.invoke(app, ["validate", str(good_file), "--no-code"])
    assert r.exit_code == 0, r.output
    assert "Ledger" in r.output and "clean" in r.output
    assert "adds up" in r.output and "balanced" not in r.output  # the counts add up; it is not class balance


def test_validate_errors_exit_1_and_write_report_and_quarantine(bad_file: Path, tmp_path: Path) -> None:
    rep, q = tmp_path / "r.json", tmp_path / "q.jsonl"
    r = runner.invoke(app, ["validate", str(bad_file), "--no-code", "--report", str(rep), "--quarantine", str(q)])
    assert r.exit_code == 1, r.output
    report = json.loads(rep.read_text())
    js.validate(report, json.loads((SCHEMAS / "validation-report.schema.json").read_text()))
    assert report["ledger"] == {"lines_read": 3, "blank_lines": 0, "records": 3, "valid": 1, "quarantined": 2}
    lines = [json.loads(x) for x in q.read_text().splitlines()]
    assert [(x["source"]["line"], x["reasons"][0]["rule"]) for x in lines] == [(2, "invalid-json"),
                                                                             (3, "missing-field")]
    assert lines[0]["line"] == "{not json"


def test_validate_json_output(bad_file: Path) -> None:
    r = runner.invoke(app, ["validate", str(bad_file), "--no-code", "--json"])
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["status"] == "errors" and data["errors"] == 2


def test_strict_fails_on_warnings(tmp_path: Path) -> None:
    p = tmp_path / "w.jsonl"
    p.write_text('{"instruction": "What is wrong here? Nothing to see.", "response": "A short answer with words.", '
                 '"category": "SWC-101", "category": "SWC-101"}\n')
    assert runner.invoke(app, ["validate", str(p), "--no-code"]).exit_code == 0
    assert runner.invoke(app, ["validate", str(p), "--no-code", "--strict"]).exit_code == 1


@pytest.mark.parametrize("args", [
    ["validate", "does-not-exist.jsonl"],
    ["validate", "nothing-*.jsonl"],
])
def test_usage_errors_are_one_line_exit_2(args: list[str], tmp_path: Path) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert "error:" in r.output and "Traceback" not in r.output


def test_directory_without_jsonl(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    r = runner.invoke(app, ["validate", str(tmp_path)])
    assert r.exit_code == 2 and "contains no .jsonl" in r.output


def test_schema_command(tmp_path: Path) -> None:
    r = runner.invoke(app, ["schema", "record"])
    assert r.exit_code == 0 and json.loads(r.stdout)["title"] == "Record"
    assert runner.invoke(app, ["schema", "--check", str(SCHEMAS)]).exit_code == 0
    assert runner.invoke(app, ["schema", "--check", str(tmp_path)]).exit_code == 1
    assert runner.invoke(app, ["schema", "nope"]).exit_code == 2


# ---- as a real process --------------------------------------------------------------------------

def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "swcdata", *args], capture_output=True, text=True, timeout=120)


def test_subprocess_missing_file_no_traceback() -> None:
    r = _run("validate", "/nonexistent/x.jsonl")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: no such file or directory")
    assert "Traceback" not in r.stderr


def test_subprocess_bad_option_exit_2() -> None:
    r = _run("validate", "--no-such-option", "x")
    assert r.returncode == 2 and "Traceback" not in r.stderr


HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "trl")
PROBE = """
import sys, runpy
sys.argv = ["swcdata", *{args!r}]
try:
    runpy.run_module("swcdata", run_name="__main__")
except SystemExit:
    pass
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize("args", [["--help"], ["validate", "--help"], ["validate", "{good}", "--json"],
                                  ["schema", "record"]])
def test_data_commands_never_import_torch(args: list[str], good_file: Path) -> None:
    args = [a.replace("{good}", str(good_file)) for a in args]
    code = PROBE.format(args=args, heavy=HEAVY)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY=\n" in r.stdout, r.stdout[-500:] + r.stderr[-500:]


def test_help_starts_fast() -> None:
    _run("--help")  # warm the bytecode cache
    best = min(_timed() for _ in range(3))
    assert best < 1.0, f"swcdata --help took {best:.2f}s"


def _timed() -> float:
    t = time.perf_counter()
    r = _run("--help")
    assert r.returncode == 0
    return time.perf_counter() - t


def test_print_json_writes_a_model_to_text_only_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pydantic report goes out as bytes where stdout has a buffer, and as text where it has none
    (a notebook's stream): the same JSON either way."""
    import io

    from swcdata.cli.console import print_json
    from swcdata.core.schema import Ledger

    model = Ledger(lines_read=3, blank_lines=1, records=2, valid=1, quarantined=1)
    text = io.StringIO()  # no .buffer
    monkeypatch.setattr("sys.stdout", text)
    print_json(model)
    raw = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(raw, encoding="utf-8"))
    print_json(model)
    sys.stdout.flush()
    assert json.loads(text.getvalue()) == json.loads(raw.getvalue()) == model.model_dump(mode="json")


def test_a_missing_extra_is_one_line_with_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command whose extra is not installed fails with exit 2, the missing packages and the pip
    command, never a traceback from deep inside it."""
    import importlib.util

    from swcdata.core.errors import MissingExtra, require_extra

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("accelerate", "sklearn")
                        else real(name, *a))
    with pytest.raises(MissingExtra) as e:
        require_extra("train", ("torch", "accelerate", "sklearn"), "fine-tuning")
    assert e.value.exit_code == 2
    assert str(e.value) == ("fine-tuning needs the `train` extra; not installed: accelerate, scikit-learn\n"
                            "  hint: pip install 'swcdata[train]'")
    require_extra("train", ("torch",), "fine-tuning")  # installed: nothing to say


def test_finetune_without_the_train_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    r = runner.invoke(app, ["finetune", "swc@v1", "--output", str(tmp_path / "runs"), "--home", str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert "fine-tuning needs the `train` extra; not installed: trl" in r.output
    assert "pip install 'swcdata[train]'" in r.output  # (the brackets survive rich's markup)
    assert "Traceback" not in r.output


def test_brackets_in_file_names_and_values_are_shown_as_they_are(tmp_path: Path) -> None:
    """rich reads "[x]" as markup: a file name, a category or a message that holds brackets must reach
    the table unchanged (and an unmatched "[/x]" must not crash the render)."""
    d = tmp_path / "d[1]"
    d.mkdir()
    f = d / "a[x].jsonl"
    f.write_text('{"instruction": "Fix `x += 1;` here", "response": "Use `x = x + 1;`", '
                 '"category": "[bold]SWC-9[/x]"}\n')
    r = runner.invoke(app, ["validate", str(f)])
    assert r.exit_code == 1, r.output
    flat = " ".join(r.output.split())
    assert "a[x].jsonl:1" in flat and "category '[bold]SWC-9[/x]'" in flat
    assert "Traceback" not in r.output


def test_dedup_announces_lines_it_sets_aside(tmp_path: Path) -> None:
    """Lines that fail the schema checks are counted in the ledger and announced on stderr with the
    option that keeps them; with --quarantine they are written, so the hint is not repeated."""
    src = tmp_path / "in.jsonl"
    src.write_text('not json\n'
                   '{"instruction": "Fix `x += 1;`", "response": "Use `x = x + 1;`", "category": "SWC-101"}\n')
    r = runner.invoke(app, ["dedup", str(src), "--out", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())
    assert "warning: 1 input line(s) fail the schema checks" in flat and "--quarantine FILE" in flat
    r = runner.invoke(app, ["dedup", str(src), "--out", str(tmp_path / "o.jsonl"), "--quarantine",
                            str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0 and "--quarantine FILE" not in " ".join(r.output.split())
    assert (tmp_path / "q.jsonl").read_text().count("\n") == 1


@pytest.mark.parametrize("args", [
    ["validate", "{in}", "--out", "{in}"],
    ["validate", "{in}", "--quarantine", "{in}"],
    ["validate", "{in}", "--report", "{link}"],
    ["dedup", "{in}", "--out", "{in}"],
    ["dedup", "{in}", "--out", "{tmp}/o.jsonl", "--quarantine", "{tmp}/./o.jsonl"],
    ["audit", "--reference", "{in}", "--candidate", "{in}", "--report", "{in}"],
    ["split", "{tmp}/train.jsonl", "--out", "{tmp}"],
])
def test_an_output_that_would_overwrite_an_input_is_refused(args: list[str], tmp_path: Path) -> None:
    """Opening an output truncates it: an output that is an input (by any path, or a hard link) or
    another output is a usage error (exit 2), and the input is left untouched."""
    import shutil

    from conftest import DATASET_DIR

    src = tmp_path / "train.jsonl"
    shutil.copy(DATASET_DIR / "swc_sample.jsonl", src)
    (tmp_path / "link.jsonl").hardlink_to(src)
    before = src.read_bytes()
    args = [a.replace("{in}", str(src)).replace("{link}", str(tmp_path / "link.jsonl")).replace("{tmp}", str(tmp_path))
            for a in args]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "would destroy them" in r.output or "one would overwrite the other" in r.output
    assert len(r.output.strip().splitlines()) <= 2  # the error and its hint, each on one line
    assert src.read_bytes() == before


def test_kv_table_shows_data_as_it_is() -> None:
    """kv_table's cells are plain text (a path or name with brackets is not markup); a styled cell is
    a rich Text."""
    import io

    from rich.console import Console
    from rich.text import Text

    from swcdata.cli.console import kv_table

    buf = io.StringIO()
    rows = [("adapter", "runs/a[x]/adapter"), ("name", "[bold]b[/x]"), ("ok", Text.from_markup("[green]yes[/]"))]
    Console(file=buf, width=120, color_system=None).print(kv_table(rows))
    text = buf.getvalue()
    assert "runs/a[x]/adapter" in text and "[bold]b[/x]" in text
    assert "yes" in text and "[green]" not in text


@pytest.mark.parametrize("command", ["validate", "dedup"])
def test_out_dash_keeps_stdout_for_the_records(command: str) -> None:
    """`--out -` puts the records alone on stdout (a pipe into jq or another command); the summary
    tables go to stderr, and --json, which needs stdout too, is refused."""
    from conftest import DATASET_DIR

    r = _run(command, str(DATASET_DIR), "--out", "-")
    assert r.returncode in (0, 1), r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) > 90 and all("id" in row and "source" in row for row in rows)
    assert "Ledger" in r.stderr or "ledger" in r.stderr.lower()
    r = _run(command, str(DATASET_DIR), "--out", "-", "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: --json and --out - both write to stdout")


def test_out_dash_in_process_leaves_the_console_on_stdout(tmp_path: Path) -> None:
    from conftest import DATASET_DIR

    from swcdata.cli.console import out

    r = runner.invoke(app, ["validate", str(DATASET_DIR), "--out", "-"])
    assert r.exit_code == 1
    assert out.file is not sys.stderr  # restored for whatever runs next in this process


def _sample(tmp_path: Path, n: int = 20) -> Path:
    from conftest import DATASET_DIR

    p = tmp_path / "good.jsonl"
    p.write_bytes(b"".join((DATASET_DIR / "swc_sample.jsonl").read_bytes().splitlines(keepends=True)[:n]))
    return p


def test_audit_fail_on_leak_fails_on_candidates_it_could_not_check(tmp_path: Path) -> None:
    """Verbatim training records whose category is malformed are set aside by the schema checks: the
    test set is then not proven clean, and the report says how many lines were set aside."""
    good = _sample(tmp_path)
    rows = [json.loads(line) for line in good.read_text().splitlines()[:3]]
    for row, cat in zip(rows, ["SWC-999", "swc-107", 107], strict=True):
        row["category"] = cat
    cand = tmp_path / "cand.jsonl"
    cand.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = runner.invoke(app, ["audit", "-r", str(good), "-c", str(cand), "--fail-on-leak", "--json"])
    assert r.exit_code == 1
    rep = json.loads(r.stdout)
    assert rep["candidate_input"]["quarantined"] == 3 and rep["summary"]["candidate_records"] == 0
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert runner.invoke(app, ["audit", "-r", str(good), "-c", str(empty), "--fail-on-leak"]).exit_code == 1
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps({"instruction": "Explain `a.call{value: v}(\"\")` in this code: x = 1;",
                                 "response": "It sends ether; check the result.", "category": "SWC-104"}) + "\n")
    assert runner.invoke(app, ["audit", "-r", str(good), "-c", str(clean), "--fail-on-leak"]).exit_code == 0


def test_augment_refuses_an_output_linked_to_an_input_split(tmp_path: Path) -> None:
    good = _sample(tmp_path)
    assert runner.invoke(app, ["split", str(good), "--out", str(tmp_path / "s")]).exit_code == 0
    before = (tmp_path / "s" / "train.jsonl").read_bytes()
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "test.jsonl").symlink_to(tmp_path / "s" / "train.jsonl")
    r = runner.invoke(app, ["augment", str(tmp_path / "s"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "is one of the inputs" in r.output
    assert (tmp_path / "s" / "train.jsonl").read_bytes() == before


@pytest.mark.parametrize("ratios", ["nan,0.5,0.5", "inf,0,0", "0.5,-0.5,1"])
def test_split_refuses_ratios_that_are_not_finite_shares(ratios: str, tmp_path: Path) -> None:
    r = runner.invoke(app, ["split", str(_sample(tmp_path)), "--out", str(tmp_path / "s"), "--ratios", ratios])
    assert r.exit_code == 2 and not (tmp_path / "s").exists()


def test_split_json_is_its_report_with_both_ledgers(tmp_path: Path) -> None:
    good = _sample(tmp_path)
    hold = tmp_path / "hold.jsonl"
    hold.write_text(good.read_text().splitlines(keepends=True)[0] + '{"instruction": "x"}\n')
    r = runner.invoke(app, ["split", str(good), "--out", str(tmp_path / "s"), "--holdout", str(hold), "--json",
                            "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep == json.loads((tmp_path / "r.json").read_text())
    js.validate(rep, json.loads((Path(__file__).parents[1] / "schemas" / "split-report.schema.json").read_text()))
    assert rep["holdout_input"]["quarantined"] == 1 and rep["input"]["lines_read"] == 20
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x"}\n')
    r = runner.invoke(app, ["split", str(good), "--out", str(tmp_path / "s2"), "--holdout", str(bad)])
    assert r.exit_code == 1 and "holdout set holds no valid records" in r.output


def test_stats_groups_by_the_file_read(tmp_path: Path) -> None:
    assert runner.invoke(app, ["split", str(_sample(tmp_path)), "--out", str(tmp_path / "s")]).exit_code == 0
    r = runner.invoke(app, ["stats", str(tmp_path / "s"), "--json"])
    assert r.exit_code == 0, r.output
    assert [s["name"] for s in json.loads(r.stdout)["splits"]] == ["train", "validation", "test"]


@pytest.mark.parametrize("args", [
    ["dedup", "{good}", "--out", "{dir}"],
    ["dedup", "{good}", "--out", "{o}", "--quarantine", "{file}/q.jsonl"],
    ["split", "{good}", "--out", "{file}/sp"],
    ["split", "{good}", "--out", "{tmp}/sp", "--report", "{file}/r.json"],
    ["schema", "--write", "{file}/x"],
    ["schema", "--check", "{tmp}/nothing"],
    ["validate", ""],
])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    names = {"good": str(_sample(tmp_path)), "dir": str(tmp_path / "dir"), "file": str(tmp_path / "file"),
             "o": str(tmp_path / "o.jsonl"), "tmp": str(tmp_path)}
    r = runner.invoke(app, [a.format(**names) for a in args])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "sp").exists()


def test_sigterm_stops_a_command_like_ctrl_c(tmp_path: Path) -> None:
    """`timeout`/a scheduler sends SIGTERM: the command removes its unfinished outputs, stops its
    worker processes and exits 143 with one line, instead of dying with temporary files and orphaned
    workers left behind."""
    import os
    import signal

    from conftest import DATASET_DIR

    lines = (DATASET_DIR / "swc_sample.jsonl").read_bytes()
    big = tmp_path / "big.jsonl"
    big.write_bytes(lines * 400)  # (about 40,000 records: seconds of work)
    p = subprocess.Popen([sys.executable, "-m", "swcdata", "validate", str(big), "--out", str(tmp_path / "v.jsonl"),
                          "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".v.jsonl.*.tmp")) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # (until it is writing its output: the signal then comes mid-run)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and err.strip().endswith("terminated") and "Traceback" not in err, err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.jsonl"]  # no output, no temporary file
    # no process of its group is left: its workers end within a second of it (swcdata.core.workers); on a loaded
    # machine they, and their reaping by init (an exited one counts as left until it is reaped), may take longer
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "a process of the command's group outlived it by 10 s"
        time.sleep(0.1)


def test_a_sigterm_during_a_fork_is_delivered_after_it() -> None:
    """A SIGTERM that lands while os.fork runs its at-fork callbacks (where an exception from a handler is
    dropped) is held and delivered just after the fork, so the command still stops."""
    import os
    import signal

    from swcdata.cli import console

    previous = console._stop_on_sigterm()
    try:
        console._FORK["inside"] = True
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here: inside a fork, it only notes the signal
        assert console._FORK["pending"]
        with pytest.raises(KeyboardInterrupt, match=console.TERMINATED):
            pid = os.fork()  # the real at-fork callbacks: the child leaves at once, the parent gets the signal
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            time.sleep(5)
        assert not console._FORK["inside"] and not console._FORK["pending"]
    finally:
        console._FORK["inside"] = console._FORK["pending"] = False
        signal.signal(signal.SIGTERM, previous)


def test_dedup_outputs_move_in_place_together(tmp_path: Path) -> None:
    """dedup's kept records, quarantine and report: a failure while writing the last leaves the
    first two as they were (no new kept file beside an old report)."""
    from swcdata.cli.inputs import write_together

    kept, rep = tmp_path / "k.jsonl", tmp_path / "r.json"
    kept.write_bytes(b"old\n")
    rep.write_bytes(b"old\n")

    def fail(_f: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_together([(kept, lambda f: f.write(b"new\n")), (None, fail), (rep, fail)])
    assert kept.read_bytes() == rep.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.jsonl", "r.json"]
    write_together([(kept, lambda f: f.write(b"new\n")), (rep, lambda f: f.write(b"new\n"))])
    assert kept.read_bytes() == rep.read_bytes() == b"new\n"
