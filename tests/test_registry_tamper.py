"""The registry cannot be fooled or written around (issue 18): the manifest digest is required, every manifest
is chained to its parent's digest and recorded in the append-only registry log, paths stay inside the version
folder, stray folders are ignored with a warning, outputs inside the registry are refused, and the per-record
removed lists live in Parquet files of the version (old manifests with inline lists still verify)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.core.errors import DataError, InputError
from swcdata.registry.content import content_hash
from swcdata.registry.manifest import Manifest
from swcdata.registry.store import LOG_FILE, Registry
from swcdata.steps.validate import ValidateConfig, load_valid

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
STEPS = [{"name": "split", "config": {"seed": 7, "ratios": [0.8, 0.1, 0.1]}, "summary": {"clusters": 3}}]
SRC = {"file": "in.jsonl", "line": 3}
runner = CliRunner()


@pytest.fixture(scope="module")
def table() -> pa.Table:
    t, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    return t


def splits(t: pa.Table, drop: int = 0) -> dict[str, pa.Table]:
    return {"train": t.slice(0, 80), "validation": t.slice(80, 12), "test": t.slice(92 + drop)}


def removed(n: int = 3) -> dict[str, Any]:
    dup = {"id": "a" * 16, "source": SRC, "similarity": 1.0, "duplicate_of": {"id": "b" * 16, "source": SRC}}
    return {"quarantined": [{"source": {"file": "in.jsonl", "line": i}, "reasons": [
                {"rule": "missing-field", "field": "response", "message": "no response"}]} for i in range(n)],
            "duplicates": [dup | {"kind": "exact"}, dup | {"kind": "near", "similarity": 0.8}],
            "holdout_duplicates": [], "note": "kept as it is"}


def fields(**extra: Any) -> dict[str, Any]:
    return {"steps": STEPS, "seed": 7, "ledger": {"read": 104, "kept": 104},
            "inputs": [{"path": "in.jsonl", "sha256": "ab" * 32, "bytes": 10}], **extra}


@pytest.fixture
def reg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: pa.Table) -> Registry:
    """swc@v1 and swc@v2 (v2's parent), published by this code; SWCDATA_HOME points at them."""
    home = tmp_path / "registry"
    monkeypatch.setenv("SWCDATA_HOME", str(home))
    r = Registry(home)
    r.publish("swc", splits(table), fields(removed=removed()))
    r.publish("swc", splits(table, drop=1), fields())
    return r


def edit(folder: Path, change: Any, *, digest: str = "keep") -> None:
    """Edit a manifest; digest: 'keep' (as it was), 'delete', or 'recompute' (a forger who knows the rule)."""
    path = folder / "manifest.json"
    path.chmod(0o644)
    d = json.loads(path.read_text())
    change(d)
    if digest == "delete":
        d.pop("manifest_digest", None)
    elif digest == "recompute":
        m = Manifest.model_validate({k: v for k, v in d.items() if k != "manifest_digest"})
        d["manifest_digest"] = m.compute_digest()
    path.write_text(json.dumps(d, indent=2))


def verify(args: list[str]) -> tuple[int, str]:
    r = runner.invoke(app, ["verify", *args], env={"COLUMNS": "400"})
    assert "Traceback" not in r.output, r.output
    return r.exit_code, " ".join(r.output.split())


# ---- the digest is required -------------------------------------------------------------------


@pytest.mark.parametrize("what", ["steps", "parent", "inputs"])
def test_deleted_digest_and_an_edited_field_fail_verify(reg: Registry, what: str) -> None:
    change = {"steps": lambda d: d["steps"][0]["config"].update(seed=8),
              "parent": lambda d: d.update(parent="swc@v9"),
              "inputs": lambda d: d["inputs"][0].update(sha256="cd" * 32)}[what]
    edit(reg.path("swc@v2"), change, digest="delete")
    rep = reg.verify("swc@v2")
    assert not rep.ok
    assert any("manifest_digest is missing" in p and "it was deleted" in p for p in rep.problems), rep.problems
    # the log names what it can compare: the digest, and the parent field itself
    assert any("manifest_digest is None, but the registry log" in p for p in rep.problems), rep.problems
    if what == "parent":
        assert any("parent is 'swc@v9', but the registry log" in p and "recorded 'swc@v1'" in p
                   for p in rep.problems), rep.problems
    code, out = verify(["swc@v2"])
    assert code == 1 and "TAMPERED" in out and "manifest_digest is missing" in out
    with pytest.raises(DataError, match="manifest_digest is missing"):
        reg.load("swc@v2")


def test_v1_copied_over_v2_as_version_2_without_a_digest_fails(reg: Registry) -> None:
    v1, v2 = reg.path("swc@v1"), reg.path("swc@v2")
    for p in v2.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(v2)
    shutil.copytree(v1, v2)
    edit(v2, lambda d: d.update(version=2), digest="delete")
    rep = reg.verify("swc@v2")
    assert not rep.ok and rep.actual == rep.expected  # (the data matches the copied manifest)
    text = "\n".join(rep.problems)
    assert "manifest_digest is missing" in text
    assert "content_hash is" in text and "but the registry log" in text  # v2's logged content differs
    assert verify(["swc@v2"])[0] == 1


def test_a_recomputed_digest_is_caught_by_the_log_and_by_the_child(reg: Registry) -> None:
    logged = json.loads((reg.home / "swc" / LOG_FILE).read_text().splitlines()[0])
    edit(reg.path("swc@v1"), lambda d: d["steps"][0]["config"].update(seed=8), digest="recompute")
    m1 = reg.resolve("swc@v1")
    assert m1.manifest_digest == m1.compute_digest()  # the manifest alone looks intact
    rep = reg.verify("swc@v1")
    assert not rep.ok and rep.actual == rep.expected
    [p] = rep.problems
    assert f"manifest_digest is '{m1.manifest_digest}', but the registry log" in p
    assert f"recorded '{logged['manifest_digest']}' when swc@v1 was published" in p
    child = reg.verify("swc@v2")  # v2 was published on top of the original v1
    assert not child.ok
    [p] = child.problems
    assert f"parent_digest is {logged['manifest_digest']}, but the parent swc@v1's manifest now has" in p
    code, out = verify(["swc@v1"])
    assert code == 1 and "was replaced after publishing" in out
    with pytest.raises(DataError, match="replaced after publishing"):
        reg.load("swc@v1")


def test_a_version_not_in_the_log_fails_once_the_log_exists(reg: Registry, table: pa.Table) -> None:
    """A fabricated v3 (a copy of v2 renumbered, digest recomputed): the log never recorded it."""
    v3 = reg.home / "swc" / "v3"
    shutil.copytree(reg.path("swc@v2"), v3)
    edit(v3, lambda d: d.update(version=3), digest="recompute")
    rep = reg.verify("swc@v3")
    assert not rep.ok and any("swc@v3 is not in the registry log" in p for p in rep.problems), rep.problems


def test_a_manifest_without_a_digest_of_the_first_schema_is_refused_with_a_reason(reg: Registry) -> None:
    edit(reg.path("swc@v1"), lambda d: d.update(schema_version=1), digest="delete")
    rep = reg.verify("swc@v1")
    assert not rep.ok
    assert any("manifest_digest is missing" in p and "schema_version 1 manifests written before 2026-12-01" in p
               for p in rep.problems), rep.problems
    edit(reg.path("swc@v2"), lambda d: d.update(schema_version=9), digest="recompute")
    assert any("schema_version is 9; this swcdata reads 1, 2" in p for p in reg.verify("swc@v2").problems)


# ---- paths stay inside the version ------------------------------------------------------------


def test_a_files_entry_outside_the_version_is_refused_without_reading_it(reg: Registry, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    escape = os.path.relpath(secret, reg.path("swc@v1"))
    assert escape.startswith("../")
    for entry in (escape, "../../../../etc/passwd", str(secret)):
        edit(reg.path("swc@v1"), lambda d, e=entry: d["files"].update({e: digest}), digest="recompute")
    import swcdata.registry.store as registry

    read: list[Path] = []
    real = registry.sha256_file
    monkeypatch.setattr(registry, "sha256_file", lambda p: read.append(Path(p).resolve()) or real(p))
    rep = reg.verify("swc@v1")
    assert not rep.ok
    folder = reg.path("swc@v1").resolve()
    assert read and all(folder in p.parents for p in read), read  # nothing outside the version was read
    text = "\n".join(rep.problems)
    assert f"files entry {escape!r} contains '..'" in text and "'../../../../etc/passwd' contains '..'" in text
    assert f"files entry {str(secret)!r} is an absolute path" in text
    with pytest.raises(DataError, match=r"contains '\.\.'"):
        reg.load("swc@v1")


def test_a_version_folder_linked_outside_the_registry_is_refused(reg: Registry, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "v2"
    shutil.move(str(reg.path("swc@v2")), outside)
    (reg.home / "swc" / "v2").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match="leads outside the registry"):
        reg.verify("swc@v2")
    code, out = verify(["swc@v2"])
    assert code == 1 and "leads outside the registry" in out and "not a link" in out
    with pytest.raises(DataError, match="leads outside the registry"):
        reg.load("swc@latest")


def test_a_data_file_linked_outside_the_version_is_refused(reg: Registry, tmp_path: Path) -> None:
    """The same bytes, through a symbolic link: the hash would match, the path does not."""
    arrow = reg.path("swc@v1") / "test" / "data-00000-of-00001.arrow"
    copy = tmp_path / "copy.arrow"
    shutil.copy(arrow, copy)
    arrow.unlink()
    arrow.symlink_to(copy)
    rep = reg.verify("swc@v1")
    assert not rep.ok
    assert any("'test/data-00000-of-00001.arrow' leads outside the version folder" in p for p in rep.problems)


# ---- folders that are not versions ------------------------------------------------------------


def test_a_stray_folder_is_ignored_with_a_warning_and_never_reused(reg: Registry, table: pa.Table) -> None:
    (reg.home / "swc" / "v7").mkdir()
    (reg.home / "swc" / "backup").mkdir()
    r = runner.invoke(app, ["show", "swc@latest", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["version"] == 2
    assert "v7: no manifest.json, so not a version: ignored" in r.stderr
    assert "backup: not a version folder (v<N>): ignored" in r.stderr
    code, out = verify(["swc"])
    assert code == 0 and "swc@v2" in out and "v7: no manifest.json" in out
    r = runner.invoke(app, ["versions"])
    assert r.exit_code == 0 and "swc@v2" in r.stdout and "v7" in r.stderr
    # the next version is numbered above the stray folder: restoring the real v7 later collides with nothing
    m, created = reg.publish("swc", splits(table, drop=2), fields())
    assert created and m.ref == "swc@v8" and m.parent == "swc@v2" and reg.verify("swc@v8").ok


def test_a_version_number_is_never_given_twice(reg: Registry, table: pa.Table, tmp_path: Path) -> None:
    """v2 moved out of the registry (as a tamper hint suggests): the next publish is v3, not a second v2."""
    shutil.move(str(reg.path("swc@v2")), tmp_path / "moved-out")
    m, created = reg.publish("swc", splits(table, drop=2), fields())
    assert created and m.ref == "swc@v3" and m.parent == "swc@v1"
    assert reg.verify("swc@v3").ok and reg.verify("swc@v1").ok


# ---- outputs inside the registry --------------------------------------------------------------


def test_outputs_inside_the_registry_are_refused(reg: Registry, tmp_path: Path) -> None:
    v1 = reg.path("swc@v1")
    before = {p: p.read_bytes() for p in v1.rglob("*") if p.is_file()}
    arrow = v1 / "train" / "data-00000-of-00001.arrow"
    for args in (["export", "swc@v1", "--out", str(v1)],
                 ["export", "swc@v1", "--out", str(reg.home / "swc" / "exported")],
                 ["validate", str(SAMPLE), "--out", str(arrow)],
                 ["validate", str(SAMPLE), "--report", str(v1 / "manifest.json")],
                 ["dedup", str(SAMPLE), "--out", str(tmp_path / "ok.jsonl"), "--report",
                  str(reg.home / "report.json")],
                 ["push", "swc@v1", "--repo", "me/swc", "--dry-run", "--out", str(reg.home / "stage")]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert "inside the registry" in r.output and "Traceback" not in r.output, r.output
    assert {p: p.read_bytes() for p in v1.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in (reg.home / "swc").iterdir()) == [".lock", LOG_FILE, "v1", "v2"]
    assert not (tmp_path / "ok.jsonl").exists() and not (reg.home / "report.json").exists()
    # a registry named by --home is protected as well as the default one
    other = tmp_path / "other"
    shutil.copytree(reg.home, other, symlinks=True)
    r = runner.invoke(app, ["export", "swc@v1", "--home", str(other), "--out", str(other / "swc" / "v1")])
    assert r.exit_code == 2 and "inside the registry" in r.output
    with pytest.raises(InputError, match="inside the registry"):
        Registry(other).export("swc@v1", "jsonl", other / "x")
    r = runner.invoke(app, ["export", "swc@v1", "--out", str(tmp_path / "fine")])
    assert r.exit_code == 0, r.output


def test_io_finds_the_registry_as_the_registry_does(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from swcdata.core.io import default_registry_home, inside_registry
    from swcdata.registry.store import registry_home

    for value in (None, "", str(tmp_path / "r"), "~/reg"):
        if value is None:
            monkeypatch.delenv("SWCDATA_HOME", raising=False)
        else:
            monkeypatch.setenv("SWCDATA_HOME", value)
        assert default_registry_home() == registry_home()
    monkeypatch.setenv("SWCDATA_HOME", str(tmp_path / "r"))
    assert inside_registry(tmp_path / "r" / "x" / ".." / "y") == tmp_path / "r"
    assert inside_registry(tmp_path / "r" / ".." / "y") is None
    (tmp_path / "link").symlink_to(tmp_path / "r", target_is_directory=True)
    (tmp_path / "r").mkdir()
    assert inside_registry(tmp_path / "link" / "out.jsonl") == tmp_path / "r"
    assert inside_registry(Path("-")) is None


# ---- removed records in Parquet ---------------------------------------------------------------


def test_removed_lists_are_parquet_files_of_the_version(reg: Registry) -> None:
    m = reg.resolve("swc@v1")
    assert m.schema_version == 3
    assert m.removed == {
        "quarantined": {"records": 3, "path": "removed/quarantined.parquet"},
        "duplicates": {"records": 2, "path": "removed/duplicates.parquet", "by_kind": {"exact": 1, "near": 1}},
        "holdout_duplicates": {"records": 0}, "note": "kept as it is"}
    assert {"removed/quarantined.parquet", "removed/duplicates.parquet"} <= set(m.files)
    assert reg.removed_records(m, "quarantined") == removed()["quarantined"]
    assert reg.removed_records("swc@v1", "duplicates") == removed()["duplicates"]
    assert reg.removed_records(m, "holdout_duplicates") == []
    with pytest.raises(InputError, match="records no removed 'nope'"):
        reg.removed_records(m, "nope")
    r = runner.invoke(app, ["show", "swc@v1"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "2 = 1 exact + 1 near (removed/duplicates.parquet)" in r.output, r.output
    # the files are covered: a changed byte fails verify and the reader
    pq_file = reg.path(m) / "removed" / "duplicates.parquet"
    pq_file.chmod(0o644)
    data = bytearray(pq_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pq_file.write_bytes(bytes(data))
    assert any(p.startswith("removed/duplicates.parquet: modified") for p in reg.verify("swc@v1").problems)
    with pytest.raises(DataError, match=r"removed/duplicates\.parquet was modified after publishing"):
        reg.removed_records(m, "duplicates")


def test_a_large_removed_list_keeps_the_manifest_small(tmp_path: Path, table: pa.Table) -> None:
    r = Registry(tmp_path)
    many = [{"id": f"{i:016x}", "source": {"file": "in.jsonl", "line": i}, "kind": "exact", "similarity": 1.0,
             "duplicate_of": {"id": "b" * 16, "source": SRC}} for i in range(20_000)]
    mixed = [{"value": 1}, {"value": "one"}]  # (types Arrow cannot put in one column: kept as JSON text)
    m, _ = r.publish("swc", splits(table), fields(removed={"duplicates": many, "odd": mixed}))
    assert (r.path(m) / "manifest.json").stat().st_size < 8_000
    assert r.removed_records(m, "duplicates") == many and r.removed_records(m, "odd") == mixed
    assert r.verify(m.ref).ok


def test_removed_files_are_the_same_bytes_in_any_registry(tmp_path: Path, table: pa.Table) -> None:
    a, _ = Registry(tmp_path / "a").publish("swc", splits(table), fields(removed=removed()))
    b, _ = Registry(tmp_path / "b").publish("swc", splits(table), fields(removed=removed()))
    assert {k: v for k, v in a.files.items() if k.startswith("removed/")} == \
        {k: v for k, v in b.files.items() if k.startswith("removed/")}


def test_an_old_manifest_with_inline_lists_still_verifies_shows_and_reads(reg: Registry) -> None:
    """A schema_version 1 manifest as the code before this one wrote it (the removed lists inline, no
    parent_digest), in a registry without a log: it verifies, with a warning that the log does not know it."""
    folder = reg.path("swc@v1")
    (reg.home / "swc" / LOG_FILE).unlink()
    quarantined = removed()["quarantined"]

    def as_schema_1(d: dict[str, Any]) -> None:
        d["schema_version"] = 1
        d["content_hash"] = content_hash(reg.tables("swc@v1", verify=False)[0], hash_format=1)  # (format 1)
        d["removed"] = {"quarantined": quarantined, "duplicates": removed()["duplicates"]}
        for key in ("parent_digest", "license"):  # (absent in the first manifests, as the inputs' roles)
            d.pop(key, None)
        d["inputs"] = [{k: v for k, v in i.items() if k != "role"} for i in d["inputs"]]
        d["files"] = {k: v for k, v in d["files"].items() if not k.startswith("removed/")}
        body = {k: v for k, v in d.items() if k != "manifest_digest"}
        d["manifest_digest"] = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    edit(folder, as_schema_1)
    for p in (folder / "removed").iterdir():
        p.unlink()
    (folder / "removed").rmdir()
    rep = reg.verify("swc@v1")
    assert rep.ok, rep.problems
    assert any("swc@v1 is not in the registry log (published before the log existed" in w for w in rep.warnings)
    assert reg.removed_records("swc@v1", "quarantined") == quarantined
    code, out = verify(["swc@v1"])
    assert code == 0 and "not in the registry log" in out
    r = runner.invoke(app, ["show", "swc@v1"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "3 (manifest.json)" in r.output, r.output
    # v2 (schema 2, chained to the original v1) now fails its chain: v1's manifest is not the one it was built on
    assert any("parent_digest is" in p for p in reg.verify("swc@v2").problems)


def test_the_log_begins_with_the_versions_already_there(reg: Registry, table: pa.Table) -> None:
    """A registry from before the log: the next publish starts the log with the intact versions ('adopted'),
    so from then on a replaced v1 is caught too."""
    (reg.home / "swc" / LOG_FILE).unlink()
    assert reg.verify("swc@v1").ok
    reg.publish("swc", splits(table, drop=3), fields())
    lines = [json.loads(x) for x in (reg.home / "swc" / LOG_FILE).read_text().splitlines()]
    assert [(e["event"], e["version"]) for e in lines] == [("adopted", 1), ("adopted", 2), ("published", 3)]
    assert all(reg.verify(f"swc@v{v}").ok and not reg.verify(f"swc@v{v}").warnings for v in (1, 2, 3))
    edit(reg.path("swc@v1"), lambda d: d.update(seed=99), digest="recompute")
    assert any("when swc@v1 was adopted" in p for p in reg.verify("swc@v1").problems)


# ---- scan refuses what load refuses ---------------------------------------------------------------


def _refusal(call: Any) -> str:
    with pytest.raises(DataError) as e:
        call()
    return f"{e.value.message} | {e.value.hint}"


def test_scan_refuses_a_tampered_version_as_load_does(reg: Registry) -> None:
    """A flipped byte in a data file, a content change behind forged file hashes, an edited manifest: `scan`
    refuses each before any query runs, with load's message; `verify=False` reads what is there."""
    import swcdata

    folder = reg.path("swc@v1")
    arrow = folder / "train" / "data-00000-of-00001.arrow"
    assert swcdata.scan("swc@v1").collect().height == 104
    arrow.chmod(0o644)
    data = bytearray(arrow.read_bytes())
    data[len(data) // 2] ^= 0xFF
    arrow.write_bytes(bytes(data))
    msg = _refusal(lambda: swcdata.scan("swc@v1"))
    assert msg == _refusal(lambda: swcdata.load("swc@v1")) and "modified after publishing" in msg
    assert _refusal(lambda: swcdata.scan("swc@v1", split="test")) == msg

    # the same change with the file hashes forged to match (and no log to compare with): the content hash
    m = reg.resolve("swc@v1")
    forged = m.model_copy(update={"files": {**m.files, "train/data-00000-of-00001.arrow":
                                            hashlib.sha256(bytes(data)).hexdigest()}})
    forged.manifest_digest = forged.compute_digest()
    (folder / "manifest.json").chmod(0o644)
    (folder / "manifest.json").write_text(forged.model_dump_json(indent=2))
    (reg.home / "swc" / LOG_FILE).unlink()
    msg = _refusal(lambda: swcdata.scan("swc@v1"))
    assert msg == _refusal(lambda: swcdata.load("swc@v1")) and "content hash mismatch" in msg
    assert swcdata.scan("swc@v1", verify=False).select("id").collect().height == 104
    # stats and diff check the content hash while they read (Registry.reading): they refuse it the same way, and
    # nothing is printed or written first
    assert _refusal(lambda: reg.diff("swc@v1", "swc@v1")) == msg  # (v2 names the forged v1 as parent)
    out = reg.home.parent / "out"
    r = runner.invoke(app, ["stats", "swc@v1", "--json", "--plots", str(out / "plots"), "--report",
                            str(out / "report.json")])
    assert r.exit_code == 1 and "content hash mismatch" in r.output and "Traceback" not in r.output
    assert "{" not in r.stdout and not out.exists()

    edit(reg.path("swc@v2"), lambda d: d["steps"][0]["config"].update(seed=8))
    msg = _refusal(lambda: swcdata.scan("swc@v2"))
    assert msg == _refusal(lambda: swcdata.load("swc@v2")) and "edited after publishing" in msg
    assert verify(["swc@v2"])[0] == 1
    r = runner.invoke(app, ["diff", "swc@v2", "swc@v1"])
    assert r.exit_code == 1 and "edited after publishing" in r.output and "Traceback" not in r.output
