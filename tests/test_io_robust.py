"""Outputs and workers that survive the environment: a full disk or a file size limit is one clear
error that leaves no temporary file; a multi-file output (export, a push staging folder) appears all
at once or not at all; pool workers die with their parent, even by kill -9, and the temporary files of
a dead run are cleaned by the next; an input rewritten while it is read is an input error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

import swcdata.core.io as sio
from swcdata.cli.main import app
from swcdata.core.errors import InputError
from swcdata.registry.store import Registry
from swcdata.steps.validate import ValidateConfig, load_valid

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
runner = CliRunner()


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def corpus(path: Path, n: int) -> Path:
    """`n` distinct records made from the sample's valid ones (a number added to each instruction)."""
    rows = []
    for line in SAMPLE.read_bytes().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("instruction"), str):
            rows.append(obj)
    with open(path, "wb") as f:
        for i in range(n):
            r = rows[i % len(rows)]
            f.write(json.dumps({**r, "instruction": f"{r['instruction']} (variant {i})"}).encode() + b"\n")
    return path


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ---- item 3: a full disk, a file size limit --------------------------------------------------


def test_a_file_size_limit_is_one_clear_error_and_removes_the_temporary_file(tmp_path: Path) -> None:
    """`ulimit -f` (CPython ignores SIGXFSZ, so the write fails with EFBIG): exit 2 with the output
    named, no traceback, no temporary file, and an output that was there is left as it was."""
    big = tmp_path / "in.jsonl"
    big.write_bytes(SAMPLE.read_bytes() * 20)  # (~2,000 records, ~1.3 MB of valid records to write)
    out = tmp_path / "o.jsonl"
    out.write_bytes(b"old\n")
    cmd = (f"ulimit -f 200; exec {sys.executable} -m swcdata validate {big} --no-code --out {out} "
           f"--report {tmp_path / 'r.json'}")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert f"cannot write {out}: file size limit exceeded" in r.stderr and "ulimit -f" in r.stderr
    assert "Traceback" not in r.stderr
    assert names(tmp_path) == ["in.jsonl", "o.jsonl"] and out.read_bytes() == b"old\n"


