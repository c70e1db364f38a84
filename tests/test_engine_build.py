"""`build --engine ray` publishes what the local build publishes: the workers write the version's shards (a task a
shard), and the files, the content hash and the manifest are the local build's, byte for byte; a worker killed
while it writes is retried and changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from swcdata.registry import content
from swcdata.registry.build import load_config, run_build
from swcdata.registry.store import Registry

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

REPO = Path(__file__).resolve().parents[1]
VOLATILE = ("created_at", "manifest_digest")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def _manifest(folder: Path) -> dict[str, Any]:
    m = json.loads((folder / "manifest.json").read_text())
    for key in VOLATILE:
        m.pop(key)
    for step in m["steps"]:  # (how long each step took is no part of the version)
        step["summary"].pop("seconds", None)
    return m


@pytest.fixture(scope="module")
def local_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """swc@v1 of the embedded sample built here, in shards of 23 rows (several per split); the same shard size
    holds in the tests that compare with it."""
    cfg, base = load_config(REPO / "swcdata.toml")
    home = tmp_path_factory.mktemp("local") / "registry"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(content, "SHARD_ROWS", 23)
        result = run_build(cfg, base, home=home)
    assert result.created
    return Registry(home).path("swc@v1")


def _ray_build(home: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Path:
    from swcdata.engine.build import RaySteps

    cfg, base = load_config(REPO / "swcdata.toml")
    monkeypatch.setattr(content, "SHARD_ROWS", 23)  # (the driver cuts the shards: the workers write what it cuts)
    result = run_build(cfg, base, home=home, steps=RaySteps(**kwargs))
    assert result.created and result.ref == "swc@v1"
    rep = Registry(home).verify("swc@v1")  # (every file's sha256, the content hash, `datasets.load_from_disk`)
    assert rep.ok, rep.problems
    return Registry(home).path("swc@v1")


def test_the_workers_write_the_local_builds_files(ray_cluster: Any, local_version: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _ray_build(tmp_path / "registry", monkeypatch)
    want = _files(local_version)
    assert sum(1 for p in want if p.startswith("train/data-")) >= 3  # (train: several shards)
    assert _files(folder) == want
    assert _manifest(folder) == _manifest(local_version)


def test_a_worker_killed_while_it_writes_a_shard_is_retried_and_changes_nothing(
        ray_cluster: Any, local_version: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()

    def die_once(split: str, index: int) -> None:  # (in the worker: the first try of every shard kills it)
        mark = marks / f"{split}-{index}"
        if not mark.exists():
            mark.write_text(str(os.getpid()))
            os._exit(1)

    folder = _ray_build(tmp_path / "registry", monkeypatch, shard_hook=die_once)
    shards = [p for p in _files(local_version) if "/data-" in p]
    assert len(list(marks.iterdir())) == len(shards)  # (every shard's task died once and ran again)
    assert _files(folder) == _files(local_version)
    assert _manifest(folder) == _manifest(local_version)


def test_an_incremental_build_on_ray_reuses_the_parents_index_as_the_local_build_does(
        ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """v1 of part of the sample (local), then v2 of all of it on Ray in the same registry: the texts v1 signed are
    not signed again, and v2 is the local full build's, its signature index byte for byte; the manifest's counts
    are the local incremental build's, and it takes from the build cache what the local one takes."""
    from swcdata.engine.build import RaySteps
    from swcdata.registry.cache import BuildCache
    from swcdata.registry.manifest import INDEX_FILE

    lines = (REPO / "dataset" / "swc_sample.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    part, whole = tmp_path / "part.jsonl", tmp_path / "whole.jsonl"
    part.write_text("".join(lines[:70]), encoding="utf-8")
    whole.write_text("".join(lines), encoding="utf-8")

    def build(home: Path, inputs: list[Path], steps: Any = None) -> Any:
        cfg, base = load_config(None, {"name": "s", "inputs": [str(p) for p in inputs], "seed": 0})
        return run_build(cfg, base, home=home, steps=steps)

    for home in (tmp_path / "ray", tmp_path / "local"):
        build(home, [part])
    on_ray = build(tmp_path / "ray", [whole], RaySteps())
    local = build(tmp_path / "local", [whole])
    full = build(tmp_path / "full", [whole])
    assert on_ray.ref == local.ref == "s@v2" and on_ray.content_hash == local.content_hash == full.content_hash
    assert on_ray.index == local.index and on_ray.index["reused"] > 0 and on_ray.index["reused_from"] == "s@v1"
    assert on_ray.index["reused"] + on_ray.index["signed"] == full.index["signed"]
    # the build cache: the Ray build took from it what the local one took, and left what the local one left (the
    # prepared inputs and the audit's features are the local engine's alone: Ray reads every input on its workers
    # and audits on the cluster)
    assert {"inputs", "audit"} <= local.cache.keys() and not {"inputs", "audit"} & on_ray.cache.keys()
    assert on_ray.cache == {k: v for k, v in local.cache.items() if k not in ("inputs", "audit")}
    assert local.cache["checks"].reused > 0 and local.cache["augment"].reused > 0
    assert full.cache["checks"].reused == 0
    for step in ("checks", "augment"):
        a, _ = BuildCache(tmp_path / "ray", "s").read(step)
        b, _ = BuildCache(tmp_path / "local", "s").read(step)
        assert a is not None and b is not None and (a.keys == b.keys).all() and a.values == b.values
    folder = Registry(tmp_path / "ray").path("s@v2")
    assert _files(folder) == _files(Registry(tmp_path / "full").path("s@v1"))
    assert (folder / INDEX_FILE).read_bytes() == (Registry(tmp_path / "local").path("s@v2") / INDEX_FILE).read_bytes()
