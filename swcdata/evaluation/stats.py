"""`stats`: what a dataset holds, per split: records per class, character and token lengths, duplicates,
and for augmented records the shares of each transform and template and the augmentation's quality
(header-only variants, parse rates, renames by type, a few before/after pairs: swcdata.steps.augment.quality).

A step like the others: `stats(splits, config) -> (StatsReport, Lengths)`; the report is what the CLI
prints or writes as JSON, the raw lengths are what `--plots` draws. Tokens are counted with a
Hugging Face `tokenizer.json` when one is given (`tokenizers`, no torch), otherwise as words and
punctuation marks (`\\w+|[^\\w\\s]`), which needs nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from swcdata.core.errors import DataError, InputError
from swcdata.core.text import normalize_text
from swcdata.steps.augment.quality import AugmentQuality

if TYPE_CHECKING:
    import pyarrow as pa

FIELDS = ("instruction", "response")
_REGEX_TOKEN = re.compile(r"\w+|[^\w\s]")
REGEX_TOKENIZER = r"regex \w+|[^\w\s] (words and punctuation)"

Lengths = dict[str, dict[str, dict[str, list[int]]]]  # split -> "chars"/"tokens" -> field -> lengths


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


def _dist(values: list[int]) -> Distribution:
    import numpy as np

    if not values:
        return Distribution(min=0, p50=0.0, mean=0.0, p95=0.0, max=0, total=0)
    a = np.asarray(values)
    return Distribution(min=int(a.min()), p50=round(float(np.percentile(a, 50)), 1), mean=round(float(a.mean()), 1),
                        p95=round(float(np.percentile(a, 95)), 1), max=int(a.max()), total=int(a.sum()))


def _col(table: pa.Table, name: str) -> list:  # type: ignore[type-arg]
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _split_stats(name: str, table: pa.Table, count_tokens: Callable[[list[str]], list[int]]
                 ) -> tuple[SplitStats, dict[str, dict[str, list[int]]]]:
    texts = {f: [t or "" for t in _col(table, f)] for f in FIELDS}
    chars = {f: [len(t) for t in texts[f]] for f in FIELDS}
    tokens = {f: count_tokens(texts[f]) for f in FIELDS}
    ids = _col(table, "id")
    seen: set[str] = set()
    dup_ids = 0
    for i in ids:
        if i is not None and i in seen:
            dup_ids += 1
        seen.add(i)
    seen_instr: set[str] = set()
    repeated = 0
    for t in texts["instruction"]:
        key = normalize_text(t)
        if key in seen_instr:
            repeated += 1
        seen_instr.add(key)
    parents = _col(table, "parent_id")
    aug_rows = [k for k, p in enumerate(parents) if p is not None]
    tr, tp = _col(table, "transform"), _col(table, "template")
    transforms = Counter(str(tr[k] or "none") for k in aug_rows)
    templates = Counter(str(tp[k] or "none") for k in aug_rows)
    n_aug = len(aug_rows)
    stats = SplitStats(
        name=name, records=table.num_rows, classes=dict(sorted(Counter(_col(table, "category")).items())),
        chars={f: _dist(v) for f, v in chars.items()}, tokens={f: _dist(v) for f, v in tokens.items()},
        duplicate_ids=dup_ids, repeated_instructions=repeated, augmented=n_aug,
        augmented_share=round(n_aug / table.num_rows, 4) if table.num_rows else 0.0,
        transforms=dict(transforms.most_common()), templates=dict(templates.most_common()),
        template_families=dict(Counter(str(tp[k] or "none").split("/")[0] for k in aug_rows).most_common()),
        transform_shares={k: round(v / n_aug, 4) for k, v in transforms.most_common()},
        template_shares={k: round(v / n_aug, 4) for k, v in templates.most_common()},
    )
    return stats, {"chars": chars, "tokens": tokens}


def stats(splits: Mapping[str, pa.Table], config: StatsConfig | None = None, *, source: str = "",
          content_hash: str | None = None, quarantined: int = 0) -> tuple[StatsReport, Lengths]:
    """Statistics of every split and of all splits together, and the raw lengths (for histograms)."""
    import pyarrow as pa

    cfg = config or StatsConfig()
    if not splits or not any(t.num_rows for t in splits.values()):
        if quarantined:
            raise DataError(f"{source or 'the input'} holds no valid records: {quarantined:,} line(s) fail the schema "
                            "checks", hint="swcdata validate names each problem")
        raise InputError(f"{source or 'the input'} holds no records")
    count_tokens, tok_name = load_tokenizer(cfg.tokenizer)
    per: list[SplitStats] = []
    lengths: Lengths = {}
    where: dict[str, set[str]] = {}
    measured: list[Any] = []
    for name, table in splits.items():
        s, lens = _split_stats(name, table, count_tokens)
        if s.augmented:
            triples = _augmentation(table)
            measured += triples
            s.augmentation = _summarise(triples)
        per.append(s)
        lengths[name] = lens
        for i in set(_col(table, "id")) - {None}:
            where.setdefault(i, set()).add(name)
    cols = [c for c in ("id", "instruction", "response", "category", "parent_id", "transform", "template")
            if all(c in t.column_names for t in splits.values())]
    everything = pa.concat_tables([t.select(cols) for t in splits.values()], promote_options="permissive")
    total, _ = _split_stats("all", everything, count_tokens)
    if total.augmented:
        total.augmentation = _summarise(measured)
    report = StatsReport(source=source, content_hash=content_hash, tokenizer=tok_name, splits=per, total=total,
                         cross_split_duplicate_ids=sum(1 for s in where.values() if len(s) > 1),
                         quarantined=quarantined)
    return report, lengths


def _augmentation(table: pa.Table) -> list[Any]:
    """(parent, variant, quality) of every augmented record whose parent is in the same split; the quality
    is measured in isolated children (tree-sitter runs there, see swcdata.steps.augment.quality)."""
    from swcdata.steps.augment.quality import measure_isolated

    cols = [c for c in ("id", "instruction", "response", "parent_id", "transform", "template")
            if c in table.column_names]
    rows = table.select(cols).to_pylist()
    by_id = {r["id"]: r for r in rows if r.get("parent_id") is None}
    pairs = [(by_id[r["parent_id"]], r) for r in rows if r.get("parent_id") is not None and r["parent_id"] in by_id]
    return [(p, v, q) for (p, v), q in zip(pairs, measure_isolated(pairs), strict=True)]


def _summarise(triples: list[Any]) -> AugmentQuality:
    from swcdata.steps.augment.quality import summarise

    return summarise(triples)


def write_plots(report: StatsReport, lengths: Lengths, folder: Path) -> list[Path]:
    """classes.png, chars.png and tokens.png (instruction and response, per split) in `folder`."""
    from swcdata.evaluation.plots import bars_png, histograms_png

    written = [bars_png({s.name: s.classes for s in report.splits}, folder / "classes.png",
                        title=f"records per class: {report.source}")]
    for kind, unit in (("chars", "characters"), ("tokens", "tokens")):
        for field in FIELDS:
            values = {split: lens[kind][field] for split, lens in lengths.items()}
            written.append(histograms_png(values, folder / f"{kind}-{field}.png",
                                          title=f"{field} length in {unit}: {report.source}", xlabel=unit))
    return written
