"""The reader loses nothing: a matrix of bad lines, each reported on the right line with the right rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swcdata.core.errors import InputError
from swcdata.core.io import FileStats, decode_line, iter_chunks, iter_units, read_unit, resolve_inputs, split_unit
from swcdata.steps.validate import ValidateConfig, Validation

GOOD = {"instruction": "Find the bug:\n\nfunction f() public { x += 1; }", "response": "Overflow, use SafeMath.",
        "category": "SWC-101"}


def _line(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# (line bytes, expected rule, expected field) -- one line each, written after a good first line
MATRIX: list[tuple[str, bytes, str, str | None]] = [
    ("invalid utf-8", b'{"instruction": "caf\xe9", "response": "r", "category": "SWC-101"}', "invalid-utf8", None),
    ("truncated json", b'{"instruction": "x", "response": ', "invalid-json", None),
    ("trailing comma", b'{"instruction": "x",}', "invalid-json", None),
    ("array", b'[1, 2, 3]', "not-an-object", None),
    ("string", b'"just a string"', "not-an-object", None),
    ("number", b"42", "not-an-object", None),
    ("null", b"null", "not-an-object", None),
    ("missing response", _line({"instruction": "function f() {}", "category": "SWC-107"}), "missing-field",
     "response"),
    ("missing category", _line({"instruction": "function f() {}", "response": "ok"}), "missing-field", "category"),
    ("empty instruction", _line({**GOOD, "instruction": "   "}), "empty-field", "instruction"),
    ("number response", _line({**GOOD, "response": 7}), "wrong-type", "response"),
    ("list category", _line({**GOOD, "category": ["SWC-101"]}), "wrong-type", "category"),
    ("lower-case category", _line({**GOOD, "category": "swc-101"}), "malformed-category", "category"),
    ("free-text category", _line({**GOOD, "category": "Reentrancy"}), "malformed-category", "category"),
    ("unknown category", _line({**GOOD, "category": "SWC-199"}), "unknown-category", "category"),
    ("metadata not object", _line({**GOOD, "metadata": "x"}), "wrong-type", "metadata"),
]


@pytest.mark.parametrize(("name", "raw", "rule", "field"), MATRIX, ids=[m[0] for m in MATRIX])
def test_bad_line_is_quarantined_with_its_rule_and_line(tmp_path: Path, name: str, raw: bytes, rule: str,
                                                        field: str | None) -> None:
    p = _write(tmp_path, "in.jsonl", _line(GOOD) + b"\n" + raw + b"\n" + _line(GOOD) + b"\n")
    quarantined = []
    rep = Validation(ValidateConfig(check_code=False)).run([p], on_quarantine=quarantined.extend)
    assert rep.ledger.records == 3 and rep.ledger.valid == 2 and rep.ledger.quarantined == 1
    assert rep.ledger.adds_up
    errors = [f for f in rep.findings if f.severity == "error"]
    assert [(f.rule, f.line, f.field) for f in errors] == [(rule, 2, field)]
    [q] = quarantined
    assert q.line == 2
    if rule == "invalid-utf8":
        assert q.text is None and q.raw == raw and "byte offset" in errors[0].message
    else:
        assert q.text == raw.decode()  # verbatim


def test_bom_crlf_blank_lines_and_no_final_newline(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + _line(GOOD) + b"\r\n\r\n   \r\n" + _line({**GOOD, "response": "other"}) + b"\r\n\n" + \
        _line({**GOOD, "response": "third"})
    p = _write(tmp_path, "crlf.jsonl", data)
    rows: list[dict] = []
    rep = Validation(ValidateConfig(check_code=False)).run([p], on_batch=lambda b: rows.extend(b.to_pylist()))
    assert rep.errors == 0
    assert rep.ledger.lines_read == 6 and rep.ledger.blank_lines == 3 and rep.ledger.valid == 3
    assert [r["source"]["line"] for r in rows] == [1, 4, 6]
    assert rows[0]["instruction"] == GOOD["instruction"]  # the BOM is not part of the first record
    st = FileStats(str(p))
    list(iter_chunks(p, st))
    assert st.had_bom and st.crlf_lines == 4 and not st.final_newline


def test_duplicate_keys_are_found_exactly() -> None:
    raw = b'{"instruction": "a", "response": "first", "category": "SWC-101", "response" : "second"}'
    d = decode_line(raw)
    assert d.obj is not None and d.obj["response"] == "second" and d.duplicate_keys == ["response"]
    # escaped quotes followed by a colon inside a value are not keys
    clean = json.dumps({"instruction": 'say \\": here "x": y', "response": "r", "category": "SWC-101"}).encode()
    assert decode_line(clean).duplicate_keys is None
    nested = b'{"instruction": "a", "response": "b", "category": "SWC-101", "metadata": {"k": 1, "k": 2}}'
    assert decode_line(nested).duplicate_keys == ["k"]


def test_duplicate_keys_in_compact_lines() -> None:
    # compact lines (the fast path: the line is its object's own compact form) and nested objects
    assert decode_line(b'{"instruction":"a","response":"b","category":"SWC-101"}').duplicate_keys is None
    assert decode_line(b'{"a":1,"b":{"c":1,"c":2},"a":3}').duplicate_keys == ["c", "a"]
    deep = b'{"x":' + b"[" * 300 + b"]" * 300 + b',"x":1}'  # deeper than orjson writes
    assert decode_line(deep).duplicate_keys == ["x"]


def test_duplicate_keys_with_blanks_before_the_colon() -> None:
    """Any blanks between a key and its colon: the compact count alone would miss the second key."""
    for sep in (b" ", b"  ", b"\t", b" \n "):
        raw = b'{"instruction": "a", "response": "b", "category": "SWC-101", "category"' + sep + b': "SWC-107"}'
        assert decode_line(raw).duplicate_keys == ["category"], sep


def test_nesting_deeper_than_the_recursion_limit_is_no_crash(tmp_path: Path) -> None:
    """orjson reads 1,000 levels (Python recurses about as deep): such a line is quarantined with a
    reason when its metadata cannot be stored, never a RecursionError; 900 levels are kept."""
    base = _line(GOOD)[:-1]
    too_deep = base + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    deep = base + b', "metadata": {"d": ' + b"[" * 900 + b"]" * 900 + b"}}"
    assert decode_line(too_deep).duplicate_keys is None
    # a string ending in a backslash sends the line to the exact (json module) key check, which
    # recurses less deeply than orjson reads
    escaped = too_deep.replace(b'{', b'{"path": "C:\\\\", ', 1)
    assert b'\\\\"' in escaped and decode_line(escaped).duplicate_keys is None
    p = _write(tmp_path, "deep.jsonl", too_deep + b"\n" + deep + b"\n")
    rows: list[dict] = []
    rep = Validation(ValidateConfig(check_code=False, workers=1)).run([p], on_batch=lambda b: rows.extend(
        b.to_pylist()))
    assert (rep.ledger.valid, rep.ledger.quarantined) == (1, 1)
    assert [(f.rule, f.line) for f in rep.findings if f.severity == "error"] == [("too-deep", 1)]
    assert rows[0]["metadata"].startswith('{"d":[[[')


def test_integers_beyond_64_bits_are_kept_exactly(tmp_path: Path) -> None:
    """orjson reads an integer outside the 64-bit range as a float: metadata keeps it exactly, in
    the stored column and in every JSONL writer."""
    from swcdata.core.records import iter_json_lines, table_from_batches

    big, neg = 123456789012345678901234567890, -(2**64) - 1
    p = _write(tmp_path, "big.jsonl", _line({**GOOD, "n": big, "metadata": {"neg": neg, "f": 0.5, "i": 7}}) + b"\n")
    batches: list = []
    Validation(ValidateConfig(check_code=False)).run([p], on_batch=batches.append)
    table = table_from_batches(batches)
    assert json.loads(table.column("metadata")[0].as_py()) == {"n": big, "neg": neg, "f": 0.5, "i": 7}
    (line,) = iter_json_lines(table)
    assert json.loads(line)["metadata"] == {"n": big, "neg": neg, "f": 0.5, "i": 7}


UNIT_PIECES = [b"", b" ", b"\t", b"abc", b'{"a":1}', b"x" * 50, b"\r", b"  \r", b"\xef\xbb\xbf", b"y" * 300]


def test_units_give_exactly_the_lines_and_stats_of_the_line_reader(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The byte-range units the validate pool works on: same lines, line numbers and file facts as
    `iter_chunks`, whatever the unit limits and read sizes (BOM, CRLF, lone CR, blank lines, no final
    newline, lines longer than a unit or a read)."""
    import random

    from swcdata.core import io as io_mod

    rng = random.Random(0)
    for trial in range(300):
        # half the trials read a few bytes at a time: lines cross reads, and lines longer than a read
        monkeypatch.setattr(io_mod, "_MIN_READ", 8 << 20 if trial < 150 else 1)
        lines = [b"".join(rng.choice(UNIT_PIECES) for _ in range(rng.randint(0, 3))) for _ in range(rng.randint(0, 25))]
        data = b"\n".join(lines)
        if data and rng.random() < 0.5:
            data += rng.choice([b"\n", b"\r\n", b"\r"])
        if rng.random() < 0.2:
            data = b"\xef\xbb\xbf" + data
        p = _write(tmp_path, f"t{trial}.jsonl", data)
        ref_stats = FileStats(str(p))
        ref = [x for ch in iter_chunks(p, ref_stats, 4) for x in ch.lines]
        for max_lines, max_bytes in [(1, 1), (3, 16), (500, 100), (7, 5), (500, 1 << 20)]:
            st = FileStats(str(p))
            got: list[tuple[int, bytes]] = []
            next_line, offset = 1, 0
            for u in iter_units(p, st, max_lines, max_bytes, with_data=trial % 2 == 0):
                assert (u.first_line, u.offset) == (next_line, offset) and 1 <= u.lines <= max_lines
                next_line += u.lines
                offset += u.size
                ls, blank, crlf = split_unit(read_unit(u), u.first_line, u.offset == 0)
                assert len(ls) + blank == u.lines
                got += ls
                st.blank_lines += blank
                st.crlf_lines += crlf
            assert got == ref, (trial, max_lines, max_bytes)
            assert st == ref_stats, (trial, max_lines, max_bytes)
            st = FileStats(str(p))
            assert sum(u.lines for u in iter_units(p, st, max_lines, max_bytes, digest=False)) == ref_stats.lines
            assert st.sha256 == "" and st.bytes == ref_stats.bytes  # no digest asked for


