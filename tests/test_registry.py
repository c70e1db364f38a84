"""The versioned registry: publish is idempotent, deterministic, atomic, serialised and immutable; resolve,
load (with tamper detection), verify, diff and export; the registry CLI commands."""

from __future__ import annotations

import collections
import hashlib
import json
import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema as js
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.core.errors import ConfigError, DataError, InputError
from swcdata.core.records import RECORD_SCHEMA
from swcdata.registry.content import canonical, content_hash
from swcdata.registry.manifest import Manifest
from swcdata.registry.store import Registry
from swcdata.steps.validate import ValidateConfig, load_valid

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
SCHEMAS = REPO / "schemas"
STEPS = [{"name": "split", "config": {"seed": 7, "ratios": [0.8, 0.1, 0.1]}, "summary": {"clusters": 3}}]
runner = CliRunner()


@pytest.fixture(scope="module")
def table() -> pa.Table:
    t, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    assert t.num_rows >= 100
    return t


def make_splits(t: pa.Table) -> dict[str, pa.Table]:
    return {"train": t.slice(0, 80), "validation": t.slice(80, 12), "test": t.slice(92)}


def fields(**extra: Any) -> dict[str, Any]:
    return {"steps": STEPS, "seed": 7, "ledger": {"read": 104, "kept": 104, "duplicates": 0, "quarantined": 0},
            **extra}


def replace_row(t: pa.Table, i: int, **changes: Any) -> pa.Table:
    rows = t.to_pylist()
    rows[i] = {**rows[i], **changes}
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "registry"
    monkeypatch.setenv("SWCDATA_HOME", str(h))
    return h


def data_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def flip_byte(path: Path, offset: int) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


# ---- publish ----------------------------------------------------------------------------------


def test_publish_same_content_twice_gives_the_same_version(home: Path, table: pa.Table) -> None:
    reg = Registry()
    m1, created1 = reg.publish("swc", make_splits(table), fields())
    rechunked = {k: pa.Table.from_batches(v.to_batches(max_chunksize=5)) for k, v in make_splits(table).items()}
    m2, created2 = reg.publish("swc", dict(reversed(list(rechunked.items()))), fields())
    assert (m1.ref, created1) == ("swc@v1", True)
    assert (m2.ref, created2) == ("swc@v1", False)
    assert m2.content_hash == m1.content_hash
    assert [m.version for m in reg.versions("swc")] == [1]
    assert reg.home == home


def test_files_beside_the_data_are_written_with_it_and_in_the_manifest(home: Path, table: pa.Table) -> None:
    """A version's extra files (the signature index) are written in threads while its data is: each one's sha256 in
    the manifest, and the version verifies. A writer that fails fails the publication, and nothing is left of it:
    no version, no temporary folder."""
    reg = Registry()
    written: list[Path] = []

    def note(path: Path) -> None:
        path.write_bytes(b"beside the data\n")
        written.append(path)

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        reg.publish("swc", make_splits(table), fields(), {"index/a.bin": note, "index/b.bin": broken})
    assert not (home / "swc" / "v1").exists() and [p.name for p in (home / "swc").iterdir()
                                                     if p.name.startswith(".tmp")] == []
    m, created = reg.publish("swc", make_splits(table), fields(), {"index/a.bin": note, "notes/c.txt": note})
    assert created and m.ref == "swc@v1" and len(written) == 3
    for rel in ("index/a.bin", "notes/c.txt"):
        assert m.files[rel] == hashlib.sha256(b"beside the data\n").hexdigest()
    assert reg.verify("swc@v1").ok


def test_manifest_holds_counts_lineage_and_matches_its_schema(home: Path, table: pa.Table) -> None:
    inputs = [{"path": str(SAMPLE), "sha256": hashlib.sha256(SAMPLE.read_bytes()).hexdigest(),
               "bytes": SAMPLE.stat().st_size}]
    m, _ = Registry().publish("swc", make_splits(table), fields(inputs=inputs, removed={"duplicates": 0}))
    on_disk = json.loads((home / "swc" / "v1" / "manifest.json").read_text())
    js.validate(on_disk, json.loads((SCHEMAS / "manifest.schema.json").read_text()))
    assert Manifest.model_validate(on_disk) == m
    assert list(m.counts) == ["train", "validation", "test"]
    assert {k: c.records for k, c in m.counts.items()} == {"train": 80, "validation": 12, "test": 12}
    assert sum(sum(c.by_category.values()) for c in m.counts.values()) == 104
    assert m.parent is None and m.seed == 7 and m.steps[0].config["seed"] == 7
    assert m.inputs[0].sha256 == inputs[0]["sha256"]
    assert m.created_at.endswith("Z") and m.tool_version
    assert m.ledger["kept"] == 104
    assert set(m.files) >= {"dataset_dict.json", "train/data-00000-of-00001.arrow", "test/state.json"}


def test_same_content_with_a_different_step_config_is_a_new_version(home: Path, table: pa.Table) -> None:
    reg = Registry()
    m1, _ = reg.publish("swc", make_splits(table), fields())
    other = [{**STEPS[0], "config": {**STEPS[0]["config"], "seed": 8}}]
    m2, created = reg.publish("swc", make_splits(table), fields(steps=other))
    assert created and m2.ref == "swc@v2" and m2.parent == "swc@v1"
    assert m2.content_hash == m1.content_hash
    # the same content and configs as v1 again: v1 is found, not a v3
    m3, created3 = reg.publish("swc", make_splits(table), fields())
    assert (m3.ref, created3) == ("swc@v1", False)


def test_same_content_under_another_license_is_a_new_version(home: Path, table: pa.Table) -> None:
    reg = Registry()
    m1, _ = reg.publish("swc", make_splits(table), fields(license="unknown"))
    m2, created = reg.publish("swc", make_splits(table), fields(license="mit"))
    assert created and (m1.license, m2.license) == ("unknown", "mit") and m2.content_hash == m1.content_hash
    assert reg.publish("swc", make_splits(table), fields(license="mit")) == (m2, False)


def test_holdout_role_is_covered_by_the_digest_and_old_manifests_stay_valid(home: Path, table: pa.Table) -> None:
    """Input roles and the license came after the first manifests: one written without them (no `role`, no
    `license` key) still verifies, reads its inputs as plain inputs, and shows; a holdout marked in a new
    manifest cannot be unmarked without breaking its digest."""
    import orjson

    reg = Registry()
    inputs = [{"path": "train.jsonl", "sha256": "ab" * 32, "bytes": 1, "role": "input"},
              {"path": "holdout.jsonl", "sha256": "cd" * 32, "bytes": 2, "role": "holdout"}]
    m, _ = reg.publish("swc", make_splits(table), fields(inputs=inputs, license="mit"))
    on_disk = json.loads((reg.path(m) / "manifest.json").read_text())
    assert [(i["path"], i["role"]) for i in on_disk["inputs"]] == [("train.jsonl", "input"),
                                                                   ("holdout.jsonl", "holdout")]
    assert on_disk["license"] == "mit" and reg.verify("swc@v1").ok
    _edit_manifest(reg.path(m), lambda d: d["inputs"][1].update(role="input"))
    assert not reg.verify("swc@v1").ok

    def as_written_before(d: dict[str, Any]) -> None:  # the fields and digest of a manifest of the first format
        del d["license"], d["parent_digest"]
        d["schema_version"] = 1
        d["content_hash"] = content_hash(reg.tables("swc@v1", verify=False)[0], hash_format=1)  # (format 1)
        d["inputs"] = [{k: v for k, v in i.items() if k != "role"} for i in d["inputs"]]
        body = {k: v for k, v in d.items() if k != "manifest_digest"}
        d["manifest_digest"] = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    _edit_manifest(reg.path(m), as_written_before)
    (home / "swc" / "log.jsonl").unlink()  # (published before the registry log existed: a warning, not a failure)
    rep = reg.verify("swc@v1")
    assert rep.ok, rep.problems
    old = reg.resolve("swc@v1")
    assert old.license is None and [i.role for i in old.inputs] == ["input", "input"]
    r = runner.invoke(app, ["show", "swc@v1"])
    assert r.exit_code == 0 and "holdout.jsonl" in r.output, r.output


