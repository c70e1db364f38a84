"""Training formats: a stored record rendered as the JSON object a trainer reads.

* ``records``: swcdata's own stored-record JSON (id, source, metadata, lineage): the lossless one.
* ``seed``: the seed fine-tuning project's single text field,
  ``{"text": "Instruction:\\n<instruction>\\n\\nResponse:\\n<response>"}``.
* ``alpaca``: ``{"instruction", "input", "output"}``. ``input`` is always ``""`` and the code stays
  inside ``instruction``: in this data the code is woven into the prose (quoted inline, after a colon,
  sometimes followed by more questions), so cutting it out would leave instructions that point at
  "the code below" with nothing below. Alpaca's prompt for an empty input is the one to use.
* ``chat``: ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}``, the layout of
  chat templates (``tokenizer.apply_chat_template``) and of TRL's conversational datasets.

Only ``records`` keeps ids and lineage; the other formats are for training only, so keep the
records-format split directory as the dataset of record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, get_args

import orjson
import pyarrow as pa

from swcdata.core.records import metadata_value, write_jsonl

__all__ = ["FORMATS", "SEED_LAYOUT", "Format", "iter_rendered", "render", "write_format", "write_split_dir"]

Format = Literal["records", "seed", "alpaca", "chat"]
FORMATS: tuple[str, ...] = get_args(Format)
SEED_LAYOUT = "Instruction:\n{instruction}\n\nResponse:\n{response}"


def _stored(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: record[k] for k in ("id", "instruction", "response", "category") if k in record}
    if "source" in record:
        out["source"] = record["source"]
    meta = record.get("metadata")
    if isinstance(meta, bytes):
        meta = meta.decode()
    if meta is not None:
        out["metadata"] = metadata_value(meta) if isinstance(meta, str) else meta
    for c in ("parent_id", "transform", "template"):
        if record.get(c) is not None:
            out[c] = record[c]
    return out


def render(record: dict[str, Any], fmt: Format) -> dict[str, Any]:
    """One record (an Arrow row or stored-record JSON) as a JSON object in the training format ``fmt``."""
    instruction, response = record["instruction"], record["response"]
    if fmt == "records":
        return _stored(record)
    if fmt == "seed":
        return {"text": SEED_LAYOUT.format(instruction=instruction, response=response)}
    if fmt == "alpaca":
        return {"instruction": instruction, "input": "", "output": response}
    if fmt == "chat":
        return {"messages": [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]}
    raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def iter_rendered(table: pa.Table, fmt: Format) -> Iterator[dict[str, Any]]:
    """The rendered records of a table, in order (an unknown format raises at once, not on iteration)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return (render(row, fmt) for row in table.to_pylist())


def write_format(table: pa.Table, path: Path, fmt: Format) -> int:
    """Write a record table as JSONL in ``fmt`` (table order). Returns the number of lines written."""
    iter_rendered(table, fmt)  # raises on an unknown format before the file is created
    from swcdata.core.io import atomic_output

    with atomic_output(path) as f:
        return _write_rendered(table, f, fmt)


def _write_rendered(table: pa.Table, f: IO[bytes], fmt: Format) -> int:
    if fmt == "records":  # (the stored-record JSON, metadata written as stored)
        return write_jsonl(table, f)
    n = 0
    for obj in iter_rendered(table, fmt):
        f.write(orjson.dumps(obj) + b"\n")
        n += 1
    return n


def write_rendered(table: pa.Table, f: IO[bytes], fmt: Format) -> int:
    """Write a record table's rows to an open file in `fmt` (JSONL). Returns the rows written."""
    return _write_rendered(table, f, fmt)


def write_split_dir(splits: dict[str, pa.Table], directory: Path, fmt: Format) -> dict[str, Path]:
    """Write each split as ``<directory>/<split>.jsonl`` in ``fmt``: all the files or none (an
    interrupted run leaves the folder as it was, and no folder where there was none)."""
    from swcdata.core.io import atomic_outputs

    out = {name: directory / f"{name}.jsonl" for name in splits}
    with atomic_outputs(list(out.values())) as files:  # (all moved in place together, or none)
        for f, table in zip(files, splits.values(), strict=True):
            _write_rendered(table, f, fmt)
    return out
