"""`push` to the Hub, offline: a fake API records the calls; the staging folder and the dataset card are
checked as files (they load with `datasets.load_dataset`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from typer.testing import CliRunner

from swcdata import hub
from swcdata.cli import app
from swcdata.errors import InputError
from swcdata.hub import HubError, push, size_category
from swcdata.registry import Registry
from swcdata.validate import ValidateConfig, load_valid

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
SECRET = "hf_ThisIsNotARealTokenButMustNeverAppear"
runner = CliRunner()


class FakeCommit:
    oid = "0123456789abcdef0123456789abcdef01234567"
    commit_url = "https://huggingface.co/datasets/me/swc/commit/0123456789abcdef"


class FakeApi:
    """Records every call; `upload_folder` also records the files it was given (the folder is temporary)."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.uploaded: dict[str, bytes] = {}
        self.fail = fail

    def _record(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((name, kwargs))
        if self.fail == name:
            raise RuntimeError("409 Client Error: Conflict: tag already exists")

    def create_repo(self, **kwargs: Any) -> str:
        self._record("create_repo", kwargs)
        return "https://huggingface.co/datasets/" + kwargs["repo_id"]

    def upload_folder(self, **kwargs: Any) -> FakeCommit:
        self._record("upload_folder", kwargs)
        folder = Path(kwargs["folder_path"])
        self.uploaded = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        return FakeCommit()

    def create_tag(self, **kwargs: Any) -> None:
        self._record("create_tag", kwargs)


@pytest.fixture(scope="module")
def splits() -> dict[str, pa.Table]:
    t, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    return {"train": t.slice(0, 80), "validation": t.slice(80, 12), "test": t.slice(92)}


AUDIT = {"contamination": {"reference": "train", "candidates": "test", "exact": 0, "near": 0, "rate": 0.0}}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, splits: dict[str, pa.Table]) -> Path:
    h = tmp_path / "registry"
    monkeypatch.setenv("SWCDATA_HOME", str(h))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    Registry().publish("swc", splits, {
        "steps": [{"name": "split", "config": {"seed": 3}, "summary": {"clusters": 2}}], "seed": 3,
        "ledger": {"read": 104, "kept": 104, **AUDIT},
        "inputs": [{"path": "dataset/swc_sample.jsonl", "sha256": "ab" * 32, "bytes": 1234}]})
    return h


