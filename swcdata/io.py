"""Loss-free JSONL reading: path resolution, line streaming with provenance, line decoding.

Every line of every input is accounted for: a blank line is counted as blank, any other line is
either decoded into a JSON object or returned with the precise reason it could not be (invalid
UTF-8 with the byte offset, invalid JSON with line and column, not an object). Files are read as
bytes in a streaming fashion (one line in memory at a time, whatever its length); a UTF-8 BOM is
dropped, CRLF and a missing final newline are handled.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from swcdata.errors import InputError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_GLOB_CHARS = re.compile(r"[*?\[]")
BOM = b"\xef\xbb\xbf"


def resolve_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, directories (recursively, `*.jsonl`/`*.ndjson`) and globs into a sorted-per-argument,
    de-duplicated list of readable files. Raises `InputError` naming the first argument that gives nothing."""
    if not paths:
        raise InputError("no input paths given", hint="pass one or more JSONL files, directories or globs")
    out: list[Path] = []
    seen: set[Path] = set()
    for arg in paths:
        text = os.fspath(arg)
        p = Path(text)
        if p.is_dir():
            found = sorted(
                q for q in p.rglob("*")
                if q.is_file() and q.suffix in (".jsonl", ".ndjson") and not q.name.startswith(".")
            )
            if not found:
                raise InputError(f"directory contains no .jsonl files: {text}",
                                 hint="point at the JSONL files themselves or at a folder holding *.jsonl")
        elif p.is_file():
            found = [p]
        elif _GLOB_CHARS.search(text):
            found = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not found:
                raise InputError(f"no file matches the pattern: {text}")
        elif p.exists():
            raise InputError(f"not a regular file: {text}")
        else:
            raise InputError(f"no such file or directory: {text}")
        for q in found:
            if not os.access(q, os.R_OK):
                raise InputError(f"cannot read file (permission denied): {q}")
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


@dataclass(slots=True)
class FileStats:
    """Byte-level facts about one input file, filled in while it is streamed."""

    path: str
    sha256: str = ""
    bytes: int = 0
    lines: int = 0
    blank_lines: int = 0
    had_bom: bool = False
    crlf_lines: int = 0
    final_newline: bool = True


@dataclass(slots=True)
class LineChunk:
    """A run of consecutive non-blank lines of one file: (1-based line number, raw bytes without EOL)."""

    file: str
    lines: list[tuple[int, bytes]] = field(default_factory=list)


def iter_chunks(path: Path, stats: FileStats, chunk_size: int = 1000) -> Iterator[LineChunk]:
    """Stream a file as chunks of non-blank lines; counts blank lines and hashes the bytes into `stats`."""
    h = hashlib.sha256()
    name = str(path)
    chunk = LineChunk(name)
    lineno = 0
    last = b""
    try:
        f = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed in finally
    except OSError as e:
        raise InputError(f"cannot open {path}: {e.strerror}") from e
    try:
        for raw in f:
            lineno += 1
            h.update(raw)
            stats.bytes += len(raw)
            last = raw
            if lineno == 1 and raw.startswith(BOM):
                stats.had_bom = True
                raw = raw[3:]
            if raw.endswith(b"\n"):
                raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                    stats.crlf_lines += 1
            elif raw.endswith(b"\r"):
                raw = raw[:-1]
            if not raw.strip():
                stats.blank_lines += 1
                continue
            chunk.lines.append((lineno, raw))
            if len(chunk.lines) >= chunk_size:
                yield chunk
                chunk = LineChunk(name)
    except OSError as e:
        raise InputError(f"cannot read {path} at line {lineno + 1}: {e.strerror}") from e
    finally:
        f.close()
    if chunk.lines:
        yield chunk
    stats.lines = lineno
    stats.final_newline = lineno == 0 or last.endswith(b"\n")
    stats.sha256 = h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- decoding one line


@dataclass(slots=True)
class Decoded:
    """The outcome of decoding one line: an object, or a rule id and message saying why not."""

    obj: dict[str, Any] | None
    text: str | None  # the line as text (None when it is not valid UTF-8)
    error_rule: str | None = None
    error_message: str | None = None
    duplicate_keys: list[str] | None = None




def _count_keys(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_count_keys(v) for v in value.values() if isinstance(v, dict | list))
    if isinstance(value, list):
        return sum(_count_keys(v) for v in value if isinstance(v, dict | list))
    return 0


def _find_duplicate_keys(text: str) -> list[str]:
    import json

    dups: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen and k not in dups:
                dups.append(k)
            seen.add(k)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return dups


# A key token is a closing quote followed by a colon. Inside a JSON string a quote is always escaped,
# so `\"` + colon is text, and an unescaped one is a key -- unless a string ends in an escaped
# backslash (`\\"`), in which case the exact check runs.
_KEY_TOKEN = re.compile(rb'"\s*:')
_ESCAPED_KEY_TOKEN = re.compile(rb'\\"\s*:')


def _may_have_duplicate_keys(raw: bytes, n_keys: int) -> bool:
    """Cheap and conservative: False only when the line provably has no repeated key."""
    if b'\\\\"' in raw:
        return True
    if b'" :' not in raw:
        # The usual layout (`"key":`), as every JSON writer emits it: two C-speed substring counts
        # instead of a regex scan. (Keys written with two or more blanks before the colon are the
        # one layout this shortcut does not re-check.)
        return raw.count(b'":') - raw.count(b'\\":') != n_keys
    tokens = len(_KEY_TOKEN.findall(raw))
    if b'\\"' in raw:
        tokens -= len(_ESCAPED_KEY_TOKEN.findall(raw))
    return tokens != n_keys


def decode_line(raw: bytes) -> Decoded:
    """Decode one non-blank JSONL line. Never raises."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as ue:
            return Decoded(None, None, "invalid-utf8",
                           f"not valid UTF-8: byte 0x{raw[ue.start]:02x} at byte offset {ue.start} ({ue.reason})")
        return Decoded(None, text, "invalid-json", f"invalid JSON: {e}")
    text = raw.decode("utf-8")
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
                type(None): "null"}.get(type(obj), type(obj).__name__)
        return Decoded(None, text, "not-an-object", f"expected a JSON object, got {kind}")
    dups = None
    if _may_have_duplicate_keys(raw, _count_keys(obj)):
        dups = _find_duplicate_keys(text) or None
    return Decoded(obj, text, duplicate_keys=dups)
