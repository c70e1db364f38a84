"""`split`: leak-free, stratified train / validation / test splits.

Records are first grouped: exact duplicates and near-duplicate clusters (the dedup step's
clustering, every pair inside each LSH bucket verified, at a threshold a margin *below* the
audit's) form one group each, and a group is assigned to exactly one split. Groups are then
dealt to splits per category, largest first, each to the split furthest below its target for
that category (ties broken by a seeded order), so per-category proportions land within a
couple of points of the targets wherever the group sizes allow it.

With a holdout (an existing test set), the holdout *is* the test split: every record that
matches a holdout record under the leak rules (by default exact, near, and code: its Solidity code
holds, sits inside, or nearly copies a holdout record's code, whatever the prose says) is removed
from train and validation (decontamination); each removal is reported with the holdout record it
matches, and a code match under another category is listed as a label conflict.

The code rule also groups: records whose code matches share a group, so one piece of code never
lands in two splits.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Literal

import numpy as np
import pyarrow as pa
import xxhash
from pydantic import BaseModel, ConfigDict, Field, field_validator

from swcdata.core.arrow import bools
from swcdata.core.schema import Ledger, RecordRef, Source
from swcdata.similarity import minhash
from swcdata.similarity.codematch import RecordCode, code_pairs, record_code
from swcdata.steps.audit import LabelConflict, LeakRules
from swcdata.steps.dedup import DedupConfig, Progress, cluster

SPLITS = ("train", "validation", "test")


class SplitConfig(LeakRules):
    """Every knob of the split step (the leak rules decide decontamination against a holdout and grouping)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    ratios: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train, validation, test shares.")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of the group order; the same seed gives the same split.")
    stratify: Literal["category", "none"] = Field("category", description="Balance each category across splits.")
    group_threshold: float = Field(0.6, gt=0, le=1, description="Records at or above this estimated similarity share "
                                   "a group (a margin below the audit's 0.7, so audits find nothing across splits).")
    near: DedupConfig = Field(default_factory=DedupConfig, description="Features of the near-duplicate grouping.")
    tolerance: float = Field(0.02, ge=0, description="Allowed deviation of a category's share from its target.")

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 for r in v):
            raise ValueError("ratios must be >= 0")
        if abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"ratios must sum to 1 (got {sum(v):g})")
        if v[0] <= 0:
            raise ValueError("the train ratio must be > 0")
        return v


