"""Text normalisation and the stable record id.

`normalize_text` is the comparison key for exact duplicates: Unicode NFKC, typographic quotes,
dashes and spaces folded to ASCII, whitespace collapsed, case folded. `record_id` hashes the
normalised instruction and response, so two records that differ only in typography or layout
share an id, on every machine (xxh3 is specified bit for bit).
"""

from __future__ import annotations

import unicodedata

import xxhash

_FOLD = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "\u0060": "`",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
        "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u3000": " ",
        "\u200b": "", "\u200c": "", "\u200d": "", "\ufeff": "",
    }
)


def fold_typography(text: str) -> str:
    """NFKC plus typographic quotes, dashes, ellipses and odd spaces folded to ASCII; layout kept."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_FOLD)


def normalize_text(text: str) -> str:
    """The exact-duplicate key: typography folded, whitespace collapsed, case folded."""
    return " ".join(fold_typography(text).split()).casefold()


def record_id(instruction: str, response: str) -> str:
    """Stable 16-hex-digit id of a record's normalised content (category excluded on purpose:
    two records with the same text and different labels are the same content with a label conflict)."""
    key = normalize_text(instruction) + "\x1f" + normalize_text(response)
    return xxhash.xxh3_64_hexdigest(key.encode("utf-8"))


def has_typography(text: str) -> bool:
    return not text.isascii() and fold_typography(text) != text
