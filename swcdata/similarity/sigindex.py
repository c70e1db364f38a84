"""A signature index: the MinHash signatures of record texts (and their LSH band keys), keyed by a hash of each
record's exact text, with every parameter that made them.

A published version keeps one beside its data (`index/signatures.parquet`, see `swcdata.registry.store`): the
signatures of every distinct text its dedup signed and of every record it publishes. The next build signs only the
texts its parent's index lacks, and `dedup --against` matches new records against a version from its index, without
reading the version's sources again.

* The key of a record is `xxh3_128(response, seed=xxh3_64(instruction))` of the two fields' UTF-8 bytes exactly as
  they are (not the record id, which hashes a normalised text: two records with one id can differ in case or in
  literals, which the token stream keeps). A signature is a function of the text and the parameters only, so a
  signature found by its key is the one signing would compute.
* An index is reused only when its parameters (`IndexParams`: seed, permutations, n-gram, abstraction, token-stream
  version, key scheme) are the reader's; the LSH banding may differ (band keys are recomputed from signatures).
* Parquet layout: `key` fixed_size_binary(16) (the key's two 64-bit words, big-endian: byte order is key order),
  `signature` fixed_size_binary(4 * num_perm) (little-endian uint32s), `bands` fixed_size_binary(8 * bands)
  (`minhash.band_hashes`, little-endian uint64s); rows in key order, one per distinct key; the parameters as JSON in
  the schema metadata (`swcdata.index`). Flat binary columns: a list column would add a level per value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import xxhash
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from swcdata.similarity import minhash
from swcdata.similarity.tokens import TOKEN_STREAM_VERSION

Keys = npt.NDArray[np.uint64]
"""Record keys, (n, 2) uint64: the two words of each record's 128-bit text hash."""

KEY_SCHEME = "xxh3_128(response, seed=xxh3_64(instruction))/1"
INDEX_META = b"swcdata.index"
ROW_GROUP = 65_536


class IndexParams(BaseModel):
    """Everything a stored signature depends on (and the banding its band keys were cut with)."""

    model_config = ConfigDict(extra="forbid")

    num_perm: int = Field(ge=1)
    ngram: int = Field(ge=1)
    seed: int = Field(ge=0)
    abstract_identifiers: bool
    abstract_literals: bool
    token_stream: int = Field(TOKEN_STREAM_VERSION, description="`tokens.TOKEN_STREAM_VERSION` of the signer.")
    key: str = Field(KEY_SCHEME, description="How a record's text is hashed to its key.")
    bands: int = Field(ge=1)
    rows: int = Field(ge=1)

    def differences(self, wanted: IndexParams) -> list[str]:
        """What makes this index's signatures unusable where `wanted` signatures are needed: 'num_perm 64 (wanted
        128)', ...; none when they are the same signatures (the banding does not count)."""
        mine, theirs = self.model_dump(exclude={"bands", "rows"}), wanted.model_dump(exclude={"bands", "rows"})
        return [f"{k} {mine[k]!r} (wanted {theirs[k]!r})" for k in mine if mine[k] != theirs[k]]


def text_keys(instructions: pa.Array | pa.ChunkedArray, responses: pa.Array | pa.ChunkedArray) -> Keys:
    """Each record's key (`KEY_SCHEME`) from its two string columns: (n, 2) uint64. About 0.5 s a million records."""
    ins, res = _chunked(instructions), _chunked(responses)
    if len(ins) != len(res):
        raise ValueError("instructions and responses differ in length")
    if ins.null_count or res.null_count:
        raise ValueError("cannot key null texts")
    f64, f128 = xxhash.xxh3_64_intdigest, xxhash.xxh3_128_digest
    parts: list[bytes] = []
    at = 0
    for a in ins.chunks:  # (chunk by chunk: combining the chunks would copy every text)
        oi, di = _buffers(a)
        orr, dr = _buffers(res.slice(at, len(a)).combine_chunks())
        parts.append(b"".join([f128(dr[orr[k] : orr[k + 1]], f64(di[oi[k] : oi[k + 1]])) for k in range(len(a))]))
        at += len(a)
    return keys_from_bytes(b"".join(parts))