def test_changed_record_makes_v2_and_diff_shows_exactly_that(home: Path, table: pa.Table) -> None:
    reg = Registry()
    reg.publish("swc", make_splits(table), fields())
    s = make_splits(table)
    train_rows = s["train"].to_pylist()
    changed_old = train_rows[3]
    removed = train_rows[5]
    new_train = replace_row(s["train"], 3, id="f" * 16, response=changed_old["response"] + " Also check the caller.")
    new_train = pa.concat_tables([new_train.slice(0, 5), new_train.slice(6)])
    added = {**train_rows[0], "id": "a" * 16, "instruction": "A new question?", "source": {"file": "new.jsonl",
                                                                                           "line": 1}}
    new_train = pa.concat_tables([new_train, pa.Table.from_pylist([added], schema=RECORD_SCHEMA)])
    m2, created = reg.publish("swc", {**s, "train": new_train}, fields())
    assert created and m2.ref == "swc@v2" and m2.parent == "swc@v1"

    d = reg.diff("swc@v1", "swc@v2")
    assert (d.a, d.b, d.identical) == ("swc@v1", "swc@v2", False)
    by = {x.split: x for x in d.splits}
    assert list(by) == ["train", "validation", "test"]
    t = by["train"]
    assert t.added_ids == ["a" * 16]
    assert t.removed_ids == [removed["id"]]
    assert [(c.a_id, c.b_id, c.source.file, c.source.line, c.a_split, c.b_split) for c in t.changed_records] == [
        (changed_old["id"], "f" * 16, changed_old["source"]["file"], changed_old["source"]["line"], "train", "train")]
    assert (t.a_records, t.b_records, t.unchanged, t.added, t.removed, t.changed) == (80, 80, 78, 1, 1, 1)
    for split in ("validation", "test"):
        assert (by[split].added, by[split].removed, by[split].changed) == (0, 0, 0)
    assert d.moved == [] and d.config_changes == []
    js.validate(d.model_dump(mode="json"), json.loads((SCHEMAS / "diff-report.schema.json").read_text()))


def test_a_changed_record_that_lands_in_another_split_is_changed_not_added_and_removed(
        home: Path, table: pa.Table) -> None:
    reg = Registry()
    s = make_splits(table)
    reg.publish("swc", s, fields())
    old = s["train"].to_pylist()[2]
    new = {**old, "id": "e" * 16, "response": old["response"] + " Edited."}
    train = pa.concat_tables([s["train"].slice(0, 2), s["train"].slice(3)])
    test = pa.concat_tables([s["test"], pa.Table.from_pylist([new], schema=RECORD_SCHEMA)])
    reg.publish("swc", {**s, "train": train, "test": test}, fields())
    d = reg.diff("swc@v1", "swc@v2")
    by = {x.split: x for x in d.splits}
    assert (by["train"].removed, by["train"].changed, by["test"].added, by["test"].changed) == (0, 0, 0, 1)
    [c] = by["test"].changed_records
    assert (c.a_id, c.b_id, c.a_split, c.b_split) == (old["id"], "e" * 16, "train", "test")
    assert d.moved == []


def test_diff_reports_moved_records_and_config_changes(home: Path, table: pa.Table) -> None:
    reg = Registry()
    s = make_splits(table)
    reg.publish("swc", s, fields())
    moved = s["test"].slice(0, 1)
    s2 = {"train": pa.concat_tables([s["train"], moved]), "validation": s["validation"], "test": s["test"].slice(1)}
    other = [{**STEPS[0], "config": {**STEPS[0]["config"], "seed": 9}}]
    reg.publish("swc", s2, fields(steps=other))
    d = reg.diff("swc@v1", "swc@latest")
    moved_id = moved.column("id")[0].as_py()
    assert [(m.id, m.a_split, m.b_split) for m in d.moved] == [(moved_id, "test", "train")]
    assert [(c.step, c.key, c.a, c.b) for c in d.config_changes] == [("split", "seed", 7, 9)]
    per = {x.split: (x.moved_in, x.moved_out) for x in d.splits}
    assert per == {"train": (1, 0), "validation": (0, 0), "test": (0, 1)}
    r = runner.invoke(app, ["diff", "swc@v1", "swc@latest"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "moved in" in r.output and "moved out" in r.output


def test_same_tables_in_two_homes_give_identical_files_and_hash(tmp_path: Path, table: pa.Table,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = Registry(tmp_path / "a"), Registry(tmp_path / "b")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547200")
    ma, _ = a.publish("swc", make_splits(table), fields())
    rechunked = {k: pa.Table.from_batches(v.to_batches(max_chunksize=3)) for k, v in make_splits(table).items()}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547201")  # published a second later
    mb, _ = b.publish("swc", {k: rechunked[k] for k in ("test", "train", "validation")}, fields())
    assert ma.content_hash == mb.content_hash == content_hash(make_splits(table))
    fa, fb = data_files(a.path(ma)), data_files(b.path(mb))
    assert sorted(fa) == sorted(fb)
    for name in fa:
        if name != "manifest.json":
            assert fa[name] == fb[name], f"{name} differs between the two homes"
    ja, jb = json.loads(fa["manifest.json"]), json.loads(fb["manifest.json"])
    # the manifests differ at most in their creation time, which their own digests cover (two
    # publishes a second apart get different digests; each still verifies)
    assert ma.compute_digest() == ja["manifest_digest"] and mb.compute_digest() == jb["manifest_digest"]
    for j in (ja, jb):
        j.pop("created_at"), j.pop("manifest_digest")
    assert ja == jb
    state = json.loads(fa["train/state.json"])
    assert state["_fingerprint"] == hashlib.sha256(f"{ma.content_hash}:train".encode()).hexdigest()[:16]


def test_content_hash_ignores_chunking_but_not_content(table: pa.Table) -> None:
    s = make_splits(table)
    h = content_hash(s)
    assert content_hash({k: pa.Table.from_batches(v.to_batches(max_chunksize=2)) for k, v in s.items()}) == h
    assert content_hash(dict(reversed(list(s.items())))) == h
    assert content_hash({**s, "train": replace_row(s["train"], 0, category="SWC-999")}) != h
    assert content_hash({"train": s["train"], "eval": s["test"], "validation": s["validation"]}) != h
    assert content_hash({**s, "train": s["train"].slice(1)}) != h


def test_published_files_are_read_only_and_never_touched_again(home: Path, table: pa.Table) -> None:
    reg = Registry()
    m1, _ = reg.publish("swc", make_splits(table), fields())
    v1 = reg.path(m1)
    for p in v1.rglob("*"):
        if p.is_file():
            assert not p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), f"{p} is writable"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in v1.rglob("*") if p.is_file()}
    s = make_splits(table)
    m2, _ = reg.publish("swc", {**s, "test": s["test"].slice(1)}, fields())
    assert m2.version == 2
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in v1.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in (home / "swc").iterdir()) == [".lock", "log.jsonl", "v1", "v2"]


def test_stale_temporary_folders_are_cleaned_and_never_become_versions(home: Path, table: pa.Table) -> None:
    stale = home / "swc" / ".tmp-v1-999-deadbeef"
    (stale / "train").mkdir(parents=True)
    (stale / "train" / "half.arrow").write_bytes(b"partial")
    m, _ = Registry().publish("swc", make_splits(table), fields())
    assert m.version == 1 and not stale.exists()


