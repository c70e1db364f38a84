"""`validate`: every line of the input ends valid or quarantined, and every problem is a finding.

Errors (the line is quarantined verbatim with its reasons): invalid UTF-8, invalid JSON, not an
object, a missing / empty / wrongly typed field, a malformed or unknown category.
Warnings (the record is kept): no Solidity code in the instruction, code that does not parse, a
"fix" that repeats the vulnerable code unchanged, a category the text contradicts, duplicate keys,
outlier length, an id that does not match the content.

The work is split into chunks of lines checked by a pure function (`check_lines`), in this
process or in a pool of worker processes when the code checks (tree-sitter parsing) are on.
Results come back in input order, so the output is the same whatever the number of workers.

tree-sitter is C, and a crash in it (SIGSEGV) kills its process. So a code span longer than
`max_parse_chars` is never parsed (`code-too-large`), the code checks always run in workers (with
`--workers 1` too), and a task whose worker died is checked again line by line in single-use child
processes (`recover_units`): the line during which one dies gets `parser-crashed` and the run goes on.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from swcdata import _native
from swcdata.core.arrow import int64s, strings
from swcdata.core.catalogue import BY_ID, ID_PATTERN, mentioned_ids, upper_mentions
from swcdata.core.io import (
    FileStats,
    LineUnit,
    decode_line,
    duplicate_keys,
    iter_units,
    read_unit,
    resolve_inputs,
    split_unit,
)
from swcdata.core.isolate import ChildCrashed, CrashTolerantPool, arm_test_crash, stream_isolated
from swcdata.core.schema import Finding, InputFile, Ledger, RuleCount, Severity, ValidationReport
from swcdata.core.text import record_ids
from swcdata.core.version import __version__
from swcdata.core.workers import process_pool, usable_cpus
from swcdata.similarity.sigindex import key_bytes, keys_from_bytes
from swcdata.solidity.lexer import code_tokens, normalize_code
from swcdata.solidity.spans import extract_code
from swcdata.solidity.treesitter import parse_check
from swcdata.steps.memo import Memo, MemoParams, usable

REQUIRED = ("instruction", "response", "category")
KNOWN = (*REQUIRED, "id", "source", "metadata", "parent_id", "transform", "template")

RULES: dict[str, tuple[Severity, str]] = {
    "invalid-utf8": (Severity.error, "the line is not valid UTF-8"),
    "invalid-json": (Severity.error, "the line is not valid JSON"),
    "not-an-object": (Severity.error, "the line is JSON but not an object"),
    "missing-field": (Severity.error, "a required field (instruction, response, category) is absent"),
    "empty-field": (Severity.error, "a required field is empty or only whitespace"),
    "wrong-type": (Severity.error, "a field has the wrong JSON type"),
    "malformed-category": (Severity.error, "the category is not of the form SWC-NNN"),
    "unknown-category": (Severity.error, "the category is not an SWC registry id (SWC-100 to SWC-136)"),
    "no-code": (Severity.warning, "the instruction contains no Solidity code"),
    "code-parse-error": (Severity.warning, "a code span does not parse as Solidity"),
    "code-too-large": (Severity.warning, "a code span is longer than max_parse_chars and was not parsed"),
    "parser-crashed": (Severity.warning, "checking the record's code crashed the worker process; the code was "
                                         "not checked (the record is kept)"),
    "noop-fix": (Severity.warning, "the response repeats the vulnerable code unchanged as its fix"),
    "category-contradiction": (Severity.warning, "the text names another SWC class than the category"),
    "duplicate-key": (Severity.warning, "a key appears twice in the object (the last value is used)"),
    "outlier-length": (Severity.warning, "a field is unusually short or long"),
    "id-mismatch": (Severity.warning, "the record's id does not match its content (recomputed)"),
    "extra-field": (Severity.info, "an unknown top-level field (kept under metadata)"),
    "too-deep": (Severity.error, "metadata nested too deeply to be stored"),
    "check-crashed": (Severity.error, "checking the line crashed the worker process even without the code checks"),
}


def warning_rules() -> list[str]:
    """The rules whose records are kept with a warning: the ones drop_findings (and augment's
    skip_findings) may name."""
    return [r for r, (sev, _) in RULES.items() if sev is Severity.warning]


class ValidateConfig(BaseModel):
    """Every knob of the validate step."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    check_code: bool = Field(True, description="Extract and parse Solidity code; off = schema checks only.")
    min_chars: int = Field(16, ge=0, description="A field shorter than this (characters) is an outlier.")
    max_chars: int = Field(16_384, gt=0, description="A field longer than this (characters) is an outlier.")
    noop_min_tokens: int = Field(12, ge=1, description="Smallest code span (tokens) considered by the no-op-fix rule.")
    workers: int = Field(0, ge=0, description="Worker processes for the code checks; 0 = one per CPU core.")
    chunk_size: int = Field(500, ge=1, description="Lines per unit of work.")
    max_parse_chars: int = Field(100_000, ge=1, description="A code span longer than this (characters) is not "
                                 "parsed (rule code-too-large): tree-sitter can crash on huge spans.")
    max_findings_per_rule: int = Field(1000, ge=0, description="Findings listed per rule (all are counted).")
    drop_findings: list[str] = Field(default_factory=list, description="Warning rules whose records are quarantined "
                                     "instead of kept (the quarantine gives the rule and says it was dropped by "
                                     "drop_findings), e.g. ['noop-fix'].")

    @model_validator(mode="after")
    def _bounds(self) -> ValidateConfig:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must not exceed max_chars ({self.max_chars})")
        bad = [r for r in self.drop_findings if r not in warning_rules()]
        if bad:
            raise ValueError(f"drop_findings: not a warning rule: {', '.join(map(repr, bad))} (warning rules: "
                             f"{', '.join(warning_rules())})")
        return self


