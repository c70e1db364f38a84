"""The one switch between swcdata's C extension and its Python references.

The extension `swcdata._native._fast` (built from `_fast.c`, `_extract.c` and `_tokens.c` at install time where a C
compiler is there) holds a few measured hot loops, the pieces below. Each has exactly one Python
reference that tests/test_fast.py holds it to; the C only makes it faster (figures: the README's
"What is in C and why", bench/RESULTS.md). Every module asks here which one runs:

* ``fast`` is the extension module, or None: where it was not built, or where the environment sets
  ``SWCDATA_NO_EXT=1`` (every piece in Python).
* ``SWCDATA_NO_EXT=lex,lsh`` (a comma list of `PIECES`) runs those pieces' Python references
  and keeps the others in C: for measuring each piece's share of a command (bench/ext_pieces.py).
  ``on(piece)`` tells whether a piece runs in C.
* ``backend()`` is what every report and manifest records: ``"c"``, ``"python"``, or ``"c"``
  followed by the pieces that ran in Python, e.g. ``"c (python: lex, lsh)"``.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

PIECES: dict[str, str] = {
    "extract": "code extraction (solidity.spans.extract_code)",
    "lex": "the Solidity lexer (solidity.lexer.code_tokens)",
    "field_ids": "dedup's token ids of a field, in IdTable caches in front of the token lookups "
                 "(similarity.tokens._form_ids)",
    "sign_forms": "dedup's shingles and MinHash signatures, fused per record (similarity.tokens.chunk_signatures)",
    "lsh": "LSH band hashes, buckets and their star pairs (similarity.minhash.band_hashes, candidate_pairs)",
    "similarity": "pair similarities (similarity.minhash.similarity)",
    "tokens": "stats' word-and-punctuation token counts (evaluation.lengths.count_tokens)",
}

_SETTING = os.environ.get("SWCDATA_NO_EXT", "").strip().lower()
OFF: frozenset[str]
if _SETTING in ("", "0"):
    OFF = frozenset()
elif _SETTING in ("1", "all", "true", "yes"):
    OFF = frozenset(PIECES)
else:
    OFF = frozenset(p.strip() for p in _SETTING.split(",") if p.strip())
    if unknown := sorted(OFF - PIECES.keys()):
        warnings.warn(f"SWCDATA_NO_EXT: unknown piece(s) {', '.join(unknown)} (known: {', '.join(PIECES)})",
                      RuntimeWarning, stacklevel=1)
        OFF &= PIECES.keys()

fast: ModuleType | None = None
if PIECES.keys() != OFF:
    try:
        from swcdata._native import _fast as fast
    except ImportError:  # not built: the pure-Python path
        fast = None


def on(piece: str) -> bool:
    """Whether `piece` (one of `PIECES`) runs in C."""
    if piece not in PIECES:
        raise KeyError(piece)
    return fast is not None and piece not in OFF


def backend() -> str:
    """Which code ran, as reports and manifests record it: "c", "python", or "c (python: PIECES...)"."""
    if fast is None:
        return "python"
    return "c" if not OFF else f"c (python: {', '.join(sorted(OFF))})"
