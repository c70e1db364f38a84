"""`swcdata diff A B`: what changed between two versions, record by record (added, removed, changed, moved
between splits) and in the steps' configs. A record is 'changed' when a record from the same input line (and
transform/template) has a new id.

The comparison is a pair of polars joins over the few columns it needs (id, split, source, transform, template),
read from the versions' splits a batch at a time (the ids as integers): an anti-join on id gives the records of one
version only, and among those, an inner join on (source file, line, transform, template, the record's rank among the
records of that key) pairs a record of A with the record of B that replaced it. With `text`, the text columns are
read for the changed records listed and nothing else, and each field that differs gets a word diff.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from swcdata.core.schema import Source
from swcdata.registry.content import split_order
from swcdata.registry.manifest import Manifest, Step, flatten

if TYPE_CHECKING:
    import polars as pl

TEXT_FIELDS = ("instruction", "response", "category", "metadata")  # what a word diff compares
CONTEXT_WORDS = 6  # unchanged words kept on each side of a change in a word diff (more are elided: " … ")


class WordSegment(BaseModel):
    """A run of a word diff: text both versions hold (`=`, shortened to its ends when long), or text only A
    (`-`) or only B (`+`) holds."""

    model_config = ConfigDict(extra="forbid")

    op: Literal["=", "-", "+"]
    text: str


class TextChange(BaseModel):
    """How one field of a changed record differs: a word diff from A's text to B's."""

    model_config = ConfigDict(extra="forbid")

    field: str
    diff: str = Field(description="The word diff as plain text: [-removed words-] {+added words+}, unchanged words "
                                  "around them (a long unchanged run shortened to its ends with ' … ').")
    segments: list[WordSegment] = Field(description="The same diff as runs, for tools.")


class RecordRef(BaseModel):
    """A record of one version: its id and its input line."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source: Source


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
    text: list[TextChange] | None = Field(None, description="With `diff --text`, for the first --limit changed "
                                          "records of each split: a word diff of each field that differs.")


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
    added_records: list[RecordRef] = Field(default_factory=list, description="The added records (as added_ids, in "
                                           "the same order) with their input line.")
    removed_records: list[RecordRef] = Field(default_factory=list, description="The removed records (as "
                                             "removed_ids, in the same order) with their input line.")


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


KEY = ("file", "line", "transform", "template")  # a record of A and one of B with the same key: 'changed'
SIDE_BATCH_ROWS = 65_536  # records read at a time into the comparison's columns


