"""The code-aware token stream that near-duplicate detection shingles, and the MinHash signatures of
a chunk of records built straight from it.

A record's stream is the Solidity code extracted from its instruction and response, lexed with
comments and layout removed (identifiers and literals optionally abstracted), interleaved with the
normalised words of the prose around it; the two fields are separated by a NUL token. This module
imports only numpy, xxhash and the Solidity lexer (no pyarrow, no pydantic), so the processes that
`dedup` starts to sign chunks in parallel stay small.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import xxhash

from swcdata import _native
from swcdata._native import fast as _fast
from swcdata.core.text import normalize_text
from swcdata.similarity import minhash
from swcdata.solidity.lexer import _KEEP, _abstract_token, code_tokens
from swcdata.solidity.spans import extract_code

TOKEN_STREAM_VERSION = 1
"""The version of the token stream and of the signatures made from it (`chunk_signatures`). A stored signature
index (`swcdata.similarity.sigindex`) records it and is reused only by the same version: bump it with any change
that alters a record's stream, its shingles or its signature."""

_WORD = re.compile(r"\w+")
# ASCII characters outside ``\\w`` -> space: the ``\\w+`` runs of ASCII text are then its split()
_NON_WORD_TO_SPACE = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})


def _prose_tokens(text: str) -> list[str]:
    return _WORD.findall(normalize_text(text)) if text and not text.isspace() else []


def token_stream(text: str, *, abstract_identifiers: bool = True, abstract_literals: bool = False) -> list[str]:
    """Code-aware tokens of one field: prose words (normalised) and lexed code, in text order."""
    out: list[str] = []
    pos = 0
    for span in extract_code(text):
        out += _prose_tokens(text[pos : span.start])
        out += code_tokens(span.text, abstract_identifiers=abstract_identifiers, abstract_literals=abstract_literals)
        pos = span.end
    out += _prose_tokens(text[pos:])
    return out


def record_streams(instructions: Sequence[str], responses: Sequence[str], *, abstract_identifiers: bool = True,
                   abstract_literals: bool = False) -> list[str]:
    """The records' streams as text, tokens joined by spaces, fields separated by a NUL token: the
    readable definition that `token_hashes` computes without building the text. A string literal
    containing spaces simply yields several tokens, the same way every time."""
    ids, lits = abstract_identifiers, abstract_literals
    return [
        " ".join(token_stream(i, abstract_identifiers=ids, abstract_literals=lits)) + " \x00 "
        + " ".join(token_stream(r, abstract_identifiers=ids, abstract_literals=lits))
        for i, r in zip(instructions, responses, strict=True)
    ]


# --------------------------------------------------------------------------- fast path: token hashes
#
# The signature of a record only needs the xxh3-64 hash of every token of its stream. Building the
# stream as text, joining it and splitting it again (what `record_streams` + `minhash.shingle_hashes`
# do) costs more than the hashing, so the fast path maps each raw token to a small integer, the id
# of its abstracted form, with per-process lookup tables (one C-level dict subscript per token; a
# miss computes the form once), and turns the ids into hashes with one numpy gather per chunk. A
# form containing whitespace (a string literal with spaces) has several hashes, the same split that
# the text path makes, so both paths give the same signatures.

_CACHE_MAX = 2_000_000  # lookup entries in all (about 200 MB at most)


class _Forms:
    """Token forms (the strings whose whitespace-split words are hashed) numbered in order of first
    sight, with their hashes in one flat pool: form i has ``count[i]`` hashes from ``pool[start[i]]``."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.start = np.zeros(1024, dtype=np.int64)
        self.count = np.zeros(1024, dtype=np.int64)
        self.pool = np.zeros(1024, dtype=np.uint64)
        self.used = 0  # entries of pool in use

    def id_of(self, form: str) -> int:
        i = self.ids.get(form)
        if i is None:
            hs = [xxhash.xxh3_64_intdigest(w.encode()) for w in form.split()]
            i = self.ids[form] = len(self.ids)
            if i >= len(self.start):
                self.start = np.resize(self.start, 2 * i)
                self.count = np.resize(self.count, 2 * i)
            while self.used + len(hs) > len(self.pool):
                self.pool = np.resize(self.pool, 2 * len(self.pool))
            self.start[i], self.count[i] = self.used, len(hs)
            self.pool[self.used : self.used + len(hs)] = hs
            self.used += len(hs)
        return i


def _c_field_ids() -> bool:
    """Whether a field's token ids are found in C (`_fast.field_ids` and its IdTables)."""
    return _fast is not None and _native.on("field_ids")


