"""What a step computed per record text, kept by one build for the next (the build cache's content).

Some of a build's work on a record depends on nothing but the record's text and the step's parameters:
validation's code checks (tree-sitter on every code span) and augmentation's variants. A step given a `Memo`
of an earlier run takes what it holds instead of working again, and hands back a memo of its own run (every
text it saw, whether worked on or taken), so that a build that adds records to a corpus works on the new
texts only, and gives exactly what working on all of them gives.

* Keys are the signature index's (`sigindex.KEY_SCHEME`: the exact bytes of both fields, not the record id,
  which folds case and typography). A value is the step's result for that text as JSON (`orjson`), or null
  for "nothing found" (most texts: the memo stays small).
* `MemoParams` holds everything a value depends on: the step, its parameters, the swcdata version (its
  code: the checks, the transforms and templates change between releases) and the tree-sitter grammar
  that parsed the code. A memo of other parameters is not used (`differences` says why).
* Parquet layout: `key` fixed_size_binary(16), `value` binary (nullable); rows in key order, one per
  distinct key; the parameters as JSON in the schema metadata (`swcdata.memo`).

Where memos are kept between builds, and why they are not part of a version: `swcdata.registry.cache`.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from swcdata.core.version import __version__
from swcdata.similarity.sigindex import (
    KEY_SCHEME,
    Keys,
    find_keys,
    firsts_in_key_order,
    in_key_order,
    key_array,
    keys_of,
)

MEMO_META = b"swcdata.memo"
MEMO_SCHEMA = pa.schema([pa.field("key", pa.binary(16), nullable=False), pa.field("value", pa.binary())])


def grammar_version() -> str:
    """The tree-sitter runtime and Solidity grammar that parse the code ('tree-sitter 0.26.1, tree-sitter-solidity
    1.2.13'); 'unknown' for one whose distribution has no version."""
    out = []
    for dist in ("tree-sitter", "tree-sitter-solidity"):
        try:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{dist} unknown")
    return ", ".join(out)


class MemoParams(BaseModel):
    """Everything a memo's values depend on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str = Field(description="What the values are: 'checks' (validation's code findings), 'augment'.")
    config: dict[str, Any] = Field(description="The step's parameters that the values depend on.")
    tool: str = Field(__version__, description="The swcdata version that computed them.")
    grammar: str = Field(default_factory=grammar_version, description="The tree-sitter runtime and grammar.")
    key: str = Field(KEY_SCHEME, description="How a record's text is hashed to its key.")

    def differences(self, wanted: MemoParams) -> list[str]:
        """Why values of these parameters are not the `wanted` ones ('tool 0.9.0 (wanted 1.0.0)', ...); none when
        they are the same."""
        mine, theirs = self.model_dump(), wanted.model_dump()
        out = []
        for k in mine:
            if k == "config":
                out += [f"{c} {mine[k].get(c)!r} (wanted {theirs[k].get(c)!r})"
                        for c in sorted(mine[k].keys() | theirs[k].keys()) if mine[k].get(c) != theirs[k].get(c)]
            elif mine[k] != theirs[k]:
                out.append(f"{k} {mine[k]!r} (wanted {theirs[k]!r})")
        return out


@dataclass(frozen=True, slots=True)
class Memo:
    """Values by key: `keys` (m, 2) distinct and in key order, `values` (JSON bytes or None) in the same order."""

    params: MemoParams
    keys: Keys
    values: list[bytes | None]

    @classmethod
    def of(cls, params: MemoParams, keys: Keys, values: list[bytes | None]) -> Memo:
        """A memo of the given rows (a key given more than once keeps its first value)."""
        if len(values) != len(keys):
            raise ValueError(f"{len(values)} values for {len(keys)} keys")
        order = firsts_in_key_order(keys)
        return cls(params, np.ascontiguousarray(keys[order]), [values[i] for i in order.tolist()])

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, keys: Keys) -> np.ndarray:
        """The row of each key, -1 where the memo lacks it."""
        return find_keys(self.keys, keys)

    def value(self, row: int) -> Any:
        """The value of a row (`find`), decoded; None for a null value."""
        v = self.values[row]
        return None if v is None else orjson.loads(v)

    def table(self) -> pa.Table:
        schema = MEMO_SCHEMA.with_metadata({MEMO_META: self.params.model_dump_json().encode()})
        return pa.Table.from_arrays([key_array(self.keys), pa.array(self.values, pa.binary())], schema=schema)

    @classmethod
    def from_table(cls, table: pa.Table) -> Memo:
        """The memo a `table()` holds, or a ValueError saying what is wrong with it."""
        params = params_in(table.schema, MEMO_META, "a memo")
        if not table.schema.remove_metadata().equals(MEMO_SCHEMA):
            raise ValueError(f"its columns are {table.schema.remove_metadata()}, not {MEMO_SCHEMA}")
        if table.column("key").null_count:
            raise ValueError("null keys")
        keys = keys_of(table.column("key"))
        if not in_key_order(keys):
            raise ValueError("its keys are not distinct and in key order")
        return cls(params, keys, table.column("value").to_pylist())


def params_in(schema: pa.Schema, meta_key: bytes, what: str) -> MemoParams:
    """The `MemoParams` in a memo file's schema metadata, or a ValueError saying why there are none ('not {what}')."""
    meta = (schema.metadata or {}).get(meta_key)
    if meta is None:
        raise ValueError(f"no parameters in its metadata (not {what})")
    try:
        return MemoParams.model_validate_json(meta)
    except ValidationError as e:
        raise ValueError(f"its parameters do not parse ({e.errors()[0]['msg']})") from None


def usable(known: Memo | None, wanted: MemoParams, what: str, then: str) -> tuple[Memo | None, str | None]:
    """`known` where it was made with the `wanted` parameters; else None and a note naming what differs ('the kept
    {what} were made with other parameters (...): {then}'). (None, None) without a memo."""
    differences = known.params.differences(wanted) if known is not None else []
    if differences:
        return None, f"the kept {what} were made with other parameters ({'; '.join(differences)}): {then}"
    return known, None


def write_memo(memo: Memo, path: Path) -> None:
    """The memo as Parquet (zstd: its values are JSON text)."""
    import pyarrow.parquet as pq

    pq.write_table(memo.table(), path, compression="zstd", row_group_size=65_536)


def read_memo(path: Path) -> Memo:
    """A memo written by `write_memo` (a ValueError or OSError when it cannot be read as one)."""
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as f:
            table = f.read()
    except pa.ArrowInvalid as e:
        raise ValueError(f"not a Parquet file of a memo ({e})") from None
    return Memo.from_table(table)
