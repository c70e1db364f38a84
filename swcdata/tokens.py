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
from collections.abc import Sequence
from itertools import chain

import numpy as np
import xxhash

from swcdata import minhash
from swcdata.text import normalize_text

_WORD = re.compile(r"\w+")


def _prose_tokens(text: str) -> list[str]:
    return _WORD.findall(normalize_text(text)) if text and not text.isspace() else []


def token_stream(text: str, *, abstract_identifiers: bool = True, abstract_literals: bool = False) -> list[str]:
    """Code-aware tokens of one field: prose words (normalised) and lexed code, in text order."""
    from swcdata import solidity

    out: list[str] = []
    pos = 0
    for span in solidity.extract_code(text):
        out += _prose_tokens(text[pos : span.start])
        out += solidity.code_tokens(span.text, abstract_identifiers=abstract_identifiers,
                                    abstract_literals=abstract_literals)
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
# do) costs more than the hashing, so the fast path maps each raw token straight to the hashes of
# its abstracted form with a per-process cache: one C-level dict lookup per token. A token whose
# abstracted form contains whitespace (a string literal with spaces) maps to several hashes, the
# same split that the text path makes, so both paths give the same signatures.

_CACHE_MAX = 1_000_000
_HASH_CACHES: dict[tuple[bool, bool], dict[str, tuple[int, ...]]] = {}
_PROSE_CACHE: dict[str, tuple[int, ...]] = {}
_SEP = (xxhash.xxh3_64_intdigest(b"\x00"),)


def _hashes_of(text: str) -> tuple[int, ...]:
    return tuple(xxhash.xxh3_64_intdigest(w.encode()) for w in text.split())


def _code_cache(ids: bool, lits: bool) -> dict[str, tuple[int, ...]]:
    cache = _HASH_CACHES.get((ids, lits))
    if cache is None or len(cache) > _CACHE_MAX:
        cache = _HASH_CACHES[(ids, lits)] = {}
    return cache


def _append_field(text: str, out: list[int], code_cache: dict[str, tuple[int, ...]], ids: bool, lits: bool) -> None:
    """Append the token hashes of one field (prose words and lexed code, in text order) to `out`."""
    from swcdata import solidity

    prose = _PROSE_CACHE
    if len(prose) > _CACHE_MAX:
        prose.clear()
    pos = 0
    spans = solidity.extract_code(text) if text else []
    for k in range(len(spans) + 1):
        seg = text[pos : spans[k].start] if k < len(spans) else text[pos:]
        if seg and not seg.isspace():
            words = _WORD.findall(normalize_text(seg))
            vals = list(map(prose.get, words))
            if None in vals:
                for j, v in enumerate(vals):
                    if v is None:
                        v = prose.get(words[j])
                        if v is None:
                            v = prose[words[j]] = _hashes_of(words[j])
                        vals[j] = v
            out.extend(chain.from_iterable(vals))  # type: ignore[arg-type]
        if k < len(spans):
            toks = solidity.code_tokens(spans[k].text)
            cvals = list(map(code_cache.get, toks))
            if None in cvals:
                for j, v in enumerate(cvals):
                    if v is None:
                        t = toks[j]
                        v = code_cache.get(t)
                        if v is None:
                            v = code_cache[t] = _hashes_of(solidity._abstract_token(t, ids, lits) if ids or lits
                                                           else t)
                        cvals[j] = v
            out.extend(chain.from_iterable(cvals))  # type: ignore[arg-type]
            pos = spans[k].end


def token_hashes(instructions: Sequence[str], responses: Sequence[str], *, abstract_identifiers: bool = True,
                 abstract_literals: bool = False) -> tuple[minhash.U64, minhash.I64]:
    """Token hashes of the records' streams (flat uint64 and per-record offsets): the same values as
    `minhash.token_hashes(record_streams(...))`, several times faster."""
    ids, lits = abstract_identifiers, abstract_literals
    code_cache = _code_cache(ids, lits)
    flat: list[int] = []
    offsets = [0]
    for i, r in zip(instructions, responses, strict=True):
        _append_field(i or "", flat, code_cache, ids, lits)
        flat.extend(_SEP)
        _append_field(r or "", flat, code_cache, ids, lits)
        offsets.append(len(flat))
    return np.fromiter(flat, dtype=np.uint64, count=len(flat)), np.asarray(offsets, dtype=np.int64)


Job = tuple[list[str], list[str], bool, bool, int, int, int]


def chunk_signatures(job: Job) -> minhash.U32:
    instructions, responses, ids, lits, ngram, num_perm, seed = job
    th, toff = token_hashes(instructions, responses, abstract_identifiers=ids, abstract_literals=lits)
    hashes, offsets = minhash.shingles_of_token_hashes(th, toff, ngram)
    return minhash.signatures(hashes, offsets, num_perm, seed)
