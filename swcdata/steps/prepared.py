"""Prepared inputs: what validation made of every line of one input file, kept whole for the next build that reads
the same bytes (the build cache's `inputs/`, see `swcdata.registry.cache`).

A build reads and checks every line of its inputs, yet most of a corpus is the same from one build to the next.
Like Hugging Face `datasets`, which keeps the Arrow copy of a data file it has loaded, a build keeps the outcome of
each file it validated: its valid records (Arrow IPC, memory-mapped when read back), its quarantined lines, its
findings, the code checks it ran (so the build cache's `checks` memo still sees those texts) and its line counts.
The next build whose input has the same bytes (its sha256) and whose validation has the same parameters takes that
outcome instead of reading the file, and gets exactly the records, quarantine and report that validating it gives.

* An entry is a folder `<bytes>-<sha256>` (its input's size and digest: a build hashes only the inputs whose size
  some entry has) holding `records.arrow` (RECORD_SCHEMA, `source.file` rewritten to the file's name of the
  build that reads it), `checked.bin` (the keys of the texts whose code was checked, 16 bytes each, in line
  order) and `outcome.json`: the parameters (`MemoParams`, step `inputs`: every validation knob that changes a
  line's outcome, the swcdata version, the tree-sitter grammar), the file's line counts, the quarantined lines,
  the findings, the checked texts' findings, and the xxh3-128 of the two binary files.
* An entry that does not parse, whose files do not match its digests, or whose parameters differ is not used (a
  note says why) and the file is validated again. Entries are written beside and renamed into place.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import xxhash

from swcdata.core.arrow import int64s, strings
from swcdata.core.io import sha256_file
from swcdata.core.workers import Background
from swcdata.steps.memo import MemoParams

if TYPE_CHECKING:
    from swcdata.core.io import FileStats
    from swcdata.steps.validate import ChunkResult, Quarantined, ValidateConfig

FORMAT = 1
_OUTCOME_KEYS = ("check_code", "min_chars", "max_chars", "noop_min_tokens", "max_parse_chars", "drop_findings")
"""The validation knobs a line's outcome depends on (not workers, chunk_size, nor the report's listing cap)."""


def prepared_params(cfg: ValidateConfig) -> MemoParams:
    """What a file's outcome depends on, besides its bytes."""
    return MemoParams(step="inputs", config=cfg.model_dump(mode="json", include=set(_OUTCOME_KEYS)))


def entry_name(size: int, sha256: str) -> str:
    return f"{size}-{sha256}"


@dataclass(slots=True)
class Outcome:
    """One file's validation, whole: its `FileStats` facts, valid records, quarantined lines (`file` left empty:
    the reader's name is put back), findings, and the code checks' keys and findings (`ChunkResult`'s fields)."""

    sha256: str
    bytes: int
    lines: int
    had_bom: bool
    final_newline: bool
    blank_lines: int = 0
    crlf_lines: int = 0
    batches: list[pa.RecordBatch] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    findings: list[tuple[str, int, str | None, str]] = field(default_factory=list)
    checked_keys: list[bytes] = field(default_factory=list)
    checked: dict[int, list[tuple[str, str | None, str]]] = field(default_factory=dict)
    _n_checked: int = 0

    def add(self, r: ChunkResult) -> None:
        """Take one chunk's result (the file's chunks come in line order)."""
        self.blank_lines += r.blank_lines
        self.crlf_lines += r.crlf_lines
        if r.batch is not None and r.batch.num_rows:
            self.batches.append(r.batch)
        self.quarantined += r.quarantined
        self.findings += r.findings
        self.checked.update({self._n_checked + k: out for k, out in r.checked.items()})
        self.checked_keys.append(r.checked_keys)
        self._n_checked += len(r.checked_keys) // 16

    @property
    def valid(self) -> int:
        return sum(b.num_rows for b in self.batches)

    def fill(self, st: FileStats) -> None:
        """Set a file's stats as reading it would (its per-line counts come with the results, as `check_unit`'s)."""
        st.sha256, st.bytes, st.lines = self.sha256, self.bytes, self.lines
        st.had_bom, st.final_newline = self.had_bom, self.final_newline

    def results(self, file: str) -> list[ChunkResult]:
        """The file's outcome as validation's results for `file`: the first holds its counts, quarantine, findings
        and checked texts (every one taken, none checked again); one more per batch of records."""
        from swcdata.core.records import RECORD_SCHEMA
        from swcdata.steps.validate import ChunkResult, Quarantined

        first = ChunkResult(file, self.lines - self.blank_lines, blank_lines=self.blank_lines,
                            crlf_lines=self.crlf_lines, findings=list(self.findings),
                            quarantined=[Quarantined(file, q.line, q.text, q.raw, q.reasons) for q in self.quarantined],
                            checked_keys=b"".join(self.checked_keys), checked=dict(self.checked))
        first.reused = len(first.checked_keys) // 16
        out = [first]
        for b in self.batches:
            out.append(ChunkResult(file, 0, batch=_renamed(b, file, RECORD_SCHEMA), valid=b.num_rows))
        return out


