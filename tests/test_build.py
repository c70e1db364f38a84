"""`swcdata build` end to end: the README's main command on the embedded sample, reruns, one-record
changes, config errors, and the Hub export of a built version."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import datasets
import pytest
from typer.testing import CliRunner

from swcdata import _native
from swcdata.cli.main import app
from swcdata.core.errors import ConfigError
from swcdata.registry.build import PublishedNames, load_config, run_build
from swcdata.registry.store import Registry

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def project(tmp_path: Path, name: str = "proj") -> Path:
    """A copy of the repository's default build (swcdata.toml + dataset/) in a fresh folder."""
    dest = tmp_path / name
    dest.mkdir()
    shutil.copytree(ROOT / "dataset", dest / "dataset")
    shutil.copy(ROOT / "swcdata.toml", dest / "swcdata.toml")
    return dest


def build(proj: Path, *extra: str) -> tuple[int, str]:
    res = runner.invoke(app, ["build", "--config", str(proj / "swcdata.toml"), "--home", str(proj / "registry"),
                              *extra])
    return res.exit_code, res.output


def edit_line(path: Path, line: int, **changes: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    rec = json.loads(lines[line - 1])
    rec.update(changes)
    lines[line - 1] = json.dumps(rec, ensure_ascii=False)
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proj = project(tmp_path_factory.mktemp("built"))
    code, out = build(proj)
    assert code == 0, out
    return proj


def test_fresh_build_publishes_v1_with_a_ledger_that_adds_up(built: Path) -> None:
    reg = Registry(built / "registry")
    [m] = reg.versions("swc")
    assert m.ref == "swc@v1" and m.parent is None
    led = m.ledger
    # 105 sample lines: one quarantined (no response), one exact and one near duplicate removed.
    assert (led["lines_read"], led["quarantined"], led["exact_duplicates"], led["near_duplicates"]) == (105, 1, 1, 1)
    assert led["kept"] == 102
    assert led["lines_read"] == led["blank_lines"] + led["quarantined"] + led["exact_duplicates"] \
        + led["near_duplicates"] + led["decontaminated"] + led["kept"] + led["holdout"]
    assert sum(led["splits"].values()) == led["kept"] + led["augmented"]
    assert [s.name for s in m.steps] == ["validate", "dedup", "split", "augment", "audit"]
    assert {s.summary["backend"] for s in m.steps} == {_native.backend()}  # which code ran each step
    assert [i.path for i in m.inputs] == ["dataset/swc_sample.jsonl"]
    assert (m.removed["quarantined"]["records"], m.removed["duplicates"]["records"]) == (1, 2)
    assert m.removed["duplicates"]["by_kind"] == {"exact": 1, "near": 1}
    assert [q["source"]["line"] for q in reg.removed_records(m, "quarantined")] == [14]
    dups = {d["source"]["line"]: d["duplicate_of"]["source"]["line"] for d in reg.removed_records(m, "duplicates")}
    assert dups == {38: 21, 76: 41}
    for pair, c in led["contamination"].items():
        assert (c["exact"], c["near"]) == (0, 0), pair
    dd = reg.load("swc@v1")[0]
    assert all(t is None for t in dd["validation"]["transform"]) and all(t is None for t in dd["test"]["transform"])
    assert sum(1 for t in dd["train"]["transform"] if t is not None) == led["augmented"]


def test_rerun_is_unchanged_and_names_the_matching_version(built: Path) -> None:
    code, out = build(built)
    assert code == 0, out
    assert "unchanged, same as swc@v1" in " ".join(out.split())
    assert [m.ref for m in Registry(built / "registry").versions("swc")] == ["swc@v1"]


def test_same_inputs_in_another_folder_give_the_same_hash(built: Path, tmp_path: Path) -> None:
    other = project(tmp_path, "elsewhere")
    code, out = build(other, "--json")
    assert code == 0, out
    res = json.loads(out)
    assert res["content_hash"] == Registry(built / "registry").resolve("swc@v1").content_hash
    assert res["created"] is True and res["ref"] == "swc@v1"


def test_one_changed_record_gives_v2_and_diff_shows_that_change(tmp_path: Path) -> None:
    proj = project(tmp_path)
    assert build(proj)[0] == 0
    sample = proj / "dataset" / "swc_sample.jsonl"
    old = json.loads(sample.read_text(encoding="utf-8").split("\n")[2])
    edit_line(sample, 3, response=old["response"] + " Always test the fix against a malicious receiver.")
    code, out = build(proj)
    assert code == 0, out
    assert "published swc@v2" in out
    reg = Registry(proj / "registry")
    assert reg.resolve("swc@v2").parent == "swc@v1"

    d = reg.diff("swc@v1", "swc@v2")
    changed = [c for s in d.splits for c in s.changed_records]
    base_changes = [c for c in changed if c.transform is None]
    assert [(c.source.file, c.source.line) for c in base_changes] == [("dataset/swc_sample.jsonl", 3)]
    [c] = base_changes
    # Everything else the diff lists is a consequence of that one change: the changed record's augmented
    # variants, and the records that exact per-category quotas move across a split boundary (at most one per
    # boundary the changed record crossed), with their variants.
    moved = {m.id for m in d.moved}
    assert len(moved) <= 2
    dd1, dd2 = reg.load("swc@v1")[0], reg.load("swc@v2")[0]
    parent1 = {r["id"]: r["parent_id"] for s in dd1 for r in dd1[s].select_columns(["id", "parent_id"])}
    parent2 = {r["id"]: r["parent_id"] for s in dd2 for r in dd2[s].select_columns(["id", "parent_id"])}
    for s in d.splits:
        for i in s.added_ids:
            assert parent2[i] in moved | {c.b_id}, (s.split, i)
        for i in s.removed_ids:
            assert parent1[i] in moved | {c.a_id}, (s.split, i)
        for x in s.changed_records:
            if x.transform is not None:
                assert parent2[x.b_id] == c.b_id and parent1[x.a_id] == c.a_id
    assert d.config_changes == []

    res = runner.invoke(app, ["diff", "swc@v1", "swc@v2", "--home", str(proj / "registry")])
    assert res.exit_code == 0, res.output
    assert c.a_id in res.output and c.b_id in res.output and "swc_sample.jsonl:3" in res.output


def test_config_errors_are_all_reported_before_any_work(tmp_path: Path) -> None:
    proj = project(tmp_path)
    (proj / "swcdata.toml").write_text(
        'name = "swc"\ninputs = ["dataset/"]\n[dedup]\nthreshold = 1.7\nngram = 0\n'
        '[split]\nratios = [0.5, 0.1]\nstratfy = "category"\n[augment]\nfactor = -1\n', encoding="utf-8")
    code, out = build(proj)
    assert code == 2
    text = " ".join(out.split())
    for key in ("dedup.threshold", "dedup.ngram", "split.ratios", "split.stratfy", "augment.factor"):
        assert key in text, key
    assert "Traceback" not in out
    assert not (proj / "registry").exists()

    with pytest.raises(ConfigError) as e:
        load_config(proj / "swcdata.toml", {"seed": "x"})
    assert len(e.value.problems) >= 6


def test_unknown_set_key_and_missing_input_are_usage_errors(tmp_path: Path) -> None:
    proj = project(tmp_path)
    code, out = build(proj, "--set", "dedup.thresold=0.8")
    assert code == 2 and "dedup.thresold" in out
    code, out = build(proj, "--set", 'inputs=["nowhere/"]')
    assert code == 2 and "nowhere" in out and "Traceback" not in out


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "name.x=1"], "name is a single value"),
    (["--set", "seed=99999999999999999999999"], "seed: Input should be less than or equal to"),
    (["--set", "split.ratios=[nan, 0.5, 0.5]"], "finite number"),
])
def test_set_mistakes_are_one_config_error(args: list[str], message: str, tmp_path: Path) -> None:
    proj = project(tmp_path)
    code, out = build(proj, *args)
    assert code == 2 and message in " ".join(out.split()) and "Traceback" not in out
    assert not (proj / "registry").exists()