class _Lookup(dict[str, int]):
    """Raw token -> form id; a missing token gets its form's id (`form` maps the token to its form)."""

    def __init__(self, forms: _Forms, form: Callable[[str], str] | None) -> None:
        super().__init__()
        self.forms, self.form = forms, form

    def __missing__(self, token: str) -> int:
        i = self[token] = self.forms.id_of(self.form(token) if self.form is not None else token)
        return i


class _Tables:
    """One process's form table and the lookups into it: prose words, and code tokens per
    abstraction setting."""

    def __init__(self) -> None:
        self.forms = _Forms()
        self.prose = _Lookup(self.forms, None)
        self.code: dict[tuple[bool, bool], _Lookup] = {}
        # With the C extension, its IdTable in front of each lookup (held here, never by the lookups:
        # no reference cycle); None without it
        self.prose_ids: Any = _fast.IdTable(self.prose) if _c_field_ids() else None
        self.code_ids: dict[tuple[bool, bool], Any] = {}

    def entries(self) -> int:
        # (a C table may hold tokens its lookup never saw: abstracted identifiers)
        code = self.code_ids.values() if self.code_ids else self.code.values()
        return len(self.forms.ids) + len(self.prose) + sum(map(len, code))


_TABLES: _Tables | None = None


def _tables(ids: bool, lits: bool) -> tuple[_Tables, _Lookup]:
    """This process's tables and its code lookup for the abstraction setting. They start afresh
    (between chunks, never inside one) once they hold _CACHE_MAX entries in all, which bounds their
    memory."""
    global _TABLES
    if _TABLES is None or _TABLES.entries() > _CACHE_MAX:
        _TABLES = _Tables()
    t = _TABLES
    code = t.code.get((ids, lits))
    if code is None:
        code = t.code[(ids, lits)] = _Lookup(t.forms, (lambda tok: _abstract_token(tok, ids, lits)) if ids or lits
                                             else None)
        if _c_field_ids():  # identifiers abstracted: a new name is stored as "ID" in C (see _fast.IdTable)
            t.code_ids[(ids, lits)] = (_fast.IdTable(code, keep=_KEEP, abstract_id=t.forms.id_of("ID"))
                                       if ids else _fast.IdTable(code))
    return t, code


def _append_field_fast(text: str, out: bytearray, prose: Any, code: Any) -> None:
    """`_append_field` with the C extension: the ids (native int64) go to `out`; `prose` and `code`
    are the `_fast.IdTable`s of the two lookups. Spans, code tokens and prose words are found in C;
    only a prose segment with a character that typography folding does not turn into an ASCII
    separator (a letter with an accent, an ideogram, a zero-width space) is normalised by
    `_prose_tokens`."""
    assert _fast is not None
    _fast.field_ids(text, prose, code, out, _prose_tokens)


def _append_field(text: str, out: list[int], prose: _Lookup, code: _Lookup) -> None:
    """Append the form ids of one field's tokens (prose words and lexed code, in text order) to `out`.

    For an ASCII field the prose words of a segment are the ``\\w+`` runs of the lower-cased field
    between the spans (found as the split() of the field with every other character made a space):
    the words of the normalised segment, since for ASCII text normalisation only collapses blanks
    (never inside a word) and lower-cases. Other fields normalise each segment as `token_stream`
    does."""
    spans = extract_code(text) if text else []
    low = text.lower().translate(_NON_WORD_TO_SPACE) if text.isascii() else None
    word, tok = prose.__getitem__, code.__getitem__
    pos = 0
    for k in range(len(spans) + 1):
        end = spans[k].start if k < len(spans) else len(text)
        if end > pos:
            if low is not None:
                out += map(word, low[pos:end].split())
            else:
                out += map(word, _prose_tokens(text[pos:end]))
        if k < len(spans):
            span = spans[k]
            out += map(tok, code_tokens(span.text))
            pos = span.end


