"""The recipes ship with the package: `--recipe NAME` and `swcdata recipes` work from any working directory,
in this (editable) install and from a wheel installed into a fresh virtualenv (issue 16, item 2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from swcdata.core.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
BASES = {
    "codegemma-7b": "google/codegemma-7b",
    "gemma-2b": "google/gemma-2b",
    "gemma-7b": "google/gemma-7b",
    "llama-3.2-korean-bllossom-3b": "Bllossom/llama-3.2-Korean-Bllossom-3B",
    "tiny-cpu": "tiny (built locally)",
}


# ---- this install -------------------------------------------------------------------------------

def test_recipes_command_lists_the_shipped_recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata.cli.main import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["recipes", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert {r["name"]: r["base_model"] for r in listed} == BASES
    assert all(r["source"] == "packaged" and r["error"] is None and r["description"] for r in listed)
    table = CliRunner().invoke(app, ["recipes"])
    assert table.exit_code == 0 and "tiny (built locally)" in table.stdout and "google/gemma-2b" in table.stdout


def test_recipe_names_resolve_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata.cli.train import DEFAULT_RECIPE as CLI_DEFAULT
    from swcdata.finetune.recipe import DEFAULT_RECIPE, load_recipe, resolve_recipe_path

    assert CLI_DEFAULT == DEFAULT_RECIPE == "tiny-cpu"
    monkeypatch.chdir(tmp_path)  # an empty folder: no ./finetune
    path = resolve_recipe_path("tiny-cpu")
    assert path.is_absolute() and path.name == "tiny-cpu.yaml" and path.is_file()
    assert resolve_recipe_path(None) == path
    assert resolve_recipe_path("finetune/tiny-cpu.yaml") == path  # the old default, a repository-relative path
    assert load_recipe("gemma-2b").model.name == "google/gemma-2b"


def test_own_recipes_in_cwd_are_found_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata.cli.main import app
    from swcdata.finetune.recipe import list_recipes, load_recipe, resolve_recipe_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "finetune").mkdir()
    (tmp_path / "finetune" / "mine.yaml").write_text("name: mine\ndescription: my own\nmodel:\n  name: org/base\n")
    packaged = resolve_recipe_path("tiny-cpu")
    assert resolve_recipe_path("mine") == Path("finetune") / "mine.yaml"
    assert load_recipe("mine").model.name == "org/base"
    assert resolve_recipe_path("tiny-cpu") == packaged  # shadows nothing else
    entries = {e.name: e for e in list_recipes()}
    assert set(entries) == {*BASES, "mine"}
    assert entries["mine"].source == "./finetune" and entries["mine"].base_model == "org/base"
    assert entries["tiny-cpu"].source == "packaged"

    # a recipe of the same name in ./finetune is the one used; a broken one is listed with its error
    (tmp_path / "finetune" / "tiny-cpu.yaml").write_text("name: tiny-cpu\nlora:\n  r: 0\n")
    assert resolve_recipe_path("tiny-cpu") == Path("finetune") / "tiny-cpu.yaml"
    result = CliRunner().invoke(app, ["recipes", "--json"])
    assert result.exit_code == 0, result.output
    listed = {r["name"]: r for r in json.loads(result.stdout)}
    assert listed["tiny-cpu"]["source"] == "./finetune" and listed["tiny-cpu"]["base_model"] is None
    assert "lora.r: must be > 0" in listed["tiny-cpu"]["error"]
    assert listed["gemma-2b"]["error"] is None
    assert CliRunner().invoke(app, ["recipes"]).exit_code == 0


def test_unknown_recipe_lists_the_known_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swcdata.finetune.recipe import resolve_recipe_path

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as e:
        resolve_recipe_path("gemma-3b")
    assert "recipe not found: gemma-3b" in str(e.value)
    assert all(name in str(e.value.hint) for name in BASES)


# ---- a wheel in a fresh virtualenv -------------------------------------------------------------

def _run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build a wheel from a copy of the sources (not in the checkout: no shared build/ folder, no stale
    build/lib files), install it into a fresh venv that sees the dev venv's dependencies but not its
    editable swcdata."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "swcdata", src / "swcdata", ignore=ignore)
    shutil.copytree(REPO / "finetune", src / "finetune", ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", HF_HUB_OFFLINE="1",
               SWCDATA_HOME=str(tmp / "registry"))

    built = _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index",
                  "-w", tmp / "dist", "-q"], src, env)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("swcdata-*.whl")

    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", venv], tmp, env)
    assert made.returncode == 0, made.stderr
    py, exe = venv / "bin" / "python", venv / "bin" / "swcdata"
    # install first, with only the wheel visible (pip must not see the dev venv's swcdata metadata)
    installed = _run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], tmp, env)
    assert installed.returncode == 0, installed.stderr
    # then the dev venv's dependencies: a plain path line in a .pth adds the folder to sys.path without
    # processing that folder's own .pth files, so its editable-install hook stays inactive
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env)
    (Path(site.stdout.strip()) / "swcdata-dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    cwd = tmp / "elsewhere"  # an empty working directory: no ./finetune, no repository
    cwd.mkdir()
    return {"wheel": wheel, "venv": venv, "py": py, "exe": exe, "cwd": cwd, "env": env, "tmp": tmp}


def test_wheel_holds_the_recipes(wheel_venv: dict[str, Any]) -> None:
    names = set(zipfile.ZipFile(wheel_venv["wheel"]).namelist())
    assert {f"swcdata/recipes/{n}.yaml" for n in BASES} <= names
    assert not any(n.startswith("finetune/") for n in names)


def test_installed_wheel_finds_packaged_recipes(wheel_venv: dict[str, Any]) -> None:
    venv, cwd, env = wheel_venv["venv"], wheel_venv["cwd"], wheel_venv["env"]
    probe = _run([wheel_venv["py"], "-c", "import sys, swcdata; print(swcdata.__file__); "
                  "print(any('editable' in m.lower() for m in sys.modules)); "
                  "print(any('Editable' in type(f).__name__ or 'Editable' in getattr(f, '__name__', '') "
                  "for f in sys.meta_path))"], cwd, env)
    assert probe.returncode == 0, probe.stderr
    where, editable_module, editable_finder = probe.stdout.split()
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(REPO)
    assert editable_module == editable_finder == "False"

    result = _run([wheel_venv["exe"], "recipes", "--json"], cwd, env)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert {r["name"]: r["base_model"] for r in listed} == BASES
    for r in listed:
        assert r["source"] == "packaged" and r["error"] is None
        assert Path(r["path"]).is_relative_to(venv) and Path(r["path"]).parent.name == "recipes"

    # the default recipe (a name) resolves here: finetune gets past the recipe, to the missing dataset
    missing = _run([wheel_venv["exe"], "finetune", "./no-such-folder"], cwd, env)
    assert missing.returncode == 2 and "no such folder" in missing.stderr and "recipe" not in missing.stderr
    unknown = _run([wheel_venv["exe"], "finetune", "./no-such-folder", "--recipe", "gemma-9b"], cwd, env)
    assert unknown.returncode == 2 and "recipe not found: gemma-9b" in unknown.stderr
    assert "tiny-cpu" in unknown.stderr


def test_installed_wheel_dry_runs_the_default_recipe(wheel_venv: dict[str, Any]) -> None:
    """Needs `swcdata finetune --dry-run` (being built alongside this test)."""
    cwd, env, exe = wheel_venv["cwd"], wheel_venv["env"], wheel_venv["exe"]
    data = wheel_venv["tmp"] / "data"
    split = _run([exe, "split", SAMPLE, "--out", data], cwd, env)
    assert split.returncode == 0, split.stderr
    assert {p.name for p in data.glob("*.jsonl")} >= {"train.jsonl", "validation.jsonl", "test.jsonl"}

    result = _run([exe, "finetune", data, "--dry-run", "--json", "--output", wheel_venv["tmp"] / "runs"], cwd, env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"recipe", "splits", "steps_per_epoch"} <= set(report)