class CategoryShare(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str
    total: int
    counts: dict[str, int]
    shares: dict[str, float] = Field(description="Achieved share of the category's records in each split.")
    max_deviation: float = Field(description="Largest |achieved - target| over the splits, in share points.")
    within_tolerance: bool


class Decontaminated(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    source: Source
    kind: Literal["exact", "near", "code", "ngram"]
    code_kind: Literal["contained", "contains", "near"] | None = Field(None, description="For a code match: how the "
                                                                       "two pieces of code relate.")
    similarity: float
    matches: RecordRef


class SplitReport(BaseModel):
    model_config = ConfigDict(extra="forbid", title="SplitReport")

    config: SplitConfig
    records: int = Field(description="Records in: = sum of split sizes (holdout excluded) + decontaminated.")
    groups: int
    largest_group: int
    multi_record_groups: int
    sizes: dict[str, int]
    shares: dict[str, float]
    targets: dict[str, float]
    categories: list[CategoryShare]
    within_tolerance: bool
    holdout_records: int = Field(0, description="Records of the holdout set in the test split (after its exact "
                                 "duplicates are dropped).")
    holdout_duplicates: list[RecordRef] = Field(default_factory=list, description="Exact copies inside the holdout "
                                                "set, dropped from the test split (the first copy stays).")
    decontaminated: list[Decontaminated] = Field(default_factory=list)
    label_conflicts: list[LabelConflict] = Field(default_factory=list, description="Records whose code matches a "
                                                 "holdout record's under another category (removed with the rest).")
    code_groups: int = Field(0, description="Groups joined because their records share code (the code rule).")
    seconds: float
    input: Ledger | None = Field(None, description="How the input lines were read (set when split read files).")
    holdout_input: Ledger | None = Field(None, description="How the --holdout lines were read (set when split "
                                         "read a holdout set).")

    @property
    def adds_up(self) -> bool:
        return self.records == sum(self.sizes.values()) - self.holdout_records + len(self.decontaminated)


def _order_key(seed: int, rep_id: str) -> int:
    return xxhash.xxh3_64_intdigest(f"{seed}:{rep_id}".encode())


def assign_groups(group_of: np.ndarray, categories: list[str], ids: list[str], ratios: tuple[float, ...],
                  seed: int, stratify: bool) -> np.ndarray:
    """Split index (0..len(ratios)-1) for every record; a group never straddles two splits.

    Per stratum (category, or everything), groups are ordered by a seeded hash of their smallest
    record id and cut at the target quantiles (a group goes where its midpoint falls). The order of
    a group depends only on its own content, so editing, adding or removing one record moves at most
    that record's group and a neighbour at a cut -- splits stay stable from one version to the next,
    and a record that was in test stays in test."""
    n = len(group_of)
    out = np.full(n, -1, dtype=np.int64)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(group_of.tolist()):
        members[g].append(i)
    strata: dict[str, list[int]] = defaultdict(list)
    for g, mem in members.items():
        # a group's stratum: its most frequent category (ties: smallest name)
        cats = Counter(categories[i] for i in mem)
        top = min(cats.items(), key=lambda kv: (-kv[1], kv[0]))[0] if stratify else "*"
        strata[top].append(g)
    r = np.asarray(ratios, dtype=float)
    for stratum in sorted(strata):
        groups = strata[stratum]
        key = {g: min(ids[i] for i in members[g]) for g in groups}
        groups.sort(key=lambda g: (_order_key(seed, key[g]), key[g]))
        target = r * sum(len(members[g]) for g in groups)
        counts = np.zeros(len(r))
        # 1. groups of several records (rare after dedup), largest first, each to the split that
        #    stays furthest below its target; zero-share splits never receive anything
        for g in sorted((g for g in groups if len(members[g]) > 1), key=lambda g: -len(members[g])):
            k = int(np.argmax(np.where(r > 0, target - counts - len(members[g]), -np.inf)))
            counts[k] += len(members[g])
            out[members[g]] = k
        # 2. single records in hash order, cut at the quantiles of what each split still needs
        singles = [g for g in groups if len(members[g]) == 1]
        need = np.maximum(target - counts, 0)
        cuts = np.cumsum(need) / need.sum() if need.sum() > 0 else np.cumsum(r)
        for pos, g in enumerate(singles):
            k = min(int(np.searchsorted(cuts, (pos + 0.5) / len(singles), side="right")), len(r) - 1)
            while r[k] <= 0:
                k -= 1
            out[members[g]] = k
    return out


def _code_edges(codes: list[RecordCode], cfg: SplitConfig) -> np.ndarray:
    """Edges that join records whose code matches: records with the very same code are joined to the first of
    them (a star), and the code-level search runs on the distinct pieces of code only (a corpus that repeats one
    function a thousand times would otherwise check every pair of its copies)."""
    first: dict[str, int] = {}
    star: list[tuple[int, int]] = []
    distinct: list[int] = []
    for i, rc in enumerate(codes):
        if not rc.needles(cfg.code.min_tokens):  # (no span long enough: it can neither match nor hold a match)
            continue
        rep = first.setdefault("\x00".join(rc.joined()), i)
        if rep == i:
            distinct.append(i)
        else:
            star.append((i, rep))
    cp = code_pairs([codes[i] for i in distinct], None, cfg.code)
    rows = np.asarray(distinct, dtype=np.int64)
    pairs = np.stack([rows[cp.i], rows[cp.j]], axis=1) if len(cp) else np.zeros((0, 2), dtype=np.int64)
    return np.concatenate([np.asarray(star, dtype=np.int64).reshape(-1, 2), pairs])


def split(table: pa.Table, config: SplitConfig | None = None, holdout: pa.Table | None = None, *,
          progress: Progress | None = None) -> tuple[dict[str, pa.Table], SplitReport]:
    """Split a record table into train / validation / test without leakage (see module doc).
    `progress` follows the signing of the records (for the holdout audit first, then the grouping)."""
    cfg = config or SplitConfig()
    t0 = time.perf_counter()
    decontaminated: list[Decontaminated] = []
    ratios = cfg.ratios
    label_conflicts: list[LabelConflict] = []
    if holdout is not None:
        from swcdata.steps.audit import AuditConfig, audit

        acfg = AuditConfig(near=cfg.near.model_copy(update={"threshold": cfg.group_threshold}),
                           **cfg.model_dump(include=set(LeakRules.model_fields)))
        rep = audit(holdout, table, acfg, progress=progress)
        leaked = rep.leaked
        label_conflicts = rep.label_conflicts
        drop = {(c.source.file, c.source.line, c.id) for c in leaked}
        for c in leaked:
            # the strongest rule that both matched and counts as a leak names the removal
            matched = {"exact": c.status == "exact", "near": c.status == "near", "code": c.code_match is not None,
                       "ngram": c.longest_ngram > 0}
            kind = next(r for r in ("exact", "near", "code", "ngram") if matched[r] and acfg.counts(r))  # type: ignore[arg-type]
            match = {"exact": c.match, "near": c.match, "code": c.code_match, "ngram": c.ngram_match}[kind]
            sim = {"exact": 1.0, "near": c.similarity, "code": c.code_similarity, "ngram": None}[kind]
            assert match is not None
            decontaminated.append(Decontaminated(id=c.id, source=c.source, kind=kind,  # type: ignore[arg-type]
                                                 code_kind=c.code_kind if kind == "code" else None,
                                                 similarity=sim if sim is not None else 1.0, matches=match))
        if drop:
            keys = [(s["file"], s["line"], i) for s, i in zip(table.column("source").to_pylist(),
                                                               table.column("id").to_pylist(), strict=True)]
            table = table.filter(bools([k not in drop for k in keys]))
        ratios = (ratios[0] / (ratios[0] + ratios[1]), ratios[1] / (ratios[0] + ratios[1]), 0.0)
    n = table.num_rows
    # The audit's own banding (so every pair it can find is a candidate here too) plus a more
    # sensitive one, every pair of each bucket verified at the lower group threshold.
    sensitive = minhash.lsh_params(0.5, cfg.near.num_perm)
    groups = cluster(table, cfg.near, all_pairs=True, verify_threshold=cfg.group_threshold,
                     extra_bandings=[sensitive], progress=progress).final
    code_groups = 0
    if cfg.counts("code") and n:
        # one piece of code never lands in two splits: records whose code matches join one group
        code_edges = _code_edges(record_code(table.column("instruction").to_pylist(), cfg.code), cfg)
        if len(code_edges):
            before = len(np.unique(groups))
            edges = np.concatenate([np.stack([np.arange(n, dtype=np.int64), groups.astype(np.int64)], axis=1),
                                    code_edges])
            groups = minhash.components(edges, n)
            code_groups = before - len(np.unique(groups))
    ids: list[str] = table.column("id").to_pylist()
    categories: list[str] = table.column("category").to_pylist()
    which = assign_groups(groups, categories, ids, ratios, cfg.seed, cfg.stratify == "category")
    out = {name: table.filter(bools(which == k)) for k, name in enumerate(SPLITS)}
    holdout_duplicates: list[RecordRef] = []
    if holdout is not None:
        # an exact copy inside the holdout would count twice in every test score: the first one stays
        hold_ids = holdout.column("id").to_pylist()
        first: dict[str, int] = {}
        dup_rows = [k for k, i in enumerate(hold_ids) if first.setdefault(i, k) != k]
        if dup_rows:
            srcs = holdout.column("source").to_pylist()
            holdout_duplicates = [RecordRef(id=hold_ids[k], source=Source(**srcs[k])) for k in dup_rows]
            keep = np.ones(holdout.num_rows, dtype=bool)
            keep[dup_rows] = False
            holdout = holdout.filter(bools(keep))
        out["test"] = holdout

    sizes = {name: t.num_rows for name, t in out.items()}
    total = sum(sizes.values()) or 1
    cat_rows: list[CategoryShare] = []
    targets = dict(zip(SPLITS, ratios, strict=True))
    ok = True
    for cat in sorted(set(categories)):
        mask = np.array([c == cat for c in categories])
        counts = {name: int(((which == k) & mask).sum()) for k, name in enumerate(SPLITS)}
        tot = int(mask.sum())
        shares = {name: round(counts[name] / tot, 4) for name in SPLITS}
        dev = max(abs(shares[name] - targets[name]) for name in SPLITS)
        within = dev <= cfg.tolerance + 1e-9
        ok = ok and within
        cat_rows.append(CategoryShare(category=cat, total=tot, counts=counts, shares=shares,
                                      max_deviation=round(dev, 4), within_tolerance=within))
    group_sizes = np.bincount(groups, minlength=n) if n else np.zeros(0, dtype=np.int64)
    report = SplitReport(
        config=cfg, records=n + len(decontaminated),
        groups=int((group_sizes > 0).sum()), largest_group=int(group_sizes.max(initial=0)),
        multi_record_groups=int((group_sizes > 1).sum()),
        sizes=sizes, shares={k: round(v / total, 4) for k, v in sizes.items()}, targets=targets,
        categories=cat_rows, within_tolerance=ok,
        holdout_records=holdout.num_rows if holdout is not None else 0, holdout_duplicates=holdout_duplicates,
        decontaminated=decontaminated, label_conflicts=label_conflicts, code_groups=code_groups,
        seconds=round(time.perf_counter() - t0, 3),
    )
    return out, report
