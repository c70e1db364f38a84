"""Text normalisation and the stable record id.

`normalize_text` is the comparison key for exact duplicates: Unicode NFKC, typographic quotes,
dashes and spaces folded to ASCII, whitespace collapsed, case folded. `record_id` hashes the
normalised instruction and response, so two records that differ only in typography or layout
share an id, on every machine (xxh3 is specified bit for bit).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import xxhash

_FOLD: dict[str, str] = (
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "\u0060": "`",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
        "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u3000": " ",
        "\u200b": "", "\u200c": "", "\u200d": "", "\ufeff": "",
        "\u02bc": "'", "\u00ad": "", "\u2060": "",
    }
)
_ASCII_BYTES = bytes(range(128))


def fold_typography(text: str) -> str:
    """NFKC plus typographic quotes, dashes, ellipses and odd spaces folded to ASCII; layout kept."""
    if text.isascii():
        return text
    # Folded before NFKC too: NFKC would turn some of them into something else first (an acute
    # accent into a space and a combining accent, a double prime into two primes).
    text = _fold(text)
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = _fold(unicodedata.normalize("NFKC", text))
    return text


def _fold(text: str) -> str:
    # The distinct non-ASCII characters, at C speed: UTF-8 less its ASCII bytes is exactly the
    # non-ASCII characters' encodings, in a row. (str.translate or a regex with a callback walks
    # the text in Python-level steps.) Each is replaced in one str.replace pass; a replacement is
    # ASCII, so the order of the passes does not matter.
    found = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass")
    for c in set(found):
        r = _FOLD.get(c)
        if r is not None:
            text = text.replace(c, r)
    return text


def normalize_text(text: str) -> str:
    """The exact-duplicate key: typography folded, whitespace collapsed, case folded."""
    return " ".join(fold_typography(text).split()).casefold()


def record_id(instruction: str, response: str) -> str:
    """Stable 16-hex-digit id of a record's normalised content (category excluded on purpose:
    two records with the same text and different labels are the same content with a label conflict)."""
    # One pass over both fields: " \x00 " survives normalisation as its own token, so this equals
    # normalize_text(instruction) + " \x00 " + normalize_text(response).
    key = normalize_text(_joined(instruction, response))
    return xxhash.xxh3_64_hexdigest(key.encode("utf-8"))


def _joined(instruction: str, response: str) -> str:
    """The two fields around the separator NUL. A NUL inside a field is written NUL + \x01 (which
    normalisation keeps together), so the separator is the one NUL without a \x01 after it and two
    different pairs of fields never give the same key; fields without a NUL (all real text) are
    joined as they are."""
    if "\x00" in instruction or "\x00" in response:
        instruction, response = instruction.replace("\x00", "\x00\x01"), response.replace("\x00", "\x00\x01")
    return instruction + " \x00 " + response


def record_ids(instructions: Sequence[str], responses: Sequence[str]) -> list[str]:
    """``[record_id(i, r) for i, r in zip(instructions, responses)]``, several times faster on many records.

    Texts that are ASCII (after folding typography) are normalised together in one buffer with
    numpy: for ASCII, ``" ".join(t.split()).casefold()`` is ``t`` with every run of the ten ASCII
    characters that ``str.split`` treats as blanks (``\\t \\n \\v \\f \\r \\x1c-\\x1f`` and space) turned
    into one space, stripped, lower-cased. Others take :func:`record_id`'s own path. (There is no C version
    of the key: it would save too little to keep, bench/RESULTS.md.)
    """
    import numpy as np

    n = len(instructions)
    out: list[str] = [""] * n
    fast: list[int] = []
    texts: list[bytes] = []
    for k in range(n):
        i, r = instructions[k], responses[k]
        t = i + " \x00 " + r if "\x00" not in i and "\x00" not in r else _joined(i, r)
        if not t.isascii():
            t = fold_typography(t)
            if not t.isascii():
                out[k] = xxhash.xxh3_64_hexdigest(" ".join(t.split()).casefold().encode("utf-8"))
                continue
        fast.append(k)
        texts.append(t.encode("ascii"))
    if not texts:
        return out
    # \xff never occurs in ASCII text and is not a blank: it separates the texts in the buffer.
    buf = np.frombuffer(b"\xff".join(texts), dtype=np.uint8)
    blank = np.subtract(buf, 9, dtype=np.uint8) <= 4  # \t \n \v \f \r
    blank |= np.subtract(buf, 28, dtype=np.uint8) <= 4  # \x1c-\x1f and space
    keep = np.empty(len(buf), dtype=bool)
    keep[0] = True
    np.logical_and(blank[1:], blank[:-1], out=keep[1:])
    np.logical_not(keep[1:], out=keep[1:])  # drop a blank that follows a blank
    spaced = np.subtract(32, buf, dtype=np.uint8)  # every blank becomes a space: b + (32 - b) * blank
    spaced *= blank.view(np.uint8)
    spaced += buf
    parts = spaced[keep].tobytes().lower().split(b"\xff")
    h = xxhash.xxh3_64_hexdigest
    for k, part in zip(fast, parts, strict=True):
        out[k] = h(part.strip(b" "))
    return out