def test_publish_rejects_bad_input_before_writing(home: Path, table: pa.Table) -> None:
    reg = Registry()
    s = make_splits(table)
    with pytest.raises(ConfigError, match="content_hash: computed by the registry"):
        reg.publish("swc", s, fields(content_hash="0" * 64))
    with pytest.raises(ConfigError, match=r"steps\.0\.name"):
        reg.publish("swc", s, fields(steps=[{"name": "", "config": {}}]))
    with pytest.raises(ConfigError, match="colour"):
        reg.publish("swc", s, fields(colour="red"))
    with pytest.raises(DataError, match="not record columns: cluster"):
        reg.publish("swc", {**s, "train": s["train"].append_column("cluster", pa.array([1] * 80))}, fields())
    with pytest.raises(DataError, match="lacks the record columns: template"):
        reg.publish("swc", {**s, "train": s["train"].drop_columns(["template"])}, fields())
    with pytest.raises(DataError, match="split name 'my split'"):
        reg.publish("swc", {"my split": s["train"]}, fields())
    with pytest.raises(DataError, match="no splits"):
        reg.publish("swc", {}, fields())
    with pytest.raises(InputError, match="invalid dataset name"):
        reg.publish("../evil", s, fields())
    assert reg.names() == []


# ---- concurrency ------------------------------------------------------------------------------


def _publish_worker(args: tuple[str, int]) -> tuple[str, bool]:
    home, variant = args
    t, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    s = make_splits(t)
    s["test"] = s["test"].slice(variant)  # variant 0 and 1: two different contents
    m, created = Registry(home).publish("swc", s, fields())
    return m.ref, created


def test_concurrent_publishers_end_with_consistent_versions(tmp_path: Path) -> None:
    home = tmp_path / "registry"
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(4)
    try:
        results = pool.map(_publish_worker, [(str(home), v) for v in (0, 1, 0, 1)])
        # close + join: the workers take their sentinels and exit (a pool's `with` block ends in terminate(),
        # which can hang on a worker blocked on the task queue's lock: seen once in CI on a loaded machine)
        pool.close()
        pool.join()
    finally:
        pool.terminate()
    reg = Registry(home)
    ms = reg.versions("swc")
    assert [m.version for m in ms] == [1, 2]
    assert len({m.content_hash for m in ms}) == 2
    assert sorted(r for r, created in results if created) == ["swc@v1", "swc@v2"]
    assert sum(created for _, created in results) == 2
    # both publishers of one content got the same version
    by_variant = {v: {r for (r, _), vv in zip(results, (0, 1, 0, 1), strict=True) if vv == v} for v in (0, 1)}
    assert all(len(refs) == 1 for refs in by_variant.values())
    for m in ms:
        assert reg.verify(m.ref).ok
    assert sorted(p.name for p in (home / "swc").iterdir()) == [".lock", "log.jsonl", "v1", "v2"]
    log = [json.loads(x) for x in (home / "swc" / "log.jsonl").read_text().splitlines()]
    assert [(e["version"], e["manifest_digest"]) for e in log] == [(m.version, m.manifest_digest) for m in ms]


# ---- resolve ----------------------------------------------------------------------------------


def test_resolve_latest_version_and_hash_prefix(home: Path, table: pa.Table) -> None:
    reg = Registry()
    s = make_splits(table)
    m1, _ = reg.publish("swc", s, fields())
    m2, _ = reg.publish("swc", {**s, "test": s["test"].slice(1)}, fields())
    assert reg.resolve("swc").ref == "swc@v2"
    assert reg.resolve("swc@latest").ref == "swc@v2"
    assert reg.resolve("swc@v1").ref == "swc@v1"
    assert reg.resolve("swc@V1").ref == "swc@v1"
    assert reg.resolve(f"swc@{m1.content_hash[:6]}").ref == "swc@v1"
    assert reg.resolve(f"swc@{m2.content_hash.upper()}").ref == "swc@v2"


def test_resolve_errors_are_clear(home: Path, table: pa.Table) -> None:
    reg = Registry()
    with pytest.raises(InputError, match=r"registry at .* is empty"):
        reg.resolve("swc")
    reg.publish("swc", make_splits(table), fields())
    with pytest.raises(InputError, match="no dataset 'nope'") as e:
        reg.resolve("nope@v1")
    assert "known datasets: swc" in str(e.value)
    with pytest.raises(InputError, match="swc has no version v3") as e:
        reg.resolve("swc@v3")
    assert "available: v1" in str(e.value)
    with pytest.raises(InputError, match="too short"):
        reg.resolve("swc@abc")
    with pytest.raises(InputError, match="no version of swc has a content hash starting with"):
        other = "0000" if not reg.resolve("swc").content_hash.startswith("0000") else "1111"
        reg.resolve(f"swc@{other}")
    with pytest.raises(InputError, match="invalid version 'first'"):
        reg.resolve("swc@first")
    with pytest.raises(InputError, match="invalid version reference"):
        reg.resolve("@v1")
    with pytest.raises(InputError, match="nothing after '@'"):
        reg.resolve("swc@")
    with pytest.raises(InputError, match="too short") as e:
        reg.resolve("swc@1")
    assert "write swc@v1" in e.value.hint


def test_resolve_ambiguous_hash_prefix_lists_the_matches(tmp_path: Path, table: pa.Table) -> None:
    reg = Registry(tmp_path)
    m, _ = reg.publish("swc", make_splits(table), fields())
    # two more manifests whose hashes share a prefix (manifests are all resolve reads)
    for v, h in ((2, "abcd" + "1" * 60), (3, "abcd" + "2" * 60)):
        folder = tmp_path / "swc" / f"v{v}"
        folder.mkdir()
        fake = m.model_copy(update={"version": v, "content_hash": h})
        (folder / "manifest.json").write_text(fake.model_dump_json())
    with pytest.raises(InputError, match="ambiguous") as e:
        reg.resolve("swc@abcd")
    assert "swc@v2 (abcd11111111)" in str(e.value) and "swc@v3 (abcd22222222)" in str(e.value)
    assert reg.resolve("swc@abcd2").version == 3


# ---- load, verify, tamper ---------------------------------------------------------------------


def test_load_returns_the_published_rows(home: Path, table: pa.Table) -> None:
    import swcdata

    s = make_splits(table)
    m, _ = Registry().publish("swc", s, fields())
    dd = swcdata.load("swc@v1")
    assert list(dd) == ["train", "validation", "test"]
    for split, t in s.items():
        assert dd[split].to_list() == t.to_pylist()
    assert dd["train"].features["source"]["line"].dtype == "int64"
    dd2, m2 = Registry().load(f"swc@{m.content_hash[:8]}")
    assert m2 == m and dd2["test"].num_rows == 12


def test_verify_a_clean_version(home: Path, table: pa.Table) -> None:
    Registry().publish("swc", make_splits(table), fields())
    rep = Registry().verify("swc")
    assert rep.ok and rep.actual == rep.expected and rep.files_checked == 10 and rep.problems == []
    js.validate(rep.model_dump(mode="json"), json.loads((SCHEMAS / "verify-report.schema.json").read_text()))


