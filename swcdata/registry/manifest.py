"""The manifest of a published version, `<home>/<name>/v<N>/manifest.json`: what the version holds (its content
hash, counts and data files with their sha256) and exactly how it was made (its parent and the parent's digest,
every step with its full config, the input files with their sha256, the ledger, what was removed).

The manifest is tamper evident by itself: `manifest_digest` is the sha256 of its other fields (see
`Manifest.compute_digest`), and a manifest records its parent's digest (the chain). How the registry checks it
against the folder, the registry log and the parent is `swcdata.registry.store`'s part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

MANIFEST_FILE = "manifest.json"
REMOVED_DIR = "removed"  # <version>/removed/<kind>.parquet: the per-record lists of the manifest's `removed`
INDEX_FILE = "index/signatures.parquet"  # <version>/index/signatures.parquet: the version's signature index
# 1: the first manifests (from 2026-12-01 with a manifest_digest; the earlier ones, without it, are refused);
# 2: parent_digest (the chain), removed records in Parquet files instead of inline lists;
# 3: the content hash over fixed shards of rows (format 2: `swcdata.registry.content`), each shard written on its own.
SCHEMA_VERSION = 3
SCHEMA_VERSIONS = (1, 2, 3)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# the fields the registry computes when it publishes (a caller's manifest_fields must not set them)
COMPUTED = ("schema_version", "name", "version", "content_hash", "created_at", "tool_version", "counts", "files",
            "manifest_digest", "parent_digest")


class Step(BaseModel):
    """One pipeline step that produced the version: its name, full config and summary numbers."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict, description="The step's full, resolved config.")
    summary: dict[str, Any] = Field(default_factory=dict, description="What the step did, in numbers.")


class InputRef(BaseModel):
    """An input file the version was built from."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The file's published name: relative to the build config's folder, or its "
                      "file name (with the shortest distinguishing suffix of its path) when outside it.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    role: Literal["input", "holdout"] = Field("input", description="'input': a training input; 'holdout': the "
                                              "existing test set that became the test split. (Manifests "
                                              "written before roles were recorded list inputs only.)")


class SplitCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: int = Field(ge=0)
    by_category: dict[str, int]


class IndexEntry(BaseModel):
    """Where a version's signature index is (`swcdata.similarity.sigindex`) and how it was made."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(INDEX_FILE, description="The Parquet file, relative to the version folder (in `files`, so its "
                      "sha256 is covered by the manifest's digest).")
    records: int = Field(ge=0, description="Rows of the index: distinct record texts.")
    params: dict[str, Any] = Field(description="The signatures' parameters (`sigindex.IndexParams`): seed, "
                                   "num_perm, ngram, abstraction, token-stream version, key scheme, banding.")
    reused: int = Field(ge=0, description="Signatures taken from the parent version's index instead of computed.")
    signed: int = Field(ge=0, description="Signatures computed by this build.")
    reused_from: str | None = Field(None, description="The version whose index gave the reused signatures.")
    note: str | None = Field(None, description="Why no index was reused, where one was not.")


class Manifest(BaseModel):
    """`manifest.json` of one published version: what it holds and exactly how it was made."""

    model_config = ConfigDict(extra="forbid", title="Manifest")

    schema_version: int = SCHEMA_VERSION
    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$",
                              description="sha256 over the split names and every row's canonical JSON: over the "
                              "digests of fixed shards of rows from schema_version 3, in one stream before.")
    parent: str | None = Field(None, description="The version this one was derived from, e.g. 'swc@v1'.")
    parent_digest: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                      description="The parent's manifest_digest when this version was published "
                                      "(schema_version 2; covered by this manifest's own digest): a parent manifest "
                                      "replaced later no longer matches it. None without a parent.")
    created_at: str = Field(description="ISO 8601, UTC.")
    tool_version: str
    seed: int | None = None
    license: str | None = Field(None, description="The data's license as the build config declares it (an "
                                "SPDX-like id, or 'unknown'); None in manifests written before it was recorded.")
    steps: list[Step] = Field(default_factory=list)
    inputs: list[InputRef] = Field(default_factory=list)
    counts: dict[str, SplitCounts] = Field(description="Per split, in the order the splits are stored.")
    ledger: dict[str, Any] = Field(default_factory=dict, description="The build's conservation ledger.")
    removed: dict[str, Any] = Field(default_factory=dict, description="What was removed, and why, per kind "
                                    "(quarantined, duplicates, ...). Schema version 2: {records, path, by_kind}, the "
                                    "records listed in the Parquet file `path` of the version (in `files`, so covered "
                                    "by the digest); schema version 1: the list of records itself.")
    index: IndexEntry | None = Field(None, description="The version's signature index (MinHash signatures and LSH "
                                     "band keys of every text its dedup signed and of every record it publishes), "
                                     "when its build found near duplicates; None before indexes were written.")
    files: dict[str, str] = Field(default_factory=dict,
                                  description="sha256 of every data file of the version, by relative path.")
    _folder: Path | None = PrivateAttr(None)  # the folder it was read from (a moved manifest must not mislead)
    manifest_digest: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                                        description="sha256 of this manifest's other fields (sorted-key compact "
                                        "JSON): an edited manifest no longer matches it. Required: verify and load "
                                        "refuse a manifest without one (only schema_version 1 manifests written "
                                        "before 2026-12-01 lack it). The registry log records it at publish.")

    def __eq__(self, other: object) -> bool:  # the fields, not where the manifest was read from
        return isinstance(other, Manifest) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # (mutable, like every pydantic model)

    def compute_digest(self) -> str:
        import orjson

        fields = self.model_dump(mode="json", exclude={"manifest_digest"})
        # Fields added after the first manifests are left out at their 'absent' value (no license, no parent
        # digest; an input's role 'input'), so that the manifests written before them keep their digests.
        for key in ("license", "parent_digest", "index"):
            if fields.get(key) is None:
                fields.pop(key, None)
        for i in fields.get("inputs", []):
            if i.get("role") == "input":
                del i["role"]
        return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()

    def to_json(self) -> str:
        """manifest.json's text. A version without a signature index has no `index` key, as before indexes."""
        return self.model_dump_json(indent=2, exclude={"index"} if self.index is None else None) + "\n"

    @property
    def hash_format(self) -> int:
        """The format of its content hash (`swcdata.registry.content.HASH_FORMATS`): 2 from schema_version 3."""
        return 2 if self.schema_version >= 3 else 1

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def records(self) -> int:
        return sum(c.records for c in self.counts.values())

    def steps_key(self) -> list[tuple[str, bytes]]:
        return steps_key(self.steps)


def steps_key(steps: list[Step]) -> list[tuple[str, bytes]]:
    """What makes two versions' steps the same: each step's name and its config as canonical JSON."""
    import orjson

    return [(s.name, orjson.dumps(s.config, option=orjson.OPT_SORT_KEYS, default=str)) for s in steps]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested section of a manifest (a step's config, the ledger) as one level of dotted keys."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out
