"""`push` and `pull` through the real `huggingface_hub` client against a loopback Hub (tests/hub_server.py): the
round trip (same content hash, `datasets.load_dataset` reads the repo), shards, multi-commit pushes, retries of
429/500, a dropped connection, tampered data refused at pull, and the token never written anywhere. The card
and the staging folder are checked as files (dry runs need no server)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hub_server import FakeHub, HubServer
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.core.errors import DataError, InputError
from swcdata.registry import hub
from swcdata.registry.hub import HubError, parse_size, push, shard_ranges, size_category
from swcdata.registry.manifest import Manifest
from swcdata.registry.store import Registry
from swcdata.steps.validate import ValidateConfig, load_valid

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
SECRET = "hf_ThisIsNotARealTokenButMustNeverAppear"
runner = CliRunner()
# (huggingface_hub's LFS upload passes the file as `data=`, which httpx2 deprecates: not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture(scope="module")
def splits() -> dict[str, pa.Table]:
    t, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    return {"train": t.slice(0, 80), "validation": t.slice(80, 12), "test": t.slice(92)}


AUDIT = {"contamination": {"reference": "train", "candidates": "test", "exact": 0, "near": 0, "rate": 0.0}}
REMOVED = {"quarantined": [{"source": {"file": "dataset/swc_sample.jsonl", "line": 7}, "reasons": ["no code"]}]}


def publish(home: Path, splits: dict[str, pa.Table], **fields: Any) -> Manifest:
    m, _ = Registry(home).publish("swc", splits, {
        "steps": [{"name": "split", "config": {"seed": 3}, "summary": {"clusters": 2}}], "seed": 3,
        "ledger": {"read": 104, "kept": 104, **AUDIT}, "removed": REMOVED,
        "inputs": [{"path": "dataset/swc_sample.jsonl", "sha256": "ab" * 32, "bytes": 1234}], **fields})
    return m


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, splits: dict[str, pa.Table]) -> Path:
    h = tmp_path / "registry"
    monkeypatch.setenv("SWCDATA_HOME", str(h))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    publish(h, splits)
    return h


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The loopback Hub; `make_api` reads HF_ENDPOINT when called. Xet is off (the server speaks LFS), and
    huggingface_hub's own folders point into the test's folder."""
    import huggingface_hub.constants as constants

    srv = HubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", srv.url)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    try:
        yield srv.hub
    finally:
        srv.stop()