def _renamed(batch: pa.RecordBatch, file: str, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with every record's `source.file` set to `file` (its lines kept)."""
    src = batch.column(schema.get_field_index("source"))
    files = pa.DictionaryArray.from_arrays(int64s(np.zeros(len(batch), dtype=np.int64)), strings([file])).cast(
        pa.string())  # (no `pa.scalar`: it imports pandas, see swcdata.core.arrow)
    new = pa.StructArray.from_arrays([files, src.field("line")], fields=list(schema.field("source").type))
    return pa.RecordBatch.from_arrays([new if n == "source" else batch.column(n) for n in schema.names], schema=schema)


# ---------------------------------------------------------------------------------------------- storage


def _quarantined_json(q: Quarantined) -> dict[str, Any]:
    return {"line": q.line, "text": q.text, "raw": base64.b64encode(q.raw).decode() if q.raw is not None else None,
            "reasons": [list(r) for r in q.reasons]}


def write_outcome(outcome: Outcome, params: MemoParams, folder: Path) -> None:
    """The outcome as an entry folder (see the module's docstring); `folder` must not exist."""
    from swcdata.core.records import RECORD_SCHEMA

    folder.mkdir(parents=True)
    records = folder / "records.arrow"
    with pa.OSFile(str(records), "wb") as sink, pa.ipc.new_file(sink, RECORD_SCHEMA) as writer:
        for b in outcome.batches:
            writer.write_batch(b)
    keys = b"".join(outcome.checked_keys)
    (folder / "checked.bin").write_bytes(keys)
    doc = {"format": FORMAT, "params": params.model_dump(mode="json"), "sha256": outcome.sha256,
           "bytes": outcome.bytes, "lines": outcome.lines, "had_bom": outcome.had_bom,
           "final_newline": outcome.final_newline, "blank_lines": outcome.blank_lines,
           "crlf_lines": outcome.crlf_lines, "valid": outcome.valid,
           "records_xxh3": _xxh3(records), "checked_xxh3": xxhash.xxh3_128_hexdigest(keys),
           "quarantined": [_quarantined_json(q) for q in outcome.quarantined],
           "findings": [list(f) for f in outcome.findings],
           "checked": [[k, [list(f) for f in out]] for k, out in sorted(outcome.checked.items())]}
    (folder / "outcome.json").write_bytes(orjson.dumps(doc))


def _xxh3(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def _triples(items: Any) -> list[tuple[str, str | None, str]]:
    if not isinstance(items, list):
        raise ValueError("findings are not a list")
    out = []
    for f in items:
        if not (isinstance(f, list) and len(f) == 3 and isinstance(f[0], str) and isinstance(f[2], str)
                and (f[1] is None or isinstance(f[1], str))):
            raise ValueError(f"a finding of the wrong shape: {f!r}")
        out.append((f[0], f[1], f[2]))
    return out


def read_outcome(folder: Path, wanted: MemoParams) -> Outcome:
    """The outcome an entry folder holds, or a ValueError / OSError saying why it cannot be used."""
    from swcdata.core.records import RECORD_SCHEMA
    from swcdata.steps.validate import Quarantined

    try:
        doc = orjson.loads((folder / "outcome.json").read_bytes())
    except orjson.JSONDecodeError as e:
        raise ValueError(f"outcome.json is not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not an entry of format {FORMAT}")
    try:
        params = MemoParams.model_validate(doc["params"])
        differences = params.differences(wanted)
        if differences:
            raise ValueError(f"made with other parameters ({'; '.join(differences)})")
        records = folder / "records.arrow"
        if _xxh3(records) != doc["records_xxh3"]:
            raise ValueError("records.arrow does not match its digest (modified or truncated)")
        keys = (folder / "checked.bin").read_bytes()
        if xxhash.xxh3_128_hexdigest(keys) != doc["checked_xxh3"] or len(keys) % 16:
            raise ValueError("checked.bin does not match its digest (modified or truncated)")
        table = pa.ipc.open_file(pa.memory_map(str(records))).read_all()
        if not table.schema.equals(RECORD_SCHEMA) or table.num_rows != doc["valid"]:
            raise ValueError("records.arrow does not hold the records its outcome counts")
        quarantined = [Quarantined("", int(q["line"]), q["text"],
                                   base64.b64decode(q["raw"]) if q["raw"] is not None else None,
                                   _triples(q["reasons"])) for q in doc["quarantined"]]
        findings = [(f[0], int(f[1]), f[2], f[3]) for f in doc["findings"]]
        checked = {int(k): _triples(out) for k, out in doc["checked"]}
        if any(not 0 <= k < len(keys) // 16 for k in checked):
            raise ValueError("findings of texts it did not check")
        return Outcome(sha256=str(doc["sha256"]), bytes=int(doc["bytes"]), lines=int(doc["lines"]),
                       had_bom=bool(doc["had_bom"]), final_newline=bool(doc["final_newline"]),
                       blank_lines=int(doc["blank_lines"]), crlf_lines=int(doc["crlf_lines"]),
                       batches=table.to_batches(), quarantined=quarantined, findings=findings, checked_keys=[keys],
                       checked=checked, _n_checked=len(keys) // 16)
    except (KeyError, TypeError, IndexError, pa.ArrowInvalid) as e:
        raise ValueError(f"outcome.json is not an outcome ({type(e).__name__}: {e})") from None


class PreparedInputs:
    """A run's prepared inputs: the entries of an earlier build in `folder` (`lookup` gives a file's, when its bytes
    and the validation's parameters are the same) and this run's outcomes (`collect`, in input order), which
    `write` leaves in `folder` in place of those of the earlier build."""

    def __init__(self, cfg: ValidateConfig, folder: Path) -> None:
        self.params = prepared_params(cfg)
        self.folder = folder
        self.lines = 0
        self.reused = 0
        self.notes: list[str] = []
        self.kept = 0  # lines of the files whose outcomes `write` left
        self._taken: dict[str, str] = {}  # file -> the entry taken for it
        self._taken_lines: dict[str, int] = {}
        self._made: dict[str, Outcome] = {}  # file -> this run's outcome of it (files validated)
        self._entries: dict[int, list[str]] | None = None
        self._unusable: set[str] = set()  # entries found but not used: replaced by this run's

    def _by_size(self) -> dict[int, list[str]]:
        if self._entries is None:
            self._entries = {}
            with contextlib.suppress(OSError):
                for e in os.scandir(self.folder):
                    size, _, digest = e.name.partition("-")
                    if e.is_dir() and size.isdigit() and len(digest) == 64:
                        self._entries.setdefault(int(size), []).append(e.name)
        return self._entries

    def lookup(self, path: Path, st: FileStats) -> list[ChunkResult] | None:
        """The results of validating `path` taken from an entry of the same bytes (its stats filled in), or None."""
        try:
            size = path.stat().st_size
        except OSError:
            return None  # (reading it says why)
        if size not in self._by_size():
            return None
        # (the one entry of this size, the usual case, is read and checked in a thread while the file is hashed:
        # both digests release the GIL; another entry than the file's is dropped unused)
        names = self._by_size()[size]
        early = (Background(read_outcome, self.folder / names[0], self.params, name="swcdata-prepared")
                 if len(names) == 1 else None)
        try:
            digest = sha256_file(path)
        except OSError:
            return None
        name = entry_name(size, digest)
        if name not in names:
            return None
        try:
            outcome = early.result() if early is not None else read_outcome(self.folder / name, self.params)
        except (OSError, ValueError) as e:
            self.notes.append(f"{self.folder / name}: {e}; not used, {path.name} validated")
            self._unusable.add(name)
            return None
        if (outcome.sha256, outcome.bytes) != (digest, size):
            self.notes.append(f"{self.folder / name}: holds another file's outcome; not used, {path.name} validated")
            self._unusable.add(name)
            return None
        outcome.fill(st)
        self._taken[str(path)] = name
        self._taken_lines[name] = outcome.lines
        self.lines += outcome.lines
        self.reused += outcome.lines
        return outcome.results(str(path))

    def collect(self, r: ChunkResult) -> None:
        """Take one result of a file validated (not taken: those are known by their entry)."""
        if r.file in self._taken:
            return
        made = self._made.get(r.file)
        if made is None:
            made = self._made[r.file] = Outcome(sha256="", bytes=0, lines=0, had_bom=False, final_newline=True)
        made.add(r)

    def finish(self, stats: Iterable[FileStats]) -> None:
        """Fill in the facts of the files validated once they are read whole (their stats)."""
        for st in stats:
            made = self._made.get(st.path)
            if made is not None:
                made.sha256, made.bytes, made.lines = st.sha256, st.bytes, st.lines
                made.had_bom, made.final_newline = st.had_bom, st.final_newline
                self.lines += st.lines

    def write(self) -> str | None:
        """Leave this run's entries in the folder (the files taken keep theirs) and remove the others; None, or why
        it could not (a build does not fail for it). `kept`: the lines of the files whose outcomes are left."""
        kept = dict(self._taken_lines)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for outcome in self._made.values():
                if not outcome.sha256:
                    continue  # (not read whole: no digest)
                name = entry_name(outcome.bytes, outcome.sha256)
                if name in self._unusable:
                    shutil.rmtree(self.folder / name)
                if not (self.folder / name).is_dir():
                    tmp = self.folder / f".{name}-{os.getpid()}-{uuid.uuid4().hex}.tmp"
                    try:
                        write_outcome(outcome, self.params, tmp)
                        os.replace(tmp, self.folder / name)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                kept[name] = outcome.lines
            for e in os.scandir(self.folder):
                if e.name not in kept:
                    shutil.rmtree(e.path, ignore_errors=True) if e.is_dir() else Path(e.path).unlink(missing_ok=True)
        except OSError as e:
            self.kept = 0
            return f"cannot write the prepared inputs in {self.folder}: {e.strerror or e} (the next build reads them)"
        self.kept = sum(kept.values())
        return None
