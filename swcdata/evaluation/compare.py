"""`compare`: two evaluations side by side, metric by metric, with the difference B - A.

Each side is an evaluation's results.json, its folder, or a run folder (see
`swcdata.evaluation.evaluate.read_results`). Notes say when the two are not comparable as they stand
(different data, split, record count or generation length, or a contaminated or degenerate side).

Each difference of a per-record score (class accuracy and F1 by both rules, answers naming no
class, ROUGE-L, TF-IDF cosine, the code checks, the degenerate-answer shares) gets a paired
bootstrap confidence interval: the records both evaluations answered (paired by record id, from
each side's scored.jsonl) are resampled with replacement, both sides scored on the same resample,
and the percentile interval of B - A taken (`metrics.paired_bootstrap`; numpy only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from swcdata.evaluation.evaluate import SCORED_FILE, EvalResults, _results_path, read_results


class CompareRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str
    a: float | None
    b: float | None
    diff: float | None = Field(description="b - a")
    higher_is_better: bool = True
    ci_low: float | None = Field(None, description="Lower end of the bootstrap confidence interval of b - a over the "
                                 "paired records (None where the metric is not a per-record score or no bootstrap "
                                 "ran).")
    ci_high: float | None = None
    excludes_zero: bool | None = Field(None, description="True when the interval lies wholly above or below 0: the "
                                       "difference is unlikely to be resampling noise.")


class BootstrapInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = "paired percentile bootstrap over record indices"
    resamples: int
    seed: int
    confidence: float
    records: int = Field(description="Records both evaluations answered (paired by record id), the sample resampled "
                         "with replacement; the intervals are over these records.")
    records_a: int
    records_b: int


class CompareReport(BaseModel):
    """`swcdata compare A B`."""

    model_config = ConfigDict(extra="forbid", title="CompareReport")

    a: str = Field(description="The results file of A.")
    b: str
    a_label: str
    b_label: str
    rows: list[CompareRow]
    bootstrap: BootstrapInfo | None = Field(None, description="How the confidence intervals were drawn (None when "
                                            "none were: --resamples 0, or a side without readable per-record scores).")
    notes: list[str] = Field(default_factory=list)


def label(r: EvalResults) -> str:
    return f"{r.run_id}{'' if r.settings.adapter else ' (base)'}"


def _labels(ra: EvalResults, rb: EvalResults) -> tuple[str, str]:
    """The two sides' labels, made distinct (by dataset and split, then by position) when the same run
    was evaluated twice."""
    a, b = label(ra), label(rb)
    if a == b:
        a, b = (f"{a} on {r.settings.dataset}:{r.settings.split}" for r in (ra, rb))
    if a == b:
        a, b = f"A: {a}", f"B: {b}"
    return a, b


def _metrics(r: EvalResults) -> dict[str, tuple[float | None, bool]]:
    out: dict[str, tuple[float | None, bool]] = {"records": (r.records, True)}  # (no better side: see render)
    for rule, cs in r.classification.items():
        out[f"{rule}: accuracy"] = (cs.accuracy, True)
        out[f"{rule}: macro F1"] = (cs.macro_f1, True)
        out[f"{rule}: weighted F1"] = (cs.weighted_f1, True)
        out[f"{rule}: no class named"] = (cs.no_class, False)
    out["ROUGE-L"] = (r.similarity.rouge_l, True)
    out["TF-IDF cosine"] = (r.similarity.tfidf_cosine, True)
    out["code: with code"] = (r.code.with_code, True)
    out["code: parseable"] = (r.code.parseable, True)
    out["code: differs from input"] = (r.code.differs_from_input, True)
    out["code: parses and differs"] = (r.code.parseable_and_differs, True)
    if r.degenerate is not None:
        out["degenerate: empty"] = (r.degenerate.empty_share, False)
        out["degenerate: repetitive"] = (r.degenerate.repetitive_share, False)
        out["degenerate: identical"] = (r.degenerate.identical_share, False)
    for cls in r.classification.get("strict", next(iter(r.classification.values()))).per_class:
        out[f"strict F1 {cls.label}"] = (cls.f1, True)
    out["seconds per record"] = (r.timing.seconds_per_record, False)
    out["new tokens per record"] = (r.timing.new_tokens_per_record, True)
    return out


def compare(a: Path, b: Path, *, resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> CompareReport:
    """A and B metric by metric, with B - A and, with `resamples` > 0, its paired bootstrap interval."""
    ra, rb = read_results(a), read_results(b)
    ma, mb = _metrics(ra), _metrics(rb)
    notes: list[str] = []
    intervals: dict[str, tuple[float, float]] = {}
    info = None
    if resamples > 0:
        intervals, info, why = _bootstrap(a, ra, b, rb, resamples=resamples, seed=seed, confidence=confidence)
        if why:
            notes.append(f"no confidence intervals: {why}")
        elif info is not None and (info.records != ra.records or info.records != rb.records):
            notes.append(f"the confidence intervals are over the {info.records} records both evaluations answered "
                         f"(A has {ra.records}, B {rb.records}); the A and B columns are over all records of each")
    rows = []
    for name in list(ma) + [n for n in mb if n not in ma]:
        va, better = ma.get(name, (None, True))
        vb, better_b = mb.get(name, (None, True))
        diff = None if va is None or vb is None else round(vb - va, 4)
        row = CompareRow(metric=name, a=va, b=vb, diff=diff, higher_is_better=better and better_b)
        if name in intervals and diff is not None:
            low, high = intervals[name]
            row.ci_low, row.ci_high, row.excludes_zero = round(low, 4), round(high, 4), bool(low > 0 or high < 0)
        rows.append(row)
    sa, sb = ra.settings, rb.settings
    if sa.dataset_hash != sb.dataset_hash:
        notes.append(f"different data: {sa.dataset} ({sa.dataset_hash[:12]}) vs {sb.dataset} "
                     f"({sb.dataset_hash[:12]})")
    if sa.split != sb.split:
        notes.append(f"different splits: {sa.split} vs {sb.split}")
    if ra.records != rb.records:
        notes.append(f"different record counts: {ra.records} vs {rb.records}")
    if sa.max_new_tokens != sb.max_new_tokens:
        notes.append(f"different max_new_tokens: {sa.max_new_tokens} vs {sb.max_new_tokens}")
    if ra.timing.device != rb.timing.device:
        notes.append(f"timed on different devices: {ra.timing.device} vs {rb.timing.device}")
    for name in ("base_model", "prompt_format", "system_prompt"):
        if getattr(sa, name) != getattr(sb, name):
            notes.append(f"different {name}: {getattr(sa, name)!r} vs {getattr(sb, name)!r}")
    if sa.adapter and sb.adapter and ra.run_id == rb.run_id and sa.adapter_sha256 != sb.adapter_sha256:
        notes.append("the run's adapter weights differ between the two (it was trained further in between)")
    la, lb = _labels(ra, rb)
    for side, r, lab in (("A", ra, la), ("B", rb, lb)):
        if r.contamination.allowed and r.contamination.checked:
            notes.append(f"{side} ({lab}) is a CONTAMINATED evaluation (--allow-contaminated): its scores "
                         "measure memorisation")
        elif r.contamination.allowed:
            notes.append(f"{side} ({lab}) was not checked for contamination (its training split could not be "
                         "read): its scores may measure memorisation")
        d = r.degenerate
        if d is not None and d.warnings:
            kinds = [f"{getattr(d, f'{k}_share'):.0%} {k}" for k in ("empty", "repetitive", "identical")
                     if getattr(d, f"{k}_share") > getattr(d.config, f"{k}_share")]
            notes.append(f"{side} ({lab}) has DEGENERATE OUTPUT ({', '.join(kinds)} answers): its scores describe "
                         "broken answers")
    return CompareReport(a=str(a), b=str(b), a_label=la, b_label=lb, rows=rows, bootstrap=info, notes=notes)


# ---- the paired bootstrap ----------------------------------------------------------------------------

_MEANS = {"ROUGE-L": "rouge_l", "TF-IDF cosine": "tfidf_cosine", "code: with code": "has_code",
          "code: parseable": "parses", "code: differs from input": "differs",
          "degenerate: empty": "empty", "degenerate: repetitive": "repetitive", "degenerate: identical": "identical"}


def read_scored(path: Path, r: EvalResults) -> tuple[list[dict[str, Any]] | None, str]:
    """The per-record scores of the evaluation whose results `path` names (scored.jsonl beside its results.json,
    else where the results say), checked against the results (record count and accuracy by each rule); (None,
    why) when missing or not matching."""
    folder = _results_path(path).parent
    candidates = [folder / SCORED_FILE] + ([Path(r.files["scored"])] if "scored" in r.files else [])
    why = f"no {SCORED_FILE} beside {folder}"
    for p in dict.fromkeys(candidates):
        try:
            rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError):
            continue
        if len(rows) == r.records and rows and all(
                round(sum(x.get(rule) == x.get("category") for x in rows) / len(rows), 4) == cs.accuracy
                for rule, cs in r.classification.items()):
            return rows, ""
        why = f"{p} does not match its results.json (evaluated again since?)"
    return None, why


def _bootstrap(a: Path, ra: EvalResults, b: Path, rb: EvalResults, *, resamples: int, seed: int,
               confidence: float) -> tuple[dict[str, tuple[float, float]], BootstrapInfo | None, str]:
    """Intervals of B - A by metric name (as in `_metrics`), over the records both answered."""
    import numpy as np

    from swcdata.evaluation import metrics as M

    rows_a, why_a = read_scored(a, ra)
    rows_b, why_b = read_scored(b, rb)
    if rows_a is None or rows_b is None:
        return {}, None, "; ".join(f"{side}: {w}" for side, w in (("A", why_a), ("B", why_b)) if w)

    def keyed(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        seen: dict[str, int] = {}
        out = {}
        for x in rows:  # (a record id that occurs twice is paired occurrence by occurrence)
            k = seen[x["id"]] = seen.get(x["id"], -1) + 1
            out[(x["id"], k)] = x
        return out

    ka, kb = keyed(rows_a), keyed(rows_b)
    pairs = [(x, kb[key]) for key, x in ka.items() if key in kb and kb[key].get("category") == x.get("category")]
    if not pairs:
        return {}, None, "the two evaluations share no record"
    pa, pb = [p[0] for p in pairs], [p[1] for p in pairs]
    classes = sorted({x["category"] for x in pa})
    code = {c: i for i, c in enumerate(classes)}
    truth = np.array([code[x["category"]] for x in pa])
    rules = [rule for rule in ra.classification if rule in rb.classification and rule in pa[0] and rule in pb[0]]
    preds = {(side, rule): np.array([code.get(x[rule], len(classes)) for x in rows])
             for side, rows in (("a", pa), ("b", pb)) for rule in rules}
    nones = {rule: (np.array([x[rule] == M.NONE for x in pb], dtype=np.float64)
                    - np.array([x[rule] == M.NONE for x in pa], dtype=np.float64)) for rule in rules}

    def column(rows: list[dict[str, Any]], field: str) -> Any:
        return np.array([float(x[field]) for x in rows], dtype=np.float64)

    means = {name: column(pb, f) - column(pa, f) for name, f in _MEANS.items() if f in pa[0] and f in pb[0]}
    if all(f in pa[0] and f in pb[0] for f in ("parses", "differs")):
        both = [np.array([bool(x["parses"] and x["differs"]) for x in rows], dtype=np.float64) for rows in (pa, pb)]
        means["code: parses and differs"] = both[1] - both[0]

    def statistic(idx: Any) -> dict[str, Any]:
        out = {}
        for rule in rules:
            sa = M.class_scores_resampled(truth, preds[("a", rule)], len(classes), idx)
            sb = M.class_scores_resampled(truth, preds[("b", rule)], len(classes), idx)
            out[f"{rule}: accuracy"] = sb["accuracy"] - sa["accuracy"]
            out[f"{rule}: macro F1"] = sb["macro_f1"] - sa["macro_f1"]
            out[f"{rule}: weighted F1"] = sb["weighted_f1"] - sa["weighted_f1"]
            out[f"{rule}: no class named"] = nones[rule][idx].sum(axis=1)
            if rule == "strict":
                for i, c in enumerate(classes):
                    out[f"strict F1 {c}"] = sb["f1"][:, i] - sa["f1"][:, i]
        for name, d in means.items():
            out[name] = d[idx].mean(axis=1)
        return out

    intervals = M.paired_bootstrap(len(pairs), statistic, resamples=resamples, seed=seed, confidence=confidence)
    info = BootstrapInfo(resamples=resamples, seed=seed, confidence=confidence, records=len(pairs),
                         records_a=len(rows_a), records_b=len(rows_b))
    return intervals, info, ""


# ---- Markdown -------------------------------------------------------------------------------------------

def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if float(v).is_integer() and abs(v) >= 1 else f"{v:.4f}"


def _signed(v: float) -> str:
    return "0" if v == 0 else f"{'+' if v > 0 else ''}{_fmt(v)}"


def interval(row: CompareRow) -> str:
    """The interval as "[low, high]", with a trailing * when it excludes 0; empty without one."""
    if row.ci_low is None or row.ci_high is None:
        return ""
    return f"[{_signed(row.ci_low)}, {_signed(row.ci_high)}]" + (" *" if row.excludes_zero else "")


def bootstrap_caption(rep: CompareReport) -> str:
    bs = rep.bootstrap
    if bs is None:
        return ""
    return (f"{bs.confidence:.0%} intervals of B - A: {bs.method}, {bs.resamples} resamples of the {bs.records} "
            f"records both answered (seed {bs.seed}); * marks an interval that excludes 0.")


def compare_markdown(rep: CompareReport) -> str:
    """The comparison as Markdown: the table, the interval caption and the notes."""
    ci = f"{rep.bootstrap.confidence:.0%} CI" if rep.bootstrap else "CI"
    lines = [f"# Comparison: A = `{rep.a_label}`, B = `{rep.b_label}`", "",
             f"- A: `{rep.a}`", f"- B: `{rep.b}`", "",
             f"| metric | A | B | B - A | {ci} |", "| --- | ---: | ---: | ---: | ---: |"]
    for row in rep.rows:
        diff = "-" if row.diff is None else _signed(row.diff)
        lines.append(f"| {row.metric} | {_fmt(row.a)} | {_fmt(row.b)} | {diff} | {interval(row) or '-'} |")
    lines.append("")
    if rep.bootstrap is not None:
        lines += [bootstrap_caption(rep), ""]
    if rep.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in rep.notes], ""]
    return "\n".join(lines)
