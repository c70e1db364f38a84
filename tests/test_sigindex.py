"""The signature index per version (issue 24): its format, incremental builds identical to full ones, parameters that
differ, tampering, `dedup --against` and `audit --reference` with a version."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.core.errors import DataError
from swcdata.registry.build import load_config, run_build
from swcdata.registry.manifest import INDEX_FILE
from swcdata.registry.store import Registry
from swcdata.similarity import minhash
from swcdata.similarity.sigindex import IndexParams, SignatureIndex, read_index, text_keys, write_index
from swcdata.steps.dedup import DedupConfig, dedup

runner = CliRunner()


def _params(**kw: Any) -> IndexParams:
    return DedupConfig(**kw).index_params()


# --------------------------------------------------------------------------- the index itself


def test_text_keys_tell_apart_what_the_record_id_folds() -> None:
    ins = pa.array(["ab", "a", "Uint x = 1;", "uint x = 1;", "ab"])
    res = pa.array(["c", "bc", "", "", "c"])
    k = text_keys(ins, res)
    assert k.shape == (5, 2)
    distinct = {tuple(r) for r in k.tolist()}
    assert len(distinct) == 4  # ("ab", "c") twice; the split point and the case both count
    assert (k[0] == k[4]).all()


def test_an_index_round_trips_through_parquet_and_finds_its_keys(tmp_path: Path) -> None:
    params = _params(num_perm=32)
    gen = np.random.default_rng(0)
    keys = gen.integers(0, 2**63, (50, 2), dtype=np.int64).astype(np.uint64)
    sig = gen.integers(0, 2**32 - 1, (50, 32), dtype=np.int64).astype(np.uint32)
    sig[7] = minhash.EMPTY  # a text without shingles is not indexed
    index = SignatureIndex.of(params, np.concatenate([keys, keys[:5]]), np.concatenate([sig, sig[:5]]))
    assert len(index) == 49
    write_index(index, tmp_path / "i.parquet")
    back = read_index(tmp_path / "i.parquet")
    assert back.params == params and (back.keys == index.keys).all() and (back.sig == index.sig).all()
    pos = back.find(keys)
    assert pos[7] == -1 and (pos[np.arange(50) != 7] >= 0).all()
    assert (back.sig[pos[:7]] == sig[:7]).all()
    table = pq.read_table(tmp_path / "i.parquet")
    assert table.column_names == ["key", "signature", "bands"] and table.num_rows == 49
    assert table.schema.field("bands").type == pa.binary(8 * params.bands)


def test_an_index_of_many_row_groups_reads_back_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_index copies row group after row group into the index's arrays: every row, in order."""
    from swcdata.similarity import sigindex

    params = _params(num_perm=16)
    gen = np.random.default_rng(2)
    index = SignatureIndex.of(params, gen.integers(0, 2**63, (1000, 2), dtype=np.int64).astype(np.uint64),
                              gen.integers(0, 2**32 - 1, (1000, 16), dtype=np.int64).astype(np.uint32))
    monkeypatch.setattr(sigindex, "ROW_GROUP", 77)
    write_index(index, tmp_path / "i.parquet")
    assert pq.ParquetFile(tmp_path / "i.parquet").num_row_groups == 13
    back = read_index(tmp_path / "i.parquet")
    assert np.array_equal(back.keys, index.keys) and np.array_equal(back.sig, index.sig)


def test_merged_keeps_the_rows_it_is_told_and_inserts_the_new() -> None:
    """SignatureIndex.merged(keys, sig, keep) is the index of the kept rows with the new ones inserted, whether the
    kept rows are copied run by run (few runs) or gathered first (many): the same index as one made of the rows."""
    from swcdata.similarity.sigindex import _spliced

    gen = np.random.default_rng(3)
    params = _params(num_perm=16)
    for m, n_new, share in ((5000, 40, 0.999), (5000, 3000, 0.6), (300, 0, 0.99), (300, 10, 1.0), (0, 5, 1.0)):
        keys = gen.integers(0, 2**63, (m + n_new, 2), dtype=np.int64).astype(np.uint64)
        sig = gen.integers(0, 2**32 - 1, (m + n_new, 16), dtype=np.int64).astype(np.uint32)
        base = SignatureIndex.of(params, keys[:m], sig[:m])
        keep = gen.random(len(base)) < share
        got = base.merged(keys[m:], sig[m:], keep)
        want = SignatureIndex.of(params, np.concatenate([base.keys[keep], keys[m:]]),
                                 np.concatenate([base.sig[keep], sig[m:]]))
        assert np.array_equal(got.keys, want.keys) and np.array_equal(got.sig, want.sig), (m, n_new, share)
    rows = gen.integers(0, 9, (500, 3)).astype(np.uint32)
    for kept in (None, np.flatnonzero(gen.random(500) < 0.98)):
        n = 500 if kept is None else len(kept)
        pos = np.sort(gen.integers(0, n + 1, 20)).astype(np.int64)
        values = gen.integers(0, 9, (20, 3)).astype(np.uint32)
        assert np.array_equal(_spliced(rows, kept, pos, values),
                              np.insert(rows if kept is None else rows[kept], pos, values, axis=0))