def front_matter(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    head, _, _ = card[4:].partition("\n---\n")
    data: dict[str, Any] = yaml.safe_load(head)
    return data


def cli(*args: str) -> Any:
    r = runner.invoke(app, list(args))
    assert "Traceback" not in r.output, r.output
    return r


# ---- the round trip ---------------------------------------------------------------------------


def test_push_then_pull_into_an_empty_registry_gives_the_same_version(home: Path, server: FakeHub,
                                                                     tmp_path: Path) -> None:
    original = Registry(home).resolve("swc@v1")
    r = cli("push", "swc@v1", "--repo", "me/swc", "--max-shard-size", "20KB", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["shards"] == {"train": 6, "validation": 1, "test": 1} and len(rep["commits"]) == 1
    assert rep["content_defined_chunking"] is hub.content_defined_chunking() is True
    files = server.files("me/swc", "v1")  # (the tag)
    assert [p for p in files if p.startswith("data/train-")] == [
        f"data/train-{i:05d}-of-00006.parquet" for i in range(6)]
    assert json.loads(files["swcdata/manifest.json"]) == json.loads(original.to_json())
    assert "swcdata/files/removed/quarantined.parquet" in files
    assert "swcdata/manifest.json" in files["README.md"].decode()
    assert not any(p.endswith(".arrow") for p in files)  # (the Arrow data is rebuilt from the shards)

    empty = tmp_path / "elsewhere"
    r = cli("pull", "me/swc@v1", "--home", str(empty), "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert got["ref"] == "swc@v1" and got["registered"] and got["content_hash"] == original.content_hash
    assert got["commit"] == server.repo("me/swc").tags["v1"]
    pulled = Registry(empty).resolve("swc@v1")
    assert pulled == original  # the same manifest, digest included
    r = cli("verify", "swc@v1", "--home", str(empty), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["actual"] == original.content_hash, r.output
    log = [json.loads(x) for x in (empty / "swc" / "log.jsonl").read_text().splitlines()]
    assert [(e["event"], e["version"], e["origin"]) for e in log] == [("pulled", 1, "hf://me/swc@v1 (commit "
                                                                      f"{got['commit'][:12]})")]
    assert Registry(empty).removed_records("swc@v1", "quarantined") == REMOVED["quarantined"]
    # pulled again: checked, kept, only the manifest downloaded
    before = len(server.requests)
    r = cli("pull", "me/swc@v1", "--home", str(empty), "--json")
    assert r.exit_code == 0 and not json.loads(r.output)["registered"], r.output
    assert sum(1 for m, p, _ in server.requests[before:] if m == "GET" and "/resolve/" in p) == 1
    # the plain output
    r = cli("pull", "me/swc@v1", "--home", str(empty))
    assert r.exit_code == 0 and "already in the registry" in r.output and original.content_hash in r.output


def test_datasets_load_dataset_reads_the_pushed_repo(home: Path, server: FakeHub, tmp_path: Path) -> None:
    """`load_dataset("me/swc", revision="v1")` itself, in a fresh process whose HF_ENDPOINT is the loopback Hub
    (huggingface_hub and datasets read it when imported)."""
    rep = push("swc@v1", "me/swc", max_shard_size="20KB")
    code = ("import datasets, json; ds = datasets.load_dataset('me/swc', revision='v1'); "
            "print(json.dumps({s: list(ds[s]['id']) for s in ds}))")
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ids = json.loads(r.stdout.strip().splitlines()[-1])
    dd, _ = Registry(home).load("swc@v1")
    assert ids == {s: dd[s]["id"] for s in dd} and rep.shards["train"] == 6


def test_swcdata_load_hf_url_pulls_then_loads(home: Path, server: FakeHub, tmp_path: Path) -> None:
    import swcdata

    push("swc@v1", "me/swc")
    dd = swcdata.load("hf://me/swc@v1", home=tmp_path / "other")
    want, _ = Registry(home).load("swc@v1")
    assert {s: dd[s].to_list() for s in dd} == {s: want[s].to_list() for s in want}
    assert (tmp_path / "other" / "swc" / "v1" / "manifest.json").is_file()
    with pytest.raises(InputError, match="invalid Hub dataset"):
        swcdata.load("hf://not-a-repo", home=tmp_path / "other")


def test_v2_after_v1_deletes_stale_shards_and_sends_only_changed_files(home: Path, server: FakeHub,
                                                                       splits: dict[str, pa.Table]) -> None:
    push("swc@v1", "me/swc", max_shard_size="20KB")
    v1 = server.files("me/swc", "v1")
    # v2: one train record changed (its response), the rest as in v1; validation now in 2 shards
    rows = splits["train"].to_pylist()
    rows[0] = {**rows[0], "response": rows[0]["response"] + " (revised)"}
    changed = {**splits, "train": pa.Table.from_pylist(rows, schema=splits["train"].schema)}
    publish(home, changed)
    server.received.clear()
    rep = push("swc@v2", "me/swc", max_shard_size="20KB", max_commit_size="10MB")
    v2 = server.files("me/swc", "v2")
    assert rep.deleted == [] and set(v2) == set(v1)
    new = [p for p in v2 if p.endswith(".parquet") and v2[p] != v1[p]]
    assert new == ["data/train-00000-of-00006.parquet"]  # the shard holding the changed record
    # only that shard's bytes went to LFS storage: the others' sha256 were there already
    assert server.received["lfs"] == len(v2[new[0]])
    # v1 is still at its tag
    assert server.files("me/swc", "v1") == v1
    # a version with fewer shards deletes the files of the earlier one
    publish(home, {s: t.slice(0, 10) for s, t in splits.items()})
    rep = push("swc@v3", "me/swc", max_shard_size="20KB")
    assert rep.deleted == [f"data/train-{i:05d}-of-00006.parquet" for i in range(6)]
    assert sorted(p for p in server.files("me/swc") if p.startswith("data/")) == [
        "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet"]


# ---- transient failures -----------------------------------------------------------------------


def test_429_and_500_are_retried_by_the_client(home: Path, server: FakeHub, tmp_path: Path) -> None:
    """The calls huggingface_hub retries (http_backoff: 408, 429, 5xx; downloads 408 and 429): a push and a pull
    go through."""
    rate = server.fail("POST", r"/preupload/", 429)
    s3 = server.fail("PUT", r"^/_lfs/", 500)
    r = cli("push", "swc@v1", "--repo", "me/swc", "--json")
    assert r.exit_code == 0, r.output
    assert rate.hits == 1 and s3.hits == 1
    assert [s for _m, p, s in server.requests if "/preupload/" in p][:2] == [429, 200]
    assert [s for m, _p, s in server.requests if m == "PUT"][:2] == [500, 200]
    dl = server.fail("GET", r"/resolve/.*\.parquet$", 429)
    r = cli("pull", "me/swc@v1", "--home", str(tmp_path / "b"), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["registered"] and dl.hits == 1, r.output


def test_a_connection_dropped_mid_push_fails_in_one_line_and_a_rerun_finishes(home: Path, server: FakeHub) -> None:
    drop = server.fail("POST", r"/commit/main$", "drop")
    r = cli("push", "swc@v1", "--repo", "me/swc")
    assert r.exit_code == 1 and drop.hits == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert lines[0].startswith("error: push failed at create_commit: RemoteProtocolError:"), r.output
    assert "run the same command again" in r.output and len(lines) == 2
    assert "v1" not in server.repo("me/swc").tags and "README.md" not in server.files("me/swc")
    uploaded = server.received["lfs"]
    assert uploaded > 0  # the shards reached the LFS storage before the commit was cut
    r = cli("push", "swc@v1", "--repo", "me/swc", "--json")
    assert r.exit_code == 0, r.output
    assert server.received["lfs"] == uploaded  # the rerun sent no shard again
    assert "v1" in server.repo("me/swc").tags


def test_a_large_version_goes_in_parts_with_the_card_last_and_resumes(home: Path, server: FakeHub,
                                                                      tmp_path: Path) -> None:
    args = ["push", "swc@v1", "--repo", "me/swc", "--max-shard-size", "20KB", "--max-commit-size", "40KB"]
    r = cli(*args, "--dry-run", "--out", str(tmp_path / "plan"), "--json")
    plan = [op["kwargs"]["add"] for op in json.loads(r.output)["operations"] if op["method"] == "create_commit"]
    assert len(plan) >= 3 and plan[-1] == ["README.md", "swcdata/manifest.json"]
    assert all("README.md" not in part and "swcdata/manifest.json" not in part for part in plan[:-1])
    drop = server.fail("POST", r"/commit/main$", "drop", after=1)  # the second part's commit is cut
    r = cli(*args)
    assert r.exit_code == 1 and drop.hits == 1 and "push failed at create_commit" in r.output, r.output
    files = server.files("me/swc")
    assert set(plan[0]) <= set(files) and "README.md" not in files and not server.repo("me/swc").tags
    head = server.repo("me/swc").branches["main"]
    r = cli(*args, "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert len(rep["commits"]) == len(plan) and rep["commits"][0] == head  # (the first part had nothing new)
    repo = server.repo("me/swc")
    tagged = repo.commits[repo.tags["v1"]]
    before_card = repo.commits[tagged.parent or ""].files
    assert "README.md" not in before_card and all(p in before_card for part in plan[:-1] for p in part)
    assert tagged.summary == f"swcdata: swc@v1 ({rep['content_hash'][:12]})"
    r = cli("pull", "me/swc@v1", "--home", str(tmp_path / "b"), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["content_hash"] == rep["content_hash"], r.output


# ---- what pull refuses ------------------------------------------------------------------------


def _altered_shard(data: bytes) -> bytes:
    """A valid Parquet shard of the same schema with one response edited (as a forged upload would be)."""
    rows = pq.read_table(io.BytesIO(data)).to_pylist()
    rows[0]["response"] = "nothing to see here"
    buf = io.BytesIO()
    hub.write_shard(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _edited_manifest(data: bytes) -> bytes:
    m = json.loads(data)
    m["counts"]["train"]["records"] = 79
    return json.dumps(m).encode()


@pytest.mark.parametrize(("path", "change", "message"), [
    ("data/train-00001-of-00006.parquet", _altered_shard, "the data does not match its manifest: content hash"),
    ("data/train-00003-of-00006.parquet", None, "data/train-00003-of-00006.parquet is missing"),
    ("swcdata/files/removed/quarantined.parquet", lambda b: b[:-8] + b"\0" * 8, "removed/quarantined.parquet of the "
     "rebuilt version does not match the manifest"),
    ("swcdata/manifest.json", _edited_manifest, "the manifest does not match its manifest_digest"),
])
def test_pull_refuses_data_that_does_not_match_its_manifest(home: Path, server: FakeHub, tmp_path: Path, path: str,
                                                            change: Any, message: str) -> None:
    push("swc@v1", "me/swc", max_shard_size="20KB")
    if change is None:
        server.remove("me/swc", path, rev="v1")
    else:
        server.tamper("me/swc", path, change(server.files("me/swc", "v1")[path]), rev="v1")
    empty = tmp_path / "elsewhere"
    r = cli("pull", "me/swc@v1", "--home", str(empty))
    assert r.exit_code == 1 and message in r.output and "refused" in r.output, r.output
    assert not (empty / "swc").exists() or not any((empty / "swc").glob("v*"))  # nothing registered
    assert not list(empty.glob(".pull-*"))  # and the download is gone


def test_pull_refuses_another_version_under_the_same_number(home: Path, server: FakeHub, tmp_path: Path,
                                                           splits: dict[str, pa.Table]) -> None:
    push("swc@v1", "me/swc")
    mine = tmp_path / "mine"
    publish(mine, {s: t.slice(1) for s, t in splits.items()})  # another swc@v1
    r = cli("pull", "me/swc@v1", "--home", str(mine))
    assert r.exit_code == 1 and "swc@v1 is already in the registry" in r.output and "refused" in r.output
    assert sum(1 for _m, p, _s in server.requests if p.endswith(".parquet")) == 0  # refused before the data
    # a tag that does not name the version its manifest describes
    server.repo("me/swc").tags["v7"] = server.repo("me/swc").tags["v1"]
    r = cli("pull", "me/swc@v7", "--home", str(tmp_path / "x"))
    assert r.exit_code == 1 and "holds the manifest of swc@v1, not of v7" in r.output


def test_pulled_versions_keep_their_chain(home: Path, server: FakeHub, tmp_path: Path,
                                         splits: dict[str, pa.Table]) -> None:
    from swcdata.registry.store import _rmtree

    publish(home, {s: t.slice(1) for s, t in splits.items()})  # swc@v2, parent swc@v1
    push("swc@v1", "me/swc")
    push("swc@v2", "me/swc")
    empty = tmp_path / "b"
    rep = hub.pull("me/swc@v2", home=empty)  # its parent is not here: a warning, the chain unchecked
    assert rep.registered and rep.warnings == ["the parent swc@v1 is not in this registry: the chain to it is not "
                                               "checked (pull it too)"]
    assert hub.pull("me/swc@v1", home=empty).registered
    v = Registry(empty).verify("swc@v2")
    assert v.ok and not v.warnings, v
    # a registry with another swc@v1: v2 names a parent digest that v1 does not have
    mine = tmp_path / "mine"
    publish(mine, {s: t.slice(2) for s, t in splits.items()})
    with pytest.raises(DataError, match=r"swc@v2 from hf://me/swc@v2 .*parent_digest is"):
        hub.pull("me/swc@v2", home=mine)
    # a number this registry gave before (its folder gone, its log line kept) is never given to other data
    _rmtree(mine / "swc" / "v1")
    with pytest.raises(DataError, match="this registry gave the number v1 before"):
        hub.pull("me/swc@v1", home=mine)
    assert sorted(p.name for p in (mine / "swc").iterdir()) == [".lock", "log.jsonl"]


def test_pull_of_what_is_not_a_pushed_version(home: Path, server: FakeHub, tmp_path: Path) -> None:
    r = cli("pull", "me/nothing@v1", "--home", str(tmp_path / "a"))
    assert r.exit_code == 1 and "pull failed at the revision: RepositoryNotFoundError" in r.output, r.output
    push("swc@v1", "me/swc")
    r = cli("pull", "me/swc@v9", "--home", str(tmp_path / "a"))
    assert r.exit_code == 1 and "RevisionNotFoundError" in r.output
    server.remove("me/swc", "swcdata/manifest.json")
    r = cli("pull", "me/swc", "--home", str(tmp_path / "a"))
    assert r.exit_code == 1 and "has no swcdata/manifest.json" in r.output
    r = cli("pull", "me/swc@", "--home", str(tmp_path / "a"))
    assert r.exit_code == 2 and "invalid Hub dataset" in r.output


def test_a_tag_that_holds_another_version_is_never_moved(home: Path, server: FakeHub, tmp_path: Path,
                                                         splits: dict[str, pa.Table]) -> None:
    push("swc@v1", "me/swc")
    head = server.repo("me/swc").branches["main"]
    rep = push("swc@v1", "me/swc")  # run again: the tag holds this version, nothing to send
    assert rep.tag_existed and rep.commit_oid == server.repo("me/swc").tags["v1"] and rep.commits == []
    other = tmp_path / "other"
    publish(other, {s: t.slice(2) for s, t in splits.items()})
    with pytest.raises(HubError, match=r"push refused: the tag v1 already exists on me/swc and holds another "
                       r"version than swc@v1 .*; nothing was sent"):
        push("swc@v1", "me/swc", home=other)
    repo = server.repo("me/swc")
    assert repo.tags["v1"] == rep.commit_oid and repo.branches["main"] == head


# ---- the token --------------------------------------------------------------------------------


def test_the_token_is_never_printed_or_written(home: Path, server: FakeHub, tmp_path: Path) -> None:
    outputs = []
    server.fail("POST", r"/commit/main$", "drop")
    for args in (["push", "swc@v1", "--repo", "me/swc"],  # (fails: the error line)
                 ["push", "swc@v1", "--repo", "me/swc", "--json", "--report", str(tmp_path / "push.json"),
                  "--out", str(tmp_path / "staged"), "--max-shard-size", "20KB"],
                 ["push", "swc@v1", "--repo", "me/swc"],
                 ["pull", "me/swc@v1", "--home", str(tmp_path / "pulled"), "--json", "--report",
                  str(tmp_path / "pull.json")],
                 ["pull", "me/swc@v1", "--home", str(tmp_path / "pulled")],
                 ["pull", "me/nothing", "--home", str(tmp_path / "pulled")]):
        r = runner.invoke(app, args)
        outputs.append(r.output)
    assert server.auth_headers_seen > 0  # the token was sent, to the Hub only
    assert json.loads((tmp_path / "push.json").read_text())["tag"] == "v1"
    assert json.loads((tmp_path / "pull.json").read_text())["ref"] == "swc@v1"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 30 and any(p.name == "log.jsonl" for p in written)
    for p in written:
        assert SECRET.encode() not in p.read_bytes(), p
    for text in outputs:
        assert SECRET not in text


# ---- staging, dry runs and the factory --------------------------------------------------------


def test_dry_run_makes_no_api_call_and_needs_no_token(home: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def no_api() -> Any:
        raise AssertionError("the API factory must not be called in a dry run")

    out = tmp_path / "stage"
    rep = push("swc", "me/swc", dry_run=True, api_factory=no_api, work_dir=out)
    assert rep.dry_run and rep.staging_dir == str(out)
    assert [op.method for op in rep.operations] == ["create_repo", "list_repo_tree", "create_commit", "create_tag"]
    assert rep.operations[-1].kwargs["tag"] == "v1"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        f.path for f in rep.files] == rep.operations[2].kwargs["add"]
    assert [f.path for f in rep.files if f.path.startswith("data/")] == [
        "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet"]
    assert rep.max_shard_size == 500_000_000 and rep.bytes == sum(f.bytes for f in rep.files)
    # without --out a temporary folder is kept and named
    rep2 = push("swc", "me/swc", dry_run=True, api_factory=no_api)
    assert rep2.staging_dir and Path(rep2.staging_dir, "README.md").is_file()
    # staging is deterministic
    assert [f.sha256 for f in rep2.files] == [f.sha256 for f in rep.files]
    shutil.rmtree(rep2.staging_dir)


def test_staging_folder_loads_with_load_dataset_and_matches_the_version(home: Path, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "stage"
    push("swc@v1", "me/swc", dry_run=True, work_dir=out, max_shard_size="30KB")
    assert len(list(out.glob("data/train-*"))) == 4
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    dd, _ = Registry().load("swc@v1")
    assert list(loaded) == list(dd) == ["train", "validation", "test"]
    for split in dd:
        assert loaded[split]["id"] == dd[split]["id"]
        assert loaded[split].to_list() == dd[split].to_list()


@pytest.mark.parametrize(("text", "n"), [("500MB", 500_000_000), ("1GB", 10**9), ("1gb", 10**9), ("256MiB", 2**28),
                                         ("1000000", 10**6), (" 20 KB ", 20_000), ("1.5MB", 1_500_000), (7, 7)])
def test_sizes(text: Any, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "MB", "5 parsecs", "-1MB", "0", "1e6"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="--max-shard-size"):
        parse_size(text)


def test_shard_ranges_cover_every_row_once() -> None:
    assert shard_ranges(0, 0, 10) == [(0, 0)]
    assert shard_ranges(10, 5, 10) == [(0, 10)]
    assert shard_ranges(10, 25, 10) == [(0, 3), (3, 3), (6, 4)]
    assert shard_ranges(3, 10**9, 10) == [(0, 1), (1, 1), (2, 1)]  # (never an empty shard)


def test_bad_size_option_is_a_usage_error(home: Path) -> None:
    r = cli("push", "swc@v1", "--repo", "me/swc", "--dry-run", "--max-shard-size", "lots")
    assert r.exit_code == 2 and "--max-shard-size 'lots' is not a size" in r.output


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
    assert isinstance(hub.make_api(write=False), huggingface_hub.HfApi)  # (reading a public repo needs none)
    r = runner.invoke(app, ["push", "swc@v1", "--repo", "me/swc"])
    assert r.exit_code == 2 and "HF_TOKEN" in r.output and "Traceback" not in r.output
    # refused before staging: a retry with the same --out finds it still empty
    r = runner.invoke(app, ["push", "swc@v1", "--repo", "me/swc", "--out", str(home.parent / "staged")])
    assert r.exit_code == 2 and not (home.parent / "staged").exists()


def test_make_api_reads_hf_endpoint_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: SECRET)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    api = hub.make_api()
    assert isinstance(api, huggingface_hub.HfApi) and api.endpoint == "http://127.0.0.1:9"
    monkeypatch.delenv("HF_ENDPOINT")
    assert hub.make_api().endpoint == huggingface_hub.constants.ENDPOINT


def test_invalid_repo_id_and_non_empty_out(home: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="invalid Hub repo id"):
        push("swc@v1", "just-a-name", dry_run=True)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "other.txt").write_text("x")
    with pytest.raises(InputError, match="not an empty folder"):
        push("swc@v1", "me/swc", dry_run=True, work_dir=busy)
    r = cli("push", "swc@v1", "--repo", "me/swc", "--dry-run", "--report", str(home / "r.json"))
    assert r.exit_code == 2 and "inside the registry" in r.output


def test_cli_push_dry_run_plain_and_json(home: Path, tmp_path: Path) -> None:
    r = cli("push", "swc@v1", "--repo", "me/swc", "--dry-run", "--out", str(tmp_path / "s"), "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["dry_run"] and rep["tag"] == "v1" and (tmp_path / "s" / "README.md").is_file()
    r = cli("push", "swc@v1", "--repo", "me/swc", "--dry-run", "--out", str(tmp_path / "s2"))
    assert r.exit_code == 0 and "dry run" in r.output and "create_commit" in r.output


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