def test_duplicate_key_is_a_warning_not_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "dup.jsonl", b'{"instruction": "function f() public { x = 1; }", '
               b'"response": "a longer answer here", '
               b'"response": "the answer that wins", "category": "SWC-107"}\n')
    rows: list[dict] = []
    rep = Validation(ValidateConfig(check_code=False)).run([p], on_batch=lambda b: rows.extend(b.to_pylist()))
    assert rep.errors == 0 and rep.ledger.valid == 1
    assert [(f.rule, f.line, f.field) for f in rep.findings] == [("duplicate-key", 1, "response")]
    assert rows[0]["response"] == "the answer that wins"


def test_very_long_line(tmp_path: Path) -> None:
    big = "x" * 5_000_000
    p = _write(tmp_path, "long.jsonl", _line({**GOOD, "response": big}) + b"\n" + _line(GOOD) + b"\n")
    rows: list[dict] = []
    rep = Validation(ValidateConfig(check_code=False)).run([p], on_batch=lambda b: rows.extend(b.to_pylist()))
    assert rep.ledger.valid == 2 and len(rows[0]["response"]) == 5_000_000
    assert [(f.rule, f.line, f.field) for f in rep.findings] == [("outlier-length", 1, "response")]


def test_extra_fields_are_kept_under_metadata(tmp_path: Path) -> None:
    p = _write(tmp_path, "extra.jsonl", _line({**GOOD, "difficulty": "hard", "metadata": {"origin": "x"}}) + b"\n")
    rows: list[dict] = []
    rep = Validation(ValidateConfig(check_code=False)).run([p], on_batch=lambda b: rows.extend(b.to_pylist()))
    assert json.loads(rows[0]["metadata"]) == {"difficulty": "hard", "origin": "x"}
    assert [f.rule for f in rep.findings] == ["extra-field"]