def test_a_flipped_byte_is_detected_by_verify_and_load(home: Path, table: pa.Table) -> None:
    reg = Registry()
    m, _ = reg.publish("swc", make_splits(table), fields())
    arrow = reg.path(m) / "train" / "data-00000-of-00001.arrow"
    flip_byte(arrow, arrow.stat().st_size // 2)
    rep = reg.verify("swc@v1")
    assert not rep.ok and rep.actual is None
    assert [f.path for f in rep.files] == ["train/data-00000-of-00001.arrow"]
    assert rep.files[0].expected == m.files["train/data-00000-of-00001.arrow"]
    assert "train/data-00000-of-00001.arrow: modified" in rep.problems[0]
    with pytest.raises(DataError, match=r"swc@v1 was modified after publishing: 1 data file\(s\)") as e:
        reg.load("swc@v1")
    assert m.files["train/data-00000-of-00001.arrow"] in str(e.value)
    r = runner.invoke(app, ["verify", "swc@v1"])
    assert r.exit_code == 1 and "TAMPERED" in r.output
    r = runner.invoke(app, ["export", "swc@v1", "--out", str(home.parent / "x")])
    assert r.exit_code == 1 and "modified after publishing" in r.output and "Traceback" not in r.output


def _edit_manifest(folder: Path, edit: Any) -> None:
    path = folder / "manifest.json"
    path.chmod(0o644)
    m = json.loads(path.read_text())
    edit(m)
    path.write_text(json.dumps(m, indent=2))


def test_an_edited_manifest_is_detected_by_verify_load_and_a_rebuild(home: Path, table: pa.Table) -> None:
    """A manifest carries the digest of its own fields: an edited count, ledger or step fails verify
    and load, and publishing the same content again refuses to point at the edited version."""
    reg = Registry()
    m, _ = reg.publish("swc", make_splits(table), fields())
    assert m.manifest_digest == m.compute_digest() and reg.verify("swc@v1").ok
    _edit_manifest(reg.path(m), lambda d: d["counts"]["train"].update(records=999))
    rep = reg.verify("swc@v1")
    assert not rep.ok and "was edited after publishing" in rep.problems[0]
    assert any("record counts" in p for p in rep.problems)
    with pytest.raises(DataError, match="edited after publishing"):
        reg.load("swc@v1")
    with pytest.raises(DataError, match="holds this content but was modified after publishing"):
        reg.publish("swc", make_splits(table), fields())
    r = runner.invoke(app, ["verify", "swc@v1"])
    assert r.exit_code == 1 and "Traceback" not in r.output


def test_a_manifest_in_the_wrong_folder_or_unreadable_is_named(home: Path, table: pa.Table) -> None:
    reg = Registry()
    m, _ = reg.publish("swc", make_splits(table), fields())
    m2, _ = reg.publish("swc", make_splits(replace_row(table, 0, response="changed")), fields())
    _edit_manifest(reg.path(m), lambda d: d.update(version=2))
    with pytest.raises(DataError, match="describes swc@v2, but it is in swc/v1"):
        reg.load("swc@v1")
    (reg.path(m2) / "manifest.json").chmod(0o644)
    (reg.path(m2) / "manifest.json").write_text("{")
    broken: list[str] = []
    assert [x.ref for x in reg.versions("swc", broken=broken)] == ["swc@v2"]  # (the edited v1)
    assert len(broken) == 1 and "not a valid manifest" in broken[0] and "(the whole file)" in broken[0]
    r = runner.invoke(app, ["versions"])
    assert r.exit_code == 0 and "warning" in r.output


def test_a_rebuild_over_a_tampered_version_is_refused(home: Path, table: pa.Table) -> None:
    reg = Registry()
    m, _ = reg.publish("swc", make_splits(table), fields())
    arrow = reg.path(m) / "train" / "data-00000-of-00001.arrow"
    flip_byte(arrow, arrow.stat().st_size // 2)
    with pytest.raises(DataError, match="never overwritten") as e:
        reg.publish("swc", make_splits(table), fields())
    assert "restore" in e.value.hint


def test_export_refuses_a_folder_in_the_way_before_writing(home: Path, table: pa.Table, tmp_path: Path) -> None:
    Registry().publish("swc", make_splits(table), fields())
    (tmp_path / "e" / "test.parquet").mkdir(parents=True)
    r = runner.invoke(app, ["export", "swc@v1", "--out", str(tmp_path / "e")])
    assert r.exit_code == 2 and "is a folder" in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["test.parquet"]
    assert runner.invoke(app, ["export", "swc@v1", "--out", "-"]).exit_code == 2


def test_a_deleted_data_file_is_detected(home: Path, table: pa.Table) -> None:
    reg = Registry()
    m, _ = reg.publish("swc", make_splits(table), fields())
    (reg.path(m) / "test" / "state.json").unlink()
    rep = reg.verify("swc")
    assert not rep.ok and rep.files[0].actual is None and "test/state.json: missing" in rep.problems[0]


def test_content_changed_behind_the_file_hashes_fails_the_content_check(home: Path, table: pa.Table) -> None:
    """Data rewritten consistently with the file list (manifest edited): the content hash still catches it."""
    reg = Registry()
    m, _ = reg.publish("swc", make_splits(table), fields())
    path = reg.path(m) / "manifest.json"
    forged = m.model_copy(update={"content_hash": "0" * 64})
    forged.manifest_digest = forged.compute_digest()  # (a forger who recomputes the manifest's digest)
    path.chmod(0o644)
    path.write_text(forged.model_dump_json(indent=2))
    with pytest.raises(DataError, match=r"content_hash is '0000.*but the registry log .* recorded"):
        reg.load("swc@v1")  # the registry log knows the published content hash
    (home / "swc" / "log.jsonl").unlink()  # a registry from before the log: the content hash still catches it
    with pytest.raises(DataError) as e:
        reg.load("swc@v1")
    msg = str(e.value)
    assert "swc@v1: content hash mismatch" in msg and f"expected {'0' * 64}" in msg and m.content_hash in msg
    rep = reg.verify("swc@v1")
    assert not rep.ok and rep.actual == m.content_hash and rep.expected == "0" * 64
    assert reg.load("swc@v1", verify=False)[0]["train"].num_rows == 80


def test_unreadable_data_with_matching_hashes_is_a_data_error(home: Path, table: pa.Table) -> None:
    reg = Registry()
    m, _ = reg.publish("swc", make_splits(table), fields())
    folder = reg.path(m)
    arrow = folder / "test" / "data-00000-of-00001.arrow"
    arrow.chmod(0o644)
    arrow.write_bytes(b"not arrow at all")
    files = {**m.files, "test/data-00000-of-00001.arrow": hashlib.sha256(b"not arrow at all").hexdigest()}
    (folder / "manifest.json").chmod(0o644)
    forged = m.model_copy(update={"files": files})
    forged.manifest_digest = forged.compute_digest()
    (folder / "manifest.json").write_text(forged.model_dump_json())
    (home / "swc" / "log.jsonl").unlink()  # (else the log names the forged manifest first)
    with pytest.raises(DataError, match="swc@v1: cannot read the data"):
        reg.load("swc@v1")
    rep = reg.verify("swc@v1")
    assert not rep.ok and "cannot read the data" in rep.problems[0]


# ---- export -----------------------------------------------------------------------------------


def test_export_parquet_round_trips_through_load_dataset(home: Path, table: pa.Table, tmp_path: Path) -> None:
    import datasets

    s = make_splits(table)
    Registry().publish("swc", s, fields())
    paths = Registry().export("swc@v1", "parquet", tmp_path / "out")
    assert [p.name for p in paths] == ["train.parquet", "validation.parquet", "test.parquet"]
    dd = datasets.load_dataset("parquet", data_files={p.stem: str(p) for p in paths},
                               cache_dir=str(tmp_path / "hf-cache"))
    for split, t in s.items():
        assert dd[split].to_list() == t.to_pylist()
    # deterministic bytes
    again = Registry().export("swc@v1", "parquet", tmp_path / "out2")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]


def test_export_jsonl_writes_stored_records(home: Path, table: pa.Table, tmp_path: Path) -> None:
    s = make_splits(table)
    Registry().publish("swc", s, fields())
    paths = Registry().export("swc", "jsonl", tmp_path / "j")
    assert [p.name for p in paths] == ["train.jsonl", "validation.jsonl", "test.jsonl"]
    rows = [json.loads(x) for x in paths[2].read_text().splitlines()]
    assert [r["id"] for r in rows] == s["test"].column("id").to_pylist()
    assert set(rows[0]) >= {"id", "instruction", "response", "category", "source"}
    with pytest.raises(InputError, match="unknown export format"):
        Registry().export("swc", "csv", tmp_path / "c")  # type: ignore[arg-type]


# ---- the package and the CLI ------------------------------------------------------------------


def test_import_swcdata_and_cli_stay_light() -> None:
    code = ("import sys, swcdata, swcdata.cli.main, swcdata.registry.store, swcdata.cli.registry; "
            "print(sorted(m for m in ('datasets', 'pyarrow', 'huggingface_hub') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert r.stdout.strip() == "[]"


def test_cli_versions_show_diff_export(home: Path, table: pa.Table, tmp_path: Path) -> None:
    s = make_splits(table)
    Registry().publish("swc", s, fields())
    Registry().publish("swc", {**s, "test": s["test"].slice(2)}, fields())

    r = runner.invoke(app, ["versions", "--json"])
    assert r.exit_code == 0, r.output
    assert [(v["name"], v["version"]) for v in json.loads(r.output)] == [("swc", 1), ("swc", 2)]
    r = runner.invoke(app, ["versions"])
    assert r.exit_code == 0 and "swc@v2" in r.output and "swc@v1" in r.output

    r = runner.invoke(app, ["show", "swc", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["parent"] == "swc@v1"
    r = runner.invoke(app, ["show", "swc@v1"])
    assert r.exit_code == 0 and "Ledger" in r.output and "SWC-107" in r.output
    assert r.output.index("Ledger") < r.output.index("SWC-107")

    r = runner.invoke(app, ["diff", "swc@v1", "swc@v2", "--json"])
    assert r.exit_code == 0
    test = next(x for x in json.loads(r.output)["splits"] if x["split"] == "test")
    assert test["removed_ids"] == s["test"].column("id").to_pylist()[:2]
    r = runner.invoke(app, ["diff", "swc@v1", "swc@v2", "--limit", "1"])
    assert r.exit_code == 0 and "first 1 of 2" in r.output

    r = runner.invoke(app, ["verify", "swc@v2"])
    assert r.exit_code == 0 and "ok" in r.output

    r = runner.invoke(app, ["export", "swc@v1", "--format", "jsonl", "--out", str(tmp_path / "e"), "--json"])
    assert r.exit_code == 0 and len(json.loads(r.output)) == 3


def test_cli_home_option_and_errors(tmp_path: Path, table: pa.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWCDATA_HOME", raising=False)
    other = tmp_path / "other"
    Registry(other).publish("swc", make_splits(table), fields())
    r = runner.invoke(app, ["show", "swc@v1", "--home", str(other), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["version"] == 1
    r = runner.invoke(app, ["show", "swc@v9", "--home", str(other)])
    assert r.exit_code == 2 and "swc has no version v9" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["versions", "nope", "--home", str(other)])
    assert r.exit_code == 2 and "known datasets: swc" in r.output
    r = runner.invoke(app, ["export", "swc", "--format", "csv", "--out", str(tmp_path / "x"), "--home", str(other)])
    assert r.exit_code == 2 and "unknown --format" in r.output
    r = runner.invoke(app, ["versions", "--home", str(tmp_path / "empty")])
    assert r.exit_code == 0 and "no versions" in r.output


def test_registry_home_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from swcdata.registry.store import registry_home

    monkeypatch.delenv("SWCDATA_HOME", raising=False)
    assert registry_home() == Path("registry")
    monkeypatch.setenv("SWCDATA_HOME", str(tmp_path))
    assert registry_home() == tmp_path
    assert os.fspath(Registry().home) == str(tmp_path)


# ---- canonical and the content hash: columnar, the bytes of the row-by-row reference -------------


def _reference_canonical(splits: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """What canonical() did before it was columnar: every row through Python and back."""
    from swcdata.core.records import RECORD_COLUMNS, table_from_rows
    from swcdata.registry.content import split_order

    return {name: table_from_rows(splits[name].select(list(RECORD_COLUMNS)).cast(RECORD_SCHEMA).to_pylist())
            for name in split_order(list(splits))}


def _reference_hash(splits: dict[str, pa.Table], hash_format: int = 2) -> str:
    """The content hash computed row by row: orjson over every row's dict, sorted keys; in format 2 a sha256 per
    shard of `content.SHARD_ROWS` rows (the first `rows % n` of the n shards one row longer), in format 1 one
    stream."""
    import orjson

    from swcdata.registry import content

    h = hashlib.sha256(content.HASH_FORMATS[hash_format])
    for name in sorted(splits):
        rows = splits[name].to_pylist()
        h.update(b"split\x00" + name.encode() + b"\x00" + str(len(rows)).encode() + b"\n")
        lines = [orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n" for row in rows]
        if hash_format == 1:
            h.update(b"".join(lines))
            continue
        n = max(1, -(-len(lines) // content.SHARD_ROWS))
        size, longer = divmod(len(lines), n)
        start = 0
        for i in range(n):
            stop = start + size + (i < longer)
            h.update(hashlib.sha256(b"".join(lines[start:stop])).digest())
            start = stop
    return h.hexdigest()


def test_the_rows_json_written_by_polars_is_orjsons_for_every_character(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Unicode scalar value (in strings and struct fields, in keys out of order), nulls, null structs and
    the 64-bit integer range: the columnar JSON lines are byte for byte the orjson lines, across batches."""
    from swcdata.registry import content

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    text = ["".join(chars[i:i + 997]) for i in range(0, len(chars), 997)] + [chr(c) for c in range(0x80)]
    n = len(text)
    ints = [(-(2 ** 63), 2 ** 63 - 1, 0, -1, 7)[i % 5] for i in range(n)]
    table = pa.table({
        "zeta": pa.array([None if i % 7 == 0 else t for i, t in enumerate(text)], pa.string()),
        "alpha": pa.array(text, pa.large_string()),
        "mid": pa.array([{"line": None if i % 4 == 0 else ints[i], "file": text[-1 - i]} if i % 9 else None
                         for i in range(n)], pa.struct([("line", pa.int64()), ("file", pa.string())])),
        "flag": pa.array([None if i % 3 == 0 else bool(i % 2) for i in range(n)], pa.bool_()),
        "num": pa.array(ints, pa.int64()),
        "nothing": pa.nulls(n),
    })
    monkeypatch.setattr(content, "HASH_BATCH_ROWS", 97)  # many batches, one slice across several chunks
    monkeypatch.setattr(content, "SHARD_ROWS", 250)  # shards that end inside a batch
    table = pa.Table.from_batches(table.to_batches(max_chunksize=40))
    reference = b"".join(line + b"\n" for _, line in content._iter_row_json(table))
    assert b"".join(content._json_line_buffers(table)) == reference
    for fmt in (1, 2):
        assert content.content_hash({"x": table}, hash_format=fmt) == _reference_hash({"x": table}, fmt)
        empty = {"x": table.slice(0, 0)}
        assert content.content_hash(empty, hash_format=fmt) == _reference_hash(empty, fmt)
    assert len(content.shard_digests(table)) == -(-n // 250) > 3


def test_a_table_polars_would_write_otherwise_takes_the_rows(table: pa.Table) -> None:
    """Floats and lists are written row by row (orjson), in batches: the same hash as the reference."""
    t = table.slice(0, 10).append_column("score", pa.array([0.1 * i for i in range(10)]))
    t = t.append_column("tags", pa.array([["a", "b"]] * 10))
    assert content_hash({"train": t}) == _reference_hash({"train": t})
    assert content_hash({"train": t}, hash_format=1) == _reference_hash({"train": t}, 1)


def _publish_files(home: Path, splits: dict[str, pa.Table]) -> dict[str, bytes]:
    m, _ = Registry(home).publish("swc", splits, fields())
    return {k: v for k, v in data_files(Registry(home).path(m)).items() if k != "manifest.json"}


def test_canonical_gives_the_tables_hash_counts_and_file_bytes_of_the_row_round_trip(
        tmp_path: Path, table: pa.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices, many chunks, string views, bytes under nulls (as polars leaves them), garbage in a sliced parent:
    the tables canonical() returns equal the row round trip's, and publishing them writes the same bytes."""
    import polars as pl

    from swcdata.registry import content, store

    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    every = pl.int_range(pl.len())
    variants = {
        "slices": make_splits(table),
        "chunks": {k: pa.Table.from_batches(v.to_batches(max_chunksize=3)) for k, v in make_splits(table).items()},
        "views": {k: v.cast(pa.schema([pa.field(f.name, pa.string_view() if f.type == pa.string() else f.type)
                                       for f in RECORD_SCHEMA])) for k, v in make_splits(table).items()},
        "polars": {"train": df.with_columns(
            transform=pl.when(every % 3 == 0).then(pl.lit("rename")).otherwise(None),
            metadata=pl.when(every % 2 == 0).then(pl.lit('{"k":1}')).otherwise(None),
            source=pl.struct(pl.col("source").struct.field("file"),
                             pl.when(every % 5 == 0).then(None).otherwise(pl.col("source").struct.field("line") * 7)
                             .alias("line"))).slice(3, 60).to_arrow()},
    }
    for name, splits in variants.items():
        got, h, counts = canonical(splits)
        want = _reference_canonical(splits)
        assert list(got) == list(want), name
        for split in want:
            assert got[split].equals(want[split]) and got[split].schema == want[split].schema, (name, split)
            assert got[split].column(0).num_chunks == 1, (name, split)
        assert h == _reference_hash(want), name
        assert {k: (c.records, list(c.by_category.items())) for k, c in counts.items()} == {
            k: (v.num_rows, sorted(collections.Counter(v.column("category").to_pylist()).items()))
            for k, v in want.items()}, name
        new_files = _publish_files(tmp_path / name / "new", splits)
        monkeypatch.setattr(store, "canonical", lambda s, _rows=None: (r := _reference_canonical(
            {k: content.as_arrow(v) for k, v in s.items()}), content.content_hash(r), canonical(s)[2]))
        assert _publish_files(tmp_path / name / "reference", splits) == new_files, name
        monkeypatch.undo()


def test_canonical_refuses_a_null_or_bad_bytes_as_a_data_problem(table: pa.Table) -> None:

    rows = table.slice(0, 3).to_pylist()
    no_id = pa.Table.from_pylist([{**rows[0], "id": None}, *rows[1:]],
                                 schema=pa.schema([f.with_nullable(True) for f in RECORD_SCHEMA]))
    with pytest.raises(DataError, match=r"split 'train' does not fit the record schema: .*'id' with null"):
        canonical({"train": no_id})
    bad = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(b"\x00\x00\x00\x00\x02\x00\x00\x00"),
                                                  pa.py_buffer(b"\xff\xfe")])
    with pytest.raises(DataError, match="does not fit the record schema"):
        canonical({"train": table.slice(0, 1).set_column(1, "instruction", bad)})


# ---- diff: polars joins, the report of the row-by-row reference ----------------------------------


def _reference_diff(ta: dict[str, pa.Table], tb: dict[str, pa.Table]) -> dict[str, Any]:
    """The diff as it was computed before (dicts and queues over every row): the per-split lists and counts and
    the moved records, as JSON."""
    from collections import defaultdict

    from swcdata.registry.content import split_order

    rows_a = {s: t.select(["id", "source", "transform", "template"]).to_pylist() for s, t in ta.items()}
    rows_b = {s: t.select(["id", "source", "transform", "template"]).to_pylist() for s, t in tb.items()}
    where_a = {r["id"]: s for s, rows in rows_a.items() for r in rows}
    where_b = {r["id"]: s for s, rows in rows_b.items() for r in rows}

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["source"]["file"], r["source"]["line"], r["transform"], r["template"])

    pending: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for split in split_order(list(rows_a)):
        for r in rows_a[split]:
            if r["id"] not in where_b:
                pending[key(r)].append(r)
    changed = []
    for split in split_order(list(rows_b)):
        for r in rows_b[split]:
            if r["id"] not in where_a and pending.get(key(r)):
                old = pending[key(r)].pop(0)
                changed.append({"source": r["source"], "transform": r["transform"], "template": r["template"],
                                "a_id": old["id"], "b_id": r["id"], "a_split": where_a[old["id"]], "b_split": split})
    paired_a, paired_b = {c["a_id"] for c in changed}, {c["b_id"] for c in changed}
    splits = []
    for split in split_order(sorted(set(rows_a) | set(rows_b))):
        a, b = rows_a.get(split, []), rows_b.get(split, [])
        splits.append({
            "split": split, "a_records": len(a), "b_records": len(b),
            "unchanged": sum(1 for r in b if r["id"] in where_a),
            "moved_in": sum(1 for r in b if where_a.get(r["id"], split) != split),
            "moved_out": sum(1 for r in a if where_b.get(r["id"], split) != split),
            "added_ids": [r["id"] for r in b if r["id"] not in where_a and r["id"] not in paired_b],
            "removed_ids": [r["id"] for r in a if r["id"] not in where_b and r["id"] not in paired_a],
            "changed_records": [c for c in changed if c["b_split"] == split]})
    moved = [{"id": i, "a_split": where_a[i], "b_split": s} for i, s in where_b.items()
             if i in where_a and where_a[i] != s]
    return {"splits": splits, "moved": moved}


def _as_reference(d: Any) -> dict[str, Any]:
    j = d.model_dump(mode="json")
    keep = ("split", "a_records", "b_records", "unchanged", "moved_in", "moved_out", "added_ids", "removed_ids")
    splits = [{**{k: s[k] for k in keep}, "changed_records": [{k: v for k, v in c.items() if k != "text"}
                                                                for c in s["changed_records"]]} for s in j["splits"]]
    for s, full in zip(splits, j["splits"], strict=True):
        assert (s["added_ids"], s["removed_ids"]) == ([r["id"] for r in full["added_records"]],
                                                      [r["id"] for r in full["removed_records"]])
        assert (full["added"], full["removed"], full["changed"]) == (len(s["added_ids"]), len(s["removed_ids"]),
                                                                     len(s["changed_records"]))
    return {"splits": splits, "moved": j["moved"]}


def _lineage(t: pa.Table, seed: int) -> pa.Table:
    """Records with transform/template on some rows and many rows on a few input lines (keys shared, nulls in
    keys): what pairing changed records must untangle."""
    import random

    rnd = random.Random(seed)
    rows = t.to_pylist()
    for r in rows:
        r["source"] = {"file": rnd.choice(["a.jsonl", "b.jsonl"]), "line": rnd.randint(1, 12)}
        r["transform"] = rnd.choice([None, None, "rename", "layout"])
        r["template"] = rnd.choice([None, "t1"]) if r["transform"] else None
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_diff_is_the_reference_diff_on_shuffled_edited_versions(home: Path, table: pa.Table, seed: int) -> None:
    """Edited, removed, moved and added records, shared input lines and null lineage keys, ids that appear twice, a
    split only one version has: the polars joins give the report of the row-by-row reference, both ways."""
    import random

    from swcdata.core.text import record_id

    rnd = random.Random(seed)
    base = _lineage(table, seed)
    rows = base.to_pylist()
    s1 = {"train": rows[:70], "validation": rows[70:85], "test": rows[85:]}
    s2: dict[str, list[dict[str, Any]]] = {"train": [], "validation": [], "test": [], "extra": []}
    for split, part in s1.items():
        for r in part:
            x = rnd.random()
            if x < 0.15:  # edited: a new id from the same input line, maybe in another split
                r = {**r, "response": r["response"] + f" Edited {seed}."}
                r["id"] = record_id(r["instruction"], r["response"])
                s2[rnd.choice([split, split, "validation", "extra"])].append(r)
            elif x < 0.22:  # removed
                continue
            elif x < 0.3:  # moved
                s2[rnd.choice(["train", "test", "extra"])].append(r)
            else:
                s2[split].append(r)
    s2["train"] += [{**rows[i], "id": f"{i:016x}", "instruction": f"new {i}"} for i in range(5)]  # added
    rnd.shuffle(s2["train"])
    s1["test"] += s1["train"][:3]  # the same id twice (in two splits, or in one), as an unchecked input may hold
    s2["extra"] += [s2["train"][0], s2["train"][0], s2["validation"][1]]
    reg = Registry()
    t1 = {k: pa.Table.from_pylist(v, schema=RECORD_SCHEMA) for k, v in s1.items()}
    t2 = {k: pa.Table.from_pylist(v, schema=RECORD_SCHEMA) for k, v in s2.items()}
    reg.publish("swc", t1, fields())
    reg.publish("swc", t2, fields(steps=[{**STEPS[0], "config": {"seed": 8}}]))
    for a, b, ta, tb in (("swc@v1", "swc@v2", t1, t2), ("swc@v2", "swc@v1", t2, t1)):
        d = reg.diff(a, b)
        assert _as_reference(d) == _reference_diff(ta, tb)
        assert sum(s.changed for s in d.splits) > 0 and d.moved
    assert reg.diff("swc@v1", "swc@v1").identical


def test_diff_reads_the_version_files_column_by_column(home: Path, table: pa.Table,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """diff never loads a DatasetDict; without --text it reads id, source, transform, template of each split (and
    the content hash every column); with --text it reads the text of the changed records listed, through a filter
    on their ids."""
    import polars.io.plugins as plugins

    reg = Registry()
    s = make_splits(table)
    reg.publish("swc", s, fields())
    reg.publish("swc", {**s, "train": replace_row(s["train"], 3, id="f" * 16, response="Now different.")}, fields())

    def no_datasets(*_a: Any, **_k: Any) -> None:
        raise AssertionError("diff loaded a DatasetDict")

    monkeypatch.setattr(Registry, "_load_dd", no_datasets)
    from swcdata.registry.stored import StoredSplit

    batches: list[list[str] | None] = []
    real_batches = StoredSplit.batches

    def spy_batches(self: StoredSplit, columns: Any = None, rows: int = 65_536) -> Any:
        batches.append(None if columns is None else list(columns))
        return real_batches(self, columns, rows)

    monkeypatch.setattr(StoredSplit, "batches", spy_batches)
    reads: list[tuple[list[str] | None, str | None]] = []
    real = plugins.register_io_source

    def spy(source: Any, **kw: Any) -> Any:
        def wrapped(with_columns: Any, predicate: Any, n_rows: Any, batch_size: Any) -> Any:
            reads.append((with_columns, None if predicate is None else str(predicate)))
            return source(with_columns, predicate, n_rows, batch_size)
        return real(wrapped, **kw)

    monkeypatch.setattr(plugins, "register_io_source", spy)
    reg.diff("swc@v1", "swc@v2")
    # the comparison reads four columns of each split; every column is read by the content hash alone (one read
    # of each split of both versions)
    assert not reads and len(batches) == 12
    assert [c for c in batches if c is not None] == [["id", "source", "transform", "template"]] * 6
    batches.clear()
    d = reg.diff("swc@v1", "swc@v2", text_limit=5)
    texts = [(cols, pred) for cols, pred in reads if "response" in (cols or [])]
    assert len(texts) == 2 and all(pred is not None and "is_in" in pred for _, pred in texts)
    [c] = d.splits[0].changed_records
    assert c.text is not None and [t.field for t in c.text] == ["response"]


def test_diff_text_shows_word_diffs_and_input_lines(home: Path, table: pa.Table) -> None:
    from swcdata.registry.diff import word_diff

    reg = Registry()
    s = make_splits(table)
    reg.publish("swc", s, fields())
    rows = s["train"].to_pylist()
    train = s["train"]
    for i in (1, 2, 4):
        train = replace_row(train, i, id=f"{i:016x}", response=rows[i]["response"] + f" Check withdraw {i}.",
                            category="SWC-110" if i == 4 else rows[i]["category"])
    added = {**rows[0], "id": "a" * 16, "instruction": "A new question?", "source": {"file": "new.jsonl", "line": 9}}
    train = pa.concat_tables([train.slice(0, 5), train.slice(6), pa.Table.from_pylist([added], schema=RECORD_SCHEMA)])
    reg.publish("swc", {**s, "train": train}, fields())

    r = runner.invoke(app, ["diff", "swc@v1", "swc@v2", "--text", "--limit", "2"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    src = rows[5]["source"]
    assert f"{'a' * 16}  (new.jsonl:9)" in r.output and f"{rows[5]['id']}  ({src['file']}:{src['line']})" in r.output
    assert r.output.count("{+ Check withdraw") == 2 and "Check withdraw 4" not in r.output  # (--limit 2)
    assert "what changed inside 2 changed record(s)" in r.output
    plain = runner.invoke(app, ["diff", "swc@v1", "swc@v2"], env={"COLUMNS": "300"})
    assert "{+" not in plain.output and "new.jsonl" not in plain.output

    r = runner.invoke(app, ["diff", "swc@v1", "swc@v2", "--text", "--json"])
    train_diff = json.loads(r.output)["splits"][0]
    js.validate(json.loads(r.output), json.loads((SCHEMAS / "diff-report.schema.json").read_text()))
    assert train_diff["added_records"] == [{"id": "a" * 16, "source": {"file": "new.jsonl", "line": 9}}]
    assert train_diff["removed_records"] == [{"id": rows[5]["id"], "source": rows[5]["source"]}]
    changed = train_diff["changed_records"]
    assert [len(c["text"] or []) for c in changed] == [1, 1, 2]  # (the third: response and category)
    assert changed[2]["text"][1] == {"field": "category", "diff": f"[-{rows[4]['category']}-]{{+SWC-110+}}",
                                     "segments": [{"op": "-", "text": rows[4]["category"]},
                                                  {"op": "+", "text": "SWC-110"}]}
    assert changed[0]["text"][0]["diff"].endswith("{+ Check withdraw 1.+}")
    r = runner.invoke(app, ["diff", "swc@v1", "swc@v2", "--json"])
    assert all(c["text"] is None for c in json.loads(r.output)["splits"][0]["changed_records"])

    long = " ".join(f"w{i}" for i in range(100))
    wd = word_diff("response", long, long.replace("w50", "W50"))
    assert wd.diff == "… w44 w45 w46 w47 w48 w49 [-w50-]{+W50+} w51 w52 w53 w54 w55 w56 …"
    assert word_diff("x", "a  b\n", "a  b\nc").diff == "a  b\n{+c+}"


# ---- scan: a version as a polars LazyFrame ------------------------------------------------------


def test_scan_gives_the_rows_load_gives(home: Path, table: pa.Table) -> None:
    import polars as pl

    import swcdata

    s = make_splits(table)
    Registry().publish("swc", s, fields())
    dd = swcdata.load("swc@v1")
    lf = swcdata.scan("swc@v1")
    assert isinstance(lf, pl.LazyFrame)
    assert lf.collect_schema().names() == [*RECORD_SCHEMA.names, "split"]
    assert lf.collect().to_dicts() == [{**r, "split": split} for split in dd for r in dd[split].to_list()]
    for split in dd:
        assert swcdata.scan("swc@v1", split=split).collect().to_dicts() == dd[split].to_list()
    assert lf.filter(pl.col("split") == "test").select(pl.len()).collect().item() == 12
    assert lf.group_by("split", maintain_order=True).len().collect().rows() == [("train", 80), ("validation", 12),
                                                                               ("test", 12)]
    line = pl.col("source").struct.field("line")
    want = sorted((r["id"], split) for split in dd for r in dd[split].to_list() if r["source"]["line"] % 10 == 3)
    assert sorted(lf.filter(line % 10 == 3).select("id", "split").collect().rows()) == want
    assert lf.head(3).collect().height == 3 and lf.select(pl.len()).collect(engine="streaming").item() == 104
    assert swcdata.scan("swc@v1", home=home, verify=False).collect().height == 104
    with pytest.raises(InputError, match="swc@v1 has no split 'dev'"):
        swcdata.scan("swc@v1", split="dev")


def test_scan_hf_refs_are_pulled_first_as_load_does(monkeypatch: pytest.MonkeyPatch, home: Path,
                                                   table: pa.Table) -> None:
    import swcdata
    from swcdata.registry import hub

    Registry().publish("swc", make_splits(table), fields())
    calls: list[tuple[str, Any]] = []

    class Pulled:
        ref = "swc@v1"

    monkeypatch.setattr(hub, "pull", lambda ref, home=None: calls.append((ref, home)) or Pulled())
    assert swcdata.scan("hf://me/swc@v1", home=home, split="test").collect().height == 12
    assert calls == [("hf://me/swc@v1", home)]


def test_shards_are_cut_where_datasets_cuts_them(table: pa.Table) -> None:
    import datasets

    from swcdata.registry.content import shard_bounds

    assert shard_bounds(0, 30) == [(0, 0)] and shard_bounds(30, 30) == [(0, 30)]
    for rows, per in ((80, 30), (80, 7), (104, 25), (12, 100)):
        ds = datasets.Dataset(pa.concat_tables([table] * 2).slice(0, rows))
        n = len(shard_bounds(rows, per))
        assert [b - a for a, b in shard_bounds(rows, per)] == [len(ds.shard(n, i, contiguous=True)) for i in range(n)]


@pytest.mark.slow
def test_a_split_of_more_than_2_gib_of_text_is_compacted_in_pieces(table: pa.Table) -> None:
    """One chunk of over 2 GiB of strings would overflow Arrow's 32-bit offsets: canonical cuts it per shard, and
    a shard that still overflows in halves."""

    n = 2_100  # (1 MiB responses: 2.05 GiB; the input holds the one string 2,100 times)
    rows = pa.concat_tables([table.slice(0, 1)] * n)
    one = pa.array(["x" * (1 << 20)], pa.string())
    t = rows.set_column(rows.schema.get_field_index("response"), "response", pa.chunked_array([one] * n))
    got, h, counts = canonical({"train": t}, 1_000)  # (3 shards of 700 rows)
    assert counts["train"].records == n and got["train"].column("response").num_chunks == 3
    del got
    halves, h2, _ = canonical({"train": t})  # (no shards given: halves)
    assert halves["train"].column("response").num_chunks == 2 and h2 == h


# ---- the version's files, a shard at a time (swcdata.registry.shards) ---------------------------------------------


def test_a_split_in_one_shard_is_written_as_datasets_save_to_disk_writes_it(table: pa.Table, tmp_path: Path) -> None:
    """Every file (data, state.json, dataset_info.json, dataset_dict.json) byte for byte `save_to_disk`'s."""
    import datasets

    from swcdata.registry.shards import fingerprint, record_features, write_tables

    tables, h, _ = canonical(make_splits(table))
    write_tables(tmp_path / "ours", tables, h)
    features = record_features()
    dd = datasets.DatasetDict({
        split: datasets.Dataset(t, info=datasets.DatasetInfo(features=features), split=datasets.NamedSplit(split),
                                fingerprint=fingerprint(h, split)) for split, t in tables.items()})
    dd.save_to_disk(str(tmp_path / "theirs"), num_shards=dict.fromkeys(tables, 1))
    ours, theirs = data_files(tmp_path / "ours"), data_files(tmp_path / "theirs")
    assert len(ours) == 1 + 3 * 3 and ours == theirs


def test_a_shards_file_depends_on_its_rows_alone(table: pa.Table, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards written one by one from a table in any chunks (as Ray workers write them from their blocks) are the
    files `write_tables` writes; their digests and counts give canonical's hash and counts; `datasets` reads them."""
    import datasets

    from swcdata.registry import content as content_mod
    from swcdata.registry.shards import shard_count, summary, write_metadata, write_shard, write_tables

    monkeypatch.setattr(content_mod, "SHARD_ROWS", 9)
    tables, h, counts = canonical(make_splits(table))
    write_tables(tmp_path / "here", tables, h)
    shards = []
    for split, t in tables.items():
        chunked = pa.Table.from_batches(t.to_batches(max_chunksize=4))
        bounds = content_mod.shards_of(t.num_rows)
        shards += [write_shard(chunked.slice(a, b - a), tmp_path / "workers", split, i, len(bounds))
                   for i, (a, b) in reversed(list(enumerate(bounds)))]  # (in any order)
    written = summary(shards, {split: t.num_rows for split, t in tables.items()})
    write_metadata(tmp_path / "workers", {split: shard_count(t.num_rows) for split, t in tables.items()}, h)
    assert written.content_hash == h and written.counts == counts and len(written.files) == len(shards) >= 9 + 2 + 1
    assert data_files(tmp_path / "workers") == data_files(tmp_path / "here")
    loaded = datasets.load_from_disk(str(tmp_path / "here"))
    assert {split: loaded[split].data.table.to_pylist() for split in loaded} == {
        split: t.to_pylist() for split, t in tables.items()}
    with pytest.raises(AssertionError, match="shards"):  # (a shard missing)
        summary(shards[1:], {split: t.num_rows for split, t in tables.items()})


def test_content_published_in_the_older_hash_format_is_found_again(home: Path, table: pa.Table) -> None:
    """A version of schema_version 2 (content hash format 1) holding the same content, steps and license is the
    one a new publish returns: the hash format changed, the content did not."""
    reg = Registry()
    m, _ = reg.publish("swc", make_splits(table), fields())

    def as_schema_2(d: dict[str, Any]) -> None:
        d["schema_version"] = 2
        d["content_hash"] = content_hash(reg.tables("swc@v1", verify=False)[0], hash_format=1)
        d["manifest_digest"] = Manifest.model_validate({**d, "manifest_digest": None}).compute_digest()

    _edit_manifest(reg.path(m), as_schema_2)
    (home / "swc" / "log.jsonl").unlink()  # (the log would name the other hash)
    old = reg.resolve("swc@v1")
    assert old.hash_format == 1 and reg.verify("swc@v1").ok
    again, created = reg.publish("swc", make_splits(table), fields())
    assert not created and again.version == 1 and again.content_hash == old.content_hash
    changed, created = reg.publish("swc", make_splits(table.slice(1)), fields())
    assert created and changed.version == 2 and changed.schema_version == 3
