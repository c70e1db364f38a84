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
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import BaseModel, ConfigDict, Field, field_validator

from swcdata.core.arrow import bools, int64s, strings, to_numpy
from swcdata.core.schema import Ledger, RecordRef, Source
from swcdata.similarity import minhash
from swcdata.similarity.codematch import CodeSide, RecordCode, code_pairs, record_code
from swcdata.similarity.sigindex import SignatureIndex
from swcdata.steps.audit import AuditConfig, CandidateResult, LabelConflict, LeakRules
from swcdata.steps.dedup import DedupConfig, Progress, cluster
from swcdata.steps.features import Features

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
    """A group's place in the seeded order: xxh3-64 of ``f"{seed}:{smallest record id}"``."""
    return xxhash.xxh3_64_intdigest(f"{seed}:{rep_id}".encode())


def _order_keys(seed: int, keys: pa.Array) -> npt.NDArray[np.uint64]:
    """``[_order_key(seed, k) for k in keys]`` as uint64: the prefixed keys are joined by Arrow, so only the hash
    itself is a Python call per group."""
    prefix, empty = strings([f"{seed}:", ""])  # (scalars taken from an array: `pa.scalar` would import pandas)
    data = pc.binary_join_element_wise(prefix, keys, empty).cast(pa.binary())
    return np.fromiter(map(xxhash.xxh3_64_intdigest, data.to_pylist()), dtype=np.uint64, count=len(keys))


def _strings_of(values: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """One Arrow string array from a list of str or an Arrow (chunked) array."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values if isinstance(values, pa.Array) else strings(values)


def _name_codes(values: pa.Array) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Each value's rank among the distinct values in name order, and those names in order."""
    enc = pc.dictionary_encode(values)
    names: list[str] = enc.dictionary.to_pylist()  # (the distinct values: a few categories)
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    codes = rank[to_numpy(enc.indices).astype(np.int64)] if len(values) else np.zeros(0, dtype=np.int64)
    return codes, [names[k] for k in order]


def _heads(sorted_values: npt.NDArray[np.generic]) -> npt.NDArray[np.bool_]:
    """True where a run of equal values starts."""
    head = np.empty(len(sorted_values), dtype=bool)
    head[:1] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=head[1:])
    return head