def test_resolve_inputs_files_dirs_and_globs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    a = _write(tmp_path, "a.jsonl", b"")
    b = _write(tmp_path / "sub", "b.jsonl", b"")
    _write(tmp_path, "notes.txt", b"")
    assert resolve_inputs([tmp_path]) == [a, b]
    assert resolve_inputs([str(tmp_path / "*.jsonl")]) == [a]
    assert resolve_inputs([a, a, str(tmp_path / "*.jsonl")]) == [a]  # de-duplicated


@pytest.mark.parametrize(("arg", "message"), [
    ("missing.jsonl", "no such file or directory"),
    ("*.nothing", "no file matches the pattern"),
    ("emptydir", "directory contains no .jsonl files"),
])
def test_resolve_inputs_errors(tmp_path: Path, arg: str, message: str) -> None:
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(InputError, match=message):
        resolve_inputs([str(tmp_path / arg)])


def test_atomic_output_replaces_only_on_success(tmp_path: Path) -> None:
    """An output is written beside its path and moved in place at the end: a failure leaves the old
    file as it was and no temporary behind; a symlink's target is replaced, not the link."""
    import pytest

    from swcdata.core.io import atomic_output

    out = tmp_path / "out.jsonl"
    out.write_bytes(b"old\n")
    with pytest.raises(RuntimeError), atomic_output(out) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert out.read_bytes() == b"old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    with atomic_output(out) as f:
        f.write(b"new\n")
        assert out.read_bytes() == b"old\n"  # not yet
    assert out.read_bytes() == b"new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    link = tmp_path / "link.jsonl"
    link.symlink_to(out)
    with atomic_output(link) as f:
        f.write(b"via link\n")
    assert link.is_symlink() and out.read_bytes() == b"via link\n"
    with atomic_output(tmp_path / "new" / "dir" / "x.jsonl") as f:  # folders are made
        f.write(b"x")
    assert (tmp_path / "new" / "dir" / "x.jsonl").read_bytes() == b"x"


