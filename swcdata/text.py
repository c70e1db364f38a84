"""Text normalisation and the stable record id.

`normalize_text` is the comparison key for exact duplicates: Unicode NFKC, typographic quotes,
dashes and spaces folded to ASCII, whitespace collapsed, case folded. `record_id` hashes the
normalised instruction and response, so two records that differ only in typography or layout
share an id, on every machine (xxh3 is specified bit for bit).
"""

from __future__ import annotations

import re
import unicodedata

import xxhash

_FOLD: dict[str, str] = (
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "\u0060": "`",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
        "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u3000": " ",
        "\u200b": "", "\u200c": "", "\u200d": "", "\ufeff": "",
    }
)
# str.translate walks every character in Python-level dict lookups (~40 ns/char); a regex that only
# stops at the few typographic characters is ~20x faster on typical records.
_FOLD_RE = re.compile("[" + "".join(_FOLD) + "]")


def _fold_char(m: re.Match[str]) -> str:
    return _FOLD[m.group()]


def fold_typography(text: str) -> str:
    """NFKC plus typographic quotes, dashes, ellipses and odd spaces folded to ASCII; layout kept."""
    if text.isascii():
        return text
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return _FOLD_RE.sub(_fold_char, text)


def normalize_text(text: str) -> str:
    """The exact-duplicate key: typography folded, whitespace collapsed, case folded."""
    return " ".join(fold_typography(text).split()).casefold()


def record_id(instruction: str, response: str) -> str:
    """Stable 16-hex-digit id of a record's normalised content (category excluded on purpose:
    two records with the same text and different labels are the same content with a label conflict)."""
    # One pass over both fields: " \x00 " survives normalisation as its own token, so this equals
    # normalize_text(instruction) + " \x00 " + normalize_text(response).
    key = normalize_text(instruction + " \x00 " + response)
    return xxhash.xxh3_64_hexdigest(key.encode("utf-8"))


def has_typography(text: str) -> bool:
    return not text.isascii() and fold_typography(text) != text
