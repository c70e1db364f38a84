"""Length distributions kept as counts, and the word-and-punctuation token count.

`LengthCounts` holds how many records have each length (a few thousand distinct values, whatever the number
of records), so `stats` keeps no per-record lists: the summary (`min`, `p50`, `mean`, `p95`, `max`, `total`) and
the histograms of `--plots` come from the counts. Its percentiles are numpy's default ("linear") percentiles of
the records' lengths, to the last bit: `percentile` follows numpy's own steps (the virtual index `(n - 1) * q`,
its floor, and numpy's two-sided `_lerp`), taking the two order statistics from the cumulative counts.

`count_tokens(texts)` is `len(re.findall(r"\\w+|[^\\w\\s]", text))` of every text of a polars Series (a null
counts as "", 0 tokens), with Python's Unicode `\\w` and `\\s`: the number of maximal runs of word code points
plus the number of code points that are neither word nor space. Python's two classes are read from `re` itself
once (`_class_ranges`: inclusive code point ranges) and serve both ways of counting:

* the C piece "tokens" (swcdata._native: `count_tokens_views` in swcdata/_native/_tokens.c) counts on the
  Series' own Arrow buffers (polars' string views, no copy of the text), ASCII 64 bytes at a time (~3 GB/s);
* its Python reference, and the path where the extension is off (`SWCDATA_NO_EXT=tokens`): polars'
  `str.count_matches(token_pattern())`. `token_pattern()` is the same regex written for polars' engine (Rust's
  `regex`), whose `\\w` and `\\s` are not Python's (Rust's \\w takes every combining mark and connector
  punctuation, Python's takes numerals such as '½'; Python's \\s takes \\x1c-\\x1f, Rust's does not): the two
  classes are listed range by range, so `str.count_matches(token_pattern())` counts exactly what the findall
  counts, for every text (~120-170 MB/s).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swcdata import _native
from swcdata._native import fast as _fast

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

PYTHON_TOKEN_REGEX = r"\w+|[^\w\s]"


@dataclass(frozen=True)
class LengthCounts:
    """How many records have each length: `values` ascending (distinct), `counts` beside them (int64 arrays)."""

    values: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls) -> LengthCounts:
        import numpy as np

        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @classmethod
    def merge(cls, parts: Iterable[LengthCounts]) -> LengthCounts:
        """The counts of all the parts' records together."""
        import numpy as np

        parts = [p for p in parts if len(p.values)]
        if not parts:
            return cls.empty()
        values = np.concatenate([p.values for p in parts])
        counts = np.concatenate([p.counts for p in parts])
        uniq, inverse = np.unique(values, return_inverse=True)
        return cls(uniq.astype(np.int64), _sum_by(inverse, counts, len(uniq)))

    @property
    def records(self) -> int:
        return int(self.counts.sum())

    @property
    def total(self) -> int:
        """The sum of the lengths."""
        return int((self.values * self.counts).sum())

    def nth(self, k: int) -> int:
        """The k-th smallest length (0-based), as the sorted list of every record's length holds it."""
        import numpy as np

        return int(self.values[int(np.searchsorted(self._cumulative, k, side="right"))])

    @functools.cached_property
    def _cumulative(self) -> np.ndarray:
        return self.counts.cumsum()

    def percentile(self, q: int | float) -> float:
        """`float(numpy.percentile(lengths, q))` (method "linear") without the list of lengths."""
        n = self.records
        if n == 0:
            raise ValueError("percentile of no records")
        quantile = q / 100  # (numpy: np.true_divide(q, 100), the same correctly rounded float)
        virtual = (n - 1) * quantile
        if virtual >= n - 1:  # numpy takes the last value (its _get_indexes)
            return float(self.nth(n - 1))
        below = math.floor(virtual)
        gamma = virtual - below
        a, b = self.nth(below), self.nth(below + 1)
        diff = b - a
        if gamma >= 0.5:  # numpy's _lerp: from the upper end when gamma >= 0.5
            return b - diff * (1 - gamma)
        return a + diff * gamma

    def mean(self) -> float:
        """numpy's mean of the lengths: their sum (exact in float64 below 2**53) over the count, rounded once."""
        return self.total / self.records

    def histogram(self, edges: np.ndarray) -> np.ndarray:
        """Records per bin, binned as numpy.histogram (and matplotlib's hist) bins the lengths themselves."""
        import numpy as np

        return np.histogram(self.values, bins=edges, weights=self.counts)[0]