def test_an_index_of_other_parameters_says_what_differs() -> None:
    assert _params().differences(_params()) == []
    assert _params(threshold=0.8).differences(_params()) == []  # (only the banding differs: same signatures)
    diff = _params(num_perm=64).differences(_params())
    assert diff == ["num_perm 64 (wanted 128)"]
    assert "token_stream 0 (wanted 1)" in _params().model_copy(update={"token_stream": 0}).differences(_params())


def test_a_file_that_is_no_index_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"key": [b"x"]}), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="no parameters"):
        read_index(tmp_path / "x.parquet")


def test_dedup_with_a_partial_index_gives_the_full_result(seed_files: list[Path]) -> None:
    from swcdata.steps.validate import load_valid

    table, _, _ = load_valid([str(f) for f in seed_files])
    cfg = DedupConfig()
    kept, rep = dedup(table, cfg)
    assert rep.signed is not None and rep.reused_signatures == 0
    full = rep.signed.index(cfg.index_params())
    half = SignatureIndex(full.params, full.keys[::2], full.sig[::2])
    kept2, rep2 = dedup(table, cfg, known=half)
    assert rep2.reused_signatures == len(half)
    assert kept2.equals(kept) and rep2.removed_table.equals(rep.removed_table)
    assert rep2.clusters_table.equals(rep.clusters_table)


# --------------------------------------------------------------------------- builds


def _build(home: Path, inputs: list[Path], **overrides: Any) -> Any:
    cfg, base = load_config(None, {"name": "s", "inputs": [str(p) for p in inputs], "augment.enabled": False,
                                   **overrides})
    return run_build(cfg, base, home=home)


def _index_bytes(home: Path, ref: str) -> bytes:
    reg = Registry(home)
    return (reg.path(reg.resolve(ref)) / INDEX_FILE).read_bytes()


@pytest.fixture(scope="module")
def incremental(tmp_path_factory: pytest.TempPathFactory, swc_files: list[Path]) -> dict[str, Any]:
    """v1 of one SWC file, then v2 of two in the same registry (incremental) and in a fresh one (full), augmented."""
    root = tmp_path_factory.mktemp("incr")
    v1 = _build(root / "a", swc_files[:1], **{"augment.enabled": True})
    v2 = _build(root / "a", swc_files[:2], **{"augment.enabled": True})
    full = _build(root / "b", swc_files[:2], **{"augment.enabled": True})
    return {"root": root, "v1": v1, "v2": v2, "full": full}


def test_an_incremental_build_signs_only_new_texts_and_equals_the_full_build(incremental: dict[str, Any]) -> None:
    v1, v2, full, root = incremental["v1"], incremental["v2"], incremental["full"], incremental["root"]
    assert v1.index["reused"] == 0 and v1.index["signed"] == v1.index["records"]
    assert v1.index["note"].startswith("no earlier version")
    assert v2.ref == "s@v2" and full.ref == "s@v1"
    assert v2.content_hash == full.content_hash
    assert _index_bytes(root / "a", "s@v2") == _index_bytes(root / "b", "s@v1")
    # what v1 signed (its inputs, its augmented variants) is reused; the full build reused nothing
    assert v2.index["reused_from"] == "s@v1" and v2.index["reused"] > 0.9 * v1.index["records"]
    assert v2.index["signed"] < full.index["signed"] and full.index["reused"] == 0
    assert v2.index["reused"] + v2.index["signed"] == full.index["signed"]
    m = Registry(root / "a").resolve("s@v2")
    assert m.index is not None and m.index.reused == v2.index["reused"] and INDEX_FILE in m.files
    assert Registry(root / "a").verify("s@v2").ok


def test_an_index_of_other_parameters_is_not_reused(tmp_path: Path, swc_files: list[Path]) -> None:
    home = tmp_path / "reg"
    _build(home, swc_files[:2], **{"dedup.num_perm": 64})
    v2 = _build(home, swc_files[:3])
    assert v2.index["reused"] == 0 and v2.index["reused_from"] is None
    assert "other parameters" in v2.index["note"] and "num_perm 64 (wanted 128)" in v2.index["note"]
    assert v2.index["params"]["num_perm"] == 128
    assert _index_bytes(home, "s@v2") == _index_bytes(_fresh(tmp_path, swc_files[:3]), "s@v1")


def _fresh(tmp_path: Path, inputs: list[Path]) -> Path:
    home = tmp_path / "fresh"
    _build(home, inputs)
    return home