def _dense_groups(group_of: npt.NDArray[np.integer]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each record's group renumbered 0..G-1 in order of first appearance, and the first record of each group."""
    n = len(group_of)
    by_label = np.argsort(group_of, kind="stable")
    head = _heads(group_of[by_label])
    first = by_label[head]  # (stable: the first record of each label, labels ascending)
    label = np.empty(n, dtype=np.int64)
    label[by_label] = np.cumsum(head) - 1
    by_first = np.argsort(first)
    dense = np.empty(len(first), dtype=np.int64)
    dense[by_first] = np.arange(len(first))
    return dense[label], first[by_first]


def assign_groups(group_of: npt.NDArray[np.integer], categories: Sequence[str] | pa.Array | pa.ChunkedArray,
                  ids: Sequence[str] | pa.Array | pa.ChunkedArray, ratios: tuple[float, ...], seed: int,
                  stratify: bool) -> npt.NDArray[np.int64]:
    """Split index (0..len(ratios)-1) for every record; a group never straddles two splits.

    Per stratum (a group's most frequent category, ties to the smallest name; or everything), groups are
    ordered by a seeded hash of their smallest record id (`_order_key`; ties by that id, then by first
    appearance in `group_of`). Groups of several records (rare after dedup) go first, largest first (ties in
    that order), each to the split that stays furthest below its target (zero-share splits never receive
    anything); the single records are then cut in that order at the quantiles of what each split still needs.
    The order of a group depends only on its own content, so editing, adding or removing one record moves at
    most that record's group and a neighbour at a cut -- splits stay stable from one version to the next, and
    a record that was in test stays in test.

    Columns in, as numpy and Arrow: the only per-group Python work is the hash and the greedy placement of the
    groups of several records. `categories` and `ids` are lists of str or Arrow string columns."""
    group_of = np.asarray(group_of)
    n = len(group_of)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    g, first = _dense_groups(group_of)
    n_groups = len(first)
    size = np.bincount(g, minlength=n_groups)
    multi_rows = np.flatnonzero(size[g] > 1)
    id_col = _strings_of(ids)
    # a group's key: its smallest record id (the first record's id for a group of one)
    rep = first.copy()
    if len(multi_rows):
        pairs = pa.table({"g": int64s(g[multi_rows]), "id": id_col.take(int64s(multi_rows))})
        by = to_numpy(pc.sort_indices(pairs, [("g", "ascending"), ("id", "ascending")])).astype(np.int64)
        sg = g[multi_rows][by]
        head = _heads(sg)
        rep[sg[head]] = multi_rows[by[head]]
    keys = id_col.take(int64s(rep))
    # a group's stratum: its most frequent category, ties to the smallest name
    if stratify:
        cat, names = _name_codes(_strings_of(categories))
        stratum = cat[first]
        if len(multi_rows):
            width = len(names)
            pair = np.sort(g[multi_rows] * width + cat[multi_rows])
            head = _heads(pair)
            distinct = pair[head]
            count = np.diff(np.append(np.flatnonzero(head), len(pair)))
            pg, pc_ = distinct // width, distinct % width
            best = np.lexsort((-count, pg))  # (stable: equal counts stay in name order)
            top = best[_heads(pg[best])]
            stratum[pg[top]] = pc_[top]
    else:
        stratum = np.zeros(n_groups, dtype=np.int64)
    # the seeded order: by stratum, then hash; equal (stratum, hash) runs by (smallest id, first appearance)
    h = _order_keys(seed, keys)
    order = np.argsort(h)
    small = stratum.astype(np.int16) if stratum.max(initial=0) < 2**15 else stratum  # (int16: a radix sort)
    order = order[np.argsort(small[order], kind="stable")]
    so, ho = stratum[order], h[order]
    tie = (so[1:] == so[:-1]) & (ho[1:] == ho[:-1])
    if tie.any():
        starts = np.flatnonzero(np.append(tie, False) & ~np.insert(tie, 0, False))
        ends = np.flatnonzero(~np.append(tie, False) & np.insert(tie, 0, False)) + 1
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            run = order[a:b].tolist()
            run_keys = keys.take(int64s(run)).to_pylist()
            order[a:b] = [run[j] for j in sorted(range(len(run)), key=lambda j: (run_keys[j], run[j]))]
    r = np.asarray(ratios, dtype=float)
    shares = r.tolist()
    # where a cut that lands on a zero-share split goes instead: the nearest split below it with a share
    fallback = []
    for k in range(len(r)):
        while r[k] <= 0:
            k -= 1
        fallback.append(k)
    to_split = np.asarray(fallback, dtype=np.int64)
    split_of = np.full(n_groups, -1, dtype=np.int64)
    stratum_records = np.bincount(stratum, weights=size).astype(np.int64)
    bounds = np.flatnonzero(np.append(_heads(so), True)).tolist()
    sizes = size[order]
    for a, b in pairwise(bounds):
        groups, gsize = order[a:b], sizes[a:b]
        target = r * int(stratum_records[so[a]])
        counts = [0.0] * len(r)
        several = gsize > 1
        if several.any():
            # 1. groups of several records, largest first, each to the split furthest below its target
            by_size = np.argsort(-gsize[several], kind="stable")
            mg, ms = groups[several][by_size], gsize[several][by_size]
            tl = target.tolist()
            placed = []
            for m in ms.tolist():
                room = [t - c - m if s > 0 else -np.inf for t, c, s in zip(tl, counts, shares, strict=True)]
                k = room.index(max(room))
                counts[k] += m
                placed.append(k)
            split_of[mg] = placed
        # 2. single records in hash order, cut at the quantiles of what each split still needs
        singles = groups[~several]
        if len(singles):
            need = np.maximum(target - np.asarray(counts), 0)
            cuts = np.cumsum(need) / need.sum() if need.sum() > 0 else np.cumsum(r)
            at = np.searchsorted(cuts, (np.arange(len(singles)) + 0.5) / len(singles), side="right")
            split_of[singles] = to_split[np.minimum(at, len(r) - 1)]
    return split_of[g]


def _row_key(file: str, line: int, rid: str) -> str:
    """One string for a record's (source file, line, id): NUL never occurs in a path, a number or an id."""
    return f"{file}\x00{line}\x00{rid}"


def _row_keys(table: pa.Table) -> pa.ChunkedArray:
    """`_row_key` of every row, as an Arrow column."""
    src = table.column("source")
    return pc.binary_join_element_wise(pc.struct_field(src, "file"), pc.struct_field(src, "line").cast(pa.string()),
                                       table.column("id"), strings(["\x00"])[0])


def _code_edges(codes: Sequence[RecordCode], cfg: SplitConfig,
                side_of: Callable[[npt.NDArray[np.int64]], CodeSide] | None = None) -> np.ndarray:
    """Edges that join records whose code matches: records with the very same code are joined to the first of
    them (a star), and the code-level search runs on the distinct pieces of code only (a corpus that repeats one
    function a thousand times would otherwise check every pair of its copies). `side_of(rows)`: what the search
    reads of those records' code, where it is at hand (`features.Features.code_side`)."""
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
    rows = np.asarray(distinct, dtype=np.int64)
    cp = code_pairs([codes[i] for i in distinct], None, cfg.code,
                    a_side=side_of(rows) if side_of is not None and len(rows) else None)
    pairs = np.stack([rows[cp.i], rows[cp.j]], axis=1) if len(cp) else np.zeros((0, 2), dtype=np.int64)
    return np.concatenate([np.asarray(star, dtype=np.int64).reshape(-1, 2), pairs])


def split(table: pa.Table, config: SplitConfig | None = None, holdout: pa.Table | None = None, *,
          progress: Progress | None = None, known: SignatureIndex | None = None,
          features: Features | None = None) -> tuple[dict[str, pa.Table], SplitReport]:
    """Split a record table into train / validation / test without leakage (see module doc).
    `progress` follows the signing of the records (for the holdout audit first, then the grouping); `known`: a
    signature index whose signatures the grouping takes instead of signing, where they are its features' (a build's
    parent version's); `features`: what the code rule reads of each record, taken from there (a build's, which
    holds the audit features of its parent's records)."""
    cfg = config or SplitConfig()
    if known is not None and known.params.differences(cfg.near.index_params()):
        known = None
    t0 = time.perf_counter()
    decontaminated: list[Decontaminated] = []
    ratios = cfg.ratios
    label_conflicts: list[LabelConflict] = []
    if holdout is not None:
        from swcdata.steps.audit import audit

        acfg = holdout_audit_config(cfg)
        rep = audit(holdout, table, acfg, progress=progress)
        leaked = rep.leaked
        label_conflicts = rep.label_conflicts
        drop = {(c.source.file, c.source.line, c.id) for c in leaked}
        decontaminated = decontaminations(leaked, acfg)
        if drop:
            table = table.filter(pc.invert(pc.is_in(_row_keys(table), value_set=strings(
                [_row_key(file, line, i) for file, line, i in sorted(drop)]))))
        ratios = (ratios[0] / (ratios[0] + ratios[1]), ratios[1] / (ratios[0] + ratios[1]), 0.0)
    n = table.num_rows
    # The audit's own banding (so every pair it can find is a candidate here too) plus a more
    # sensitive one, every pair of each bucket verified at the lower group threshold.
    sensitive = minhash.lsh_params(0.5, cfg.near.num_perm)
    groups = cluster(table, cfg.near, all_pairs=True, verify_threshold=cfg.group_threshold,
                     extra_bandings=[sensitive], progress=progress, known=known).final
    code_groups = 0
    if cfg.counts("code") and n:
        if features is not None and features.known is not None:  # (else computing is all there is to do)
            acfg = holdout_audit_config(cfg)
            sub = table.select(["instruction", "response"])
            groups, code_groups = join_code_groups(
                groups, features.codes(sub, acfg, keep=False), np.arange(n, dtype=np.int64), cfg,
                lambda rows: features.code_side(sub.take(int64s(rows)), acfg, keep=False))
        else:
            groups, code_groups = join_code_groups(
                groups, record_code(table.column("instruction").to_pylist(), cfg.code), np.arange(n, dtype=np.int64),
                cfg)
    which = assign_groups(groups, table.column("category"), table.column("id"), ratios, cfg.seed,
                          cfg.stratify == "category")
    out = {name: table.filter(bools(which == k)) for k, name in enumerate(SPLITS)}
    holdout_duplicates: list[RecordRef] = []
    if holdout is not None:
        holdout, holdout_duplicates = holdout_test(holdout)
        out["test"] = holdout

    report = split_report(cfg, ratios, {name: t.num_rows for name, t in out.items()}, table.column("category"), which,
                          groups, decontaminated=decontaminated, label_conflicts=label_conflicts,
                          code_groups=code_groups, holdout_records=holdout.num_rows if holdout is not None else 0,
                          holdout_duplicates=holdout_duplicates, started=t0)
    return out, report


def join_code_groups(groups: npt.NDArray[np.integer], codes: Sequence[RecordCode], rows: npt.NDArray[np.int64],
                     cfg: SplitConfig, side_of: Callable[[npt.NDArray[np.int64]], CodeSide] | None = None
                     ) -> tuple[npt.NDArray[np.int64], int]:
    """The code rule's grouping: records whose code matches (`_code_edges`) join one group. `codes` are the code
    of the records at `rows` (those that quote code: the others can neither match nor hold a match), in record
    order. Returns the new group of every record and how many groups were joined."""
    n = len(groups)
    code_edges = rows[_code_edges(codes, cfg, side_of)] if len(codes) else np.zeros((0, 2), dtype=np.int64)
    if not len(code_edges):
        return np.asarray(groups), 0
    before = len(np.unique(groups))
    edges = np.concatenate([np.stack([np.arange(n, dtype=np.int64), np.asarray(groups, dtype=np.int64)], axis=1),
                            code_edges])
    joined = minhash.components(edges, n)
    return joined, before - len(np.unique(joined))


def split_report(cfg: SplitConfig, ratios: tuple[float, float, float], sizes: dict[str, int],
                 categories: pa.Array | pa.ChunkedArray, which: npt.NDArray[np.int64], groups: npt.NDArray[np.integer],
                 *, decontaminated: list[Decontaminated], label_conflicts: list[LabelConflict], code_groups: int,
                 holdout_records: int, holdout_duplicates: list[RecordRef], started: float) -> SplitReport:
    """The report of a split: `sizes` of the splits, the `categories`, split (`which`) and group of every record
    of the input left after decontamination (the holdout excluded), and the rest as the step found it."""
    n = len(which)
    total = sum(sizes.values()) or 1
    cat_rows: list[CategoryShare] = []
    targets = dict(zip(SPLITS, ratios, strict=True))
    ok = True
    codes, names = _name_codes(_strings_of(categories))
    per_split = np.bincount(codes * len(SPLITS) + which, minlength=len(names) * len(SPLITS)).reshape(-1, len(SPLITS))
    for c, category in enumerate(names):
        counts = {name: int(per_split[c, k]) for k, name in enumerate(SPLITS)}
        tot = int(per_split[c].sum())
        shares = {name: round(counts[name] / tot, 4) for name in SPLITS}
        dev = max(abs(shares[name] - targets[name]) for name in SPLITS)
        within = dev <= cfg.tolerance + 1e-9
        ok = ok and within
        cat_rows.append(CategoryShare(category=category, total=tot, counts=counts, shares=shares,
                                      max_deviation=round(dev, 4), within_tolerance=within))
    group_sizes = np.bincount(groups, minlength=n) if n else np.zeros(0, dtype=np.int64)
    return SplitReport(
        config=cfg, records=n + len(decontaminated),
        groups=int((group_sizes > 0).sum()), largest_group=int(group_sizes.max(initial=0)),
        multi_record_groups=int((group_sizes > 1).sum()),
        sizes=sizes, shares={k: round(v / total, 4) for k, v in sizes.items()}, targets=targets,
        categories=cat_rows, within_tolerance=ok,
        holdout_records=holdout_records, holdout_duplicates=holdout_duplicates,
        decontaminated=decontaminated, label_conflicts=label_conflicts, code_groups=code_groups,
        seconds=round(time.perf_counter() - started, 3),
    )


def holdout_audit_config(cfg: SplitConfig) -> AuditConfig:
    """The audit that decontaminates against a holdout set: the split's leak rules, near matches at its group
    threshold."""
    from swcdata.steps.audit import AuditConfig

    return AuditConfig(near=cfg.near.model_copy(update={"threshold": cfg.group_threshold}),
                       **cfg.model_dump(include=set(LeakRules.model_fields)))


def decontaminations(leaked: list[CandidateResult], acfg: AuditConfig) -> list[Decontaminated]:
    """A removal for each leaked candidate, named by the strongest rule that both matched and counts as a leak."""
    out = []
    for c in leaked:
        matched = {"exact": c.status == "exact", "near": c.status == "near", "code": c.code_match is not None,
                   "ngram": c.longest_ngram > 0}
        kind = next(r for r in ("exact", "near", "code", "ngram") if matched[r] and acfg.counts(r))  # type: ignore[arg-type]
        match = {"exact": c.match, "near": c.match, "code": c.code_match, "ngram": c.ngram_match}[kind]
        sim = {"exact": 1.0, "near": c.similarity, "code": c.code_similarity, "ngram": None}[kind]
        assert match is not None
        out.append(Decontaminated(id=c.id, source=c.source, kind=kind,  # type: ignore[arg-type]
                                  code_kind=c.code_kind if kind == "code" else None,
                                  similarity=sim if sim is not None else 1.0, matches=match))
    return out


def holdout_test(holdout: pa.Table) -> tuple[pa.Table, list[RecordRef]]:
    """The holdout set as the test split: an exact copy inside it would count twice in every test score, so the
    first one stays. Returns the test split and the copies dropped."""
    hold_codes = to_numpy(pc.dictionary_encode(_strings_of(holdout.column("id"))).indices)
    keep = np.zeros(holdout.num_rows, dtype=bool)
    by_id = np.argsort(hold_codes, kind="stable")
    keep[by_id[_heads(hold_codes[by_id])]] = True  # (stable: the first row of each id)
    dup_rows = int64s(np.flatnonzero(~keep))
    if not len(dup_rows):
        return holdout, []
    dups = [RecordRef(id=i, source=Source(**s)) for i, s in zip(
        holdout.column("id").take(dup_rows).to_pylist(), holdout.column("source").take(dup_rows).to_pylist(),
        strict=True)]
    return holdout.filter(bools(keep)), dups
