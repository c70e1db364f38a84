"""Code-level matching: does the Solidity code of one record appear in another, whatever the prose says?

Whole-record near-duplicate detection compares code and prose together, so a reworded explanation
hides identical code: the seed corpus has test records whose vulnerable function sits, token for
token, in a training instruction. This module compares the code alone:

- a record's code is every code span that the extractor finds in its instruction (fences, unquoted
  blocks, and quoted spans: the seed data quotes whole functions in single quotes), lexed with
  comments and layout removed, identifiers optionally abstracted (`ID`), the spans separated by one
  marker token so that no match runs across two of them;
- **contained**: a code span of record a (of at least `min_tokens` tokens) is a contiguous run of the
  tokens of record b's code (equal code included): a test function pasted inside a training contract
  is caught, whatever its share of it and whatever other fragments either record quotes;
- **near**: the estimated Jaccard similarity of their code shingles is at or above `threshold`
  (MinHash + LSH, the same machinery as `dedup`), for code that was edited a little.

Code shorter than `min_tokens` is not matched at this level: a one-line `msg.sender.transfer(x);`
is shared by hundreds of unrelated records. The whole-record rules still see those records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from swcdata.core.lazy import Lazy
from swcdata.similarity import minhash
from swcdata.solidity.lexer import code_tokens
from swcdata.solidity.spans import extract_code

SPAN_MARK = "\u00a7"  # between the code spans of one record (never a token of the lexer)
_ANCHOR = 8  # tokens per anchor window of the containment search


class CodeMatchConfig(BaseModel):
    """The code-level leak rule's knobs."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    min_tokens: int = Field(20, ge=_ANCHOR, le=10_000, description="Code of fewer tokens is not matched at the code "
                            "level (one-line fragments are shared by unrelated records).")
    threshold: float = Field(0.8, gt=0, le=1, description="Estimated Jaccard similarity of the code's shingles at "
                             "or above which two pieces of code are near copies.")
    abstract_identifiers: bool = Field(True, description="Ignore identifier names (a renamed copy is a copy).")
    ngram: int = Field(5, ge=1, le=32, description="Code tokens per shingle of the near rule.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations of the near rule.")
    seed: int = Field(1, ge=0, le=2**63 - 1, description="Seed of the MinHash permutations.")


@dataclass
class RecordCode:
    """The code of one record: its spans' tokens (all spans), in text order."""

    spans: list[list[str]]

    def needles(self, min_tokens: int) -> list[list[str]]:
        """The spans long enough to be matched on their own."""
        return [sp for sp in self.spans if len(sp) >= min_tokens]

    def joined(self) -> list[str]:
        """Every span, separated by the marker (a match never runs across two spans)."""
        out: list[str] = []
        for sp in self.spans:
            if out:
                out.append(SPAN_MARK)
            out.extend(sp)
        return out


def record_code(instructions: Sequence[str], cfg: CodeMatchConfig) -> list[RecordCode]:
    """The code tokens of each instruction's code spans (string literals with blanks kept as one token)."""
    out: list[RecordCode] = []
    for text in instructions:
        spans = []
        for span in extract_code(text):
            lexed = code_tokens(span.text, abstract_identifiers=cfg.abstract_identifiers)
            if lexed:
                spans.append([t.replace(" ", "\u2423") if " " in t else t for t in lexed])
        out.append(RecordCode(spans))
    return out


Kind = Literal["contained", "contains", "near"]


@dataclass
class CodePairs:
    """Matches between records of `a` and of `b`: a[i] relates to b[j] as `kind` (contained: a's code is inside
    b's; contains: b's code is inside a's; near: similar code), with the estimated similarity (1.0 for the
    containment kinds)."""

    i: npt.NDArray[np.int64]
    j: npt.NDArray[np.int64]
    kind: list[Kind]
    similarity: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.i)


