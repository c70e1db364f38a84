"""What the audit's rules read of each record: computed once per table, and kept by text from one build to the next.

The rules of `swcdata.steps.audit` read five things of a record: its words (the n-gram rule's shared span), the
hashes of its word n-grams, its code (`codematch.RecordCode`), and what the code rule hashes of that code: the anchor
windows of its spans long enough to be looked for (needles), the anchor windows of all its code (the hay), and the
MinHash signature of its code (the near rule). All of them are functions of the record's text and the rules'
parameters alone.

* `Features` computes them once per table for every audit given it: a build audits each split twice (train against
  validation and test, validation against train and test).
* Given a `FeatureMemo` of an earlier build (the build cache's `audit.parquet`, `swcdata.registry.cache`), the
  records whose texts it holds take theirs from it and only the others are computed: a build that adds records to
  a corpus hashes the new records' features only. `Features.memo()` is this run's, for the next build.
* Words are made only where a rule reads them (the few records that share an n-gram span), not for every record.

A table's features (`FEATURE_SCHEMA`, a row per record in the table's order): `key` (the signature index's),
`ngrams` (the word n-gram hashes, little-endian uint64), `code` (the spans' tokens as JSON), `needles` (the needle
spans' anchor windows, span after span, uint64), `needle_lens` (windows per needle span, int64), `hay` (the anchor
windows of the joined spans, uint64), `near` (the code's signature, uint32; null without code long enough).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

from swcdata.core.arrow import bools, int64s, to_numpy
from swcdata.core.lazy import Lazy
from swcdata.core.text import normalize_text
from swcdata.similarity import minhash
from swcdata.similarity.codematch import (
    CodeMatchConfig,
    CodeSide,
    RecordCode,
    code_side_of,
    near_signatures,
    record_code,
    windows,
)
from swcdata.similarity.sigindex import find_keys, firsts_in_key_order, in_key_order, key_array, keys_of, text_keys
from swcdata.steps.memo import MemoParams, params_in, usable

_WORD = re.compile(r"\w+")


class FeatureConfig(Protocol):
    """What the features depend on of a config: the audit's (`swcdata.steps.audit.AuditConfig`), or the split's."""

    @property
    def overlap_n(self) -> int: ...

    @property
    def code(self) -> CodeMatchConfig: ...

FEATURES_META = b"swcdata.features"
FEATURE_SCHEMA = pa.schema([
    pa.field("key", pa.binary(16), nullable=False), pa.field("ngrams", pa.large_binary(), nullable=False),
    pa.field("code", pa.large_binary(), nullable=False), pa.field("needles", pa.large_binary(), nullable=False),
    pa.field("needle_lens", pa.large_binary(), nullable=False), pa.field("hay", pa.large_binary(), nullable=False),
    pa.field("near", pa.binary())])


def words_of(instruction: str, response: str) -> str:
    """A record's words as the n-gram rule reads them."""
    return " ".join(_WORD.findall(normalize_text(instruction + "\n" + response)))


def _words(table: pa.Table) -> list[str]:
    return [words_of(i, r) for i, r in zip(table.column("instruction").to_pylist(),
                                           table.column("response").to_pylist(), strict=True)]


class LazyWords(Lazy[str]):
    """A table's words (`words_of`), each made when it is first read."""

    def __init__(self, table: pa.Table) -> None:
        ins, res = table.column("instruction"), table.column("response")
        super().__init__(len(ins), lambda i: words_of(ins[i].as_py(), res[i].as_py()))


class LazyCodes(Lazy[RecordCode]):
    """Records' code (`codematch.RecordCode`) from their features' `code` column, each decoded when first read."""

    def __init__(self, col: pa.ChunkedArray | pa.Array) -> None:
        super().__init__(len(col), lambda i: RecordCode(orjson.loads(col[i].as_py())))


class Shingled(NamedTuple):
    """The word n-grams of a set of records, as the n-gram rule searches them: their hashes (`h`, record after
    record, from `off`), each one's record, and the order that sorts the hashes (with the sorted hashes and
    records)."""

    h: npt.NDArray[np.uint64]
    off: npt.NDArray[np.int64]
    rec: npt.NDArray[np.int64]
    order: npt.NDArray[np.int64]
    h_sorted: npt.NDArray[np.uint64]
    rec_sorted: npt.NDArray[np.int64]

    @classmethod
    def of(cls, words: Sequence[str], n: int) -> Shingled:
        return cls.of_hashes(*minhash.shingle_hashes(list(words), n, short_whole=False))

    @classmethod
    def of_hashes(cls, h: npt.NDArray[np.uint64], off: npt.NDArray[np.int64]) -> Shingled:
        rec = np.repeat(np.arange(len(off) - 1, dtype=np.int64), np.diff(off))
        order = minhash.hash_order(h)
        return cls(h, off, rec, order, h[order], rec[order])


