"""Pydantic models for a record, its provenance, and the validation findings/report.

These models are the contract: `schemas/*.schema.json` is generated from them
(`swcdata schema --write schemas/`) and a test fails when the two drift.
The Arrow layout of a stored record is `RECORD_COLUMNS` (see `swcdata.core.records`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CATEGORY_PATTERN = r"^SWC-\d{3}$"


ID_PATTERN = r"^[0-9a-f]{16}$"  # a record id: xxh3-64 as 16 lower-case hex digits

class Record(BaseModel):
    """One line of input JSONL as the user writes it."""

    model_config = ConfigDict(extra="forbid", title="Record")

    instruction: str = Field(min_length=1, description="The prompt: a question or task, usually with Solidity code.")
    response: str = Field(min_length=1, description="The reference answer.")
    category: str = Field(pattern=CATEGORY_PATTERN, description="SWC registry id, e.g. SWC-107.")
    metadata: dict[str, Any] | None = Field(default=None, description="Free-form extra fields, kept as they are.")


class Source(BaseModel):
    """Where a record came from: the input file and 1-based line number."""

    model_config = ConfigDict(extra="forbid")

    file: str
    line: int = Field(ge=1)


class RecordRef(BaseModel):
    """A record named by its id and where it came from."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: Source


class StoredRecord(Record):
    """A record as swcdata stores and outputs it: with a stable id, its provenance and lineage."""

    model_config = ConfigDict(extra="forbid", title="StoredRecord")

    id: str = Field(pattern=ID_PATTERN, description="xxh3-64 of the normalised instruction and response.")
    source: Source
    parent_id: str | None = Field(default=None, description="For augmented records: the id of the original.")
    transform: str | None = Field(default=None, description="For augmented records: the code transform applied.")
    template: str | None = Field(default=None, description="For augmented records: the instruction template used.")


class Severity(StrEnum):
    error = "error"
    warning = "warning"
    info = "info"


class Finding(BaseModel):
    """One problem in one line: which rule, how bad, where, and what was expected."""

    model_config = ConfigDict(extra="forbid")

    rule: str
    severity: Severity
    file: str
    line: int
    field: str | None = None
    message: str


class Ledger(BaseModel):
    """Conservation: every non-blank line read ends either valid or quarantined."""

    model_config = ConfigDict(extra="forbid")

    lines_read: int = Field(description="All lines, blank ones included.")
    blank_lines: int
    records: int = Field(description="Non-blank lines: records == valid + quarantined.")
    valid: int
    quarantined: int

    @property
    def adds_up(self) -> bool:
        return self.records == self.valid + self.quarantined and self.lines_read == self.records + self.blank_lines


class InputFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    sha256: str
    bytes: int
    lines: int
    blank_lines: int
    valid: int
    quarantined: int
    errors: int
    warnings: int


class RuleCount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: str
    severity: Severity
    description: str
    count: int
    by_file: dict[str, int]


BACKEND_DOC = ("Which code ran the hot loops (swcdata._native): 'c' (the C extension), 'python' (its Python "
               "references: not built, or SWCDATA_NO_EXT=1), or 'c (python: PIECES)' where SWCDATA_NO_EXT "
               "named pieces.")


class ValidationReport(BaseModel):
    """What `swcdata validate` found, as data. Rendered as tables by the CLI or dumped with --json."""

    model_config = ConfigDict(extra="forbid", title="ValidationReport")

    tool: str = "swcdata"
    version: str
    config: dict[str, Any]
    inputs: list[InputFile]
    ledger: Ledger
    rules: list[RuleCount]
    findings: list[Finding]
    findings_truncated: int = Field(0, description="Findings counted in `rules` but not listed (per-rule cap).")
    errors: int
    warnings: int
    seconds: float
    records_per_second: float
    status: str = Field(description="'clean', 'warnings' or 'errors'.")
    backend: str = Field(description=BACKEND_DOC)
