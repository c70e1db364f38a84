"""The Arrow layout of stored records, and conversion between Arrow tables and JSONL.

Every step reads and returns tables with exactly these columns, so any step's output is any other
step's input. `source` is a struct (file, line) pointing at the original input line; augmented
records carry `parent_id`, `transform` and `template`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa

SOURCE_TYPE = pa.struct([pa.field("file", pa.string()), pa.field("line", pa.int64())])
RECORD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("instruction", pa.string(), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("source", SOURCE_TYPE, nullable=False),
        pa.field("metadata", pa.string()),  # JSON text of the free-form metadata object, or null
        pa.field("parent_id", pa.string()),
        pa.field("transform", pa.string()),
        pa.field("template", pa.string()),
    ]
)
RECORD_COLUMNS = tuple(RECORD_SCHEMA.names)
LINEAGE_COLUMNS = ("parent_id", "transform", "template")


def table_from_rows(rows: list[dict[str, Any]]) -> pa.Table:
    """``pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)``, built column by column from buffers
    (see swcdata.core.arrow: `from_pylist` would import pandas). Rows whose values are not the schema's
    plain types (a missing source or line, a non-string value) take `from_pylist` itself, so the
    result and the errors are always the same."""
    from swcdata.core.arrow import int64s, strings

    try:
        sources = [r["source"] for r in rows]
        src = pa.StructArray.from_arrays([strings([s["file"] for s in sources]), int64s([s["line"] for s in sources])],
                                         fields=list(SOURCE_TYPE))
        columns = [src if f.name == "source" else strings([r.get(f.name) for r in rows]) for f in RECORD_SCHEMA]
    except (KeyError, TypeError, ValueError, OverflowError):
        return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    return pa.Table.from_arrays(columns, schema=RECORD_SCHEMA)


def table_from_batches(batches: Iterable[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(list(batches), schema=RECORD_SCHEMA)


# orjson reads an integer outside the 64-bit range as a float and cannot write one back; the json module
# keeps any integer exactly. An integer literal that long has at least 20 digits in a row.
LONG_DIGITS = re.compile(r"\d{20}")


def metadata_json(metadata: dict[str, Any]) -> str:
    """The metadata column's text: compact JSON with sorted keys. Raises ValueError when the object
    is nested too deeply to be written (more than about 900 levels)."""
    try:
        return orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, or nesting beyond orjson's 255 levels
        try:
            return json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        except RecursionError:
            raise ValueError("nested too deeply to be stored") from None


def metadata_value(text: str) -> Any:
    """The metadata column's text decoded, integers of any size exact."""
    return json.loads(text) if LONG_DIGITS.search(text) else orjson.loads(text)


def row_to_json(row: dict[str, Any], *, verbatim_metadata: bool = False) -> dict[str, Any]:
    """A stored row as the JSON object swcdata writes: metadata decoded, empty lineage omitted.
    ``verbatim_metadata``: the metadata as its stored JSON text (an `orjson.Fragment`), which
    `orjson.dumps` writes as it is, for writers."""
    out: dict[str, Any] = {
        "id": row["id"],
        "instruction": row["instruction"],
        "response": row["response"],
        "category": row["category"],
        "source": row["source"],
    }
    if row.get("metadata") is not None:
        meta = row["metadata"]
        out["metadata"] = orjson.Fragment(meta) if verbatim_metadata else metadata_value(meta)
    for c in LINEAGE_COLUMNS:
        if row.get(c) is not None:
            out[c] = row[c]
    return out


def iter_json_lines(table: pa.Table | pa.RecordBatch, extra: dict[str, list[Any]] | None = None) -> Iterator[bytes]:
    """Serialise a record table as JSONL lines (bytes, newline-terminated), in table order."""
    extra = extra or {}
    for i, row in enumerate(table.to_pylist()):
        obj = row_to_json(row, verbatim_metadata=True)
        for k, values in extra.items():
            obj[k] = values[i]
        yield orjson.dumps(obj) + b"\n"


def write_jsonl(table: pa.Table, path: Path | IO[bytes], extra: dict[str, list[Any]] | None = None) -> int:
    """Write a record table as JSONL (to a path atomically, see io.atomic_output, or to an open binary
    file). Returns the number of records written."""
    from swcdata.core.io import atomic_output

    n = 0
    with atomic_output(path) if isinstance(path, Path) else nullcontext(path) as f:
        for line in iter_json_lines(table, extra):
            f.write(line)
            n += 1
    return n


def id_keys(ids: Any) -> Any:
    """Record ids (a polars String Series without nulls) as the 64-bit integers they spell where every one is 16
    lower-case hex digits (`ID_PATTERN`: one to one, 8 bytes a row, joins on integers), else as they are."""
    import polars as pl

    from swcdata.core.schema import ID_PATTERN

    if ids.len() and ids.str.contains(ID_PATTERN).all():
        return ids.str.to_integer(base=16, dtype=pl.UInt64)
    return ids


def ids_as_text(keys: Any) -> Any:
    """`id_keys` undone: integer keys spelled as swcdata spells ids (16 lower-case hex digits); text as it is."""
    import polars as pl

    if keys.dtype != pl.UInt64:
        return keys
    return keys.map_elements(lambda v: f"{v:016x}", return_dtype=pl.String)