def front_matter(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    head, _, _ = card[4:].partition("\n---\n")
    data: dict[str, Any] = yaml.safe_load(head)
    return data


def test_push_sends_create_repo_upload_folder_create_tag(home: Path) -> None:
    api = FakeApi()
    rep = push("swc@v1", "me/swc", private=True, api_factory=lambda: api)
    assert [name for name, _ in api.calls] == ["create_repo", "upload_folder", "create_tag"]
    (_, repo), (_, upload), (_, tag) = api.calls
    assert repo == {"repo_id": "me/swc", "repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["repo_id"] == "me/swc" and upload["repo_type"] == "dataset"
    assert "swc@v1" in upload["commit_message"] and rep.content_hash[:12] in upload["commit_message"]
    assert tag == {"repo_id": "me/swc", "repo_type": "dataset", "tag": "v1", "tag_message": upload["commit_message"],
                   "revision": FakeCommit.oid}
    assert sorted(api.uploaded) == ["README.md", "data/test-00000-of-00001.parquet",
                                    "data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet"]
    assert rep.commit_oid == FakeCommit.oid and not rep.dry_run and rep.tag == "v1"
    assert rep.staging_dir is None  # the temporary staging folder is removed after the upload
    everything = json.dumps([c for c in api.calls], default=str) + rep.model_dump_json()
    assert SECRET not in everything and "token" not in everything


def test_dry_run_makes_no_api_call_and_needs_no_token(home: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def no_api() -> Any:
        raise AssertionError("the API factory must not be called in a dry run")

    out = tmp_path / "stage"
    rep = push("swc", "me/swc", dry_run=True, api_factory=no_api, work_dir=out)
    assert rep.dry_run and rep.staging_dir == str(out)
    assert [op.method for op in rep.operations] == ["create_repo", "upload_folder", "create_tag"]
    assert rep.operations[2].kwargs["tag"] == "v1"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        f.path for f in rep.files]
    # without --out a temporary folder is kept and named
    rep2 = push("swc", "me/swc", dry_run=True, api_factory=no_api)
    assert rep2.staging_dir and Path(rep2.staging_dir, "README.md").is_file()
    # staging is deterministic
    assert [f.sha256 for f in rep2.files] == [f.sha256 for f in rep.files]
    shutil.rmtree(rep2.staging_dir)


def test_staging_folder_loads_with_load_dataset_and_matches_the_version(home: Path, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "stage"
    push("swc@v1", "me/swc", dry_run=True, work_dir=out)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    dd, _ = Registry().load("swc@v1")
    assert list(loaded) == list(dd) == ["train", "validation", "test"]
    for split in dd:
        assert loaded[split]["id"] == dd[split]["id"]
        assert loaded[split].to_list() == dd[split].to_list()


def test_card_front_matter_declares_configs_sizes_and_tags(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "stage"
    rep = push("swc@v1", "me/swc", dry_run=True, work_dir=out)
    card = (out / "README.md").read_text()
    fm = front_matter(card)
    assert fm["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}, {"split": "validation", "path": "data/validation-*"},
        {"split": "test", "path": "data/test-*"}]}]
    assert fm["license"] == "other" and fm["task_categories"] == ["text-generation"]  # (no license recorded)
    assert fm["language"] == ["en"] and fm["tags"] == ["solidity", "smart-contracts", "security", "swc"]
    assert fm["size_categories"] == ["n<1K"]
    assert [(s["name"], s["num_examples"]) for s in fm["dataset_info"]["splits"]] == [
        ("train", 80), ("validation", 12), ("test", 12)]
    assert {f["name"] for f in fm["dataset_info"]["features"]} >= {"id", "instruction", "response", "source"}
    # the body: counts, lineage, inputs, the contamination audit
    assert "| **all** | **80** | **12** | **12** | **104** |" in card
    assert rep.content_hash in card and "swc@v1" in card and '"seed": 3' in card
    assert "| dataset/swc_sample.jsonl | input | 1,234 | `" + "ab" * 32 + "` |" in card
    assert card.count("Contamination audit between splits") == 1 and "| `near` | 0 |" in card
    assert "license of this data is **unknown**" in card and rep.license == "other"


def test_missing_token_fails_with_a_clear_message(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(InputError, match="no Hugging Face token found") as e:
        hub.make_api()
    assert "export HF_TOKEN=" in str(e.value) and "hf auth login" in str(e.value)
    r = runner.invoke(app, ["push", "swc@v1", "--repo", "me/swc"])
    assert r.exit_code == 2 and "HF_TOKEN" in r.output and "Traceback" not in r.output
    # refused before staging: a retry with the same --out finds it still empty
    r = runner.invoke(app, ["push", "swc@v1", "--repo", "me/swc", "--out", str(home.parent / "staged")])
    assert r.exit_code == 2 and not (home.parent / "staged").exists()


def test_make_api_builds_an_hfapi_when_a_token_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: SECRET)
    assert isinstance(hub.make_api(), huggingface_hub.HfApi)


def test_hub_errors_become_one_line_with_a_hint(home: Path) -> None:
    api = FakeApi(fail="create_tag")
    with pytest.raises(HubError, match="push failed at create_tag: RuntimeError: 409") as e:
        push("swc@v1", "me/swc", api_factory=lambda: api)
    assert "tag v1 already exists on me/swc" in str(e.value)
    assert HubError.exit_code == 1


def test_invalid_repo_id_and_non_empty_out(home: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="invalid Hub repo id"):
        push("swc@v1", "just-a-name", dry_run=True)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "other.txt").write_text("x")
    with pytest.raises(InputError, match="not an empty folder"):
        push("swc@v1", "me/swc", dry_run=True, work_dir=busy)


def test_cli_push_dry_run_and_with_a_fake_api(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = runner.invoke(app, ["push", "swc@v1", "--repo", "me/swc", "--dry-run", "--out", str(tmp_path / "s"),
                            "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["dry_run"] and rep["tag"] == "v1" and (tmp_path / "s" / "README.md").is_file()
    r = runner.invoke(app, ["push", "swc@v1", "--repo", "me/swc", "--dry-run", "--out", str(tmp_path / "s2")])
    assert r.exit_code == 0 and "dry run" in r.output and "upload_folder" in r.output

    api = FakeApi()
    monkeypatch.setattr(hub, "make_api", lambda: api)
    r = runner.invoke(app, ["push", "swc@v1", "--repo", "me/swc", "--private"])
    assert r.exit_code == 0, r.output
    assert [n for n, _ in api.calls] == ["create_repo", "upload_folder", "create_tag"]
    assert api.calls[0][1]["private"] is True and FakeCommit.oid in r.output
    assert SECRET not in r.output


@pytest.mark.parametrize(("n", "label"), [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"), (54_321, "10K<n<100K"),
                                          (100_000, "100K<n<1M"), (2_000_000, "1M<n<10M"),
                                          (5 * 10**9, "1B<n<10B"), (10**10, "10B<n<100B"), (10**11, "100B<n<1T"),
                                          (10**12, "n>1T")])
def test_size_category(n: int, label: str) -> None:
    assert size_category(n) == label


PAIRS = {"validation vs train": {"exact": 0, "near": 1, "ngram_only": 5, "contamination_rate": 0.0833,
                                 "ngram_overlap_rate": 0.5},
         "test vs train": {"exact": 0, "near": 0, "ngram_only": 7, "contamination_rate": 0.0,
                           "ngram_overlap_rate": 0.5833}}


def test_card_of_a_built_manifest_reads_top_to_bottom(tmp_path: Path, splits: dict[str, pa.Table]) -> None:
    """The way `build` records a version: the audit in the ledger and as the audit step's summary (shown once),
    removed records as lists (counted per kind, not dumped), the holdout among the inputs, a license."""
    home = tmp_path / "registry"
    src = {"file": "swc_sample.jsonl", "line": 3}
    dup = {"id": "a" * 16, "source": src, "similarity": 1.0, "duplicate_of": {"id": "b" * 16, "source": src}}
    Registry(home).publish("swc", splits, {
        "license": "cc-by-4.0", "seed": 0,
        "steps": [{"name": "split", "config": {"holdout": ["test_data.jsonl"]}},
                  {"name": "audit", "config": {"overlap_n": 13}, "summary": PAIRS}],
        "ledger": {"lines_read": 10, "blank_lines": 1, "quarantined": 1, "exact_duplicates": 2, "near_duplicates": 1,
                   "decontaminated": 1, "kept": 4, "holdout": 12, "augmented": 0, "splits": {"train": 80},
                   "contamination": PAIRS},
        "removed": {"quarantined": [{"source": src, "reasons": []}],
                    "duplicates": [dup | {"kind": "exact"}, dup | {"kind": "exact"}, dup | {"kind": "near"}],
                    "decontaminated": [dup | {"kind": "near"}], "holdout_duplicates": [],
                    "code_matches": "removed/code_matches.jsonl"},
        "inputs": [{"path": "swc_sample.jsonl", "sha256": "ab" * 32, "bytes": 10, "role": "input"},
                   {"path": "test_data.jsonl", "sha256": "cd" * 32, "bytes": 20, "role": "holdout"}]})
    out = tmp_path / "stage"
    rep = push("swc@v1", "me/swc", dry_run=True, work_dir=out, home=home)
    card = (out / "README.md").read_text()
    assert front_matter(card)["license"] == "cc-by-4.0" == rep.license and "`cc-by-4.0`, as the build" in card
    # one contamination table, after the ledger; the ledger does not repeat it
    assert card.count("Contamination audit") == 1 and card.count("| test vs train |") == 1
    assert "| validation vs train | 0 | 1 | 5 | 8.33% | 50.00% |" in card
    assert "n-gram of 13 words" in card and "contamination." not in card
    heads = [ln for ln in card.splitlines() if ln.startswith("## ")]
    assert heads == ["## Splits and categories", "## Fields", "## Lineage", "## Ledger", "## Removed records",
                     "## Contamination audit between splits", "## License"]
    assert "The ledger adds up: 10 lines read = 1 + 1 + 2 + 1 + 1 + 4" in card
    # removed records: counts per kind and where they are listed, never a JSON dump
    # (the registry stores each list as removed/<kind>.parquet in the version, the manifest its count and path)
    for row in ("| quarantined (failed the schema checks) | 1 | `removed/quarantined.parquet` |",
                "| exact duplicates | 2 | `removed/duplicates.parquet` |",
                "| near duplicates | 1 | `removed/duplicates.parquet` |",
                "| decontaminated (copies of a holdout record) | 1 | `removed/decontaminated.parquet` |",
                "| holdout duplicates (exact copies inside the holdout) | 0 | - |",
                "| code matches |  | `removed/code_matches.jsonl` |"):
        assert row in card, row
    assert "in the Parquet file named above" in card
    assert '"similarity"' not in card and "duplicate_of" not in card
    assert "| test_data.jsonl | holdout | 20 | `" + "cd" * 32 + "` |" in card
    assert "test is the holdout set `test_data.jsonl` (12 records)" in card


def test_push_license_overrides_the_manifest(home: Path, tmp_path: Path) -> None:
    rep = push("swc@v1", "me/swc", dry_run=True, work_dir=tmp_path / "a", license="MIT")
    card = (tmp_path / "a" / "README.md").read_text()
    assert front_matter(card)["license"] == "mit" == rep.license and "unknown" not in card
    rep = push("swc@v1", "me/swc", dry_run=True, work_dir=tmp_path / "b", license="unknown")
    assert front_matter((tmp_path / "b" / "README.md").read_text())["license"] == "other" == rep.license
    with pytest.raises(InputError, match="invalid license id"):
        push("swc@v1", "me/swc", dry_run=True, work_dir=tmp_path / "c", license="see LICENSE file")
    assert not (tmp_path / "c").exists()
    r = runner.invoke(app, ["push", "swc@v1", "--repo", "me/swc", "--dry-run", "--out", str(tmp_path / "d"),
                            "--license", "apache-2.0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["license"] == "apache-2.0"
    assert front_matter((tmp_path / "d" / "README.md").read_text())["license"] == "apache-2.0"
