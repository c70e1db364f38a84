"""`swcdata diff A B`: what changed between two versions, record by record (added, removed, changed, moved
between splits) and in the steps' configs. A record is 'changed' when a record from the same input line (and
transform/template) has a new id.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from swcdata.core.schema import Source
from swcdata.registry.content import as_arrow, split_order
from swcdata.registry.manifest import Manifest, Step, flatten

if TYPE_CHECKING:
    import datasets


class ChangedRecord(BaseModel):
    """The record from one input line (and transform/template) has a different id in the two versions."""

    model_config = ConfigDict(extra="forbid")

    source: Source
    transform: str | None = None
    template: str | None = None
    a_id: str
    b_id: str
    a_split: str
    b_split: str = Field(description="Differs from a_split when the new content landed in another split.")


class SplitDiff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: str
    a_records: int
    b_records: int
    unchanged: int = Field(description="Records of B whose id is in A, in any split (b_records = unchanged + added + "
                                       "changed).")
    added: int
    removed: int = Field(description="Records of A whose id is not in B and that no record of B changed.")
    changed: int = Field(description="Records of B that replace a record of A from the same source line, transform "
                                     "and template (A's record may have been in another split).")
    moved_in: int = Field(0, description="Of `unchanged`: records that were in another split of A.")
    moved_out: int = Field(0, description="Records of this split of A that are in another split of B.")
    added_ids: list[str]
    removed_ids: list[str]
    changed_records: list[ChangedRecord]


class MovedRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    a_split: str
    b_split: str


class ConfigChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: str
    key: str = Field(description="Dotted path in the step config ('' for a step added or removed).")
    a: Any = None
    b: Any = None


class DiffReport(BaseModel):
    """`swcdata diff A B`: per split, the record ids added, removed and changed from A to B."""

    model_config = ConfigDict(extra="forbid", title="DiffReport")

    a: str
    b: str
    a_hash: str
    b_hash: str
    identical: bool = Field(description="Same content hash.")
    splits: list[SplitDiff]
    moved: list[MovedRecord] = Field(description="Ids present in both versions but in different splits.")
    config_changes: list[ConfigChange]


def diff_versions(dda: datasets.DatasetDict, ma: Manifest, ddb: datasets.DatasetDict, mb: Manifest) -> DiffReport:
    """Per split: record ids added and removed from A to B, and records 'changed' (same source file and
    line, same transform/template, different id). Also ids that moved between splits and the step
    config values that differ."""
    rows_a = {s: _arrow_rows(dda[s]) for s in dda}
    rows_b = {s: _arrow_rows(ddb[s]) for s in ddb}
    where_a = {r["id"]: s for s, rows in rows_a.items() for r in rows}
    where_b = {r["id"]: s for s, rows in rows_b.items() for r in rows}
    changed = _pair_changed(rows_a, rows_b, where_a, where_b)
    paired_a = {c.a_id for c in changed}
    paired_b = {c.b_id for c in changed}
    splits = []
    for split in split_order(sorted(set(rows_a) | set(rows_b))):
        a, b = rows_a.get(split, []), rows_b.get(split, [])
        added_ids = [r["id"] for r in b if r["id"] not in where_a and r["id"] not in paired_b]
        removed_ids = [r["id"] for r in a if r["id"] not in where_b and r["id"] not in paired_a]
        here = [c for c in changed if c.b_split == split]
        splits.append(SplitDiff(split=split, a_records=len(a), b_records=len(b),
                                unchanged=sum(1 for r in b if r["id"] in where_a), added=len(added_ids),
                                removed=len(removed_ids), changed=len(here),
                                moved_in=sum(1 for r in b if where_a.get(r["id"], split) != split),
                                moved_out=sum(1 for r in a if where_b.get(r["id"], split) != split),
                                added_ids=added_ids, removed_ids=removed_ids, changed_records=here))
    moved = [MovedRecord(id=i, a_split=where_a[i], b_split=s) for i, s in where_b.items()
             if i in where_a and where_a[i] != s]
    return DiffReport(a=ma.ref, b=mb.ref, a_hash=ma.content_hash, b_hash=mb.content_hash,
                      identical=ma.content_hash == mb.content_hash, splits=splits, moved=moved,
                      config_changes=_config_changes(ma.steps, mb.steps))


def _arrow_rows(ds: Any) -> list[dict[str, Any]]:
    table = as_arrow(ds)
    return table.select(["id", "source", "transform", "template"]).to_pylist()


def _change_key(r: dict[str, Any]) -> tuple[Any, ...]:
    src = r["source"] or {}
    return (src.get("file"), src.get("line"), r.get("transform"), r.get("template"))


def _pair_changed(rows_a: dict[str, list[dict[str, Any]]], rows_b: dict[str, list[dict[str, Any]]],
                  where_a: dict[str, str], where_b: dict[str, str]) -> list[ChangedRecord]:
    """Records from the same input line (and transform/template) with a new id are 'changed', not added +
    removed, whichever split each side is in."""
    pending: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for split in split_order(list(rows_a)):
        for r in rows_a[split]:
            if r["id"] not in where_b:
                pending[_change_key(r)].append(r)
    changed: list[ChangedRecord] = []
    for split in split_order(list(rows_b)):
        for r in rows_b[split]:
            if r["id"] in where_a:
                continue
            queue = pending.get(_change_key(r))
            if queue:
                old = queue.pop(0)
                changed.append(ChangedRecord(source=Source(**r["source"]), transform=r.get("transform"),
                                             template=r.get("template"), a_id=old["id"], b_id=r["id"],
                                             a_split=where_a[old["id"]], b_split=split))
    return changed


def _config_changes(a: list[Step], b: list[Step]) -> list[ConfigChange]:
    sa = {s.name: s.config for s in a}
    sb = {s.name: s.config for s in b}
    out: list[ConfigChange] = []
    for name in [*sa, *(n for n in sb if n not in sa)]:
        if name not in sb:
            out.append(ConfigChange(step=name, key="", a=sa[name], b=None))
        elif name not in sa:
            out.append(ConfigChange(step=name, key="", a=None, b=sb[name]))
        else:
            fa, fb = flatten(sa[name]), flatten(sb[name])
            for key in [*fa, *(k for k in fb if k not in fa)]:
                if fa.get(key) != fb.get(key):
                    out.append(ConfigChange(step=name, key=key, a=fa.get(key), b=fb.get(key)))
    return out