# --------------------------------------------------------------------------- per-chunk checking


@dataclass(slots=True)
class Quarantined:
    file: str
    line: int
    text: str | None  # the line verbatim (None when not UTF-8: then `raw` holds the bytes)
    raw: bytes | None
    reasons: list[tuple[str, str | None, str]]  # (rule, field, message)

    def to_line(self) -> bytes:
        """The quarantine file's line for it (JSONL)."""
        return orjson.dumps(self.to_json()) + b"\n"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": {"file": self.file, "line": self.line},
            "reasons": [{"rule": r, "field": f, "message": m} for r, f, m in self.reasons],
        }
        if self.text is not None:
            out["line"] = self.text
        else:
            import base64

            out["line_base64"] = base64.b64encode(self.raw or b"").decode("ascii")
        return out


@dataclass(slots=True)
class ChunkResult:
    file: str
    n_lines: int
    batch: Any = None  # pa.RecordBatch of the valid records (RECORD_SCHEMA), in line order (None: not asked for)
    valid: int = 0  # valid records
    quarantined: list[Quarantined] = field(default_factory=list)
    findings: list[tuple[str, int, str | None, str]] = field(default_factory=list)  # (rule, line, field, message)
    blank_lines: int = 0  # blank and CRLF lines of the unit (check_unit), for the file's stats
    crlf_lines: int = 0
    # With a `CodeChecks` in use: the keys of the texts whose code was checked (16 bytes each, in line order),
    # their findings where they have some (by position in those keys), and how many came from its memo
    checked_keys: bytes = b""
    checked: dict[int, list[tuple[str, str | None, str]]] = field(default_factory=dict)
    reused: int = 0


def _type_name(v: Any) -> str:
    return {str: "string", int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}.get(
        type(v), "null" if v is None else type(v).__name__
    )


