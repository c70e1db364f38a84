"""swcdata.core.arrow builds the arrays `pa.array` builds (and reads back what `to_numpy` reads) without
importing pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from swcdata.core import arrow

TEXTS = [
    ["a", "bb", "", "contract A { uint x; }"],
    ["naïve", "ß", "“quoted”", "\u2028", "𝔘nicode", "plain"],
    ["x", None, "", None, "é"],
    [None, None],
    [],
]


@pytest.mark.parametrize("values", TEXTS)
@pytest.mark.parametrize("large", [False, True])
def test_strings_equal_pa_array(values: list[str | None], large: bool) -> None:
    got = arrow.strings(values, large=large)
    want = pa.array(values, pa.large_string() if large else pa.string())
    got.validate(full=True)
    assert got.equals(want) and got.type == want.type and got.null_count == want.null_count
    assert got.to_pylist() == values


def test_strings_rejects_what_is_not_text() -> None:
    with pytest.raises(TypeError):
        arrow.strings(["a", 1])  # type: ignore[list-item]


def test_numbers_and_masks_equal_pa_array() -> None:
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 1000):
        ints = rng.integers(-(1 << 40), 1 << 40, n)
        mask = rng.random(n) < 0.5
        assert arrow.int64s(ints).equals(pa.array(ints, pa.int64()))
        assert arrow.int64s(ints.tolist()).equals(pa.array(ints, pa.int64()))
        assert arrow.bools(mask).equals(pa.array(mask, pa.bool_()))
        floats = rng.random(n) * 3 - 1
        assert arrow.float64s(floats).equals(pa.array(floats, pa.float64()))
        assert arrow.float64s(floats.tolist()).equals(pa.array(floats, pa.float64()))


@pytest.mark.parametrize("kind", [pa.int8(), pa.int32(), pa.int64(), pa.uint32(), pa.bool_()])
def test_to_numpy_equals_pyarrow(kind: pa.DataType) -> None:
    rng = np.random.default_rng(1)
    values = (rng.random(100) < 0.3) if kind == pa.bool_() else rng.integers(0, 100, 100)
    arr = pa.array(values, kind)
    for a in (arr, arr.slice(3, 50), arr.slice(13), arr.slice(0, 0), pa.chunked_array([arr.slice(0, 9), arr.slice(9)]),
              pa.chunked_array([], kind), pa.chunked_array([arr.slice(5, 20)])):
        got = arrow.to_numpy(a)
        want = a.to_numpy() if isinstance(a, pa.ChunkedArray) else a.to_numpy(zero_copy_only=False)
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_to_numpy_refuses_nulls_and_other_types() -> None:
    with pytest.raises(ValueError, match="nulls"):
        arrow.to_numpy(pa.array([1, None]))
    with pytest.raises(TypeError, match="integer or boolean"):
        arrow.to_numpy(pa.array([1.5]))


# The commands that read, dedup, audit and split records build and read Arrow columns: none of them
# needs pandas (about 50 MB and 0.3 s a process) nor scipy.
PROBE = """
import contextlib, io, runpy, sys
sys.argv = ["swcdata", *{args!r}]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_module("swcdata", run_name="__main__")
    except SystemExit:
        pass
print("LOADED=" + ",".join(m for m in ("pandas", "scipy") if m in sys.modules))
"""


@pytest.mark.parametrize("command", [
    ["validate", "{sample}", "--out", "{tmp}/valid.jsonl", "--json"],
    ["dedup", "{sample}", "--out", "{tmp}/kept.jsonl", "--report", "{tmp}/dedup.json", "--json"],  # (+ Parquet)
    ["audit", "--reference", "{sample}", "--candidate", "{sample}", "--json"],
    ["split", "{sample}", "--out", "{tmp}/splits", "--json"],
])
def test_data_commands_import_neither_pandas_nor_scipy(command: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from conftest import DATASET_DIR

    sample = str(DATASET_DIR / "swc_sample.jsonl")
    args = [a.replace("{sample}", sample).replace("{tmp}", str(tmp_path)) for a in command]
    r = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, timeout=120)
    assert "LOADED=\n" in r.stdout, r.stdout[-500:] + r.stderr[-2000:]


def test_augment_imports_neither_pandas_nor_scipy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from conftest import DATASET_DIR

    splits = tmp_path / "splits"
    r = subprocess.run([sys.executable, "-m", "swcdata", "split", str(DATASET_DIR / "swc_sample.jsonl"), "--out",
                        str(splits)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    args = ["augment", str(splits), "--out", str(tmp_path / "aug"), "--json"]
    r = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, timeout=120)
    assert "LOADED=\n" in r.stdout, r.stdout[-500:] + r.stderr[-2000:]


def test_table_from_rows_equals_from_pylist() -> None:
    from swcdata.core.records import RECORD_SCHEMA, table_from_rows

    good = [
        {"id": "a", "instruction": "Fix `x += 1;`", "response": "Use `x = x + 1;` — “safe”", "category": "SWC-101",
         "source": {"file": "f.jsonl", "line": 3}, "metadata": None, "parent_id": None, "transform": None,
         "template": None},
        {"id": "b", "instruction": "ß", "response": "r", "category": "SWC-107",
         "source": {"file": "g.jsonl", "line": 9}, "metadata": '{"k": 1}', "parent_id": "a", "transform": "rename",
         "template": "fix/3"},
        {"id": "c", "instruction": "i", "response": "r", "category": "SWC-110",
         "source": {"file": "g.jsonl", "line": 10}},
    ]
    for rows in (good, [], good[:1]):
        got = table_from_rows(rows)
        assert got.equals(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)) and got.schema == RECORD_SCHEMA
    # rows off the plain types go through from_pylist itself: the same table, or the same error
    odd = [dict(good[0], source={"file": "f.jsonl", "line": None}), dict(good[1], source=None)]
    assert table_from_rows(odd).equals(pa.Table.from_pylist(odd, schema=RECORD_SCHEMA))
    with pytest.raises(pa.ArrowTypeError):
        table_from_rows([dict(good[0], instruction=5)])
