"""Issue 24: prepared inputs. What validation made of a whole input file, kept by its bytes in the build cache
(`steps.prepared`) and taken back by the next build that reads the same bytes: exactly the records, quarantine,
report and checked texts that validating it again gives, on the seed corpus and on hostile lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from swcdata.registry.build import load_config, run_build
from swcdata.registry.cache import CACHE_DIR
from swcdata.steps.prepared import PreparedInputs, prepared_params
from swcdata.steps.validate import CodeChecks, ValidateConfig, load_valid


def _strip(report: Any) -> dict[str, Any]:
    return report.model_dump(exclude={"seconds", "records_per_second"})


def _same(a: tuple[Any, Any, list[Any]], b: tuple[Any, Any, list[Any]]) -> None:
    assert a[0].equals(b[0])
    assert _strip(a[1]) == _strip(b[1])
    assert [q.to_json() for q in a[2]] == [q.to_json() for q in b[2]]


def _validated(files: list[Path], cfg: ValidateConfig, folder: Path) -> tuple[Any, PreparedInputs, CodeChecks]:
    prepared = PreparedInputs(cfg, folder)
    checks = CodeChecks(cfg)
    got = load_valid([str(f) for f in files], cfg, checks=checks, prepared=prepared)
    return got, prepared, checks


def test_files_taken_whole_give_what_validating_them_gives(seed_files: list[Path], tmp_path: Path) -> None:
    cfg = ValidateConfig()
    plain = load_valid([str(f) for f in seed_files], cfg)
    folder = tmp_path / "inputs"
    first, p1, c1 = _validated(seed_files, cfg, folder)
    assert p1.reused == 0 and p1.lines == plain[1].ledger.lines_read
    assert p1.write() is None and p1.kept == p1.lines
    assert len(list(folder.iterdir())) == len(seed_files)
    again, p2, c2 = _validated(seed_files, cfg, folder)
    assert p2.reused == p2.lines == plain[1].ledger.lines_read and p2.notes == []
    _same(first, plain)
    _same(again, plain)  # (the sha256 of each input too: the report's inputs)
    # the code checks see every text the file's validation checked, as taken from their memo
    assert c2.checked == c1.checked and c2.reused == c1.checked
    m1, m2 = c1.memo(), c2.memo()
    assert (m1.keys == m2.keys).all() and m1.values == m2.values


def test_the_same_bytes_elsewhere_are_taken_under_their_new_name(seed_files: list[Path], tmp_path: Path) -> None:
    cfg = ValidateConfig(check_code=False)
    folder = tmp_path / "inputs"
    _, p1, _ = _validated(seed_files[:1], cfg, folder)
    p1.write()
    copy = tmp_path / "elsewhere" / "renamed.jsonl"
    copy.parent.mkdir()
    shutil.copy(seed_files[0], copy)
    got, p2, _ = _validated([copy], cfg, folder)
    assert p2.reused == p2.lines > 0
    _same(got, load_valid([str(copy)], cfg))
    assert set(got[0].column("source").combine_chunks().field("file").to_pylist()) == {str(copy)}


def test_changed_bytes_are_validated_again(seed_files: list[Path], tmp_path: Path) -> None:
    cfg = ValidateConfig(check_code=False)
    folder = tmp_path / "inputs"
    f = tmp_path / "f.jsonl"
    shutil.copy(seed_files[0], f)
    _, p1, _ = _validated([f], cfg, folder)
    p1.write()
    data = bytearray(f.read_bytes())
    data[data.index(b'"category"') + 14] ^= 1  # (the same size: the digest tells them apart)
    f.write_bytes(bytes(data))
    got, p2, _ = _validated([f], cfg, folder)
    assert p2.reused == 0 and p2.notes == []
    _same(got, load_valid([str(f)], cfg))
    assert p2.write() is None and len(list(folder.iterdir())) == 1  # (the old entry removed: one build's inputs)


def test_hostile_lines_round_trip(tmp_path: Path) -> None:
    """Blank, CRLF and invalid UTF-8 lines, a byte-order mark, no final newline, quarantined records: replayed as
    read."""
    good = {"instruction": "Find the bug:\n```solidity\ncontract A { function f() public { x = 1; } }\n```",
            "response": "Nothing calls out, so it is fine here.", "category": "SWC-107"}
    lines = [b"\xef\xbb\xbf" + json.dumps(good).encode(), b"", json.dumps({**good, "category": "SWC-999"}).encode(),
             b'{"instruction": "\xff\xfe bad", "response": "x", "category": "SWC-107"}', b"[1, 2]",
             json.dumps({**good, "response": "A different answer with enough text."}).encode() + b"\r"]
    f = tmp_path / "hostile.jsonl"
    f.write_bytes(b"\n".join(lines))
    cfg = ValidateConfig()
    folder = tmp_path / "inputs"
    first, p1, _ = _validated([f], cfg, folder)
    p1.write()
    again, p2, _ = _validated([f], cfg, folder)
    assert p2.reused == p2.lines == 6
    _same(again, first)
    assert len(again[2]) == 3 and first[1].inputs[0].blank_lines == 1
    assert any(q.raw is not None for q in again[2])  # (the invalid UTF-8 line, byte for byte)


@pytest.mark.parametrize("damage", ["records", "outcome", "params", "checked"])
def test_an_entry_that_cannot_be_trusted_is_not_used(damage: str, seed_files: list[Path], tmp_path: Path) -> None:
    cfg = ValidateConfig()
    folder = tmp_path / "inputs"
    _, p1, _ = _validated(seed_files[:1], cfg, folder)
    p1.write()
    [entry] = list(folder.iterdir())
    if damage == "records":
        data = bytearray((entry / "records.arrow").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (entry / "records.arrow").write_bytes(bytes(data))
        why = "records.arrow does not match its digest"
    elif damage == "checked":
        (entry / "checked.bin").write_bytes((entry / "checked.bin").read_bytes()[:-16])
        why = "checked.bin does not match its digest"
    elif damage == "outcome":
        (entry / "outcome.json").write_bytes(b'{"format": 1, "params"')
        why = "outcome.json is not JSON"
    else:
        doc = json.loads((entry / "outcome.json").read_bytes())
        doc["params"] = prepared_params(ValidateConfig(max_chars=99)).model_dump(mode="json")
        (entry / "outcome.json").write_text(json.dumps(doc), encoding="utf-8")
        why = "max_chars 99 (wanted 16384)"
    got, p2, _ = _validated(seed_files[:1], cfg, folder)
    assert p2.reused == 0 and len(p2.notes) == 1 and why in p2.notes[0]
    _same(got, load_valid([str(seed_files[0])], cfg))
    assert p2.write() is None and p2.kept == p2.lines  # (replaced by this run's entry)
    _, p3, _ = _validated(seed_files[:1], cfg, folder)
    assert p3.reused == p3.lines and not p3.notes


def _build(home: Path, inputs: list[Path], cache: bool = True) -> Any:
    cfg, base = load_config(None, {"name": "s", "inputs": [str(p) for p in inputs], "augment.enabled": False})
    return run_build(cfg, base, home=home, cache=cache)


def test_a_build_reads_only_the_inputs_it_has_not_seen(swc_files: list[Path], tmp_path: Path) -> None:
    v1 = _build(tmp_path / "a", swc_files[:2])
    v2 = _build(tmp_path / "a", swc_files[:3])
    full = _build(tmp_path / "b", swc_files[:3], cache=False)
    assert v2.content_hash == full.content_hash and v2.ref == "s@v2"
    assert v1.cache["inputs"].reused == 0 and v1.cache["inputs"].kept == v1.ledger.lines_read
    assert v2.cache["inputs"].reused == v1.ledger.lines_read and v2.cache["inputs"].texts == v2.ledger.lines_read
    assert v2.cache["checks"].reused >= v1.cache["checks"].texts
    inputs = tmp_path / "a" / "s" / CACHE_DIR / "inputs"
    assert len(list(inputs.iterdir())) == 3
    # one build's inputs are kept: a build of one file leaves one entry
    v3 = _build(tmp_path / "a", swc_files[2:3])
    assert v3.cache["inputs"].reused == v3.ledger.lines_read and len(list(inputs.iterdir())) == 1