def _check_fields(obj: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    errs: list[tuple[str, str | None, str]] = []
    for name in REQUIRED:
        if name not in obj:
            present = ", ".join(sorted(obj)) or "none"
            errs.append(("missing-field", name, f"missing required field '{name}' (fields present: {present})"))
            continue
        v = obj[name]
        if not isinstance(v, str):
            errs.append(("wrong-type", name, f"'{name}' must be a string, got {_type_name(v)}"))
        elif not v.strip():
            errs.append(("empty-field", name, f"'{name}' is empty"))
    cat = obj.get("category")
    if isinstance(cat, str) and cat.strip():
        if not ID_PATTERN.match(cat):
            import re

            m = re.search(r"(?i)swc[\s_\-]*0*(\d{3})(?!\d)", cat)
            hint = f"; did you mean 'SWC-{m.group(1)}'?" if m else ""
            errs.append(("malformed-category", "category", f"category {cat!r} is not of the form SWC-NNN{hint}"))
        elif cat not in BY_ID:
            errs.append(("unknown-category", "category",
                         f"category {cat!r} is not in the SWC registry (SWC-100 to SWC-136)"))
    md = obj.get("metadata")
    if md is not None and not isinstance(md, dict):
        errs.append(("wrong-type", "metadata", f"'metadata' must be an object, got {_type_name(md)}"))
    src = obj.get("source")
    if src is not None and not (
        isinstance(src, dict) and isinstance(src.get("file"), str) and type(src.get("line")) is int
        and src["line"] >= 1 and src["file"].strip()
    ):
        errs.append(("wrong-type", "source", "'source' must be an object {\"file\": non-empty string, \"line\": "
                     f"integer >= 1}}, got {orjson.dumps(src).decode()[:120]}"))
    for name in ("id", "parent_id", "transform", "template"):
        if obj.get(name) is not None and not isinstance(obj[name], str):
            errs.append(("wrong-type", name, f"'{name}' must be a string, got {_type_name(obj[name])}"))
    return errs


# The blanks `lexer.code_tokens` skips between tokens (`\s` of an ASCII regex).
_CODE_BLANKS = b" \t\n\r\x0b\x0c"


def _code_signature(code: str) -> bytes:
    """A necessary condition for two spans to have the same tokens (the no-op-fix comparison):
    spans with equal tokens have equal signatures. Without comments the tokens and the blanks
    between them make up the whole text, so the text less its blanks is the tokens joined less
    their blanks; only a span with comments needs the lexer."""
    if "//" in code or "/*" in code:
        return "".join(code_tokens(code)).encode("utf-8").translate(None, _CODE_BLANKS)
    return code.encode("utf-8").translate(None, _CODE_BLANKS)


# Parse outcomes of recent spans (a span's outcome depends on its text alone): repeated code, within a
# record (a "fix" that repeats the code) or across records (duplicates), is parsed once. Bounded by
# entries; ~30 MB at the corpus's mean span length.
_PARSED: dict[str, Any] = {}
_PARSED_MAX = 50_000


def _code_findings(instruction: str, response: str, cfg: ValidateConfig) -> list[tuple[str, str | None, str]]:
    out: list[tuple[str, str | None, str]] = []
    ins_spans = extract_code(instruction)
    if not ins_spans:
        out.append(("no-code", "instruction", "no Solidity code found in the instruction"))
    ins_keys: set[str] | None = None  # the instruction's exact no-op keys, made only when needed
    ins_sigs: set[bytes] = set()
    parsed = _PARSED
    for fname, spans in (("instruction", ins_spans), ("response", extract_code(response))):
        for k, span in enumerate(spans, 1):
            text = span.text
            # Inline fragments quoted in prose (`+=`, `>= 0`, `f(bytes32 s)`) are not meant to parse on
            # their own; statements and blocks are.
            if span.shape != "inline" or ";" in text or "{" in text:
                if len(text) > cfg.max_parse_chars:  # never handed to tree-sitter (see treesitter.MAX_PARSE_CHARS)
                    out.append(("code-too-large", fname,
                                f"code span {k} of {len(spans)} ({span.shape}, chars {span.start}-{span.end}) has "
                                f"{len(text):,} characters, over max_parse_chars ({cfg.max_parse_chars:,}): "
                                "not parsed"))
                    res = None
                else:
                    res = parsed.get(text)
                    if res is None:
                        if len(parsed) >= _PARSED_MAX:
                            parsed.clear()
                        res = parsed[text] = parse_check(text, max_chars=cfg.max_parse_chars)
                if res is not None and not res.ok:
                    out.append(("code-parse-error", fname,
                                f"code span {k} of {len(spans)} ({span.shape}, chars {span.start}-{span.end}) does "
                                f"not parse as Solidity ({res.error_count} syntax error(s))"))
            if fname == "instruction":
                ins_sigs.add(_code_signature(text))
            elif _code_signature(text) in ins_sigs:  # else its tokens differ from every instruction span's
                if ins_keys is None:
                    ins_keys = {normalize_code(s.text) for s in ins_spans}
                tokens = code_tokens(text)
                if len(tokens) >= cfg.noop_min_tokens and " ".join(tokens) in ins_keys:
                    out.append(("noop-fix", "response",
                                f"code span {k} of the response ({len(tokens)} tokens) is the instruction's code "
                                "unchanged: the 'fix' fixes nothing"))
    return out


_LONG_DIGITS = re.compile(rb"\d{20}")  # (records.LONG_DIGITS, on the raw line)


def _metadata_json(raw: bytes, obj: dict[str, Any], extra: list[str]) -> str | None:
    """The metadata column of a record: its `metadata` object with the unknown top-level fields
    added, as JSON text (None when empty). Integers of any size are kept exactly: a line with one
    beyond 64 bits (which orjson reads as a float) is decoded again with the json module. Raises
    ValueError when the result is nested too deeply to be stored."""
    from swcdata.core.records import metadata_json

    if _LONG_DIGITS.search(raw):
        import json

        try:
            obj = json.loads(raw)
        except RecursionError:
            raise ValueError("nested too deeply to be stored") from None
    metadata = obj.get("metadata")
    if extra:
        metadata = dict(metadata or {})
        for k in extra:
            metadata[k] = obj[k]
    return metadata_json(metadata) if metadata else None


_LETTER_ESCAPE = re.compile(rb"\\u00[4-7][0-9a-fA-F]")  # a JSON escape of an ASCII letter


def _contradiction(category: str, instruction: str, response: str, lower_case_swc: bool = True) -> str | None:
    """The other classes the text names, as a message, or None. ``lower_case_swc=False`` promises
    that neither field contains "swc" or "Swc" (the caller checked a whole chunk at once): then
    both fields take catalogue.mentioned_ids's upper-case path, run once on both (the NUL between
    them is no blank, so no mention spans the two)."""
    if lower_case_swc:
        named = mentioned_ids(instruction) | mentioned_ids(response)
    else:
        named = upper_mentions(instruction + "\x00" + response)
    if named and category not in named:
        return f"the text names {', '.join(sorted(named))} but the category is {category}"
    return None


def check_lines(file: str, lines: list[tuple[int, bytes]], cfg: ValidateConfig, *, batch: bool = True) -> ChunkResult:
    """Check one chunk of lines of one file. Pure: the same lines and config give the same result.

    Per rule, findings come in line order (and, within a line, in the order the checks run).
    ``batch=False``: the caller only wants the findings and counts, so no Arrow batch is built and
    record ids are computed only for the records that carry an id to check (``res.batch`` is None;
    ``res.valid`` counts the valid records either way)."""
    from swcdata.core.records import RECORD_SCHEMA, SOURCE_TYPE

    res = ChunkResult(file, len(lines))
    findings, quarantined = res.findings, res.quarantined
    add = findings.append
    loads, bad_json = orjson.loads, orjson.JSONDecodeError
    lo, hi = cfg.min_chars, cfg.max_chars
    check_code = cfg.check_code
    # the columns of the valid records
    linenos: list[int] = []
    ins_col: list[str] = []
    resp_col: list[str] = []
    cat_col: list[str] = []
    src_files: list[str] = []
    src_lines: list[int] = []
    given_ids: list[tuple[int, Any]] = []  # (row, the record's own id) where it has one
    optional: dict[str, list[tuple[int, str]]] = {}  # (row, value) of metadata / parent_id / transform / template
    code_rows: list[tuple[int, str, str]] = []  # (line, instruction, response) of the records whose code is checked
    # One scan of the whole chunk: "swc" in a field shows in the raw line unless a letter of it is
    # written as a JSON escape (\\u0073...); a chunk with either takes the per-field path.
    data = b"".join(raw for _, raw in lines)
    lower_swc = (b"swc" in data or b"Swc" in data
                 or (b"\\u00" in data and _LETTER_ESCAPE.search(data) is not None))  # (a cheap test first)
    for lineno, raw in lines:
        try:
            obj = loads(raw)
        except bad_json:
            obj = None
        if type(obj) is not dict:
            d = decode_line(raw)
            assert d.error_rule is not None and d.error_message is not None
            quarantined.append(Quarantined(file, lineno, d.text, raw if d.text is None else None,
                                           [(d.error_rule, None, d.error_message)]))
            add((d.error_rule, lineno, None, d.error_message))
            continue
        dups = duplicate_keys(raw, obj)
        if dups:
            for k in dups:
                add(("duplicate-key", lineno, k, f"key '{k}' appears more than once; the last value is used"))
        instruction = obj.get("instruction")
        response = obj.get("response")
        category = obj.get("category")
        plain = len(obj) == 3
        # The usual record (the three fields, strings, not blank, a known category) has no field error;
        # anything else goes through every field check.
        errs: list[tuple[str, str | None, str]] = []
        if not (plain and type(instruction) is str and type(response) is str and type(category) is str
                and category in BY_ID and instruction and response
                and not instruction.isspace() and not response.isspace()):
            errs = _check_fields(obj)
        meta_json: str | None = None
        extra: list[str] = []
        if not errs and not plain:
            extra = [k for k in obj if k not in KNOWN]
            if extra or obj.get("metadata"):
                try:
                    meta_json = _metadata_json(raw, obj, extra)
                except ValueError as e:
                    errs = [("too-deep", "metadata", f"the metadata is {e} (the line is kept here verbatim)")]
        if errs:
            quarantined.append(Quarantined(file, lineno, raw.decode("utf-8"), None, errs))
            for rule, fld, msg in errs:
                add((rule, lineno, fld, msg))
            continue
        row = len(linenos)
        linenos.append(lineno)
        ins_col.append(instruction)
        resp_col.append(response)
        cat_col.append(category)
        if plain:
            src_files.append(file)
            src_lines.append(lineno)
        else:
            given = obj.get("id")
            if given is not None:
                given_ids.append((row, given))
            for k in extra:
                add(("extra-field", lineno, k, f"unknown field '{k}' kept under metadata"))
            src = obj.get("source")
            src_files.append(src["file"] if src else file)
            src_lines.append(src["line"] if src else lineno)
            for name, value in (
                ("metadata", meta_json),
                ("parent_id", obj.get("parent_id")),
                ("transform", obj.get("transform")),
                ("template", obj.get("template")),
            ):
                if value is not None:
                    optional.setdefault(name, []).append((row, value))
        n = len(instruction)
        if n < lo or n > hi:
            add(("outlier-length", lineno, "instruction", f"'instruction' has {n} characters (expected {lo} to {hi})"))
        n = len(response)
        if n < lo or n > hi:
            add(("outlier-length", lineno, "response", f"'response' has {n} characters (expected {lo} to {hi})"))
        why = _contradiction(category, instruction, response, lower_swc)
        if why:
            add(("category-contradiction", lineno, "category", why))
        if check_code:
            code_rows.append((lineno, instruction, response))
    if code_rows:
        _code_checks(code_rows, cfg, res)
        # (stable, by line: each line's code findings after its other ones, as checking them in the loop put them)
        findings.sort(key=_line_of)
    if cfg.drop_findings:  # (records with a warning the config drops: quarantined with it as the reason)
        keep = _drop_by_finding(file, dict(lines), linenos, findings, quarantined, set(cfg.drop_findings))
        if keep is not None:
            new_row = {old: new for new, old in enumerate(keep)}
            linenos, ins_col, resp_col, cat_col, src_files, src_lines = (
                [col[r] for r in keep] for col in (linenos, ins_col, resp_col, cat_col, src_files, src_lines))
            given_ids = [(new_row[r], v) for r, v in given_ids if r in new_row]
            optional = {k: [(new_row[r], v) for r, v in vs if r in new_row] for k, vs in optional.items()}
    n = res.valid = len(linenos)
    ids = record_ids(ins_col, resp_col) if batch else None
    rows = [row for row, _ in given_ids]
    recomputed = ([ids[r] for r in rows] if ids is not None
                  else record_ids([ins_col[r] for r in rows], [resp_col[r] for r in rows]))
    for (row, given), rid in zip(given_ids, recomputed, strict=True):
        if given != rid:
            add(("id-mismatch", linenos[row], "id", f"id {given!r} does not match the content (recomputed as {rid})"))
    if ids is None:
        return res
    columns = {
        "id": strings(ids),
        "instruction": strings(ins_col),
        "response": strings(resp_col),
        "category": strings(cat_col),
        "source": pa.StructArray.from_arrays([strings(src_files), int64s(src_lines)], fields=list(SOURCE_TYPE)),
    }
    for name in ("metadata", "parent_id", "transform", "template"):
        values = optional.get(name)
        if values is None:
            columns[name] = pa.nulls(n, pa.string())
        else:
            col: list[str | None] = [None] * n
            for row, value in values:
                col[row] = value
            columns[name] = strings(col)
    res.batch = pa.RecordBatch.from_arrays([columns[f.name] for f in RECORD_SCHEMA], schema=RECORD_SCHEMA)
    return res


def _line_of(finding: tuple[str, int, str | None, str]) -> int:
    return finding[1]


@dataclass(slots=True)
class _InUse:
    """The `CodeChecks` of this process's run, as its workers see it: whether to key and collect the checked
    texts, and the memo of an earlier run (None: every text is checked)."""

    active: bool = False
    known: Memo | None = None


_IN_USE = _InUse()


def use_checks(active: bool, known: Memo | None) -> None:
    """Set this process's `_InUse` (the workers' initializer; forked workers inherit it anyway; a Ray task sets it
    around its checks)."""
    _IN_USE.active, _IN_USE.known = active, known


def _code_checks(rows: list[tuple[int, str, str]], cfg: ValidateConfig, res: ChunkResult) -> None:
    """The code findings of a chunk's records, (line, instruction, response) each, added to `res.findings` in line
    order: taken from the memo in use where it holds the text, else checked (`_code_findings`). With a
    `CodeChecks` in use, each text's key and findings go into `res` too."""
    add = res.findings.append
    if not _IN_USE.active:
        for lineno, instruction, response in rows:
            for rule, fld, msg in _code_findings(instruction, response, cfg):
                add((rule, lineno, fld, msg))
        return
    known = _IN_USE.known
    blob = b"".join([key_bytes(i, r) for _, i, r in rows])
    found = known.find(keys_from_bytes(blob)).tolist() if known is not None else [-1] * len(rows)
    for k, ((lineno, instruction, response), pos) in enumerate(zip(rows, found, strict=True)):
        kept = _kept_findings(known.value(pos)) if pos >= 0 and known is not None else None
        if kept is not None:
            out = kept
            res.reused += 1
        else:
            out = _code_findings(instruction, response, cfg)
        if out:
            res.checked[k] = out
            for rule, fld, msg in out:
                add((rule, lineno, fld, msg))
    res.checked_keys = blob


def _kept_findings(value: Any) -> list[tuple[str, str | None, str]] | None:
    """A memo's value as code findings (None: no finding), or None where it is not one (then the text is checked)."""
    if value is None:
        return []
    if not isinstance(value, list):
        return None
    out = []
    for f in value:
        if not (isinstance(f, list) and len(f) == 3 and f[0] in RULES and isinstance(f[2], str)
                and (f[1] is None or isinstance(f[1], str))):
            return None
        out.append((f[0], f[1], f[2]))
    return out


def checks_params(cfg: ValidateConfig) -> MemoParams:
    """What a text's code findings depend on: the checks' knobs (and, in `MemoParams`, the code and grammar)."""
    return MemoParams(step="checks", config={"max_parse_chars": cfg.max_parse_chars,
                                             "noop_min_tokens": cfg.noop_min_tokens})


class CodeChecks:
    """A run's code checks kept by text (see `swcdata.steps.memo`): `known`, a memo of an earlier run's, gives the
    findings of the texts it holds (not used when made with other parameters: `note` says why), and every text
    the run checks is collected, with its findings, into this run's memo (`memo()`). Both engines: the Ray engine
    broadcasts the memo to its tasks and collects their units' checked texts (`validate_on_ray`)."""

    def __init__(self, cfg: ValidateConfig, known: Memo | None = None) -> None:
        self.params = checks_params(cfg)
        self.known, self.note = usable(known, self.params, "code findings", "every text checked")
        self.reused = 0
        self._keys: list[bytes] = []
        self._values: dict[int, bytes] = {}
        self._n = 0

    def collect(self, res: Any) -> None:
        """Take one chunk's checked texts (results come in input order): a `ChunkResult`, or anything with its
        `checked_keys`, `checked` and `reused` (the Ray engine's unit summaries)."""
        for k, out in res.checked.items():
            self._values[self._n + k] = orjson.dumps(out)
        self._keys.append(res.checked_keys)
        self._n += len(res.checked_keys) // 16
        self.reused += res.reused

    @property
    def checked(self) -> int:
        """Texts checked so far (taken from the memo or not), a text counted once per record."""
        return self._n

    def memo(self) -> Memo:
        """The memo of this run: every distinct text checked, with its findings."""
        values = [self._values.get(i) for i in range(self._n)]
        return Memo.of(self.params, keys_from_bytes(b"".join(self._keys)), values)


def _drop_by_finding(file: str, raw: dict[int, bytes], linenos: list[int], findings: list[Any],
                     quarantined: list[Quarantined], drop: set[str]) -> list[int] | None:
    """Quarantine the valid records that have a warning named in drop_findings; the rows to keep, or None
    when none is dropped."""
    hits: dict[int, list[tuple[str, str | None, str]]] = {}
    valid = set(linenos)
    for rule, line, fld, msg in findings:
        if rule in drop and line in valid:
            hits.setdefault(line, []).append((rule, fld, f"dropped by validate.drop_findings: {msg}"))
    if not hits:
        return None
    for line, reasons in hits.items():
        quarantined.append(Quarantined(file, line, raw[line].decode("utf-8"), None, reasons))
    quarantined.sort(key=lambda q: q.line)
    return [r for r, line in enumerate(linenos) if line not in hits]


def check_unit(unit: LineUnit, cfg: ValidateConfig, data: bytes | None = None, *, batch: bool = True) -> ChunkResult:
    """Check one unit of lines (read from its file unless `data`, its bytes, is given)."""
    lines, blank, crlf = split_unit(read_unit(unit) if data is None else data, unit.first_line, unit.offset == 0)
    res = check_lines(unit.file, lines, cfg, batch=batch)
    res.blank_lines, res.crlf_lines = blank, crlf
    return res


def _check_units(args: tuple[list[LineUnit], ValidateConfig, bool]) -> list[ChunkResult]:
    """Worker task: consecutive units of one file, read with one call."""
    arm_test_crash()  # (a test-only hook: swcdata.core.isolate)
    units, cfg, batch = args
    first, last = units[0], units[-1]
    data = read_unit(LineUnit(first.file, first.offset, last.offset + last.size - first.offset, first.first_line, 0,
                              stamp=first.stamp))
    out = []
    for u in units:
        a = u.offset - first.offset
        out.append(check_unit(u, cfg, data[a:a + u.size] if len(units) > 1 else data, batch=batch))
    return out


# ---- a task whose worker died (a crash in native code: tree-sitter) ----


def _check_each(file: str, lines: list[tuple[int, bytes]], cfg: ValidateConfig, batch: bool) -> Iterator[ChunkResult]:
    """Isolated child: check the lines one at a time, so that the parent knows which one a crash hit."""
    for line in lines:
        yield check_lines(file, [line], cfg, batch=batch)


def _crashed_line(file: str, line: tuple[int, bytes], cfg: ValidateConfig, batch: bool, why: str) -> ChunkResult:
    """The result for a line whose checks killed the process: checked again without the code checks
    (in a fresh child too), with a `parser-crashed` finding; quarantined (`check-crashed`) when even
    that dies."""
    lineno, raw = line
    try:
        [res] = stream_isolated(_check_each, file, [line], cfg.model_copy(update={"check_code": False}), batch)
    except ChildCrashed as again:
        msg = (f"checking this line killed the worker process ({why}), and again without the code checks "
               f"({again.why}): quarantined")
        res = _merge(file, 1, [], batch)  # (no valid record)
        try:
            text, rest = raw.decode("utf-8"), None
        except UnicodeDecodeError:
            text, rest = None, raw
        res.quarantined.append(Quarantined(file, lineno, text, rest, [("check-crashed", None, msg)]))
        res.findings.append(("check-crashed", lineno, None, msg))
        return res
    res.findings.append(("parser-crashed", lineno, None,
                         f"checking this record's code killed the worker process ({why}): its code is not checked"))
    return res


def _merge(file: str, n_lines: int, parts: list[ChunkResult], batch: bool) -> ChunkResult:
    """One result for consecutive lines checked in parts (findings stay in line order)."""
    res = ChunkResult(file, n_lines)
    batches = []
    keys = []
    base = 0  # (texts checked in the parts before)
    for p in parts:
        res.valid += p.valid
        res.quarantined += p.quarantined
        res.findings += p.findings
        res.checked.update({base + k: out for k, out in p.checked.items()})
        keys.append(p.checked_keys)
        base += len(p.checked_keys) // 16
        res.reused += p.reused
        if p.batch is not None and p.batch.num_rows:
            batches.append(p.batch)
    res.checked_keys = b"".join(keys)
    if batch:
        from swcdata.core.records import RECORD_SCHEMA

        table = pa.Table.from_batches(batches, schema=RECORD_SCHEMA).combine_chunks()
        res.batch = table.to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=RECORD_SCHEMA)
    return res


