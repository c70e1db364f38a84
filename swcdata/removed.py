"""The removed records of a dedup report, held as columns.

A dedup report names every removed record with the kept record it duplicates: about a million
entries when a million records go in. As pydantic models those cost two objects each to build and
seconds to serialise; `RemovedList` keeps them as columns (row positions into shared id / source
lists, kinds, similarities), builds a `Removed` model only for the entry that is read, and writes
its JSON in slices straight from the columns (in C, `_json.c`; with orjson where the extension is
not built), byte for byte what pydantic writes for the same list.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from swcdata._ext import fast as _fast
from swcdata.schema import RecordRef, Source


class Removed(BaseModel):
    """A removed record and the kept record it duplicates."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: Source
    kind: Literal["exact", "near"]
    similarity: float = Field(description="1.0 for exact duplicates; estimated Jaccard with the kept record. A "
                              "cluster is a chain of pairs at or above the threshold, so a member at the far end of "
                              "a chain can be below it against the kept record.")
    duplicate_of: RecordRef = Field(description="The kept record of the record's cluster.")


_SLICE = 1 << 16  # entries serialised per orjson call: bounded memory, few calls
# entries per C call: about 3 MB of text, a size the allocator reuses from one call to the next (a
# fresh block costs a page fault every 4 KB, which here costs as much as writing the text)
_C_SLICE = 1 << 13


class RemovedList(Sequence[Removed]):
    """A read-only sequence of `Removed` entries stored as columns.

    `ids`, `files` and `lines` describe the rows the entries name (each row once); entry k is the
    row `at[k]`, of kind `exact[k]` and similarity `similarity[k]`, removed as a duplicate of the
    row `of[k]`. It compares equal to any sequence of the same entries (a list of `Removed`
    included), and a pydantic field of this type accepts such a list."""

    __slots__ = ("_at", "_exact", "_files", "_ids", "_lines", "_of", "_sim")
    __hash__ = None  # type: ignore[assignment]  # mutable-looking sequences are not hashable

    def __init__(self, ids: Sequence[str], files: Sequence[str], lines: Sequence[int], at: npt.ArrayLike,
                 of: npt.ArrayLike, exact: npt.ArrayLike, similarity: npt.ArrayLike) -> None:
        self._ids, self._files, self._lines = _as_list(ids), _as_list(files), _as_list(lines)
        self._at = np.asarray(at, dtype=np.int64)
        self._of = np.asarray(of, dtype=np.int64)
        self._exact = np.asarray(exact, dtype=bool)
        self._sim = np.asarray(similarity, dtype=np.float64)
        if not (len(self._at) == len(self._of) == len(self._exact) == len(self._sim)):
            raise ValueError("RemovedList columns differ in length")

    @classmethod
    def of_entries(cls, entries: Iterable[Removed]) -> RemovedList:
        """The columns of a list of entries (each entry names its own two rows)."""
        items = list(entries)
        m = len(items)
        refs = [r.source for r in items] + [r.duplicate_of.source for r in items]
        return cls([r.id for r in items] + [r.duplicate_of.id for r in items], [s.file for s in refs],
                   [s.line for s in refs], np.arange(m), np.arange(m, 2 * m), [r.kind == "exact" for r in items],
                   [r.similarity for r in items])

    def __len__(self) -> int:
        return len(self._at)

    @overload
    def __getitem__(self, i: int) -> Removed: ...

    @overload
    def __getitem__(self, i: slice) -> list[Removed]: ...

    def __getitem__(self, i: int | slice) -> Removed | list[Removed]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        a, o = int(self._at[i]), int(self._of[i])
        return Removed.model_construct(
            id=self._ids[a], source=Source.model_construct(file=self._files[a], line=self._lines[a]),
            kind="exact" if self._exact[i] else "near", similarity=float(self._sim[i]),
            duplicate_of=RecordRef.model_construct(
                id=self._ids[o], source=Source.model_construct(file=self._files[o], line=self._lines[o])))

    def __iter__(self) -> Iterator[Removed]:
        return (self[k] for k in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __repr__(self) -> str:
        return f"RemovedList({len(self)} entries)"

    def dicts(self, lo: int = 0, hi: int | None = None) -> list[dict[str, Any]]:
        """Entries [lo, hi) as plain JSON-ready dicts (one shared dict per kept record)."""
        hi = len(self) if hi is None else hi
        ids, files, lines = self._ids, self._files, self._lines
        of = self._of[lo:hi]
        refs = {o: {"id": ids[o], "source": {"file": files[o], "line": lines[o]}} for o in np.unique(of).tolist()}
        kind = ("near", "exact")
        return [{"id": ids[a], "source": {"file": files[a], "line": lines[a]}, "kind": kind[e], "similarity": s,
                 "duplicate_of": refs[o]}
                for a, o, e, s in zip(self._at[lo:hi].tolist(), of.tolist(), self._exact[lo:hi].tolist(),
                                      self._sim[lo:hi].tolist(), strict=True)]

    def json_items(self, depth: int) -> Iterator[bytes | memoryview]:
        """The entries as the items of an indented (2 spaces) JSON array whose items sit at `depth`:
        what pydantic's `to_json(indent=2)` writes between the brackets, in slices."""
        if _fast is not None:  # the same bytes, written in C from the columns
            yield from self._c_items(depth)
            return
        pad = b"\n" + b"  " * (depth - 1)
        for lo in range(0, len(self), _SLICE):
            if lo:
                yield b",\n"
            with _gc_paused():
                body = orjson.dumps(self.dicts(lo, lo + _SLICE), option=orjson.OPT_INDENT_2)
            # "[\n  {...},\n  {...}\n]" has its items at depth 1: shifting every line gives
            # "[" pad "  {...}," pad "  {...}" pad "]", whose middle is the items at `depth`
            shifted = body.replace(b"\n", pad)
            yield memoryview(shifted)[2 : len(shifted) - len(pad) - 1]

    def _c_items(self, depth: int) -> Iterator[bytes]:
        """`json_items` by `_fast.removed_json`, in slices of `_C_SLICE` entries: each distinct
        similarity is formatted once by orjson (which formats floats as pydantic does), the rest in C."""
        assert _fast is not None
        values, index = np.unique(self._sim, return_inverse=True)
        texts = [orjson.dumps(v) for v in values.tolist()]
        index = index.astype(np.int64).reshape(-1)
        for lo in range(0, len(self), _C_SLICE):
            hi = lo + _C_SLICE
            if lo:
                yield b",\n"
            yield _fast.removed_json(self._ids, self._files, self._lines, self._at[lo:hi], self._of[lo:hi],
                                     self._exact[lo:hi], index[lo:hi], texts, depth)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        items = handler.generate_schema(list[Removed])
        from_list = core_schema.no_info_after_validator_function(cls.of_entries, items)
        return core_schema.json_or_python_schema(
            json_schema=from_list,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_list]),
            serialization=core_schema.plain_serializer_function_ser_schema(list, return_schema=items),
        )



def _as_list(values: Sequence[Any]) -> list[Any]:
    return values if isinstance(values, list) else list(values)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a slice of entries is built and dumped: a few hundred
    thousand short-lived dicts, which would otherwise set off full collections again and again (the
    slice's dicts outlive the young generations). 3.2 s instead of 7.4 s for 967,000 entries."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
