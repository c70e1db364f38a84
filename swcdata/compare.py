"""`compare`: two evaluations side by side, metric by metric, with the difference B - A.

Each side is an evaluation's results.json, its folder, or a run folder (see
`swcdata.evaluate.read_results`). Notes say when the two are not comparable as they stand
(different data, split, record count or generation length, or a contaminated side).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from swcdata.evaluate import EvalResults, read_results


class CompareRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str
    a: float | None
    b: float | None
    diff: float | None = Field(description="b - a")
    higher_is_better: bool = True


class CompareReport(BaseModel):
    """`swcdata compare A B`."""

    model_config = ConfigDict(extra="forbid", title="CompareReport")

    a: str = Field(description="The results file of A.")
    b: str
    a_label: str
    b_label: str
    rows: list[CompareRow]
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
    for cls in r.classification.get("strict", next(iter(r.classification.values()))).per_class:
        out[f"strict F1 {cls.label}"] = (cls.f1, True)
    out["seconds per record"] = (r.timing.seconds_per_record, False)
    out["new tokens per record"] = (r.timing.new_tokens_per_record, True)
    return out


def compare(a: Path, b: Path) -> CompareReport:
    ra, rb = read_results(a), read_results(b)
    ma, mb = _metrics(ra), _metrics(rb)
    rows = []
    for name in list(ma) + [n for n in mb if n not in ma]:
        va, better = ma.get(name, (None, True))
        vb, better_b = mb.get(name, (None, True))
        diff = None if va is None or vb is None else round(vb - va, 4)
        rows.append(CompareRow(metric=name, a=va, b=vb, diff=diff, higher_is_better=better and better_b))
    notes = []
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
    return CompareReport(a=str(a), b=str(b), a_label=la, b_label=lb, rows=rows, notes=notes)