def recover_units(args: tuple[list[LineUnit], ValidateConfig, bool]) -> list[ChunkResult]:
    """A task lost with a worker that died (CrashTolerantPool): its lines are checked again in
    single-use child processes; a line during which a child dies gets a finding (see `_crashed_line`)
    and the next child goes on after it. Same results as `_check_units` for every other line."""
    units, cfg, batch = args
    out = []
    for u in units:
        lines, blank, crlf = split_unit(read_unit(u), u.first_line, u.offset == 0)
        parts: list[ChunkResult] = []
        i = 0
        while i < len(lines):
            try:
                for r in stream_isolated(_check_each, u.file, lines[i:], cfg, batch):
                    parts.append(r)
                    i += 1
            except ChildCrashed as e:  # line i killed it
                parts.append(_crashed_line(u.file, lines[i], cfg, batch, e.why))
                i += 1
        res = _merge(u.file, len(lines), parts, batch)
        res.blank_lines, res.crlf_lines = blank, crlf
        out.append(res)
    return out


# --------------------------------------------------------------------------- the step


Progress = Callable[[int, int], None]  # (lines done in this call, total bytes read so far)


class PreparedInputs(Protocol):
    """Whole files' outcomes kept by their bytes, as a run reads and collects them (`swcdata.steps.prepared`)."""

    def lookup(self, path: Path, st: FileStats) -> list[ChunkResult] | None: ...

    def collect(self, r: ChunkResult) -> None: ...

    def finish(self, stats: Iterable[FileStats]) -> None: ...