def _form_ids(instructions: Sequence[str], responses: Sequence[str], abstract_identifiers: bool,
              abstract_literals: bool) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], _Forms]:
    """The form ids of the records' streams (flat int64), the n + 1 record boundaries into them, and
    the form table they index."""
    tables, code = _tables(abstract_identifiers, abstract_literals)
    forms, prose = tables.forms, tables.prose
    sep = forms.id_of("\x00")
    ends: list[int] = [0]
    if _c_field_ids():  # the same ids, found in C
        ptab, ctab = tables.prose_ids, tables.code_ids[(abstract_identifiers, abstract_literals)]
        buf = bytearray()
        sep_bytes = np.array([sep], dtype=np.int64).tobytes()
        for i, r in zip(instructions, responses, strict=True):
            _append_field_fast(i or "", buf, ptab, ctab)
            buf += sep_bytes
            _append_field_fast(r or "", buf, ptab, ctab)
            ends.append(len(buf) >> 3)
        ids = np.frombuffer(buf, dtype=np.int64)
    else:
        flat: list[int] = []
        for i, r in zip(instructions, responses, strict=True):
            _append_field(i or "", flat, prose, code)
            flat.append(sep)
            _append_field(r or "", flat, prose, code)
            ends.append(len(flat))
        ids = np.fromiter(flat, dtype=np.int64, count=len(flat))
    return ids, np.asarray(ends, dtype=np.int64), forms


def token_hashes(instructions: Sequence[str], responses: Sequence[str], *, abstract_identifiers: bool = True,
                 abstract_literals: bool = False) -> tuple[minhash.U64, minhash.I64]:
    """Token hashes of the records' streams (flat uint64 and per-record offsets): the same values as
    `minhash.token_hashes(record_streams(...))`, several times faster."""
    ids, ends, forms = _form_ids(instructions, responses, abstract_identifiers, abstract_literals)
    counts = forms.count[ids]
    # hashes per record: the counts summed up to each record's end
    cum = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=cum[1:])
    offsets = cum[ends]
    if len(ids) and counts.min() == 1 and counts.max() == 1:  # the usual case: one hash per form
        return forms.pool[forms.start[ids]], offsets
    pick = np.repeat(forms.start[ids] - cum[:-1], counts) + np.arange(int(cum[-1]), dtype=np.int64)
    return forms.pool[pick], offsets


Packed = tuple[npt.NDArray[np.int64], bytes]
"""Strings packed for a worker process the way an Arrow string column holds them: n + 1 offsets into
their UTF-8 bytes. Pickling one is a copy of two buffers, where a list of str pickles string by string."""


def unpack(texts: list[str] | Packed) -> list[str]:
    """The strings of a `Packed` (a list is returned as it is)."""
    if isinstance(texts, list):
        return texts
    offsets, data = texts
    return [data[a:b].decode("utf-8") for a, b in pairwise(offsets.tolist())]


Job = tuple[list[str] | Packed, list[str] | Packed, bool, bool, int, int, int]


def chunk_signatures(job: Job) -> minhash.U32:
    """MinHash signatures `(n, num_perm)` of a chunk of records: token streams, ngram shingles and
    signatures (`minhash.signatures(*minhash.shingles_of_token_hashes(*token_hashes(...), ngram), ...)`)."""
    packed_ins, packed_res, ids, lits, ngram, num_perm, seed = job
    instructions, responses = unpack(packed_ins), unpack(packed_res)
    if _fast is not None and _native.on("sign_forms"):  # the same signatures from the form ids in one C pass
        form_ids, ends, forms = _form_ids(instructions, responses, ids, lits)
        sig = np.full((len(ends) - 1, num_perm), minhash.EMPTY, dtype=np.uint32)
        a, b = minhash.perm_params(num_perm, seed)
        _fast.sign_forms(form_ids, ends, forms.start, forms.count, forms.pool, ngram, True, a, b, sig)
        return sig
    th, toff = token_hashes(instructions, responses, abstract_identifiers=ids, abstract_literals=lits)
    hashes, offsets = minhash.shingles_of_token_hashes(th, toff, ngram)
    return minhash.signatures(hashes, offsets, num_perm, seed)