def test_a_config_that_is_not_utf8_is_one_config_error(tmp_path: Path) -> None:
    proj = project(tmp_path)
    (proj / "swcdata.toml").write_bytes("name = 'swc'\n".encode("utf-16"))
    code, out = build(proj)
    assert code == 2 and "not UTF-8 text" in out and "Traceback" not in out
    (proj / "swcdata.toml").write_bytes(b"\xef\xbb\xbf" + (ROOT / "swcdata.toml").read_bytes())  # a BOM is fine
    code, out = build(proj)
    assert code == 0, out


def test_nothing_to_publish_without_a_train_split(tmp_path: Path) -> None:
    proj = project(tmp_path)
    code, out = build(proj, "--set", 'split.holdout=["dataset/swc_sample.jsonl"]')
    assert code == 1 and "nothing to publish: the train split is empty" in " ".join(out.split())
    assert not (proj / "registry" / "swc").exists() or not any((proj / "registry" / "swc").glob("v*"))


def test_a_holdout_keeps_one_copy_of_each_record_and_its_ledger_adds_up(tmp_path: Path) -> None:
    proj = project(tmp_path)
    lines = (proj / "dataset" / "swc_sample.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (proj / "train.jsonl").write_text("".join(lines[:95]), encoding="utf-8")
    (proj / "holdout.jsonl").write_text("".join([*lines[95:105], lines[99], '{"x": 1}\n']), encoding="utf-8")
    (proj / "swcdata.toml").write_text('name = "hz"\ninputs = ["train.jsonl"]\n[split]\nholdout = ["holdout.jsonl"]\n',
                                       encoding="utf-8")
    code, out = build(proj, "--json")
    assert code == 0, out
    res = json.loads(out[out.index("{"):])
    import jsonschema

    jsonschema.validate(res, json.loads((ROOT / "schemas" / "build-result.schema.json").read_text()))
    assert res["ledger"]["holdout_duplicates"] == 1 and res["ledger"]["holdout_quarantined"] == 1
    dd, m = Registry(proj / "registry").load("hz@v1")
    ids = dd["test"]["id"]
    assert len(ids) == len(set(ids)) == res["ledger"]["holdout"]
    reg = Registry(proj / "registry")
    assert len(reg.removed_records(m, "holdout_duplicates")) == 1
    assert len(reg.removed_records(m, "holdout_quarantined")) == 1


def test_built_version_pushes_as_a_folder_that_load_dataset_reads(built: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "hub"
    res = runner.invoke(app, ["push", "swc@v1", "--repo", "acme/swc", "--dry-run", "--out", str(out_dir),
                              "--home", str(built / "registry")])
    assert res.exit_code == 0, res.output
    card = (out_dir / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "configs:" in card and "test vs train" in card
    hub = datasets.load_dataset(str(out_dir))
    ours = Registry(built / "registry").load("swc@v1")[0]
    assert set(hub) == set(ours)
    for split in ours:
        assert hub[split]["id"] == ours[split]["id"]
        assert hub[split]["response"] == ours[split]["response"]


def test_run_build_without_augment_keeps_splits_unaugmented(tmp_path: Path) -> None:
    proj = project(tmp_path)
    cfg, base = load_config(proj / "swcdata.toml", {"augment.enabled": False})
    res = run_build(cfg, base, home=proj / "registry")
    assert res.ledger.augmented == 0 and res.ledger.adds_up
    assert sum(res.ledger.splits.values()) == res.ledger.kept == 102


def test_findings_drop_or_skip_records_and_the_ledger_counts_both(tmp_path: Path) -> None:
    """augment.skip_findings (noop-fix by default) keeps a record unaugmented; validate.drop_findings
    quarantines it with that reason; either way the ledger adds up and says how many."""
    proj = project(tmp_path)
    skip, base = load_config(proj / "swcdata.toml", {"augment.factor": 1})
    res = run_build(skip, base, home=proj / "registry")
    noop = res.findings["noop-fix"]  # (the sample has one; whether it lands in train depends on the split)
    assert noop >= 1 and res.ledger.not_augmented_by_finding <= noop and res.ledger.quarantined_by_finding == 0
    drop, _ = load_config(proj / "swcdata.toml", {"augment.factor": 1, "validate.drop_findings": ["noop-fix"]})
    res2 = run_build(drop, base, home=proj / "registry")
    n = res2.ledger.quarantined_by_finding
    assert n == noop and res2.ledger.not_augmented_by_finding == 0
    assert res2.ledger.quarantined == res.ledger.quarantined + n and res2.ledger.adds_up
    m = Registry(proj / "registry").resolve(res2.ref)
    reasons = [r for q in Registry(proj / "registry").removed_records(m, "quarantined") for r in q["reasons"]]
    assert sum(r["rule"] == "noop-fix" and r["message"].startswith("dropped by validate.drop_findings")
               for r in reasons) == n
    everything, _ = load_config(proj / "swcdata.toml", {"augment.skip_findings": [], "augment.factor": 1})
    assert run_build(everything, base, home=proj / "registry").ledger.not_augmented_by_finding == 0
    with pytest.raises(ConfigError, match=r"augment\.skip_findings"):
        load_config(proj / "swcdata.toml", {"augment.skip_findings": ["missing-field"]})


# ---- published data carries no local path ---------------------------------------------------


def toml_list(paths: list[str]) -> str:
    return "[" + ", ".join(json.dumps(p) for p in paths) + "]"


def write_config(folder: Path, inputs: list[str], holdout: list[str], extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "swcdata.toml"
    cfg.write_text(f'name = "swc"\ninputs = {toml_list(inputs)}\n{extra}\n[split]\nholdout = {toml_list(holdout)}\n',
                   encoding="utf-8")
    return cfg


def build_at(cfg: Path, home: Path) -> dict[str, Any]:
    res = runner.invoke(app, ["build", "--config", str(cfg), "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout[res.stdout.index("{"):])
    return out


def push_dry_run(ref: str, home: Path, out: Path) -> str:
    res = runner.invoke(app, ["push", ref, "--repo", "you/swc", "--dry-run", "--out", str(out), "--home", str(home)])
    assert res.exit_code == 0, res.output
    return (out / "README.md").read_text(encoding="utf-8")


def assert_no_local_path(folders: list[Path], local: list[str]) -> None:
    """No file under `folders` holds one of the `local` path prefixes; no text file holds a `../`; no string
    of a JSON file is an absolute path or has a `..` component."""
    def strings(v: Any) -> list[str]:
        if isinstance(v, dict):
            return [s for x in (*v.keys(), *v.values()) for s in strings(x)]
        if isinstance(v, list):
            return [s for x in v for s in strings(x)]
        return [v] if isinstance(v, str) else []

    files = [p for f in folders for p in sorted(f.rglob("*")) if p.is_file()]
    assert any(p.name == "manifest.json" for p in files)
    for p in files:
        data = p.read_bytes()
        for prefix in local:
            assert prefix.encode() not in data, (p, prefix)
        if p.suffix in (".json", ".md"):  # (binary data files: their records' sources are checked by value)
            assert b"../" not in data and b"..\\" not in data, p
        if p.suffix == ".json":
            for s in strings(json.loads(data)):
                assert not s.startswith("/") and ".." not in Path(s).parts, (p, s)
        if p.suffix == ".parquet" and p.parent.name == "removed":  # (compressed: checked as the records it holds)
            import pyarrow.parquet as pq

            text = json.dumps(pq.read_table(p).to_pylist())
            assert not any(prefix in text for prefix in local), p
            for s in strings(json.loads(text)):
                assert not s.startswith("/") and ".." not in Path(s).parts, (p, s)


def source_files(dd: Any) -> set[str]:
    return {src["file"] for split in dd for src in dd[split]["source"]}


def test_published_names_are_relative_inside_and_short_suffixes_outside(tmp_path: Path) -> None:
    base = tmp_path / "proj"
    inside = [base / "data" / "x.jsonl", base / "y.jsonl"]
    outside = [tmp_path / "p" / "a" / "x.jsonl", tmp_path / "q" / "a" / "x.jsonl", tmp_path / "p" / "b" / "x.jsonl",
               tmp_path / "other" / "y.jsonl", tmp_path / "solo.jsonl"]
    names = PublishedNames([*inside, *outside], base)
    assert [names(str(p)) for p in inside] == ["data/x.jsonl", "y.jsonl"]
    # the shortest suffix that tells the outside files apart (from each other and from the inside names)
    assert [names(str(p)) for p in outside] == ["p/a/x.jsonl", "q/a/x.jsonl", "b/x.jsonl", "other/y.jsonl",
                                                "solo.jsonl"]
    assert names(str(base / "data" / ".." / "y.jsonl")) == "y.jsonl"  # (the same file written another way)
    # the order of the inputs changes nothing; neither does the folder all of it lives in
    again = PublishedNames([*reversed(outside), *inside], base)
    assert [again(str(p)) for p in [*inside, *outside]] == [names(str(p)) for p in [*inside, *outside]]
    moved = tmp_path / "elsewhere" / "deeper"
    there = PublishedNames([moved / p.relative_to(tmp_path) for p in [*inside, *outside]], moved / "proj")
    assert [there(str(moved / p.relative_to(tmp_path))) for p in [*inside, *outside]] == \
        [names(str(p)) for p in [*inside, *outside]]
    # a symlinked data folder inside the project is inside
    (base / "linked").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "z.jsonl").write_text("{}\n")
    os.symlink(tmp_path / "real", base / "linked")
    assert PublishedNames([base / "linked" / "z.jsonl"], base)(str(base / "linked" / "z.jsonl")) == "linked/z.jsonl"


def sample_halves() -> tuple[str, str]:
    lines = (ROOT / "dataset" / "swc_sample.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(lines[:90]), "".join(lines[90:])


def test_inputs_outside_the_config_folder_publish_file_names_only(tmp_path: Path) -> None:
    """Two layouts of the same files, both outside the config's folder (one reached with `..`, one with absolute
    paths): the same records, the same content hash, and not one local path in the version or the card."""
    train, hold = sample_halves()
    a_data, b_data = tmp_path / "A" / "data", tmp_path / "B" / "somewhere" / "else"
    for d in (a_data / "hold", b_data):
        d.mkdir(parents=True)
    (a_data / "train.jsonl").write_text(train, encoding="utf-8")
    (a_data / "hold" / "holdout.jsonl").write_text(hold, encoding="utf-8")
    (b_data / "train.jsonl").write_text(train, encoding="utf-8")
    (b_data / "holdout.jsonl").write_text(hold, encoding="utf-8")
    cfg_a = write_config(tmp_path / "A" / "project" / "conf", ["../../data/train.jsonl"],
                         ["../../data/hold/holdout.jsonl"], extra='license = "mit"')
    cfg_b = write_config(tmp_path / "B" / "x" / "y" / "z", [str(b_data / "train.jsonl")],
                         [str(b_data / "holdout.jsonl")])
    ra, rb = build_at(cfg_a, tmp_path / "A" / "registry"), build_at(cfg_b, tmp_path / "B" / "registry")
    assert ra["content_hash"] == rb["content_hash"]
    dd, m = Registry(tmp_path / "A" / "registry").load("swc@v1")
    mb = Registry(tmp_path / "B" / "registry").resolve("swc@v1")
    assert source_files(dd) == {"train.jsonl", "holdout.jsonl"}
    assert source_files({"test": dd["test"]}) == {"holdout.jsonl"}
    assert [(i.path, i.role) for i in m.inputs] == [("train.jsonl", "input"), ("holdout.jsonl", "holdout")]
    assert m.inputs[1].sha256 == hashlib.sha256(hold.encode()).hexdigest() and m.inputs[1].bytes == len(hold.encode())
    assert m.steps_key() == mb.steps_key() and m.inputs == mb.inputs
    assert (m.license, mb.license) == ("mit", "unknown")
    card_a = push_dry_run("swc@v1", tmp_path / "A" / "registry", tmp_path / "A" / "hub")
    card_b = push_dry_run("swc@v1", tmp_path / "B" / "registry", tmp_path / "B" / "hub")
    assert "\nlicense: mit\n" in card_a and "\nlicense: other\n" in card_b
    assert "license of this data is **unknown**" in card_b and "unknown" not in card_a
    for side in ("A", "B"):
        assert_no_local_path([tmp_path / side / "registry" / "swc" / "v1", tmp_path / side / "hub"], [str(tmp_path)])


def test_outside_inputs_with_one_file_name_keep_apart(tmp_path: Path) -> None:
    first, second = sample_halves()
    for sub, text in (("a", first), ("b", second)):
        (tmp_path / "in" / sub).mkdir(parents=True)
        (tmp_path / "in" / sub / "x.jsonl").write_text(text, encoding="utf-8")
    cfg = write_config(tmp_path / "cfg", ["../in/a/x.jsonl", "../in/b/x.jsonl"], [])
    build_at(cfg, tmp_path / "registry")
    dd, m = Registry(tmp_path / "registry").load("swc@v1")
    assert [i.path for i in m.inputs] == ["a/x.jsonl", "b/x.jsonl"]
    assert source_files(dd) == {"a/x.jsonl", "b/x.jsonl"}
    assert_no_local_path([tmp_path / "registry" / "swc" / "v1"], [str(tmp_path)])


@pytest.fixture(scope="module")
def seed_build(seed_build_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The user's build (conftest's `seed_build_root`: the five SWC files and test_data.jsonl as the holdout,
    reached from the config's folder with `../..` paths), then a push --dry-run into <root>/hub. Returns (the
    build's folder, the card)."""
    hub = tmp_path_factory.mktemp("seed-hub") / "hub"
    card = push_dry_run("swc@v1", seed_build_root / "registry", hub)
    if not (seed_build_root / "hub").exists():
        (seed_build_root / "hub").symlink_to(hub)  # (the tests look for it beside the registry)
    return seed_build_root, card


def test_seed_build_publishes_no_local_path(seed_build: tuple[Path, str], swc_files: list[Path],
                                            seed_test_file: Path) -> None:
    root, _card = seed_build
    assert_no_local_path([root / "registry" / "swc" / "v1", root / "hub"],
                         [str(root), str(seed_test_file.parent), str(seed_test_file.parent.resolve())])
    dd, m = Registry(root / "registry").load("swc@v1")
    names = {f.name for f in swc_files}
    assert source_files({s: dd[s] for s in ("train", "validation")}) == names
    assert source_files({"test": dd["test"]}) == {"test_data.jsonl"}
    hub = datasets.load_dataset(str(root / "hub"))
    assert source_files(hub) == names | {"test_data.jsonl"}
    removed = json.dumps([Registry(root / "registry").removed_records(m, k) for k in m.removed])
    assert "test_data.jsonl" in removed and "solidity_vunerability_SWC-107_Reentrancy.jsonl" in removed
    assert next(s for s in m.steps if s.name == "split").config["holdout"] == ["test_data.jsonl"]


def test_seed_holdout_is_an_input_of_the_manifest(seed_build: tuple[Path, str], swc_files: list[Path],
                                                  seed_test_file: Path) -> None:
    root, card = seed_build
    m = Registry(root / "registry").resolve("swc@v1")
    assert [(i.path, i.role) for i in m.inputs] == [*((f.name, "input") for f in swc_files),
                                                    ("test_data.jsonl", "holdout")]
    [h] = [i for i in m.inputs if i.role == "holdout"]
    assert h.sha256 == hashlib.sha256(seed_test_file.read_bytes()).hexdigest()
    assert f"| test_data.jsonl | holdout | {h.bytes:,} | `{h.sha256}` |" in card
    assert h.bytes == seed_test_file.stat().st_size
    assert m.license == "unknown" and m.manifest_digest == m.compute_digest()


def test_seed_card_reads_once_through(seed_build: tuple[Path, str]) -> None:
    _root, card = seed_build
    assert "\nlicense: other\n" in card and "apache" not in card.lower()
    assert card.count("## Contamination audit") == 1
    assert card.count("| test vs train |") == 1 and card.count("| validation vs train |") == 1
    body = card.split("\n---\n", 1)[1]
    order = ["# swc v1", "## Splits and categories", "## Lineage", "### Input files", "## Ledger",
             "## Removed records", "## Contamination audit", "## License"]
    assert [body.index(h) for h in order] == sorted(body.index(h) for h in order)
    assert "The ledger adds up" in card and "| test_data.jsonl | holdout |" in card
    assert max(len(line) for line in body.splitlines()) < 400  # no JSON dumps of the removed records