def _writable(path: Path) -> None:
    for p in [path, *path.parents][:4]:
        os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)


def test_a_tampered_index_is_an_error_for_the_next_build_and_for_verify(tmp_path: Path,
                                                                        swc_files: list[Path]) -> None:
    home = tmp_path / "reg"
    _build(home, swc_files[:2])
    reg = Registry(home)
    path = reg.path(reg.resolve("s@v1")) / INDEX_FILE
    _writable(path)
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"signature index .* does not match"):
        _build(home, swc_files[:3])
    report = reg.verify("s@v1")
    assert not report.ok and any(f.path == INDEX_FILE for f in report.files)


def test_a_build_without_near_duplicates_writes_no_index(tmp_path: Path, swc_files: list[Path]) -> None:
    r = _build(tmp_path / "reg", swc_files[:1], **{"dedup.near": False})
    assert r.index is None
    reg = Registry(tmp_path / "reg")
    assert not (reg.path(reg.resolve("s@v1")) / "index").exists()


# --------------------------------------------------------------------------- dedup --against, audit --reference


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8-sig").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, swc_files: list[Path]) -> dict[str, Any]:
    """s@v1 of the first two SWC files, and a batch: 20 of its records as they are, 20 with their instruction's
    words changed a little (near copies), and 20 records of another file (new)."""
    root = tmp_path_factory.mktemp("against")
    home = root / "reg"
    _build(home, swc_files[:2])
    splits, _ = Registry(home).tables("s@v1")
    train = splits["train"].to_pylist()
    gen = np.random.default_rng(3)
    picked = [train[i] for i in gen.choice(len(train), 40, replace=False)]
    fields = ("instruction", "response", "category")
    exact = [{k: r[k] for k in fields} for r in picked[:20]]
    near = [{**{k: r[k] for k in fields}, "instruction": r["instruction"] + " Please explain briefly."}
            for r in picked[20:]]
    new = [{k: r[k] for k in fields} for r in _lines(swc_files[3])[:20]]
    batch = root / "batch.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in exact + near + new), encoding="utf-8")
    return {"home": home, "batch": batch, "picked": picked, "root": root}