def _chunked(col: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return col if isinstance(col, pa.ChunkedArray) else pa.chunked_array([col], col.type)


def _buffers(arr: pa.Array) -> tuple[list[int], memoryview]:
    _, offsets, data = arr.buffers()
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    off = np.frombuffer(offsets, dtype=width)[arr.offset : arr.offset + len(arr) + 1].tolist()
    return off, memoryview(data if data is not None else b"")


def _key_order(keys: Keys) -> npt.NDArray[np.int64]:
    return np.lexsort((keys[:, 1], keys[:, 0])).astype(np.int64)


def _runs_start(sorted_keys: Keys) -> npt.NDArray[np.bool_]:
    """Of keys in key order, where each distinct key starts."""
    first = np.ones(len(sorted_keys), dtype=bool)
    first[1:] = (sorted_keys[1:] != sorted_keys[:-1]).any(axis=1)
    return first


def in_key_order(keys: Keys) -> bool:
    """Whether the keys are distinct and ascending (as an index or a memo stores them)."""
    if len(keys) < 2:
        return True
    k0, k1 = keys[:, 0], keys[:, 1]
    return bool(((k0[1:] > k0[:-1]) | ((k0[1:] == k0[:-1]) & (k1[1:] > k1[:-1]))).all())


def first_of_each(keys: Keys) -> npt.NDArray[np.int64]:
    """The rows where each distinct key first occurs, ascending."""
    return np.sort(firsts_in_key_order(keys))


def firsts_in_key_order(keys: Keys) -> npt.NDArray[np.int64]:
    """The rows where each distinct key first occurs, in key order (one sort)."""
    order = np.lexsort((np.arange(len(keys)), keys[:, 1], keys[:, 0]))
    return order[_runs_start(keys[order])].astype(np.int64)


def find_keys(sorted_keys: Keys, keys: Keys) -> npt.NDArray[np.int64]:
    """The row of each of `keys` in `sorted_keys` (distinct, in key order), -1 where it is not there."""
    pos = np.full(len(keys), -1, dtype=np.int64)
    if not len(keys) or not len(sorted_keys):
        return pos
    k0 = sorted_keys[:, 0]
    order = np.argsort(keys[:, 0], kind="stable")  # (sorted needles: the search walks the index once)
    q0 = keys[order, 0]
    lo = np.empty(len(keys), dtype=np.int64)
    hi = np.empty(len(keys), dtype=np.int64)
    lo[order] = np.searchsorted(k0, q0, side="left")
    hi[order] = np.searchsorted(k0, q0, side="right")
    one = np.flatnonzero(hi - lo == 1)
    hit = one[sorted_keys[lo[one], 1] == keys[one, 1]]
    pos[hit] = lo[hit]
    for i in np.flatnonzero(hi - lo > 1).tolist():  # (keys whose first words collide: 1 in 2^64 per pair)
        run = np.flatnonzero(sorted_keys[lo[i] : hi[i], 1] == keys[i, 1])
        if len(run):
            pos[i] = lo[i] + int(run[0])
    return pos


def _insertion_points(sorted_keys: Keys, keys: Keys) -> npt.NDArray[np.int64]:
    """Where each of `keys` (none of them in `sorted_keys`, which are distinct and in key order) goes among
    `sorted_keys` to keep them in key order: the number of keys below it."""
    k0 = sorted_keys[:, 0]
    pos = np.searchsorted(k0, keys[:, 0], side="left").astype(np.int64)
    hi = np.searchsorted(k0, keys[:, 0], side="right")
    for i in np.flatnonzero(hi > pos).tolist():  # (first words equal: 1 in 2^64 per pair)
        pos[i] += int(np.searchsorted(sorted_keys[pos[i] : hi[i], 1], keys[i, 1]))
    return pos


_RUNS_PER_ROW = 1 / 64  # (fewer runs of rows than this share of the rows: copied run by run)


def _spliced(rows: npt.NDArray[Any], kept: npt.NDArray[np.int64] | None, pos: npt.NDArray[np.int64],
             values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """`np.insert(rows[kept], pos, values, axis=0)` (all the rows without `kept`), made with one copy of the kept
    rows: where they fall in few runs (rows that follow each other in both arrays: a parent's index with a few
    rows left out and a few inserted), run by run into the new array, without the array `rows[kept]` between."""
    n = len(rows) if kept is None else len(kept)
    src = np.arange(n, dtype=np.int64) if kept is None else kept
    dst = np.arange(n, dtype=np.int64) + np.searchsorted(pos, np.arange(n, dtype=np.int64), side="right")
    brk = np.flatnonzero((np.diff(src) != 1) | (np.diff(dst) != 1)) + 1
    if len(brk) + 1 > max(64, n * _RUNS_PER_ROW):
        return np.insert(rows if kept is None else rows[kept], pos, values, axis=0)
    out = np.empty((n + len(values), *rows.shape[1:]), dtype=rows.dtype)
    out[pos + np.arange(len(values), dtype=np.int64)] = values
    for a, b in zip(np.concatenate([[0], brk]).tolist(), np.concatenate([brk, [n]]).tolist(), strict=True):
        if b > a:
            out[dst[a] : dst[a] + b - a] = rows[src[a] : src[a] + b - a]
    return out


def key_bytes(instruction: str, response: str) -> bytes:
    """The key (`KEY_SCHEME`) of one record's two fields, as the 16 bytes `keys_from_bytes` reads."""
    return xxhash.xxh3_128_digest(response.encode("utf-8"), xxhash.xxh3_64_intdigest(instruction.encode("utf-8")))


def keys_from_bytes(data: bytes) -> Keys:
    """Keys from their digests joined (16 bytes each, as `key_bytes` and `text_keys` make them): (n, 2) uint64."""
    return np.frombuffer(data, dtype=">u8").reshape(-1, 2).astype(np.uint64)


@dataclass(frozen=True, slots=True)
class SignatureIndex:
    """Signatures by key: `keys` (m, 2) distinct and in key order, `sig` (m, num_perm) uint32 in the same order."""

    params: IndexParams
    keys: Keys
    sig: minhash.U32

    @classmethod
    def empty(cls, params: IndexParams) -> SignatureIndex:
        return cls(params, np.zeros((0, 2), np.uint64), np.zeros((0, params.num_perm), np.uint32))

    @classmethod
    def of(cls, params: IndexParams, keys: Keys, sig: minhash.U32) -> SignatureIndex:
        """An index of the given rows (a key given twice is one row: its first). Texts without a shingle (their
        signature all `minhash.EMPTY`: they never match) are left out, as the Ray engine leaves them out."""
        if sig.shape != (len(keys), params.num_perm):
            raise ValueError(f"signatures of shape {sig.shape} for {len(keys)} keys of {params.num_perm} slots")
        some = np.flatnonzero((sig != minhash.EMPTY).any(axis=1))
        order = some[_key_order(keys[some])]
        k = keys[order]
        first = _runs_start(k)
        return cls(params, np.ascontiguousarray(k[first]), sig[order[first]])  # (one gather of the signatures)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, keys: Keys) -> npt.NDArray[np.int64]:
        """The row of each key, -1 where the index lacks it."""
        return find_keys(self.keys, keys)

    def merged(self, keys: Keys, sig: minhash.U32, keep: npt.NDArray[np.bool_] | None = None) -> SignatureIndex:
        """This index with the given rows added (those whose keys it lacks) and, with `keep`, only the rows of it
        that `keep` marks: the new rows, sorted, inserted in place (one sequential copy of the kept rows, not a
        sort of them all)."""
        kept = None if keep is None or keep.all() else np.flatnonzero(keep)
        base_keys = self.keys if kept is None else self.keys[kept]
        new = find_keys(base_keys, keys) < 0
        add = SignatureIndex.of(self.params, keys[new], sig[new]) if new.any() else SignatureIndex.empty(self.params)
        if kept is None and not len(add):
            return self
        pos = _insertion_points(base_keys, add.keys)
        return SignatureIndex(self.params, np.insert(base_keys, pos, add.keys, axis=0),
                              _spliced(self.sig, kept, pos, add.sig))

    def table(self) -> pa.Table:
        """The index as its Parquet file holds it (see the module's docstring)."""
        p = self.params
        m = len(self.keys)
        band = minhash.band_hashes(self.sig, p.bands, p.rows) if m else np.zeros((0, p.bands), np.uint64)
        # (the signature and band buffers handed to Arrow as they are: no copy of the index's largest arrays)
        cols = [key_array(self.keys), _fixed(_little(self.sig, "<u4"), 4 * p.num_perm, m),
                _fixed(_little(band, "<u8"), 8 * p.bands, m)]
        schema = index_schema(p).with_metadata({INDEX_META: p.model_dump_json().encode()})
        return pa.Table.from_arrays(cols, schema=schema)

    @classmethod
    def from_table(cls, table: pa.Table, schema: pa.Schema | None = None) -> SignatureIndex:
        """The index a `table()` holds (its parameters from the schema metadata), or a ValueError saying what is
        wrong with it. `schema`: the whole file's, where `table` holds only its key and signature columns."""
        params = _params_of(schema if schema is not None else table.schema)
        m = table.num_rows
        keys = keys_of(table.column("key"))
        sig = _words(table.column("signature"), "<u4", m, params.num_perm).astype(np.uint32, copy=False)
        return cls.checked(params, keys, sig)

    @classmethod
    def checked(cls, params: IndexParams, keys: Keys, sig: minhash.U32) -> SignatureIndex:
        """The index of these rows, or a ValueError when its keys are not distinct and in key order."""
        if not in_key_order(keys):
            raise ValueError("its keys are not distinct and in key order")
        return cls(params, keys, sig)


def _params_of(schema: pa.Schema) -> IndexParams:
    """The parameters of an index file's schema (its metadata), or a ValueError saying what is wrong with it."""
    meta = (schema.metadata or {}).get(INDEX_META)
    if meta is None:
        raise ValueError("no parameters in its metadata (not a signature index)")
    try:
        params = IndexParams.model_validate_json(meta)
    except ValidationError as e:
        raise ValueError(f"its parameters do not parse ({e.errors()[0]['msg']})") from None
    if not schema.remove_metadata().equals(index_schema(params)):
        raise ValueError(f"its columns are {schema.remove_metadata()}, not {index_schema(params)}")
    return params


def index_schema(params: IndexParams) -> pa.Schema:
    return pa.schema([pa.field("key", pa.binary(16), nullable=False),
                      pa.field("signature", pa.binary(4 * params.num_perm), nullable=False),
                      pa.field("bands", pa.binary(8 * params.bands), nullable=False)])


def key_array(keys: Keys) -> pa.Array:
    """Keys as the index's `key` column: binary(16), the two words big-endian."""
    return _fixed(np.ascontiguousarray(keys.astype(">u8")).tobytes(), 16, len(keys))


def keys_of(col: pa.Array | pa.ChunkedArray) -> Keys:
    """The inverse of `key_array`."""
    arr = col if isinstance(col, pa.ChunkedArray) else pa.chunked_array([col], pa.binary(16))
    return _words(arr, ">u8", len(arr), 2).astype(np.uint64)


def _fixed(data: bytes | npt.NDArray[np.generic], width: int, n: int) -> pa.Array:
    return pa.Array.from_buffers(pa.binary(width), n, [None, pa.py_buffer(data)])


def _little(a: npt.NDArray[np.generic], dtype: str) -> npt.NDArray[np.generic]:
    """`a` as contiguous little-endian words of `dtype` (itself when it already is)."""
    return np.ascontiguousarray(a, dtype=np.dtype(dtype))


def _words(col: pa.ChunkedArray, dtype: str, m: int, per_row: int,
           out: npt.NDArray[np.generic] | None = None) -> npt.NDArray[np.generic]:
    """A fixed-size binary column as an (m, per_row) array of `dtype` words (one copy, chunk by chunk; into `out`
    where it is given)."""
    if col.null_count:
        raise ValueError("null values in a column of the index")
    if col.type.byte_width != np.dtype(dtype).itemsize * per_row:
        raise ValueError(f"values of {col.type.byte_width} bytes, not {np.dtype(dtype).itemsize * per_row}")
    if out is None:
        out = np.empty((m, per_row), dtype=dtype)
    if len(out) != len(col):
        raise ValueError(f"{len(col)} rows where {len(out)} were expected")
    at = 0
    for arr in col.chunks:
        n = len(arr)
        out[at : at + n] = np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset * per_row :
                                                                     (arr.offset + n) * per_row].reshape(n, per_row)
        at += n
    return out


def write_index(index: SignatureIndex, path: Path) -> None:
    """The index as Parquet (uncompressed: signatures and hashes are random bytes)."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(index.table(), path, compression="none", row_group_size=ROW_GROUP, use_dictionary=False,
                   write_statistics=False)


def read_index(path: Path) -> SignatureIndex:
    """An index written by `write_index` (a ValueError or OSError when it cannot be read as one)."""
    import pyarrow.parquet as pq

    # (ParquetFile: `pq.read_table` imports pyarrow.dataset, and with it pandas, 0.5 s. Memory-mapped, one thread,
    # without the band keys, which a reader recomputes for its own banding: 0.2-0.4 s for a 530 MB index, against
    # 1.3-3.3 s for every column read by the default thread pool. A row group at a time, copied into the index's
    # arrays: the reader's buffers are one row group's, reused, not a second copy of the whole index)
    try:
        with pq.ParquetFile(path, memory_map=True) as f:
            params = _params_of(f.schema_arrow)
            m = f.metadata.num_rows
            keys, sig = np.empty((m, 2), dtype=">u8"), np.empty((m, params.num_perm), dtype="<u4")
            at = 0
            for g in range(f.num_row_groups):
                part = f.read_row_group(g, columns=["key", "signature"], use_threads=False)
                n = part.num_rows  # (more rows than the file's count: `_words` says so)
                _words(part.column("key"), ">u8", n, 2, keys[at : at + n])
                _words(part.column("signature"), "<u4", n, params.num_perm, sig[at : at + n])
                at += n
            if at != m:
                raise ValueError(f"its row groups hold {at:,} rows, not its {m:,}")
    except (pa.ArrowInvalid, KeyError) as e:
        raise ValueError(f"not a Parquet file of an index ({e})") from None
    return SignatureIndex.checked(params, keys.astype(np.uint64), sig.astype(np.uint32, copy=False))