@pytest.mark.parametrize("target", ["/dev/stdout", "-"])
def test_outputs_can_go_to_stdout(target: str, tmp_path: Path) -> None:
    """`--out /dev/stdout` or `--out -` writes to stdout itself, also when the shell sends stdout to a
    file (a second open of /dev/stdout would overwrite from offset 0); the summary goes to stderr."""
    import subprocess
    import sys

    from conftest import DATASET_DIR

    dest = tmp_path / "stdout.txt"
    with open(dest, "wb") as f:
        r = subprocess.run([sys.executable, "-m", "swcdata", "dedup", str(DATASET_DIR / "swc_sample.jsonl"), "--out",
                            target], stdout=f, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = dest.read_text().splitlines()
    assert len(lines) == 102 and all(line.startswith('{"id":') for line in lines)
    assert "Ledger" in r.stderr


def test_split_files_are_moved_in_place_together_or_not_at_all(tmp_path: Path) -> None:
    """An interrupted run never leaves a new train.jsonl beside an old test.jsonl."""
    from swcdata.core.io import atomic_outputs

    paths = [tmp_path / f"{n}.jsonl" for n in ("train", "validation", "test")]
    for p in paths:
        p.write_bytes(b"old\n")
    with pytest.raises(KeyboardInterrupt), atomic_outputs(paths) as files:
        files[0].write(b"new\n")
        files[1].write(b"new\n")
        raise KeyboardInterrupt  # (before test.jsonl is complete)
    assert [p.read_bytes() for p in paths] == [b"old\n"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary file
    with atomic_outputs(paths) as files:
        for f in files:
            f.write(b"new\n")
    assert [p.read_bytes() for p in paths] == [b"new\n"] * 3
