"""Length distributions kept as counts, and the word-and-punctuation token count in polars.

`LengthCounts` holds how many records have each length (a few thousand distinct values, whatever the number
of records), so `stats` keeps no per-record lists: the summary (`min`, `p50`, `mean`, `p95`, `max`, `total`) and
the histograms of `--plots` come from the counts. Its percentiles are numpy's default ("linear") percentiles of
the records' lengths, to the last bit: `percentile` follows numpy's own steps (the virtual index `(n - 1) * q`,
its floor, and numpy's two-sided `_lerp`), taking the two order statistics from the cumulative counts.

`token_pattern()` is Python's `\\w+|[^\\w\\s]` written for polars' regex engine (Rust's `regex`), whose `\\w` and
`\\s` are not Python's (Rust's \\w takes every combining mark and connector punctuation, Python's takes
numerals such as '½'; Python's \\s takes \\x1c-\\x1f, Rust's does not): the two classes are listed code point by
code point from Python's own `re`, so `str.count_matches(token_pattern())` counts exactly what
`len(re.findall(r"\\w+|[^\\w\\s]", text))` counts, for every text.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

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
def _python_classes() -> tuple[str, str]:
    """Python's \\w and \\s (str patterns) as regex classes of code point ranges, read from `re` itself."""
    import numpy as np

    # Every code point but the surrogates (which no valid UTF-8 text holds), as one string.
    gap = 0xE000 - 0xD800
    points = np.concatenate([np.arange(0xD800, dtype="<u4"), np.arange(0xE000, 0x110000, dtype="<u4")])
    every = points.tobytes().decode("utf-32-le")

    def ranges(pattern: str) -> str:
        parts = []
        for m in re.finditer(pattern, every):
            lo, hi = m.start(), m.end() - 1
            spans = [(lo, hi)] if hi < 0xD800 or lo >= 0xD800 else [(lo, 0xD7FF), (0xD800, hi)]
            for a, b in spans:
                a, b = (a if a < 0xD800 else a + gap), (b if b < 0xD800 else b + gap)
                parts.append(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}")
        return "".join(parts)

    return ranges(r"\w+"), ranges(r"\s+")


def token_pattern() -> str:
    """`\\w+|[^\\w\\s]` with Python's classes, for polars' `str.count_matches`."""
    word, space = _python_classes()
    return f"[{word}]+|[^{word}{space}]"