def features_params(cfg: FeatureConfig) -> MemoParams:
    """What a record's features depend on: the n-gram length and the code rule's knobs (and, in `MemoParams`, the
    code that computes them)."""
    return MemoParams(step="audit", config={"overlap_n": cfg.overlap_n, "code": cfg.code.model_dump(mode="json")})


def _packed(flat: npt.NDArray[Any], off: npt.NDArray[np.int64]) -> pa.Array:
    """Per record, its slice `flat[off[i]:off[i+1]]` as little-endian bytes (a large_binary array)."""
    data = np.ascontiguousarray(flat, dtype=flat.dtype.newbyteorder("<"))
    offsets = np.asarray(off, dtype=np.int64) * data.dtype.itemsize
    return pa.Array.from_buffers(pa.large_binary(), len(off) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _unpacked(col: pa.ChunkedArray | pa.Array, dtype: str) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """The inverse of `_packed`: the flat values and the per-record offsets."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    _, offsets, data = arr.buffers()
    width = np.dtype(dtype).itemsize
    off = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    flat = np.frombuffer(data if data is not None else b"", dtype=dtype)[off[0] // width : off[-1] // width]
    return flat.astype(np.dtype(dtype).newbyteorder("="), copy=False), (off - off[0]) // width


def computed(table: pa.Table, cfg: FeatureConfig) -> pa.Table:
    """The features of every record of `table` (FEATURE_SCHEMA), computed."""
    instructions: list[str] = table.column("instruction").to_pylist()
    h, off = minhash.shingle_hashes(_words(table), cfg.overlap_n, short_whole=False)
    codes = record_code(instructions, cfg.code)
    needles = [rc.needles(cfg.code.min_tokens) for rc in codes]
    nw, noff = windows([sp for spans in needles for sp in spans])
    first_span = np.zeros(len(codes) + 1, dtype=np.int64)
    np.cumsum([len(spans) for spans in needles], out=first_span[1:])
    hw, hoff = windows([rc.joined() for rc in codes])
    rows, sig = near_signatures(codes, cfg.code)
    near: list[bytes | None] = [None] * len(codes)
    for k, row in enumerate(rows.tolist()):
        near[row] = np.ascontiguousarray(sig[k], dtype="<u4").tobytes()
    keys = text_keys(table.column("instruction"), table.column("response"))
    return pa.Table.from_arrays([
        key_array(keys), _packed(h, off), pa.array([orjson.dumps(rc.spans) for rc in codes], pa.large_binary()),
        _packed(nw, noff[first_span]), _packed(np.diff(noff), first_span), _packed(hw, hoff),
        pa.array(near, pa.binary())], schema=FEATURE_SCHEMA)


class FeatureMemo:
    """Features by text: a FEATURE_SCHEMA table, a row per distinct key, in key order, with its parameters."""

    def __init__(self, params: MemoParams, table: pa.Table) -> None:
        self.params = params
        self.table_ = table
        self.keys = keys_of(table.column("key"))

    compression = "none"  # (hashes: random bytes)

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of(cls, params: MemoParams, tables: list[pa.Table]) -> FeatureMemo:
        """The memo of the rows of `tables` (a key met twice: its first row)."""
        both = pa.concat_tables(tables) if tables else FEATURE_SCHEMA.empty_table()
        order = firsts_in_key_order(keys_of(both.column("key")))
        return cls(params, both.take(int64s(order)).combine_chunks())

    def table(self) -> pa.Table:
        return self.table_.replace_schema_metadata({FEATURES_META: self.params.model_dump_json().encode()})

    @classmethod
    def from_table(cls, table: pa.Table) -> FeatureMemo:
        """The memo a `table()` holds, or a ValueError saying what is wrong with it."""
        params = params_in(table.schema, FEATURES_META, "the audit's features")
        if not table.schema.remove_metadata().equals(FEATURE_SCHEMA):
            raise ValueError(f"its columns are {table.schema.remove_metadata()}, not {FEATURE_SCHEMA}")
        memo = cls(params, table.replace_schema_metadata(None).combine_chunks())
        if not in_key_order(memo.keys):
            raise ValueError("its keys are not distinct and in key order")
        return memo


def write_features(memo: FeatureMemo, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(memo.table(), path, compression="none", row_group_size=16_384, use_dictionary=False,
                   write_statistics=False)


def read_features(path: Path) -> FeatureMemo:
    """A memo written by `write_features` (a ValueError or OSError when it cannot be read as one)."""
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as f:
            table = f.read()
    except pa.ArrowInvalid as e:
        raise ValueError(f"not a Parquet file of features ({e})") from None
    return FeatureMemo.from_table(table)


class Features:
    """What the rules read of each record of a table, computed once per table for every audit given this object,
    and taken from `known` (a `FeatureMemo` of the same parameters) where it holds the record's text. A table is
    known by its identity (it is held, so that no other table takes its id)."""

    def __init__(self, known: FeatureMemo | None = None, params: MemoParams | None = None) -> None:
        self._of: dict[int, tuple[pa.Table, dict[Any, Any]]] = {}
        self.known, self.note = (usable(known, params, "audit features", "every record's computed")
                                 if known is not None and params is not None else (None, None))
        self.texts = 0
        self.reused = 0
        self._rows: list[pa.Table] = []

    def forget(self, table: pa.Table) -> None:
        """Drop what is kept of `table` (its n-grams are the largest: about 40 bytes a word of the split)."""
        self._of.pop(id(table), None)

    def get(self, table: pa.Table, what: Any, make: Callable[[], Any]) -> Any:
        held = self._of.setdefault(id(table), (table, {}))[1]
        if what not in held:
            held[what] = make()
        return held[what]

    def rows(self, table: pa.Table, cfg: FeatureConfig, keep: bool = True) -> pa.Table:
        """The features of each record of `table` (FEATURE_SCHEMA, in its order). `keep`: count them, and put them
        in this run's memo (not for a table whose records another one holds: a split's, before its audits)."""
        return self.get(table, ("rows", cfg.overlap_n, cfg.code.model_dump_json()),
                        lambda: self._rows_of(table, cfg, keep))

    def _rows_of(self, table: pa.Table, cfg: FeatureConfig, keep: bool) -> pa.Table:
        known = self.known
        if known is None or known.params.differences(features_params(cfg)) or not len(known) or not table.num_rows:
            out = computed(table, cfg)
        else:
            import pyarrow.compute as pc

            keys = text_keys(table.column("instruction"), table.column("response"))
            found = find_keys(known.keys, keys)
            lack = np.flatnonzero(found < 0)
            # (one gather of the memo's rows in the table's order, the rows it lacks standing in for by its first;
            # then theirs, computed, put in their places in one pass)
            out = known.table_.take(int64s(np.maximum(found, 0)))
            if len(lack):
                made = computed(table.take(int64s(lack)), cfg)
                mask = np.zeros(table.num_rows, dtype=bool)
                mask[lack] = True
                where = bools(mask)
                out = pa.Table.from_arrays([pc.replace_with_mask(out.column(k).combine_chunks(), where,
                                                                 made.column(k).combine_chunks())
                                            for k in range(out.num_columns)], schema=FEATURE_SCHEMA)
            if keep:
                self.reused += table.num_rows - len(lack)
        if keep:
            self.texts += table.num_rows
            self._rows.append(out)
        return out

    def memo(self, params: MemoParams) -> FeatureMemo:
        """This run's memo: the features of every record of the tables it saw."""
        return FeatureMemo.of(params, self._rows)

    def words(self, table: pa.Table) -> LazyWords:
        return self.get(table, "words", lambda: LazyWords(table))

    def shingled(self, table: pa.Table, cfg: FeatureConfig) -> Shingled:
        return self.get(table, ("shingled", cfg.overlap_n, cfg.code.model_dump_json()),
                        lambda: Shingled.of_hashes(*_unpacked(self.rows(table, cfg).column("ngrams"), "<u8")))

    def codes(self, table: pa.Table, cfg: FeatureConfig, keep: bool = True) -> LazyCodes:
        """Each record's code, read from its features when it is first read (a reference's, in the code rule, only
        where a needle's window is found in it)."""
        return self.get(table, ("code", cfg.overlap_n, cfg.code.model_dump_json()),
                        lambda: LazyCodes(self.rows(table, cfg, keep).column("code")))

    def code_side(self, table: pa.Table, cfg: FeatureConfig, keep: bool = True) -> CodeSide:
        """What the code rule reads of the records of `table` as one side of its search (`codematch.CodeSide`)."""
        def make() -> CodeSide:
            rows = self.rows(table, cfg, keep)
            nw, _ = _unpacked(rows.column("needles"), "<u8")
            lens, per_record = _unpacked(rows.column("needle_lens"), "<i8")
            noff = np.zeros(len(lens) + 1, dtype=np.int64)
            np.cumsum(lens, out=noff[1:])
            hw, hoff = _unpacked(rows.column("hay"), "<u8")
            near = rows.column("near").combine_chunks()
            near_rows = np.flatnonzero(~to_numpy(near.is_null()).astype(bool))
            num_perm = cfg.code.num_perm
            if len(near_rows):
                sig_flat, _ = _unpacked(near.take(int64s(near_rows)).cast(pa.large_binary()), "<u4")
                sig = sig_flat.reshape(len(near_rows), num_perm).astype(np.uint32, copy=False)
            else:
                sig = np.zeros((0, num_perm), dtype=np.uint32)
            return code_side_of(self.codes(table, cfg, keep), cfg.code, np.diff(per_record), nw, noff, hw, hoff,
                                near_rows.astype(np.int64), sig)

        return self.get(table, ("code-side", cfg.overlap_n, cfg.code.model_dump_json()), make)