def windows(streams: list[list[str]]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Hashes of every `_ANCHOR`-token window of each stream, and the window offsets per stream."""
    return minhash.shingle_hashes([" ".join(c) for c in streams], _ANCHOR, short_whole=False)


def occurrences(sorted_values: npt.NDArray[np.uint64], look: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """How many times each of `look` occurs in `sorted_values`. The values are looked up in ascending order (each
    search starts where the last ended: 6x faster than in their own order for millions of them)."""
    order = minhash.hash_order(look)
    q = look[order]
    out = np.empty(len(look), dtype=np.int64)
    out[order] = np.searchsorted(sorted_values, q, side="right") - np.searchsorted(sorted_values, q, side="left")
    return out


@dataclass(frozen=True)
class _Needles:
    """The spans of a set of records long enough to be looked for (`RecordCode.needles`): each one's record, and the
    hashes of their anchor windows (`windows`)."""

    owner: list[int]
    spans: Sequence[list[str]]
    w: npt.NDArray[np.uint64]
    off: npt.NDArray[np.int64]

    def counts_in(self, hy: _Hays) -> npt.NDArray[np.int64]:
        """How many times each window occurs among the hays' windows."""
        count = np.zeros(len(self.w), dtype=np.int64)
        look = self.w
        at: npt.NDArray[np.int64] | None = None
        if len(self.w) > 4 * len(hy.w_sorted):
            # many needles (a large set's, against a few hays): only the windows whose low bits some hay window has
            # are looked up (a bitmap of about 16 bits per hay window: no window a hay holds is left out)
            bits = 1 << max(10, len(hy.w_sorted).bit_length() + 4)
            low = np.uint64(bits - 1)
            bitmap = np.zeros(bits, dtype=bool)
            bitmap[(hy.w_sorted & low).astype(np.intp)] = True
            at = np.flatnonzero(bitmap[(self.w & low).astype(np.intp)])
            look = self.w[at]
        found = occurrences(hy.w_sorted, look)
        if at is None:
            return found
        count[at] = found
        return count


@dataclass(frozen=True)
class _Hays:
    """The code of a set of records as the needles are looked for in it: the anchor windows of each record's joined
    spans, sorted (with their records), and each record's code as one blank-padded string."""

    w_sorted: npt.NDArray[np.uint64]
    rec_sorted: npt.NDArray[np.int64]
    text: Sequence[str]


def _needles(a: Sequence[RecordCode], min_tokens: int) -> _Needles:
    owner = [i for i, rc in enumerate(a) for _ in rc.needles(min_tokens)]
    spans = [sp for rc in a for sp in rc.needles(min_tokens)]
    w, off = windows(spans)
    return _Needles(owner, spans, w, off)


def _hays(b: Sequence[RecordCode]) -> _Hays:
    return _sorted_hays(b, *windows([rc.joined() for rc in b]))


def _sorted_hays(b: Sequence[RecordCode], wb: npt.NDArray[np.uint64], ob: npt.NDArray[np.int64], *,
                 lazy: bool = False) -> _Hays:
    """The hays of `b` from the anchor windows of each record's joined spans (`windows`, offsets `ob`); `lazy`: each
    record's code string made when a needle's window is found in it."""
    rec_b = np.repeat(np.arange(len(b), dtype=np.int64), np.diff(ob))
    order = minhash.hash_order(wb)  # (by window, then record)
    text = Lazy(len(b), lambda j: _hay_text(b[j])) if lazy else [_hay_text(rc) for rc in b]
    return _Hays(wb[order], rec_b[order], text)


def _hay_text(rc: RecordCode) -> str:
    return f" {' '.join(rc.joined())} "


class _NeedleSpans(Sequence[list[str]]):
    """The needles of a set of records, needle after needle (`RecordCode.needles`), each record's code read when one
    of its needles is."""

    def __init__(self, codes: Sequence[RecordCode], owner: npt.NDArray[np.int64], first: npt.NDArray[np.int64],
                 min_tokens: int) -> None:
        self._codes, self._owner, self._first, self._min = codes, owner, first, min_tokens

    def __len__(self) -> int:
        return len(self._owner)

    def __getitem__(self, n: Any) -> Any:
        if isinstance(n, slice):
            return [self[k] for k in range(*n.indices(len(self)))]
        i = int(self._owner[n])
        return self._codes[i].needles(self._min)[int(n) - int(self._first[i])]


def _contained(a: list[RecordCode], b: list[RecordCode], min_tokens: int, same: bool) -> list[tuple[int, int]]:
    """(i, j) where a span of a[i] (of at least min_tokens tokens) occurs whole in the code of b[j] (i != j when
    `same`): see `_contained_in`."""
    return _contained_in(_needles(a, min_tokens), _hays(b), same)


def _contained_in(nd: _Needles, hy: _Hays, same: bool) -> list[tuple[int, int]]:
    """(i, j) where a needle of record i occurs whole in the code of hay record j (i != j when `same`): each needle
    is looked up by its rarest anchor window among the hays' windows, and every record holding that window is
    checked. A needle with a window that no hay holds is not looked up."""
    wa, oa = nd.w, nd.off
    if len(wa) == 0 or len(hy.w_sorted) == 0:
        return []
    count = nd.counts_in(hy)
    rec_sorted, hay = hy.rec_sorted, hy.text
    sizes = np.diff(oa)
    some = np.flatnonzero(sizes > 0)
    rarest = np.minimum.reduceat(count, oa[some]) if len(some) else count[:0]
    out: dict[tuple[int, int], None] = {}
    for n in some[rarest > 0].tolist():  # (needles each of whose windows some hay holds)
        lo, hi = int(oa[n]), int(oa[n + 1])
        k = lo + int(np.argmin(count[lo:hi]))
        left = int(np.searchsorted(hy.w_sorted, wa[k : k + 1], side="left")[0])
        i = nd.owner[n]
        needle = f" {' '.join(nd.spans[n])} "
        for j in dict.fromkeys(rec_sorted[left : left + int(count[k])].tolist()):
            if (not same or i != j) and (i, j) not in out and needle in hay[j]:
                out[(i, j)] = None
    return list(out)


@dataclass(frozen=True)
class CodeSide:
    """What `code_pairs` reads of the records of its set `b`, made once (`code_side`) for a set matched against
    several others (a build's train split, against validation and against test)."""

    records: int
    needles: _Needles
    hays: _Hays
    near_rows: npt.NDArray[np.int64]
    near_sig: minhash.U32


def code_side(b: list[RecordCode], cfg: CodeMatchConfig) -> CodeSide:
    rows, sig = near_signatures(b, cfg)
    return CodeSide(len(b), _needles(b, cfg.min_tokens), _hays(b), rows, sig)


def code_side_of(b: Sequence[RecordCode], cfg: CodeMatchConfig, needles_per_record: npt.NDArray[np.int64],
                 needle_w: npt.NDArray[np.uint64], needle_off: npt.NDArray[np.int64], hay_w: npt.NDArray[np.uint64],
                 hay_off: npt.NDArray[np.int64], near_rows: npt.NDArray[np.int64], near_sig: minhash.U32) -> CodeSide:
    """`code_side(b, cfg)` from what it hashes, computed before (record by record: `swcdata.steps.features`): each
    record's number of needles, the anchor windows of the needles (`needle_off`: per needle), of each record's
    joined spans (`hay_off`: per record), and the near rule's signatures of the records that have some. A record's
    code (`b[i]`, which may be made when it is read) is read only where a needle or a hay of it is looked at."""
    counts = np.asarray(needles_per_record, dtype=np.int64)
    owner = np.repeat(np.arange(len(b), dtype=np.int64), counts)
    first = np.zeros(len(b) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    nd = _Needles(owner.tolist(), _NeedleSpans(b, owner, first, cfg.min_tokens), needle_w, needle_off)
    return CodeSide(len(b), nd, _sorted_hays(b, hay_w, hay_off, lazy=True), near_rows, near_sig)


def _near(a: Sequence[RecordCode], b: CodeSide | None, cfg: CodeMatchConfig,
          a_side: CodeSide | None = None) -> list[tuple[int, int, float]]:
    """(i, j, similarity) of code near copies between `a` and `b` (within `a` when b is None; the spans of at least
    min_tokens tokens of each record), every pair of each LSH bucket verified at the threshold. `a_side`: `a`'s
    signatures, where they are at hand."""
    rows, sig = (a_side.near_rows, a_side.near_sig) if a_side is not None else near_signatures(a, cfg)
    lsh = minhash.lsh_params(cfg.threshold, cfg.num_perm)
    if b is None:
        if len(rows) < 2:
            return []
        pairs = minhash.candidate_pairs(sig, *lsh, all_pairs=True)
        sims = minhash.similarity(sig, pairs)
        keep = sims >= cfg.threshold
        pairs, sims = rows[pairs[keep]], sims[keep]
        return [(int(x), int(y), float(s)) for (x, y), s in zip(pairs.tolist(), sims, strict=True)]
    if not len(rows) or not len(b.near_rows):
        return []
    # (a record's signature is its own: the two sets signed apart are the two signed together; only the pairs
    # between them, as `candidate_pairs` of both, a first, gives them)
    pairs = minhash.cross_pairs(sig, b.near_sig, *lsh)
    both = np.concatenate([sig, b.near_sig])
    sims = minhash.similarity(both, pairs + np.array([0, len(rows)]))
    keep = sims >= cfg.threshold
    pairs, sims = pairs[keep], sims[keep]
    return [(int(x), int(y), float(s)) for x, y, s in zip(rows[pairs[:, 0]].tolist(),
                                                         b.near_rows[pairs[:, 1]].tolist(), sims, strict=True)]


def near_signatures(codes: Sequence[RecordCode], cfg: CodeMatchConfig) -> tuple[npt.NDArray[np.int64], minhash.U32]:
    """The near rule's MinHash signatures of the code of the records that have some (their spans of at least
    min_tokens tokens, as one stream): those records' positions in `codes`, and their signatures."""
    streams = [[t for sp in rc.needles(cfg.min_tokens) for t in (*sp, SPAN_MARK)] for rc in codes]
    rows = np.array([k for k, c in enumerate(streams) if c], dtype=np.int64)
    if len(rows) == 0:
        return rows, np.zeros((0, cfg.num_perm), dtype=np.uint32)
    h, off = minhash.shingle_hashes([" ".join(streams[k]) for k in rows], cfg.ngram)
    return rows, minhash.signatures(h, off, cfg.num_perm, cfg.seed)


def contained_pairs(a: list[RecordCode], b: list[RecordCode], min_tokens: int) -> list[tuple[int, int]]:
    """(i, j) where a span of a[i] (of at least min_tokens tokens) occurs whole in the code of b[j]."""
    return _contained(a, b, min_tokens, False)


def code_pairs(a: Sequence[RecordCode], b: Sequence[RecordCode] | None, cfg: CodeMatchConfig, *,
               b_side: CodeSide | None = None, a_side: CodeSide | None = None) -> CodePairs:
    """Every code-level match between the records of `a` and those of `b` (or within `a` when b is None,
    each unordered pair once). Containment first; a pair that is also near keeps its containment kind.
    `b_side`, `a_side`: `code_side(b, cfg)`, `code_side(a, cfg)` where they are at hand (made here otherwise)."""
    same = b is None
    side = None if b is None else b_side if b_side is not None else code_side(b, cfg)
    found: dict[tuple[int, int], tuple[Kind, float]] = {}
    a_needles = a_side.needles if a_side is not None else _needles(a, cfg.min_tokens)
    a_hays = a_side.hays if a_side is not None else None
    for i, j in _contained_in(a_needles, (a_hays if a_hays is not None else _hays(a)) if side is None
                               else side.hays, same):
        key = (min(i, j), max(i, j)) if same else (i, j)
        kind: Kind = "contained" if not same or i < j else "contains"
        found.setdefault(key, (kind, 1.0))
    for i, j in (_contained_in(side.needles, a_hays if a_hays is not None else _hays(a), False)
                 if side is not None else []):
        found.setdefault((j, i), ("contains", 1.0))
    for i, j, s in _near(a, side, cfg, a_side):
        found.setdefault((i, j), ("near", round(s, 4)))
    keys = sorted(found)
    return CodePairs(i=np.array([k[0] for k in keys], dtype=np.int64),
                     j=np.array([k[1] for k in keys], dtype=np.int64),
                     kind=[found[k][0] for k in keys],
                     similarity=np.array([found[k][1] for k in keys], dtype=np.float64))
