"""`--engine ray` on the command line: the same files and report as the local engine, the engine from
./swcdata.toml, and clear errors for an unknown engine and for a missing Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
VOLATILE = ("seconds", "records_per_second", "backend", "timings")
runner = CliRunner()


def _report(path: Path) -> dict[str, Any]:
    rep = json.loads(path.read_text())
    return {k: v for k, v in rep.items() if k not in VOLATILE}


def _validate(folder: Path, *extra: str) -> tuple[int, dict[str, Any], bytes, bytes]:
    folder.mkdir()
    r = runner.invoke(app, ["validate", str(SAMPLE), "--out", str(folder / "valid.jsonl"), "--quarantine",
                            str(folder / "q.jsonl"), "--report", str(folder / "r.json"), "--no-code", *extra])
    assert "Traceback" not in r.output, r.output
    return (r.exit_code, _report(folder / "r.json"), (folder / "valid.jsonl").read_bytes(),
            (folder / "q.jsonl").read_bytes())


def test_validate_on_ray_writes_what_the_local_engine_writes(ray_cluster: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    local = _validate(tmp_path / "local")
    assert _validate(tmp_path / "ray", "--engine", "ray") == local
    assert local[0] == 1 and local[2] and local[3]  # (the sample has errors: exit 1, quarantined lines)
    # engine = "ray" in ./swcdata.toml, and --engine local over it
    monkeypatch.chdir(tmp_path)
    Path("swcdata.toml").write_text('engine = "ray"\n')
    from swcdata.engine import choose

    assert choose(None) == "ray" and choose("local") == "local"
    assert _validate(tmp_path / "toml") == local


def test_an_unknown_engine_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = runner.invoke(app, ["validate", str(SAMPLE), "--engine", "spark"])
    assert r.exit_code == 2 and "unknown engine 'spark'" in r.output and "local, ray" in r.output
    monkeypatch.chdir(tmp_path)
    Path("swcdata.toml").write_text("engine = 3\n")
    r = runner.invoke(app, ["validate", str(SAMPLE)])
    assert r.exit_code == 2 and "engine must be a string" in r.output


def test_without_ray_the_engine_says_how_to_install_it(tmp_path: Path) -> None:
    """A Python where `import ray` fails (the [ray] extra not installed): the local engine works, the ray engine
    names the extra."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "from swcdata.cli.main import main\n"
            "sys.argv = ['swcdata', *sys.argv[1:]]\nmain()\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-c", code, "validate", str(SAMPLE), "--no-code"]
    ok = subprocess.run(base, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 1, ok.stderr  # (the sample's errors)
    r = subprocess.run([*base, "--engine", "ray"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2 and "pip install 'swcdata[ray]'" in r.stderr and "Traceback" not in r.stderr


def test_dedup_on_ray_writes_what_the_local_engine_writes(ray_cluster: Any, tmp_path: Path) -> None:
    """The kept records byte for byte, the quarantine, the report and its Parquet lists beside it."""
    import pyarrow.parquet as pq

    got = {}
    for engine in ("local", "ray"):
        d = tmp_path / engine
        d.mkdir()
        r = runner.invoke(app, ["dedup", str(SAMPLE), "--out", str(d / "kept.jsonl"), "--quarantine",
                                str(d / "q.jsonl"), "--report", str(d / "r.json"), "--engine", engine])
        assert r.exit_code == 0 and "Traceback" not in r.output, r.output
        got[engine] = ((d / "kept.jsonl").read_bytes(), (d / "q.jsonl").read_bytes(), _report(d / "r.json"),
                       pq.read_table(d / "r.removed.parquet"), pq.read_table(d / "r.clusters.parquet"))
    local, ray = got["local"], got["ray"]
    assert ray[:3] == local[:3] and ray[3].equals(local[3]) and ray[4].equals(local[4])
    assert local[2]["ledger"]["exact_duplicates"] + local[2]["ledger"]["near_duplicates"] > 0


def test_split_on_ray_writes_what_the_local_engine_writes(ray_cluster: Any, tmp_path: Path) -> None:
    """The three split files byte for byte and the report, without and with --holdout."""
    got = {}
    for engine in ("local", "ray"):
        d = tmp_path / engine
        r = runner.invoke(app, ["split", str(SAMPLE), "--out", str(d), "--report", str(tmp_path / f"{engine}.json"),
                                "--seed", "7", "--engine", engine])
        assert r.exit_code == 0 and "Traceback" not in r.output, r.output
        got[engine] = ([(d / f"{s}.jsonl").read_bytes() for s in ("train", "validation", "test")],
                       _report(tmp_path / f"{engine}.json"))
    assert got["ray"] == got["local"] and all(got["local"][0])
    # against a holdout set: its own test split, so that its records in the sample are removed
    got = {}
    for engine in ("local", "ray"):
        d = tmp_path / f"h-{engine}"
        r = runner.invoke(app, ["split", str(SAMPLE), "--out", str(d), "--holdout", str(tmp_path / "local" /
                                "test.jsonl"), "--report", str(d.with_suffix(".json")), "--engine", engine])
        assert r.exit_code == 0 and "Traceback" not in r.output, r.output
        got[engine] = ([(d / f"{s}.jsonl").read_bytes() for s in ("train", "validation", "test")],
                       _report(d.with_suffix(".json")))
    assert got["ray"] == got["local"] and got["local"][1]["decontaminated"]


def test_augment_on_ray_writes_what_the_local_engine_writes(ray_cluster: Any, tmp_path: Path) -> None:
    """The augmented split directory byte for byte (records and a rendered format) and the report."""
    r = runner.invoke(app, ["split", str(SAMPLE), "--out", str(tmp_path / "splits")])
    assert r.exit_code == 0, r.output
    for fmt in ("records", "chat"):
        got = {}
        for engine in ("local", "ray"):
            d = tmp_path / f"{engine}-{fmt}"
            r = runner.invoke(app, ["augment", str(tmp_path / "splits"), "--out", str(d), "--factor", "2",
                                    "--format", fmt, "--report", str(d.with_suffix(".json")), "--engine", engine])
            assert r.exit_code == 0 and "Traceback" not in r.output, r.output
            got[engine] = ([(d / f"{s}.jsonl").read_bytes() for s in ("train", "validation", "test")],
                           _report(d.with_suffix(".json")))
        assert got["ray"] == got["local"] and got["local"][1]["splits"]["train"]["variants_added"] > 0


def test_build_on_ray_publishes_the_local_version(ray_cluster: Any, tmp_path: Path) -> None:
    """The same content hash: a build on Ray after the local one finds its version (nothing new written); the
    engine from the config; with a holdout set."""
    home = tmp_path / "registry"
    results = []
    for extra in ((), ("--engine", "ray")):
        r = runner.invoke(app, ["build", "--home", str(home), "--json", *extra])
        assert r.exit_code == 0 and "Traceback" not in r.output, r.output
        results.append(json.loads(r.stdout))
    local, ray = results
    assert local["created"] and not ray["created"] and ray["ref"] == local["ref"] == "swc@v1"
    assert ray["content_hash"] == local["content_hash"] and ray["ledger"] == local["ledger"]
    config = tmp_path / "swcdata.toml"
    config.write_text(f'engine = "ray"\ninputs = ["{SAMPLE}"]\n[augment]\nfactor = 1\n')
    got = []
    for extra in (("--engine", "local"), ()):  # (--engine over the config's; then the config's)
        r = runner.invoke(app, ["build", "--config", str(config), "--home", str(home), "--json", *extra])
        assert r.exit_code == 0, r.output
        got.append(json.loads(r.stdout))
    assert got[0]["created"] and not got[1]["created"] and got[1]["content_hash"] == got[0]["content_hash"]
    # with a holdout set: the same version too
    r = runner.invoke(app, ["split", str(SAMPLE), "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    config.write_text(f'inputs = ["{SAMPLE}"]\n[split]\nholdout = ["{tmp_path / "s" / "test.jsonl"}"]\n')
    got = []
    for engine in ("local", "ray"):
        r = runner.invoke(app, ["build", "--config", str(config), "--home", str(home), "--json", "--engine", engine])
        assert r.exit_code == 0, r.output
        got.append(json.loads(r.stdout))
    assert got[0]["created"] and not got[1]["created"] and got[1]["content_hash"] == got[0]["content_hash"]
    assert got[0]["ledger"]["decontaminated"] > 0 and got[1]["ledger"] == got[0]["ledger"]
