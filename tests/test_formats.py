"""Training formats: the seed layout, Alpaca, chat messages and swcdata's own records, rendered and written."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from swcdata.core.records import RECORD_SCHEMA, row_to_json
from swcdata.registry.formats import FORMATS, SEED_LAYOUT, render, write_format, write_split_dir

ROW = {
    "id": "0123456789abcdef",
    "instruction": "Find the bug:\n\n```solidity\nfunction f() public { x += 1; }\n```",
    "response": "Integer overflow (SWC-101).",
    "category": "SWC-101",
    "source": {"file": "train.jsonl", "line": 3},
    "metadata": '{"origin": "hand"}',
    "parent_id": "fedcba9876543210",
    "transform": "rename_identifiers",
    "template": "find/02",
}


@pytest.fixture
def table() -> pa.Table:
    other = {**ROW, "id": "1111111111111111", "metadata": None, "parent_id": None, "transform": None,
             "template": None}
    return pa.Table.from_pylist([ROW, other], schema=RECORD_SCHEMA)


def test_seed_layout_is_instruction_then_response() -> None:
    out = render(ROW, "seed")
    assert out == {"text": f"Instruction:\n{ROW['instruction']}\n\nResponse:\n{ROW['response']}"}
    assert SEED_LAYOUT == "Instruction:\n{instruction}\n\nResponse:\n{response}"


def test_alpaca_keeps_the_code_in_the_instruction() -> None:
    assert render(ROW, "alpaca") == {"instruction": ROW["instruction"], "input": "", "output": ROW["response"]}


def test_chat_is_one_user_and_one_assistant_message() -> None:
    out = render(ROW, "chat")
    assert out == {"messages": [{"role": "user", "content": ROW["instruction"]},
                                {"role": "assistant", "content": ROW["response"]}]}


def test_records_format_is_the_stored_record_with_lineage() -> None:
    out = render(ROW, "records")
    assert out == row_to_json(ROW)
    assert out["metadata"] == {"origin": "hand"} and out["parent_id"] == ROW["parent_id"]
    # stored-record JSON (metadata already decoded) renders the same
    assert render(out, "records") == out


def test_unknown_format_is_refused(tmp_path: Path, table: pa.Table) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(ROW, "sharegpt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown format"):
        write_format(table, tmp_path / "x.jsonl", "sharegpt")  # type: ignore[arg-type]
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_format_writes_one_line_per_record_in_order(tmp_path: Path, table: pa.Table, fmt: str) -> None:
    path = tmp_path / fmt / "train.jsonl"
    assert write_format(table, path, fmt) == 2  # type: ignore[arg-type]
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [render(r, fmt) for r in table.to_pylist()]  # type: ignore[arg-type]


def test_write_split_dir_names_files_by_split(tmp_path: Path, table: pa.Table) -> None:
    paths = write_split_dir({"train": table, "test": table.slice(0, 1)}, tmp_path, "alpaca")
    assert {k: p.name for k, p in paths.items()} == {"train": "train.jsonl", "test": "test.jsonl"}
    assert len((tmp_path / "test.jsonl").read_text().splitlines()) == 1