@dataclass(slots=True)
class Tally:
    """What `Validation.run` counts over the results of a run, in input order, for `Validation.report`."""

    stats: dict[str, FileStats] = field(default_factory=dict)
    valid: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    rule_counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    rule_totals: Counter[str] = field(default_factory=Counter)
    listed: list[Finding] = field(default_factory=list)
    truncated: int = 0


TASK_LINES = 2000
"""A worker task holds consecutive units of about this many lines (fewer round trips; one unit with the code checks)."""
TASK_BYTES = 4 << 20
"""A worker task holds consecutive units of about this many bytes."""
UNIT_BYTES = 4 << 20
"""A unit of lines holds at most this many bytes (or one longer line)."""


def _run(files: list[Path], cfg: ValidateConfig, stats: dict[str, FileStats],
         progress: Progress | None, batch: bool, digest: bool = True,
         prepared: PreparedInputs | None = None) -> Iterator[ChunkResult]:
    workers = cfg.workers or usable_cpus()  # (the cores this process may use, as --workers caps)
    # Schema-only checks on small inputs are faster in-process than the cost of starting a pool. The
    # code checks run tree-sitter, whose crash (SIGSEGV) no process survives: always in workers, even
    # with --workers 1, so that a crash costs a worker (see CrashTolerantPool), not the command.
    small = not cfg.check_code and sum(p.stat().st_size for p in files) < 16 << 20
    in_process = small or (workers <= 1 and not cfg.check_code)

    def units() -> Iterator[LineUnit | list[ChunkResult]]:
        """Each file's units, or the results of a file taken whole from the prepared inputs."""
        for p in files:
            st = FileStats(str(p))
            stats[str(p)] = st
            taken = prepared.lookup(p, st) if prepared is not None else None
            if taken is not None:
                yield taken
            else:
                yield from iter_units(p, st, cfg.chunk_size, UNIT_BYTES, with_data=in_process, digest=digest)

    def done(r: ChunkResult) -> ChunkResult:
        st = stats[r.file]
        st.blank_lines += r.blank_lines
        st.crlf_lines += r.crlf_lines
        if progress:
            progress(r.n_lines, sum(s.bytes for s in stats.values()))
        return r

    if in_process:
        for u in units():
            if isinstance(u, list):
                yield from map(done, u)
            else:
                yield done(check_unit(u, cfg, u.data, batch=batch))
        return

    # With the code checks a unit is work enough (~0.1 s) for one task: small tasks keep both
    # workers busy up to the end. Not with a memo of earlier checks: then most texts are not parsed,
    # and a unit a task spent more time on its round trip than on its lines.
    task_lines = 1 if cfg.check_code and _IN_USE.known is None else TASK_LINES

    def tasks() -> Iterator[tuple[list[LineUnit], ValidateConfig, bool] | list[ChunkResult]]:
        group: list[LineUnit] = []
        lines = size = 0
        for u in units():
            if isinstance(u, list) or (group and (u.file != group[0].file or lines + u.lines > task_lines
                                                  or size + u.size > TASK_BYTES)):
                if group:
                    yield group, cfg, batch
                group, lines, size = [], 0, 0
            if isinstance(u, list):
                yield u
                continue
            group.append(u)
            lines += u.lines
            size += u.size
        if group:
            yield group, cfg, batch

    if cfg.check_code:
        # Warm up here what every worker needs (tree-sitter, the compiled scanners): forked workers
        # inherit it instead of each building its own.

        parse_check("contract A {}")
        extract_code("x = 1;")
    # Bounded, ordered pipelining: at most `2 * workers` tasks in flight, results in input order. A
    # task whose worker died is checked again line by line in single-use processes (recover_units).
    # A file taken from the prepared inputs comes out in its place, once the tasks before it have.
    pending: deque[Any] = deque()
    # (workers that die with this process: swcdata.core.workers)
    in_use = (_IN_USE.active, _IN_USE.known)  # (the workers' copy of this run's CodeChecks)
    with CrashTolerantPool(lambda: process_pool(workers, initializer=use_checks, initargs=in_use), _check_units,
                           recover_units) as pool:
        for args in tasks():
            if isinstance(args, list):
                while pending:
                    yield from map(done, pool.result(pending.popleft()))
                yield from map(done, args)
                continue
            pending.append(pool.submit(args))
            if len(pending) >= workers * 2:
                yield from map(done, pool.result(pending.popleft()))
        while pending:
            yield from map(done, pool.result(pending.popleft()))