def test_no_space_left_is_one_clear_error_and_removes_the_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC from the kernel (the temporary file's descriptor points at /dev/full), also when the
    error comes from closing the file (what was buffered is written then), in a fresh folder: nothing
    is left, not even the folder."""

    class FullDisk(sio._TempRaw):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            full = os.open("/dev/full", os.O_WRONLY)
            os.dup2(full, self.fileno())
            os.close(full)

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    monkeypatch.setattr(sio, "_TempRaw", FullDisk)
    out = tmp_path / "new" / "o.jsonl"
    r = runner.invoke(app, ["validate", str(SAMPLE), "--out", str(out), "--no-code"])
    assert r.exit_code == 2, r.output
    assert f"cannot write {out}: no space left on device" in r.output and "Traceback" not in r.output
    assert names(tmp_path) == []
    with pytest.raises(InputError, match="no space left on device"), sio.atomic_output(tmp_path / "x") as f:
        f.write(b"x")  # (stays in the buffer: the error comes from the close)
    assert names(tmp_path) == []
    monkeypatch.undo()
    r = runner.invoke(app, ["validate", str(SAMPLE), "--out", "/dev/full", "--no-code"])  # (written directly)
    assert r.exit_code == 2 and "cannot write /dev/full: no space left on device" in r.output, r.output


# ---- item 4: multi-file outputs are all or nothing ---------------------------------------------


@pytest.fixture
def two_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("SWCDATA_HOME", str(tmp_path / "registry"))
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    t, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    reg = Registry()
    fields: dict[str, Any] = {"steps": [{"name": "split", "config": {"seed": 3}, "summary": {}}], "seed": 3,
                              "ledger": {"read": 104, "kept": 104}}
    reg.publish("swc", {"train": t.slice(0, 80), "validation": t.slice(80, 12), "test": t.slice(92)}, fields)
    reg.publish("swc", {"train": t.slice(0, 70), "validation": t.slice(70, 20), "test": t.slice(90)}, fields)
    return reg


def interrupt_after_first_file(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """`module.name` (a writer) raises KeyboardInterrupt (what SIGTERM becomes) from its second call on."""
    real = getattr(module, name)
    calls = []

    def writer(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) >= 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, writer)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_an_interrupted_export_leaves_the_folder_as_it_was(two_versions: Registry, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    import swcdata.core.records
    import swcdata.registry.store

    ex = tmp_path / "ex"
    r = runner.invoke(app, ["export", "swc@v1", "--format", fmt, "--out", str(ex)])
    assert r.exit_code == 0, r.output
    v1 = {p.name: p.read_bytes() for p in ex.iterdir()}
    assert sorted(v1) == sorted(f"{s}.{fmt}" for s in ("train", "validation", "test"))
    with monkeypatch.context() as m:
        interrupt_after_first_file(m, *((swcdata.core.records, "write_jsonl") if fmt == "jsonl"
                                        else (swcdata.registry.store, "write_parquet_to")))
        r = runner.invoke(app, ["export", "swc@v2", "--format", fmt, "--out", str(ex)])
        assert r.exit_code == 130 and "interrupted" in r.output, r.output
        assert {p.name: p.read_bytes() for p in ex.iterdir()} == v1  # v1 whole: no v2 train beside v1 test
        r = runner.invoke(app, ["export", "swc@v2", "--format", fmt, "--out", str(tmp_path / "new" / "ex2")])
        assert r.exit_code == 130 and not (tmp_path / "new").exists()  # no folder where there was none
    r = runner.invoke(app, ["export", "swc@v2", "--format", fmt, "--out", str(ex)])  # the rerun works
    assert r.exit_code == 0, r.output
    v2 = {p.name: p.read_bytes() for p in ex.iterdir()}
    assert sorted(v2) == sorted(v1) and all(v2[k] != v1[k] for k in v1)


def test_an_interrupted_push_dry_run_leaves_no_staging_folder(two_versions: Registry, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata.registry import hub

    out = tmp_path / "hub"
    with monkeypatch.context() as m:
        interrupt_after_first_file(m, hub, "write_shard")
        r = runner.invoke(app, ["push", "swc@v2", "--repo", "me/swc", "--dry-run", "--out", str(out)])
        assert r.exit_code == 130, r.output
    assert names(tmp_path) == ["registry"]  # no half-staged folder, no temporary one
    r = runner.invoke(app, ["push", "swc@v2", "--repo", "me/swc", "--dry-run", "--out", str(out)])
    assert r.exit_code == 0, r.output  # the rerun is not refused
    staged = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"README.md", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet",
            "data/validation-00000-of-00001.parquet", "swcdata/manifest.json"} <= staged
    assert names(tmp_path) == ["hub", "registry"]
    # an empty folder is staged into (replaced); a non-empty one is still refused
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(app, ["push", "swc@v2", "--repo", "me/swc", "--dry-run", "--out", str(empty)]).exit_code == 0
    assert (empty / "README.md").is_file()
    r = runner.invoke(app, ["push", "swc@v2", "--repo", "me/swc", "--dry-run", "--out", str(empty)])
    assert r.exit_code == 2 and "not an empty folder" in r.output


def test_signals_wait_until_every_file_is_in_place(tmp_path: Path) -> None:
    """A SIGTERM/Ctrl-C that arrives while the files move in place takes effect after the last one."""
    paths = [tmp_path / f"{s}.jsonl" for s in ("train", "validation", "test")]
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        if Path(dst).name == "train.jsonl":
            signal.raise_signal(signal.SIGINT)  # (between the first move and the others)

    with pytest.raises(KeyboardInterrupt), pytest.MonkeyPatch.context() as m:
        m.setattr(sio.os, "replace", replace)
        with sio.atomic_outputs(paths) as files:
            for f in files:
                f.write(b"new\n")
    assert names(tmp_path) == ["test.jsonl", "train.jsonl", "validation.jsonl"]


# ---- item 5: workers die with their parent; stale temporary files ---------------------------------


def _workers_of(pid: int, n: int, timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kids = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            break
        workers = [k for k in kids if "resource_tracker" not in " ".join(k.cmdline())]
        if len(workers) >= n:
            return workers
        time.sleep(0.05)
    return []


def _gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE  # (dead, waiting for PID 1 to reap it)
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("command", ["validate", "dedup"])
def test_kill_9_of_the_command_leaves_no_worker_running(tmp_path: Path, command: str) -> None:
    big = corpus(tmp_path / "big.jsonl", 40_000)  # (seconds of work for two workers)
    args = [sys.executable, "-m", "swcdata", command, str(big), "--out", str(tmp_path / "o.jsonl"), "--workers", "2"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        workers = _workers_of(p.pid, 2, timeout=60)
        assert workers, f"{command} started no pool workers (did it finish first? rc={p.poll()})"
    finally:
        p.kill()  # SIGKILL: no cleanup of its own runs
        p.wait()
    deadline = time.monotonic() + 5
    while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w.pid for w in workers if not _gone(w)]
    for pid in left:  # (not to leave them behind when the test fails)
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers still running 5 s after their parent was killed: {left}"


def test_stale_temporary_files_of_dead_runs_are_removed_by_the_next_run(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead, live = dead_pid(), sleeper.pid
        out = tmp_path / "out.jsonl"
        stale, busy = tmp_path / f".out.jsonl.{dead}.tmp", tmp_path / f".out.jsonl.{live}.tmp"
        other = tmp_path / f".other.jsonl.{dead}.tmp"  # (not next to an output of this run: left alone)
        for p in (stale, busy, other):
            p.write_bytes(b"partial")
        r = runner.invoke(app, ["validate", str(SAMPLE), "--no-code", "--out", str(out)])
        assert r.exit_code in (0, 1), r.output
        assert out.is_file() and not stale.exists() and busy.read_bytes() == b"partial" and other.exists()
        # a staging folder of a dead push, beside the --out of the next
        folder = tmp_path / "hub"
        (tmp_path / f".hub.{dead}.tmp" / "data").mkdir(parents=True)
        with sio.atomic_folder(folder) as tmp:
            (tmp / "README.md").write_text("x")
        assert sorted(p.name for p in tmp_path.iterdir() if "hub" in p.name) == ["hub"]
    finally:
        sleeper.kill()
        sleeper.wait()


# ---- item 7: an input rewritten while it is read ---------------------------------------------


def _rewrite_in_place(path: Path) -> None:
    time.sleep(0.05)  # (past the coarse clock tick of the file's last write: a new mtime)
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(b"\xff" * 100)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_input_rewritten_while_it_is_read_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                workers: str) -> None:
    """The reader's hook: the file is rewritten in place (same size) after its first read."""
    src = tmp_path / "in.jsonl"
    src.write_bytes(SAMPLE.read_bytes())

    class Rewritten:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.f = open(*args, **kwargs)  # noqa: SIM115
            self.reads = 0

        def readinto(self, b: Any) -> int:
            n = self.f.readinto(b)
            self.reads += 1
            if self.reads == 1 and Path(self.f.name) == src:
                _rewrite_in_place(src)
            return n

        def __getattr__(self, name: str) -> Any:
            return getattr(self.f, name)

    monkeypatch.setattr(sio, "open", Rewritten, raising=False)
    out = tmp_path / "v.jsonl"
    r = runner.invoke(app, ["validate", str(src), "--out", str(out), "--workers", workers])
    assert r.exit_code == 2, r.output
    assert f"{src} changed while it was read: it was modified" in r.output and "Traceback" not in r.output
    assert names(tmp_path) == ["in.jsonl"]  # no output, no temporary file


def test_a_worker_reading_a_changed_file_says_so(tmp_path: Path) -> None:
    """A worker reads its unit later than the main process cut it: the file's stamp is checked then."""
    from swcdata.steps.validate import _check_units

    src = tmp_path / "in.jsonl"
    src.write_bytes(SAMPLE.read_bytes())
    units = list(sio.iter_units(src, sio.FileStats(str(src)), 20))
    assert units[0].stamp is not None
    _check_units((units[:2], ValidateConfig(check_code=False), True))  # unchanged: fine
    _rewrite_in_place(src)
    with pytest.raises(InputError, match="changed while it was read: it was modified"):
        _check_units((units[:2], ValidateConfig(check_code=False), True))
    src.write_bytes(SAMPLE.read_bytes()[:1000])
    with pytest.raises(InputError, match="its size changed"):
        sio.read_unit(units[0])
    os.replace(tmp_path / "in.jsonl", tmp_path / "moved.jsonl")
    with pytest.raises(InputError, match="removed or renamed"):
        sio.read_unit(units[0])


def test_an_unchanged_input_reports_the_hash_of_its_bytes(tmp_path: Path) -> None:
    import hashlib

    src = tmp_path / "in.jsonl"
    src.write_bytes(SAMPLE.read_bytes())
    _, rep, _ = load_valid([src], ValidateConfig(check_code=False))
    assert rep.inputs[0].sha256 == hashlib.sha256(src.read_bytes()).hexdigest() and rep.ledger.adds_up