def _sum_by(inverse: np.ndarray, counts: np.ndarray, size: int) -> np.ndarray:
    import numpy as np

    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, inverse, counts)
    return out


@functools.cache
def _class_ranges() -> tuple[np.ndarray, np.ndarray]:
    """Python's \\w and \\s (str patterns) as inclusive code point ranges, read from `re` itself: two read-only
    (k, 2) uint32 arrays of (lo, hi), ascending."""
    import numpy as np

    # Every code point but the surrogates (which no valid UTF-8 text holds), as one string.
    gap = 0xE000 - 0xD800
    points = np.concatenate([np.arange(0xD800, dtype="<u4"), np.arange(0xE000, 0x110000, dtype="<u4")])
    every = points.tobytes().decode("utf-32-le")

    def ranges(pattern: str) -> np.ndarray:
        spans: list[tuple[int, int]] = []
        for m in re.finditer(pattern, every):
            lo, hi = m.start(), m.end() - 1
            parts = [(lo, hi)] if hi < 0xD800 or lo >= 0xD800 else [(lo, 0xD7FF), (0xD800, hi)]
            spans += [((a if a < 0xD800 else a + gap), (b if b < 0xD800 else b + gap)) for a, b in parts]
        out = np.array(spans, dtype=np.uint32).reshape(-1, 2)
        out.flags.writeable = False
        return out

    return ranges(r"\w+"), ranges(r"\s+")


@functools.cache
def _python_classes() -> tuple[str, str]:
    """Python's \\w and \\s (str patterns) as regex classes of code point ranges (`_class_ranges`)."""

    def ranges(spans: np.ndarray) -> str:
        return "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in spans.tolist())

    word, space = _class_ranges()
    return ranges(word), ranges(space)


def token_pattern() -> str:
    """`\\w+|[^\\w\\s]` with Python's classes, for polars' `str.count_matches`."""
    word, space = _python_classes()
    return f"[{word}]+|[^{word}{space}]"


@functools.cache
def _c_classes() -> None:
    """Gives the C counter Python's classes (once per process)."""
    assert _fast is not None
    word, space = _class_ranges()
    _fast.token_classes_init(word, space)


def count_tokens(texts: pl.Series) -> pl.Series:
    """`len(re.findall(r"\\w+|[^\\w\\s]", text))` of every text (Int64, same length and name; null: 0), in C
    where the piece "tokens" is on, else with polars' regex (`token_pattern()`)."""
    import polars as pl

    if texts.dtype != pl.String:
        texts = texts.cast(pl.String)
    if not (_fast is not None and _native.on("tokens")):
        return texts.fill_null("").str.count_matches(token_pattern()).cast(pl.Int64)
    import numpy as np
    import pyarrow as pa

    _c_classes()
    out = np.zeros(len(texts), dtype=np.int64)
    if len(out):
        arr = texts.to_arrow(compat_level=pl.CompatLevel.newest())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        validity, index, *data = (b"" if b is None else b for b in arr.buffers())
        validity = validity or None  # (b"": no bitmap, every string valid)
        if pa.types.is_string_view(arr.type):
            _fast.count_tokens_views(out, index, data, validity, arr.offset)
        else:  # string or large_string (an older polars)
            width = 8 if pa.types.is_large_string(arr.type) else 4
            _fast.count_tokens(out, data[0] if data else b"", index, width, validity, arr.offset)
    return pl.Series(texts.name, out, dtype=pl.Int64)