def test_dedup_against_a_version_names_its_records(published: dict[str, Any], monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    root, home = published["root"], published["home"]
    out, report = root / "kept.jsonl", root / "r.json"
    res = runner.invoke(app, ["dedup", str(published["batch"]), "--out", str(out), "--report", str(report),
                              "--against", "s@v1", "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(report.read_text())
    a = rep["against"]
    assert a["version"] == "s@v1" and a["exact"] == 20 and a["near"] >= 18
    assert a["reused_signatures"] == a["records"] and a["signed"] == 0
    assert "signature index of s@v1" in a["note"]
    led = rep["ledger"]
    assert led["records"] == 60 and led["kept"] + led["exact_duplicates"] + led["near_duplicates"] == 60
    removed = pq.read_table(root / "r.removed.parquet").to_pylist()
    by_version = [r for r in removed if r["duplicate_of"]["version"] == "s@v1"]
    assert len(by_version) == a["exact"] + a["near"]
    ids = {r["id"]: r for r in published["picked"]}
    for r in by_version[:20]:
        assert r["kind"] == "exact" and r["cluster"] is None
        assert r["duplicate_of"]["id"] == r["id"] and r["duplicate_of"]["id"] in ids
        assert r["duplicate_of"]["source"] == ids[r["id"]]["source"]
    for r in (r for r in by_version if r["kind"] == "near"):
        assert r["similarity"] >= 0.7 and r["duplicate_of"]["id"] in ids
    lines = [r["source"]["line"] for r in removed]
    assert lines == sorted(lines)  # (input order)
    kept = _lines(out)
    assert len(kept) == led["kept"] == 60 - len(removed) and len(kept) >= 15  # (the new records, less their own copies)
    assert not {r["id"] for r in kept} & {r["id"] for r in published["picked"][:20]}


def test_dedup_against_signs_the_version_afresh_when_its_index_differs(published: dict[str, Any]) -> None:
    root, home = published["root"], published["home"]
    res = runner.invoke(app, ["dedup", str(published["batch"]), "--out", str(root / "k64.jsonl"), "--num-perm", "64",
                              "--against", "s@v1", "--home", str(home), "--json"])
    assert res.exit_code == 0, res.output
    a = json.loads(res.stdout)["against"]
    assert a["reused_signatures"] == 0 and a["signed"] == a["records"] and "other parameters" in a["note"]
    assert a["exact"] == 20 and a["near"] >= 15


@pytest.mark.parametrize(("against", "expected"), [("nope.jsonl", "is not a version"),
                                                   ("missing@v1", "missing")])
def test_dedup_against_what_is_no_version_is_refused(published: dict[str, Any], against: str, expected: str) -> None:
    root = published["root"]
    res = runner.invoke(app, ["dedup", str(published["batch"]), "--out", str(root / "x.jsonl"), "--against", against,
                              "--home", str(published["home"])])
    assert res.exit_code != 0 and expected in res.output
    assert not (root / "x.jsonl").exists()


def test_audit_takes_a_version_as_its_reference(published: dict[str, Any]) -> None:
    res = runner.invoke(app, ["audit", "--reference", "s@v1", "--candidate", str(published["batch"]),
                              "--home", str(published["home"]), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["reference_versions"] == ["s@v1"] and rep["reference_input"] is None
    assert rep["summary"]["exact"] == 20 and rep["summary"]["near"] >= 15
    m = Registry(published["home"]).resolve("s@v1")
    assert rep["summary"]["reference_records"] == m.records


def test_the_index_travels_with_an_exported_copy(published: dict[str, Any], tmp_path: Path) -> None:
    """A registry copied elsewhere keeps its index usable (paths are relative to the version folder)."""
    copy = tmp_path / "copy"
    shutil.copytree(published["home"], copy)
    index = Registry(copy).signature_index("s@v1")
    assert index is not None and len(index) == Registry(copy).resolve("s@v1").index.records


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")
def test_dedup_against_on_ray_gives_the_local_files(published: dict[str, Any], ray_cluster: Any,
                                                    tmp_path: Path) -> None:
    outs = {}
    for engine in ("local", "ray"):
        folder = tmp_path / engine
        folder.mkdir()
        res = runner.invoke(app, ["dedup", str(published["batch"]), "--out", str(folder / "kept.jsonl"), "--report",
                                  str(folder / "r.json"), "--against", "s@v1", "--home", str(published["home"]),
                                  "--engine", engine])
        assert res.exit_code == 0, res.output
        rep = json.loads((folder / "r.json").read_text())
        for key in ("timings", "records_per_second", "backend"):
            rep.pop(key)
        outs[engine] = (rep, (folder / "kept.jsonl").read_bytes(), pq.read_table(folder / "r.removed.parquet"),
                        pq.read_table(folder / "r.clusters.parquet"))
    (rep_l, kept_l, rem_l, cl_l), (rep_r, kept_r, rem_r, cl_r) = outs["local"], outs["ray"]
    assert rep_r == rep_l and rep_l["against"]["exact"] == 20
    assert kept_r == kept_l and rem_r.equals(rem_l) and cl_r.equals(cl_l)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")
def test_audit_on_ray_takes_a_version_with_files_as_the_local_audit_does(published: dict[str, Any],
                                                                         ray_cluster: Any, swc_files: list[Path]
                                                                         ) -> None:
    reps = {}
    for engine in ("local", "ray"):
        res = runner.invoke(app, ["audit", "-r", str(swc_files[4]), "-r", "s@v1", "--candidate",
                                  str(published["batch"]), "--home", str(published["home"]), "--json",
                                  "--engine", engine])
        assert res.exit_code == 0, res.output
        reps[engine] = {k: v for k, v in json.loads(res.stdout).items() if k not in ("timings", "backend")}
    assert reps["ray"] == reps["local"] and reps["local"]["reference_versions"] == ["s@v1"]
    assert reps["local"]["summary"]["exact"] == 20


def test_show_names_the_index(published: dict[str, Any]) -> None:
    res = runner.invoke(app, ["show", "s@v1", "--home", str(published["home"])])
    assert res.exit_code == 0, res.output
    assert "Signature index" in res.output and INDEX_FILE in res.output and "no earlier version" in res.output


def test_merged_inserts_in_key_order_as_a_sort_would() -> None:
    """`SignatureIndex.merged` puts the new rows in place (first words equal included): the index a sort of both
    gives."""
    p = IndexParams(num_perm=8, ngram=3, seed=0, abstract_identifiers=True, abstract_literals=True, bands=2, rows=4)
    rng = np.random.default_rng(0)
    for t in range(40):
        n, m = int(rng.integers(0, 200)), int(rng.integers(1, 50))
        high = 8 if t % 2 else 2**64 - 1  # (small words: keys whose first words are equal)
        k = rng.integers(0, high, (n + m, 2), dtype=np.uint64)
        s = rng.integers(0, 2**32 - 1, (n + m, 8), dtype=np.uint32)
        s[rng.random(n + m) < 0.1] = minhash.EMPTY
        base = SignatureIndex.of(p, k[:n], s[:n])
        got = base.merged(k[n:], s[n:])
        new = base.find(k[n:]) < 0
        want = SignatureIndex.of(p, np.concatenate([base.keys, k[n:][new]]), np.concatenate([base.sig, s[n:][new]]))
        assert np.array_equal(got.keys, want.keys) and np.array_equal(got.sig, want.sig)
