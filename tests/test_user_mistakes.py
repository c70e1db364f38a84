"""User mistakes get one precise error line and exit 2 before any work (issue 18: items 6 and 10)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
runner = CliRunner()


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output and "RuntimeError" not in output and "PermissionError" not in output


def test_a_registry_that_cannot_be_written_fails_before_any_step(tmp_path: Path) -> None:
    from swcdata.core.errors import InputError
    from swcdata.registry.build import BuildConfig, run_build

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    steps: list[str] = []
    with pytest.raises(InputError, match="cannot write the registry"):
        run_build(BuildConfig(inputs=[str(SAMPLE)]), REPO, home=blocker / "registry", on_step=steps.append)
    assert steps == []  # not even validate started
    r = runner.invoke(app, ["build", "--home", str(blocker / "registry")])
    assert r.exit_code == 2 and "cannot write the registry" in r.output
    _no_traceback(r.output)


@pytest.mark.parametrize("command", [["versions"], ["build"]])
def test_a_home_with_an_unknown_user_is_one_error_line(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWCDATA_HOME", "~no-such-user-swcdata/x")
    r = runner.invoke(app, command)
    assert r.exit_code == 2 and "SWCDATA_HOME='~no-such-user-swcdata/x': cannot expand '~'" in r.output
    _no_traceback(r.output)


def test_config_mistakes_are_refused_before_reading(tmp_path: Path) -> None:
    long_name = "n" * 101
    for sets, expected in (
        ([f"name={long_name}"], "name: String should have at most 100 characters"),
        (["validate.min_chars=500", "validate.max_chars=100"], "min_chars (500) must not exceed max_chars (100)"),
        (["dedup={}"], "a whole table cannot be set"),
    ):
        args = ["build", "--home", str(tmp_path / "reg")]
        for s in sets:
            args += ["--set", s]
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and expected in r.output, r.output
        assert "lines read" not in r.output  # refused before any line was read
        _no_traceback(r.output)


def _record(**extra: object) -> str:
    base = {"instruction": "Explain the bug in this contract, in detail please.",
            "response": "The response explains the bug well enough.", "category": "SWC-107"}
    return json.dumps({**base, **extra})


def test_small_record_defects(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join([_record(category="SWC-0107"), _record(source={"file": "a.jsonl", "line": -1}),
                            _record(source={"file": "a.jsonl", "line": True}), _record()]) + "\n")
    r = runner.invoke(app, ["validate", str(f), "--json"])
    data = json.loads(r.stdout)
    assert data["ledger"]["quarantined"] == 3 and data["ledger"]["valid"] == 1
    messages = [x["message"] for q in data.get("quarantined", []) for x in q.get("reasons", [])] or \
        [x["message"] for x in data["findings"]]
    assert any("did you mean 'SWC-107'?" in m for m in messages)
    assert sum("integer >= 1" in m for m in messages) == 2


@pytest.mark.parametrize("kind", ["gzip", "utf-16", "utf-16-nobom"])
def test_a_compressed_or_utf16_file_is_named_once(kind: str, tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    data = SAMPLE.read_bytes()
    f.write_bytes(gzip.compress(data) if kind == "gzip" else
                  data.decode().encode("utf-16") if kind == "utf-16" else data.decode().encode("utf-16-le"))
    r = runner.invoke(app, ["validate", str(f)])
    assert r.exit_code == 2
    assert ("gzip-compressed" if kind == "gzip" else "UTF-16") in r.output and "invalid-utf8" not in r.output
    _no_traceback(r.output)


def test_workers_above_the_cores_are_capped_with_a_note(tmp_path: Path) -> None:
    from swcdata.core.workers import usable_cpus

    r = runner.invoke(app, ["validate", str(SAMPLE), "--workers", str(usable_cpus() + 7),
                            "--out", str(tmp_path / "v.jsonl")])
    assert r.exit_code in (0, 1)
    assert f"capped at {usable_cpus()}" in r.output
