"""`stats`: what a dataset holds, per split: records per class, character and token lengths, duplicates,
and for augmented records the shares of each transform and template and the augmentation's quality
(header-only variants, parse rates, renames by type, a few before/after pairs: swcdata.steps.augment.quality).

A step like the others: `stats(splits, config) -> (StatsReport, Lengths)`; the report is what the CLI
prints or writes as JSON, the length counts are what `--plots` draws. Tokens are counted with a
Hugging Face `tokenizer.json` when one is given (`tokenizers`, no torch), otherwise as words and
punctuation marks (`\\w+|[^\\w\\s]`, Python's classes), which needs nothing.

The table work is polars, `CHUNK_ROWS` records at a time, so a version of any size is read in bounded memory (its
splits read from disk a batch at a time: `Registry.reading`): per split, only counts are kept (records per class,
per length, per transform and template), the not-null ids (as 64-bit integers where they are swcdata's 16 hex
digits) and a 64-bit hash of each normalised instruction. Repeated instructions are counted exactly: the
instructions whose hash occurs more than once are read again and compared by their normalised text, so a hash
collision never merges two texts. The figures are the ones the row-by-row code gave (tests/test_stats.py keeps that
code as the reference): percentiles are numpy's (swcdata.evaluation.lengths), the normalised instruction is
`normalize_text`'s (polars for the texts that fold to ASCII, `normalize_text` itself for the others), and tied
counts keep the order of their first record, as `Counter.most_common` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from swcdata.core.errors import DataError, InputError
from swcdata.core.records import id_keys, ids_as_text
from swcdata.core.text import _FOLD, normalize_text
from swcdata.evaluation.lengths import LengthCounts, token_pattern
from swcdata.evaluation.lengths import count_tokens as count_word_tokens
from swcdata.steps.augment.quality import AugmentQuality

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

FIELDS = ("instruction", "response")
COLUMNS = ("id", "instruction", "response", "category", "parent_id", "transform", "template")
_REGEX_TOKEN = re.compile(r"\w+|[^\w\s]")
REGEX_TOKENIZER = r"regex \w+|[^\w\s] (words and punctuation)"
CHUNK_ROWS = 50_000  # records per polars frame, at most
CHUNK_BYTES = 64 << 20  # and about this much text (of the columns read) per frame
PAIR_CHUNK = 2_000  # augmented records measured per isolated child
GATHER_PAIRS = 100_000  # (parent, variant) pairs whose rows are read together
# Runs of the ASCII characters str.split() splits at, but a lone space: one with another blank in it, or 2+ spaces.
_BLANKS = r"[ ]*[\t\n\x0B\x0C\r\x1C-\x1F][\t\n\x0B\x0C\r\x1C-\x1F ]*| [\t\n\x0B\x0C\r\x1C-\x1F ]+"

Lengths = dict[str, dict[str, dict[str, LengthCounts]]]  # split -> "chars"/"tokens" -> field -> length counts


class Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: int
    p50: float
    mean: float
    p95: float
    max: int
    total: int


class SplitStats(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    records: int
    classes: dict[str, int] = Field(description="Records per SWC class.")
    chars: dict[str, Distribution] = Field(description="Character lengths of instruction and response.")
    tokens: dict[str, Distribution] = Field(description="Token lengths of instruction and response.")
    duplicate_ids: int = Field(description="Records whose id (normalised instruction + response) occurs earlier in "
                               "the split: exact duplicates.")
    repeated_instructions: int = Field(description="Records whose normalised instruction occurs earlier in the split.")
    augmented: int = Field(description="Records with a parent_id (made by augment).")
    augmented_share: float
    transforms: dict[str, int] = Field(default_factory=dict, description="Augmented records per code transform.")
    templates: dict[str, int] = Field(default_factory=dict, description="Augmented records per instruction template.")
    template_families: dict[str, int] = Field(default_factory=dict, description="Augmented records per template "
                                              "family (the template name before `/`).")
    transform_shares: dict[str, float] = Field(default_factory=dict, description="transforms / augmented.")
    template_shares: dict[str, float] = Field(default_factory=dict, description="templates / augmented.")
    augmentation: AugmentQuality | None = Field(None, description="How good the augmented records are, measured "
                                                "against their parents in the same split (as the augment step's "
                                                "report measures them); null without augmented records.")


class StatsReport(BaseModel):
    """`swcdata stats`: per split, then all splits together."""

    model_config = ConfigDict(extra="forbid", title="StatsReport")

    source: str = Field(description="NAME@vN, a folder, or the input files.")
    content_hash: str | None = None
    tokenizer: str
    splits: list[SplitStats]
    total: SplitStats
    cross_split_duplicate_ids: int = Field(description="Ids that occur in more than one split (leaks between "
                                           "splits; 0 on a version built by swcdata).")
    quarantined: int = Field(0, description="Input lines that failed the schema checks (files only).")
    plots: list[str] = Field(default_factory=list)


class StatsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokenizer: str | None = Field(None, description="Path to a tokenizer.json, or a folder holding one (a run's "
                                  "adapter/ or base-model/ folder, or a run folder).")


def load_tokenizer(spec: str | None) -> tuple[Callable[[list[str]], list[int]], str]:
    """(texts -> token counts, description)."""
    if spec is None:
        return (lambda texts: [len(_REGEX_TOKEN.findall(t)) for t in texts]), REGEX_TOKENIZER
    p = Path(spec)
    cands = [p] if p.is_file() else [p / "tokenizer.json", p / "adapter" / "tokenizer.json",
                                     p / "base-model" / "tokenizer.json"]
    found = next((c for c in cands if c.is_file()), None)
    if found is None:
        raise InputError(f"no tokenizer.json at {spec}", hint="give a tokenizer.json file, or a folder (a run, its "
                         "adapter/ or a saved model) that holds one")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise InputError("--tokenizer needs the `tokenizers` package", hint="pip install 'swcdata[train]'") from None
    try:
        tok = Tokenizer.from_file(str(found))
    except Exception as e:
        raise InputError(f"{found} is not a readable tokenizer.json: {e}") from None

    def count(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]

    return count, str(found)


def _dist(lengths: LengthCounts) -> Distribution:
    if not lengths.records:
        return Distribution(min=0, p50=0.0, mean=0.0, p95=0.0, max=0, total=0)
    return Distribution(min=int(lengths.values[0]), p50=round(lengths.percentile(50), 1),
                        mean=round(lengths.mean(), 1), p95=round(lengths.percentile(95), 1),
                        max=int(lengths.values[-1]), total=lengths.total)


# -- reading: polars frames, CHUNK_ROWS records at a time ---------------------------------------------------------

def _frames(tables: Iterable[pa.Table], columns: Sequence[str], keep: Sequence[str] | None = None
            ) -> Iterator[pl.DataFrame]:
    """The tables' records in order, as String frames with `columns` (CHUNK_ROWS records or CHUNK_BYTES at most);
    a column a table lacks (or one not in `keep`) is null."""
    import polars as pl

    from swcdata.core.arrow import table_batches

    for table in tables:
        present = [c for c in columns if c in table.column_names and (keep is None or c in keep)]
        size = table.nbytes * len(present) // max(1, table.num_columns)  # (about: the columns read)
        step = max(1, min(CHUNK_ROWS, CHUNK_BYTES * table.num_rows // max(size, 1)))
        for part in table_batches(table, present or table.column_names[:1], step):
            n = part.num_rows
            df = pl.from_arrow(part) if present else pl.DataFrame({"_": pl.Series([None] * n, dtype=pl.String)})
            assert isinstance(df, pl.DataFrame)
            yield df.with_columns(pl.col(c).cast(pl.String) if c in present else pl.lit(None, pl.String).alias(c)
                                  for c in columns).select(columns)


def _ascii_keys(texts: pl.Series) -> pl.Series:
    """normalize_text of ASCII texts: every run of the blanks str.split() knows (\\t \\n \\v \\f \\r \\x1c-\\x1f, space)
    one space, stripped, lower-cased (casefold on ASCII). (A lone space, the common blank, is left as it is.)"""
    return texts.str.replace_all(_BLANKS, " ").str.strip_chars(" ").str.to_lowercase()


def _instruction_keys(texts: pl.Series) -> pl.Series:
    """`normalize_text` of every text (no nulls): polars for the texts that are ASCII once typography is folded
    (fold_typography only folds `_FOLD`'s characters then), normalize_text itself for the rest."""
    keys = _ascii_keys(texts)
    other = (texts.str.len_bytes() != texts.str.len_chars()).arg_true()
    if len(other):
        folded = texts.gather(other).str.replace_many(list(_FOLD), list(_FOLD.values()))
        fixed = _ascii_keys(folded)
        still = (folded.str.len_bytes() != folded.str.len_chars()).arg_true()
        if len(still):
            fixed = fixed.scatter(still, [normalize_text(t) for t in texts.gather(other.gather(still)).to_list()])
        keys = keys.scatter(other, fixed)
    return keys


def _key_hashes(keys: pl.Series) -> pl.Series:
    """A UInt64 hash of each normalised instruction (equal keys, equal hashes; the converse is checked)."""
    return keys.hash(seed=0)


def _as_one(parts: Sequence[pl.Series]) -> pl.Series:
    """The id keys of `parts` in one Series: UInt64 keys spelled back in hex where some part holds other ids."""
    import polars as pl

    parts = [p for p in parts if p.len()]
    if not parts:
        return pl.Series("id", [], dtype=pl.UInt64)
    if any(p.dtype != pl.UInt64 for p in parts):
        parts = [ids_as_text(p) for p in parts]
    return pl.concat([p.rename("id") for p in parts])


def _none(name: str) -> pl.Expr:
    import polars as pl

    c = pl.col(name)
    return pl.when(c.is_null() | (c == "")).then(pl.lit("none")).otherwise(c).alias(name)  # (`value or "none"`)


# -- one split's figures, added up frame by frame --------------------------------------------------------------------

class _Tally:
    """The figures of one split (or of all together): counts only, plus the not-null ids and one hash per
    normalised instruction (in record order)."""

    def __init__(self, pattern: str | None, count_tokens: Callable[[list[str]], list[int]]) -> None:
        self.pattern, self.count_tokens = pattern, count_tokens
        self.rows = 0
        self.classes: dict[Any, int] = {}
        self.lengths: dict[tuple[str, str], list[LengthCounts]] = {(k, f): [] for k in ("chars", "tokens")
                                                                    for f in FIELDS}
        self.id_count = 0
        self.ids: list[pl.Series] = []
        self._distinct = False
        self.hashes: list[pl.Series] = []
        self.augmented = 0
        self.named: dict[str, dict[str, list[int]]] = {"transform": {}, "template": {}, "family": {}}

    def add(self, df: pl.DataFrame) -> None:
        import polars as pl

        n, offset = df.height, self.rows
        self.rows += n
        for cat, k in df["category"].value_counts().iter_rows():
            self.classes[cat] = self.classes.get(cat, 0) + k
        texts = df.select(pl.col(f).fill_null("") for f in FIELDS)
        lens = texts.select([pl.col(f).str.len_chars().alias(f"chars/{f}") for f in FIELDS])
        if self.pattern is not None:  # words and punctuation: counted in C (or by polars' regex: lengths.count_tokens)
            lens = lens.with_columns(count_word_tokens(texts[f]).alias(f"tokens/{f}") for f in FIELDS)
        else:
            lens = lens.with_columns(pl.Series(f"tokens/{f}", self.count_tokens(texts[f].to_list()), dtype=pl.Int64)
                                     for f in FIELDS)
        for (kind, field), parts in self.lengths.items():
            vc = lens[f"{kind}/{field}"].value_counts()
            parts.append(LengthCounts(vc[:, 0].to_numpy().astype("int64"), vc[:, 1].to_numpy().astype("int64")))
            if len(parts) > 64:
                parts[:] = [LengthCounts.merge(parts)]
        ids = df["id"].drop_nulls()
        self.id_count += ids.len()
        self.ids.append(id_keys(ids))
        self._distinct = False
        if len(self.ids) > 64:
            self.ids = [_as_one(self.ids).unique()]
        self.hashes.append(_key_hashes(_instruction_keys(texts["instruction"])))
        aug = df.with_row_index("row", offset=offset).filter(pl.col("parent_id").is_not_null())
        self.augmented += aug.height
        if aug.height:
            aug = aug.select("row", _none("transform"), _none("template"))
            aug = aug.with_columns(family=pl.col("template").str.split("/").list.first())
            for key, counts in self.named.items():
                for name, k, first in aug.group_by(key).agg(pl.len(), pl.col("row").min()).iter_rows():
                    c = counts.setdefault(name, [0, first])
                    c[0] += k
                    c[1] = min(c[1], first)

    @classmethod
    def merged(cls, tallies: Sequence[_Tally]) -> _Tally:
        """All the tallies' records one after the other (their hashes are not copied: see `_repeated`)."""
        total = cls(tallies[0].pattern, tallies[0].count_tokens)
        for t in tallies:
            for cat, k in t.classes.items():
                total.classes[cat] = total.classes.get(cat, 0) + k
            for key, parts in t.lengths.items():
                total.lengths[key].append(LengthCounts.merge(parts))
            total.id_count += t.id_count
            total.ids.append(t.distinct_ids())
            total.augmented += t.augmented
            for key, counts in t.named.items():
                for name, (k, first) in counts.items():
                    c = total.named[key].setdefault(name, [0, total.rows + first])
                    c[0] += k
                    c[1] = min(c[1], total.rows + first)
            total.rows += t.rows
        return total

    def most_common(self, key: str) -> dict[str, int]:
        """`dict(Counter(...).most_common())`: by count, ties in the order of their first record."""
        return {name: k for name, (k, _) in sorted(self.named[key].items(), key=lambda kv: (-kv[1][0], kv[1][1]))}

    def distinct_ids(self) -> pl.Series:
        if len(self.ids) != 1 or not self._distinct:
            self.ids, self._distinct = [_as_one(self.ids).unique()], True
        return self.ids[0]

    def all_hashes(self) -> pl.Series:
        import polars as pl

        if len(self.hashes) != 1:
            self.hashes = [pl.concat(self.hashes) if self.hashes else pl.Series("hash", [], dtype=pl.UInt64)]
        return self.hashes[0].rename("hash")

    def split_stats(self, name: str, repeated: int) -> SplitStats:
        distinct_ids = self.distinct_ids().len()
        transforms, templates = self.most_common("transform"), self.most_common("template")
        n_aug = self.augmented
        return SplitStats(
            name=name, records=self.rows, classes=dict(sorted(self.classes.items())),
            chars={f: _dist(LengthCounts.merge(self.lengths["chars", f])) for f in FIELDS},
            tokens={f: _dist(LengthCounts.merge(self.lengths["tokens", f])) for f in FIELDS},
            duplicate_ids=self.id_count - distinct_ids, repeated_instructions=repeated, augmented=n_aug,
            augmented_share=round(n_aug / self.rows, 4) if self.rows else 0.0,
            transforms=transforms, templates=templates, template_families=self.most_common("family"),
            transform_shares={k: round(v / n_aug, 4) for k, v in transforms.items()},
            template_shares={k: round(v / n_aug, 4) for k, v in templates.items()},
        )

    def length_counts(self) -> dict[str, dict[str, LengthCounts]]:
        return {kind: {f: LengthCounts.merge(self.lengths[kind, f]) for f in FIELDS} for kind in ("chars", "tokens")}


def _key_pairs(frames: Iterator[pl.DataFrame], hashes: pl.Series, candidates: pl.Series) -> pl.DataFrame:
    """The distinct (hash, normalised instruction) pairs of the records whose hash is one of `candidates`."""
    import polars as pl

    found: list[pl.DataFrame] = []
    if not candidates.len():
        return pl.DataFrame(schema={"hash": pl.UInt64, "key": pl.String})
    chosen = hashes.is_in(candidates.implode())
    start = 0
    for df in frames:
        mask = chosen.slice(start, df.height)
        if mask.any():
            texts = df["instruction"].fill_null("").filter(mask)
            found.append(pl.DataFrame({"hash": hashes.slice(start, df.height).filter(mask),
                                       "key": _instruction_keys(texts)}).unique())
            if len(found) > 64:
                found = [pl.concat(found).unique()]
        start += df.height
    return pl.concat(found).unique() if found else pl.DataFrame(schema={"hash": pl.UInt64, "key": pl.String})


def _extra_keys(pairs: pl.DataFrame) -> int:
    """Texts beyond the first under each hash: hash collisions (nearly always 0)."""
    import polars as pl

    if not pairs.height:
        return 0
    return int(pairs.group_by("hash").agg(pl.col("key").n_unique() - 1)["key"].sum())


def _repeated(parts: list[tuple[_Tally, Callable[[], Iterator[pl.DataFrame]]]], total: _Tally | None
              ) -> tuple[list[int], int]:
    """Records whose normalised instruction occurs earlier: in each part, and in all parts together (`total`
    None: the parts' records one after the other, else the total's own tally and reader, the last part)."""
    import polars as pl

    counts = [t.all_hashes().value_counts(name="n") for t, _ in parts]
    if total is None:
        everything = (pl.concat(counts).group_by("hash").agg(pl.col("n").sum()) if counts
                      else pl.DataFrame(schema={"hash": pl.UInt64, "n": pl.UInt32}))
        wanted = everything.filter(pl.col("n") > 1)["hash"]
        pairs = [_key_pairs(read(), t.all_hashes(), wanted) for t, read in parts]
        per = [t.rows - (c.height + _extra_keys(p)) for (t, _), c, p in zip(parts, counts, pairs, strict=True)]
        all_pairs = pl.concat(pairs).unique() if pairs else pl.DataFrame(schema={"hash": pl.UInt64, "key": pl.String})
        return per, sum(t.rows for t, _ in parts) - (everything.height + _extra_keys(all_pairs))
    per = []
    for (t, read), c in zip(parts, counts, strict=True):
        wanted = c.filter(pl.col("n") > 1)["hash"]
        extra = _extra_keys(_key_pairs(read(), t.all_hashes(), wanted))
        per.append(t.rows - (c.height + extra))
    return per[:-1], per[-1]


def stats(splits: Mapping[str, pa.Table], config: StatsConfig | None = None, *, source: str = "",
          content_hash: str | None = None, quarantined: int = 0) -> tuple[StatsReport, Lengths]:
    """Statistics of every split and of all splits together, and the length counts (for histograms). The tables
    may be memory-mapped (a registry version): they are read CHUNK_ROWS records at a time."""
    cfg = config or StatsConfig()
    if not splits or not any(t.num_rows for t in splits.values()):
        if quarantined:
            raise DataError(f"{source or 'the input'} holds no valid records: {quarantined:,} line(s) fail the schema "
                            "checks", hint="swcdata validate names each problem")
        raise InputError(f"{source or 'the input'} holds no records")
    count_tokens, tok_name = load_tokenizer(cfg.tokenizer)
    pattern = token_pattern() if cfg.tokenizer is None else None
    tables = list(splits.values())

    def reader(ts: list[pa.Table], columns: Sequence[str], keep: Sequence[str] | None = None
               ) -> Callable[[], Iterator[pl.DataFrame]]:
        return lambda: _frames(ts, columns, keep)

    tallies: dict[str, _Tally] = {}
    for name, table in splits.items():
        t = tallies[name] = _Tally(pattern, count_tokens)
        for df in _frames([table], COLUMNS):
            t.add(df)
    parts = [(tallies[name], reader([table], ("instruction",))) for name, table in splits.items()]
    # All splits together: the columns every split has (as the concatenated table had them). Where no column is
    # in some splits only, that is the splits' figures added up; otherwise the records are read again so.
    common = [c for c in COLUMNS if all(c in t.column_names for t in tables)]
    if all(c in common or not any(c in t.column_names for t in tables) for c in COLUMNS):
        total = _Tally.merged(list(tallies.values()))
        per_repeated, total_repeated = _repeated(parts, None)
    else:
        total = _Tally(pattern, count_tokens)
        for df in _frames(tables, COLUMNS, common):
            total.add(df)
        per_repeated, total_repeated = _repeated([*parts, (total, reader(tables, ("instruction",), common))], total)
    per: list[SplitStats] = []
    lengths: Lengths = {}
    contributing: list[tuple[pa.Table, AugmentQuality]] = []
    for (name, table), repeated in zip(splits.items(), per_repeated, strict=True):
        s = tallies[name].split_stats(name, repeated)
        if s.augmented:
            measured = _Counted(_measured(_pairs(table)))
            s.augmentation = _summarise(measured)
            if measured.n:
                contributing.append((table, s.augmentation))
        per.append(s)
        lengths[name] = tallies[name].length_counts()
    # Ids in more than one split: each split's distinct ids, together.
    together = _as_one([t.distinct_ids() for t in tallies.values()])
    cross = int((together.value_counts(name="n")["n"] > 1).sum()) if together.len() else 0
    stats_all = total.split_stats("all", total_repeated)
    if stats_all.augmented:
        if len(contributing) == 1:  # the total's measured records are this split's, in the same order
            stats_all.augmentation = contributing[0][1].model_copy(deep=True)
        else:  # (several augmented splits: measured again rather than kept)
            stats_all.augmentation = _summarise(_measured(p for table, _ in contributing for p in _pairs(table)))
    report = StatsReport(source=source, content_hash=content_hash, tokenizer=tok_name, splits=per, total=stats_all,
                         cross_split_duplicate_ids=cross, quarantined=quarantined)
    return report, lengths


class _Counted:
    """An iterator that counts what it gave."""

    def __init__(self, it: Iterator[Any]) -> None:
        self.it, self.n = it, 0

    def __iter__(self) -> Iterator[Any]:
        for x in self.it:
            self.n += 1
            yield x


def _pairs(table: pa.Table) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(parent, variant) of every augmented record whose parent is in the same split, in the variants' order; a
    parent is the last record with that id and no parent_id. Read PAIR_CHUNK pairs at a time."""
    import numpy as np
    import polars as pl

    from swcdata.core.arrow import take_rows

    cols = [c for c in ("id", "instruction", "response", "parent_id", "transform", "template")
            if c in table.column_names]
    parents: list[pl.DataFrame] = []
    variants: list[pl.DataFrame] = []
    start = 0
    for df in _frames([table], ("id", "parent_id")):
        df = df.with_row_index("row", offset=start)
        start += df.height
        p = df.filter(pl.col("parent_id").is_null() & pl.col("id").is_not_null())
        v = df.filter(pl.col("parent_id").is_not_null())
        parents.append(pl.DataFrame({"key": id_keys(p["id"]), "parent": p["row"]}))
        variants.append(pl.DataFrame({"key": id_keys(v["parent_id"]), "row": v["row"]}))
    keys = _as_one([f["key"] for f in parents + variants]) if parents or variants else None
    if keys is None or not keys.len():
        return
    # one key type for both sides (UInt64 only where every id and parent_id is hex)
    k = 0
    for frames in (parents, variants):
        for i, f in enumerate(frames):
            frames[i] = f.with_columns(key=keys.slice(k, f.height))
            k += f.height
    by_id = pl.concat(parents).group_by("key").agg(pl.col("parent").max())
    pairs = pl.concat(variants).join(by_id, on="key", how="inner").sort("row")
    # (a version on disk is read once per GATHER_PAIRS pairs: the rows of those pairs are taken in one pass)
    for g in range(0, pairs.height, GATHER_PAIRS):
        group = pairs.slice(g, GATHER_PAIRS)
        both = take_rows(table, np.concatenate([group["parent"].to_numpy(), group["row"].to_numpy()]), cols)
        n = group.height
        for s in range(0, n, PAIR_CHUNK):
            k = min(PAIR_CHUNK, n - s)
            yield from zip(both.slice(s, k).to_pylist(), both.slice(n + s, k).to_pylist(), strict=True)


def _measured(pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> Iterator[Any]:
    """(parent, variant, quality) of each pair; the quality is measured in isolated children (tree-sitter runs
    there, see swcdata.steps.augment.quality), PAIR_CHUNK pairs per child."""
    from swcdata.steps.augment.quality import measure_isolated

    it = iter(pairs)
    while chunk := list(islice(it, PAIR_CHUNK)):
        for (p, v), q in zip(chunk, measure_isolated(chunk), strict=True):
            yield p, v, q


def _summarise(triples: Iterable[Any]) -> AugmentQuality:
    from swcdata.steps.augment.quality import summarise

    return summarise(triples)


def write_plots(report: StatsReport, lengths: Lengths, folder: Path, *,
                marker: tuple[int, str] | None = None) -> list[Path]:
    """classes.png, chars-*.png and tokens-*.png (instruction and response, per split, each split as the share of
    its records) in `folder`, drawn from the length counts. `marker` (max_length, label) draws the recipe's
    max_length on the token histograms."""
    from swcdata.evaluation.plots import bars_png, histograms_png

    written = [bars_png({s.name: s.classes for s in report.splits}, folder / "classes.png",
                        title=f"records per class (share of each split): {report.source}")]
    for kind, unit in (("chars", "characters"), ("tokens", "tokens")):
        for field in FIELDS:
            counts = {split: (lens[kind][field].values, lens[kind][field].counts) for split, lens in lengths.items()}
            written.append(histograms_png(counts, folder / f"{kind}-{field}.png",
                                          title=f"{field} length in {unit}: {report.source}", xlabel=unit,
                                          marker=marker if kind == "tokens" else None))
    return written