def diff_versions(ma: Manifest, tables_a: Mapping[str, Any], mb: Manifest, tables_b: Mapping[str, Any], *,
                  text_limit: int | None = None) -> DiffReport:
    """Per split: record ids added and removed from A to B, and records 'changed' (same source file and
    line, same transform/template, different id). Also ids that moved between splits and the step
    config values that differ.

    `tables_a`, `tables_b`: each version's splits in stored order (`pa.Table`s, or `StoredSplit`s read a batch at
    a time: `Registry.splits`); a split may be empty. With `text_limit`, the first `text_limit` changed records of
    each split get a word diff of their fields (`ChangedRecord.text`)."""
    import polars as pl

    from swcdata.registry.stored import lazy_frame

    splits_a, splits_b = list(tables_a), list(tables_b)
    a, b = _side(tables_a), _side(tables_b)
    if a["id"].dtype != b["id"].dtype:  # (one version holds an id that is not swcdata's 16 hex digits)
        a, b = _ids_as_text(a), _ids_as_text(b)
    where_a, where_b = _where(a, "a_where"), _where(b, "b_where")  # id -> its split (the last, as a dict keeps)
    a = a.join(where_b, on="id", how="left", maintain_order="left")  # b_where: null when the id is not in B
    b = b.join(where_a, on="id", how="left", maintain_order="left")
    rank = pl.int_range(pl.len(), dtype=pl.UInt32).over(KEY).alias("rank")  # (the records of a key in order)
    cand_a = a.filter(pl.col("b_where").is_null()).with_columns(rank)
    cand_b = b.filter(pl.col("a_where").is_null()).with_columns(rank)
    pairs = cand_b.join(cand_a.select(*KEY, "rank", pl.col("id").alias("a_id")), on=[*KEY, "rank"], how="inner",
                        nulls_equal=True, maintain_order="left")
    pairs = pairs.join(where_a.rename({"id": "a_id", "a_where": "a_split"}), on="a_id", how="left",
                       maintain_order="left")
    added = cand_b.join(pairs.select("id"), on="id", how="anti", maintain_order="left")
    removed = cand_a.join(pairs.select(pl.col("a_id").alias("id")), on="id", how="anti", maintain_order="left")
    # ids of B in the order they first appear, with their last split in each version
    moved = (b.filter(pl.col("id").is_first_distinct()).select("id", "a_where")
             .join(where_b, on="id", how="left", maintain_order="left")
             .filter(pl.col("a_where").is_not_null() & (pl.col("a_where") != pl.col("b_where"))))

    splits = []
    for split in split_order(sorted(set(splits_a) | set(splits_b))):
        in_a, in_b = a.filter(pl.col("split") == split), b.filter(pl.col("split") == split)
        here = pairs.filter(pl.col("split") == split)
        here = _ids_as_text(here, ("id", "a_id"))
        changed = [ChangedRecord(source=Source(file=r["file"], line=r["line"]), transform=r["transform"],
                                 template=r["template"], a_id=r["a_id"], b_id=r["id"], a_split=r["a_split"],
                                 b_split=split) for r in here.iter_rows(named=True)]
        add = _ids_as_text(added.filter(pl.col("split") == split))
        rem = _ids_as_text(removed.filter(pl.col("split") == split))
        splits.append(SplitDiff(
            split=split, a_records=in_a.height, b_records=in_b.height,
            unchanged=in_b.select(pl.col("a_where").is_not_null().sum()).item(), added=add.height,
            removed=rem.height, changed=len(changed),
            moved_in=in_b.select((pl.col("a_where") != split).sum()).item(),
            moved_out=in_a.select((pl.col("b_where") != split).sum()).item(),
            added_ids=add["id"].to_list(), removed_ids=rem["id"].to_list(), changed_records=changed,
            added_records=_refs(add), removed_records=_refs(rem)))
    if text_limit:
        _add_text(splits, lazy_frame(tables_a, ma.ref), lazy_frame(tables_b, mb.ref), text_limit)
    moved_rows = _ids_as_text(moved).iter_rows()
    return DiffReport(a=ma.ref, b=mb.ref, a_hash=ma.content_hash, b_hash=mb.content_hash,
                      identical=ma.content_hash == mb.content_hash, splits=splits,
                      moved=[MovedRecord(id=i, a_split=sa, b_split=sb) for i, sa, sb in moved_rows],
                      config_changes=_config_changes(ma.steps, mb.steps))


def _side(tables: Mapping[str, Any]) -> pl.DataFrame:
    """The columns the comparison needs, one row per record in stored order: split, id, source file and line,
    transform, template (the ones of few distinct values as Categorical: 4 bytes a row; the ids as the 64-bit
    integers they spell where every one is swcdata's 16 hex digits: 8 bytes a row, and joins on integers). Built a
    batch at a time: the source paths and text ids of a batch are dropped before the next one is read."""
    import polars as pl

    from swcdata.core.arrow import table_batches
    from swcdata.core.records import id_keys

    few = pl.Categorical()
    src = pl.col("source")
    parts: list[pl.DataFrame] = []
    for split, table in tables.items():
        for batch in table_batches(table, ["id", "source", "transform", "template"], SIDE_BATCH_ROWS):
            df = pl.from_arrow(batch, rechunk=False)
            assert isinstance(df, pl.DataFrame)
            parts.append(df.select(pl.lit(split, dtype=pl.String).cast(few).alias("split"), "id",
                                   src.struct.field("file").cast(few).alias("file"),
                                   src.struct.field("line").alias("line"), pl.col("transform").cast(few),
                                   pl.col("template").cast(few)))
            parts[-1] = parts[-1].with_columns(id_keys(parts[-1]["id"]))
    if not parts:
        return pl.DataFrame(schema={"split": few, "id": pl.String, "file": few, "line": pl.Int64,
                                    "transform": few, "template": few})
    if len({p["id"].dtype for p in parts}) > 1:  # (some batch holds an id that is not 16 hex digits)
        parts = [_ids_as_text(p) for p in parts]
    return pl.concat(parts, rechunk=True)


