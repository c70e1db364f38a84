"""Shared fixtures. Real-data tests read ../shared/seed-data and skip with a reason when it is absent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = REPO.parent / "shared" / "seed-data"
DATASET_DIR = REPO / "dataset"
SEED_SKIP = "../shared/seed-data not present: real-data tests need the seed corpus beside the repository"


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    if not SEED_DIR.is_dir():
        pytest.skip(SEED_SKIP)
    return SEED_DIR


@pytest.fixture(scope="session")
def seed_files(seed_dir: Path) -> list[Path]:
    """The six seed files, proven unchanged against SHA256SUMS."""
    sums = {}
    for line in (seed_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    files = sorted(seed_dir.glob("*.jsonl"))
    assert len(files) == 6
    for f in files:
        assert hashlib.sha256(f.read_bytes()).hexdigest() == sums[f.name], f"{f.name} differs from SHA256SUMS"
    return files


@pytest.fixture(scope="session")
def swc_files(seed_files: list[Path]) -> list[Path]:
    """The five per-category seed files (the evaluation file excluded)."""
    return [f for f in seed_files if f.name.startswith("solidity_vunerability_SWC-")]


@pytest.fixture(scope="session")
def seed_test_file(seed_files: list[Path]) -> Path:
    return next(f for f in seed_files if f.name == "test_data.jsonl")


@pytest.fixture(scope="session")
def seed_build_root(tmp_path_factory: pytest.TempPathFactory, swc_files: list[Path], seed_test_file: Path) -> Path:
    """The user's build of the seed data, once for the session: `swcdata build` of the five SWC files with
    test_data.jsonl as the holdout, reached from the config's folder (<root>/a/b/conf) with `../..` paths, the
    default steps (augmentation on); swc@v1 in <root>/registry. Tests read it and never write to it."""
    import json
    import os

    from typer.testing import CliRunner

    from swcdata.cli.main import app

    root = tmp_path_factory.mktemp("seed")
    conf = root / "a" / "b" / "conf"
    conf.mkdir(parents=True)
    rel = [os.path.relpath(f, conf) for f in swc_files]
    assert all(r.startswith("..") for r in rel)
    holdout = [os.path.relpath(seed_test_file, conf)]
    (conf / "swcdata.toml").write_text(f'name = "swc"\ninputs = {json.dumps(rel)}\n\n[split]\n'
                                       f'holdout = {json.dumps(holdout)}\n', encoding="utf-8")
    res = CliRunner().invoke(app, ["build", "--config", str(conf / "swcdata.toml"), "--home", str(root / "registry"),
                                   "--json"])
    assert res.exit_code == 0, res.output
    return root


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that use the Ray cluster run last, in their order: once Ray has started in the test process (its
    threads and sockets), no later test forks a process pool from it."""
    ray_tests = [item for item in items if "ray_cluster" in getattr(item, "fixturenames", ())]
    if ray_tests:
        others = [item for item in items if "ray_cluster" not in getattr(item, "fixturenames", ())]
        items[:] = others + ray_tests


@pytest.fixture(scope="session")
def ray_cluster():  # type: ignore[no-untyped-def]
    """One local Ray cluster for the whole session (2 CPUs, a small object store), shut down at its end: the Ray
    engine's tests share it. Skips where Ray Data is not installed (`pip install 'swcdata[ray]'`)."""
    ray = pytest.importorskip("ray", reason="Ray Data is not installed: pip install 'swcdata[ray]'")
    pytest.importorskip("ray.data")
    from swcdata.engine.session import configure_data

    if not ray.is_initialized():
        ray.init(num_cpus=2, object_store_memory=512 << 20, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    configure_data(ray)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def seed_table(swc_files: list[Path]):  # type: ignore[no-untyped-def]
    """The valid records of the five per-category seed files, as one table."""
    from swcdata.steps.validate import ValidateConfig, load_valid

    return load_valid(swc_files, ValidateConfig(check_code=False))[0]


@pytest.fixture(scope="session")
def generated_table(seed_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """20,000 generated records with planted near duplicates (some dropped by validation, as in the seed data)."""
    from ray_inputs import generated

    return generated(seed_dir, tmp_path_factory.mktemp("generated"), 20_000)
