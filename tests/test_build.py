"""`swcdata build` end to end: the README's main command on the embedded sample, reruns, one-record
changes, config errors, and the Hub export of a built version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
from typer.testing import CliRunner

from swcdata.build import load_config, run_build
from swcdata.cli import app
from swcdata.errors import ConfigError
from swcdata.registry import Registry

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


def test_fresh_build_publishes_v1_with_a_balanced_ledger(built: Path) -> None:
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
    assert [i.path for i in m.inputs] == ["dataset/swc_sample.jsonl"]
    removed = m.removed
    assert [q["source"]["line"] for q in removed["quarantined"]] == [14]
    dups = {d["source"]["line"]: d["duplicate_of"]["source"]["line"] for d in removed["duplicates"]}
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
    assert len(m.removed["holdout_duplicates"]) == 1 and len(m.removed["holdout_quarantined"]) == 1


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
    assert res.ledger.augmented == 0 and res.ledger.balanced
    assert sum(res.ledger.splits.values()) == res.ledger.kept == 102