class Validation:
    """Runs the validate step over paths and hands valid rows and quarantined lines to callbacks,
    then builds the report. Memory stays bounded by the chunk size and the findings cap."""

    def __init__(self, config: ValidateConfig | None = None) -> None:
        self.config = config or ValidateConfig()

    def run(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        on_batch: Callable[[pa.RecordBatch], None] | None = None,
        on_quarantine: Callable[[list[Quarantined]], None] | None = None,
        progress: Progress | None = None,
        digest: bool = True,
        checks: CodeChecks | None = None,
        prepared: PreparedInputs | None = None,
    ) -> ValidationReport:
        """Validate `paths`, handing each chunk's valid rows (an Arrow batch) to `on_batch` and its
        quarantined lines to `on_quarantine`. `digest=False` skips the inputs' sha256 (the report
        then gives "" for it): for callers that keep only the ledger, a second of CPU a GB saved.
        `checks`: the code checks kept by text (its memo's texts are not checked again; it collects this run's).
        `prepared`: whole files' outcomes kept by their bytes (`swcdata.steps.prepared`: a file it holds is not read
        again; it collects the outcome of each file read)."""
        use_checks(checks is not None, checks.known if checks is not None else None)
        try:
            return self._run(paths, on_batch, on_quarantine, progress, digest, checks, prepared)
        finally:
            use_checks(False, None)

    def _run(self, paths: Sequence[str | os.PathLike[str]], on_batch: Callable[[pa.RecordBatch], None] | None,
             on_quarantine: Callable[[list[Quarantined]], None] | None, progress: Progress | None, digest: bool,
             checks: CodeChecks | None, prepared: PreparedInputs | None) -> ValidationReport:
        cfg = self.config
        files = resolve_inputs(paths)
        t0 = time.perf_counter()
        tally = Tally()
        cap = cfg.max_findings_per_rule
        for r in _run(files, cfg, tally.stats, progress, batch=on_batch is not None, digest=digest,
                      prepared=prepared):
            if checks is not None:
                checks.collect(r)
            if prepared is not None:
                prepared.collect(r)
            if on_batch and r.valid:
                on_batch(r.batch)
            if on_quarantine and r.quarantined:
                on_quarantine(r.quarantined)
            tally.valid[r.file] += r.valid
            tally.quarantined[r.file] += len(r.quarantined)
            totals = tally.rule_totals
            for rule, line, fld, msg in r.findings:
                sev = RULES[rule][0]
                tally.rule_counts[rule][r.file] += 1
                if sev is Severity.error:
                    tally.errors[r.file] += 1
                elif sev is Severity.warning:
                    tally.warnings[r.file] += 1
                totals[rule] += 1
                if totals[rule] <= cap:
                    tally.listed.append(Finding(rule=rule, severity=sev, file=r.file, line=line, field=fld,
                                                message=msg))
                else:
                    tally.truncated += 1
        if prepared is not None:
            prepared.finish(tally.stats[str(p)] for p in files)
        return self.report(files, tally, time.perf_counter() - t0)

    def report(self, files: list[Path], t: Tally, seconds: float) -> ValidationReport:
        """The `ValidationReport` of a run over `files` (resolved, in input order) from its tally."""
        inputs = []
        for p in files:
            s = t.stats[str(p)]
            inputs.append(InputFile(path=str(p), sha256=s.sha256, bytes=s.bytes, lines=s.lines,
                                    blank_lines=s.blank_lines, valid=t.valid[str(p)],
                                    quarantined=t.quarantined[str(p)], errors=t.errors[str(p)],
                                    warnings=t.warnings[str(p)]))
        lines = sum(i.lines for i in inputs)
        blank = sum(i.blank_lines for i in inputs)
        valid = sum(t.valid.values())
        quarantined = sum(t.quarantined.values())
        ledger = Ledger(lines_read=lines, blank_lines=blank, records=lines - blank, valid=valid,
                        quarantined=quarantined)
        rules = [
            RuleCount(rule=rule, severity=RULES[rule][0], description=RULES[rule][1], count=sum(c.values()),
                      by_file=dict(sorted(c.items())))
            for rule, c in sorted(t.rule_counts.items(), key=lambda kv: (list(RULES).index(kv[0])))
        ]
        n_err, n_warn = sum(t.errors.values()), sum(t.warnings.values())
        t.listed.sort(key=lambda f: (f.file, f.line, list(RULES).index(f.rule)))
        return ValidationReport(
            version=__version__,
            config=self.config.model_dump(),
            inputs=inputs,
            ledger=ledger,
            rules=rules,
            findings=t.listed,
            findings_truncated=t.truncated,
            errors=n_err,
            warnings=n_warn,
            seconds=round(seconds, 3),
            records_per_second=round(ledger.records / seconds, 1) if seconds > 0 else 0.0,
            status="errors" if n_err else ("warnings" if n_warn else "clean"),
            backend=_native.backend(),
        )


def load_valid(
    paths: Sequence[str | os.PathLike[str]],
    config: ValidateConfig | None = None,
    *,
    progress: Progress | None = None,
    digest: bool = True,
    checks: CodeChecks | None = None,
    prepared: PreparedInputs | None = None,
) -> tuple[pa.Table, ValidationReport, list[Quarantined]]:
    """Read and validate `paths` into an in-memory Arrow table of valid records (RECORD_SCHEMA),
    with the report and the quarantined lines. Used by the steps that need all records at once.
    `digest`, `checks`, `prepared`: as in `Validation.run`."""
    from swcdata.core.records import table_from_batches

    batches: list[pa.RecordBatch] = []
    quarantine: list[Quarantined] = []
    report = Validation(config).run(paths, on_batch=batches.append, on_quarantine=quarantine.extend,
                                    progress=progress, digest=digest, checks=checks, prepared=prepared)
    return table_from_batches(batches), report, quarantine