def _ids_as_text(frame: pl.DataFrame, columns: tuple[str, ...] = ("id",)) -> pl.DataFrame:
    """`frame` with its integer ids spelled as swcdata spells them (16 lower-case hex digits)."""
    from swcdata.core.records import ids_as_text

    return frame.with_columns(ids_as_text(frame[c]) for c in columns)


def _where(side: pl.DataFrame, name: str) -> pl.DataFrame:
    """Each id once, with the split of its last record (as a dict built over the rows keeps it)."""
    import polars as pl

    return side.filter(pl.col("id").is_last_distinct()).select("id", pl.col("split").alias(name))


def _refs(rows: pl.DataFrame) -> list[RecordRef]:
    return [RecordRef(id=i, source=Source(file=f, line=n)) for i, f, n in rows.select("id", "file", "line").iter_rows()]


def _add_text(splits: list[SplitDiff], scan_a: pl.LazyFrame, scan_b: pl.LazyFrame, limit: int) -> None:
    """A word diff of each field that differs, for the first `limit` changed records of each split: the text
    columns are read for those records only."""
    import polars as pl

    shown = [c for s in splits for c in s.changed_records[:limit]]
    if not shown:
        return

    def texts(scan: pl.LazyFrame, ids: set[str]) -> dict[str, dict[str, Any]]:
        rows = scan.filter(pl.col("id").is_in(sorted(ids))).select("id", *TEXT_FIELDS).collect()
        return {r["id"]: r for r in rows.iter_rows(named=True)}

    old, new = texts(scan_a, {c.a_id for c in shown}), texts(scan_b, {c.b_id for c in shown})
    for c in shown:
        ra, rb = old.get(c.a_id, {}), new.get(c.b_id, {})
        c.text = [word_diff(f, ra.get(f) or "", rb.get(f) or "") for f in TEXT_FIELDS if ra.get(f) != rb.get(f)]


_WORDS = re.compile(r"\s+|[^\s]+")


def word_diff(field: str, a: str, b: str, context: int = CONTEXT_WORDS) -> TextChange:
    """The word diff from `a` to `b` (difflib over words and the whitespace between them); unchanged runs longer
    than 2 * `context` words keep `context` words at each end."""
    wa, wb = _WORDS.findall(a), _WORDS.findall(b)
    segments: list[WordSegment] = []
    ops = difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes()
    for n, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            words = wa[i1:i2]
            keep = 2 * context  # (tokens: a word and the space after it)
            head = words[:keep] if n > 0 else []
            tail = words[-keep:] if n < len(ops) - 1 else []
            if len(words) > len(head) + len(tail) + 1:  # (a long run: its ends around " … ")
                text = ("".join(head).rstrip() + " " if head else "") + "…" + (" " + "".join(tail).lstrip()
                                                                              if tail else "")
            else:
                text = "".join(words)
            segments.append(WordSegment(op="=", text=text))
            continue
        if i2 > i1:
            segments.append(WordSegment(op="-", text="".join(wa[i1:i2])))
        if j2 > j1:
            segments.append(WordSegment(op="+", text="".join(wb[j1:j2])))
    plain = "".join(s.text if s.op == "=" else f"[-{s.text}-]" if s.op == "-" else f"{{+{s.text}+}}"
                    for s in segments)
    return TextChange(field=field, diff=plain, segments=segments)


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
