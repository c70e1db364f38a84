"""`compare`'s paired bootstrap intervals, and the reference ceiling and degenerate-output flags of an
evaluation, on synthetic evaluations scored without a model (`evaluate.score` on hand-made answers)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import jsonschema as js
import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app
from swcdata.core.catalogue import BY_ID
from swcdata.evaluation.evaluate import (
    ContaminationCheck,
    EvalResults,
    GenerationSettings,
    Timing,
    score,
    write_outputs,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
CLASSES = ["SWC-101", "SWC-107", "SWC-110", "SWC-113", "SWC-114"]
N = 200
runner = CliRunner()


def _records(n: int = N) -> tuple[list[str], list[str], list[str], list[str]]:
    """(ids, instructions, reference responses, categories): n distinct prompts, the classes in turn."""
    cats = [CLASSES[i % len(CLASSES)] for i in range(n)]
    ids = [f"r{i:04d}" for i in range(n)]
    instr = [f"Audit contract number {i}:\n\ncontract C{i} {{ function f{i}() public {{}} }}" for i in range(n)]
    resp = [f"The function is vulnerable to {BY_ID[c].title.lower()} ({c})." for c in cats]
    return ids, instr, resp, cats


def answers_right(cats: list[str], share: float, seed: int) -> list[str]:
    """Answers naming the right class for about `share` of the records, a wrong one for the others (each about
    its own function, so no two are the same text)."""
    rng = random.Random(seed)
    out = []
    for i, c in enumerate(cats):
        named = c if rng.random() < share else rng.choice([x for x in CLASSES if x != c])
        out.append(f"f{i} looks like {BY_ID[named].title.lower()} ({named}); guard the call.")
    return out


def evaluation(folder: Path, answers: list[str], run_id: str = "synthetic", *, n: int = N) -> EvalResults:
    """An evaluation of `answers` written to `folder` as `swcdata evaluate` writes it."""
    ids, instr, resp, cats = _records(n)
    settings = GenerationSettings(run_id=run_id, adapter=True, base_model="tiny", dataset="synthetic@v1",
                                  dataset_hash="0" * 64, split="test", max_new_tokens=200, prompt_format="alpaca",
                                  system_prompt=None)
    check = ContaminationCheck(checked=True, reference="synthetic@v1:train", candidates=n, leaked=0, exact=0,
                               near=0, ngram_only=0)
    timing = Timing(batch_size=1, device="cpu", records_generated=n, records_resumed=0, seconds_per_record=0.01,
                    generation_seconds=0.01 * n, new_tokens_per_record=20.0, truncated_prompts=0, wall_seconds=0.0)
    folder.mkdir(parents=True, exist_ok=True)
    r = score(run_id, folder, settings, ids, instr, resp, cats, answers[:n], check, timing, None, [], folder)
    write_outputs(r, folder)
    return r


@pytest.fixture(scope="module")
def weak(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("weak") / "eval" / "test"
    evaluation(folder, answers_right(_records()[3], 0.4, seed=1), "weak")
    return folder


@pytest.fixture(scope="module")
def strong(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("strong") / "eval" / "test"
    evaluation(folder, answers_right(_records()[3], 0.95, seed=2), "strong")
    return folder


def _rows(rep: dict | object) -> dict[str, dict]:
    d = rep if isinstance(rep, dict) else rep.model_dump()  # type: ignore[attr-defined]
    return {row["metric"]: row for row in d["rows"]}


def test_a_clearly_better_run_has_intervals_that_exclude_zero(weak: Path, strong: Path) -> None:
    from swcdata.evaluation.compare import compare

    rep = compare(weak, strong, resamples=1000, seed=7)
    assert rep.bootstrap is not None and rep.bootstrap.records == N and rep.bootstrap.resamples == 1000
    rows = _rows(rep)
    for name in ("seed: accuracy", "seed: macro F1", "seed: weighted F1", "strict: accuracy", "strict: macro F1",
                 "strict: weighted F1"):
        row = rows[name]
        assert row["diff"] > 0.4, name
        assert row["excludes_zero"] is True and 0 < row["ci_low"] <= row["diff"] <= row["ci_high"], name
        assert row["ci_high"] - row["ci_low"] < 0.3, name
    # the same answer template on both sides: ROUGE-L differs little; the code checks do not differ at all
    assert rows["code: with code"]["ci_low"] == rows["code: with code"]["ci_high"] == 0.0
    assert rows["code: with code"]["excludes_zero"] is False
    assert rows["records"]["ci_low"] is None and rows["seconds per record"]["ci_low"] is None
    # the same seed gives the same intervals; another seed, others
    again = compare(weak, strong, resamples=1000, seed=7)
    assert again.rows == rep.rows
    other = _rows(compare(weak, strong, resamples=1000, seed=8))
    assert other["strict: macro F1"]["ci_low"] != rows["strict: macro F1"]["ci_low"]


def test_identical_evaluations_have_zero_differences_inside_their_intervals(weak: Path) -> None:
    from swcdata.evaluation.compare import compare

    rep = compare(weak, weak, resamples=300, seed=0)
    assert rep.bootstrap is not None and rep.bootstrap.records == N
    with_ci = [r for r in rep.rows if r.ci_low is not None]
    assert len(with_ci) >= 15
    for row in with_ci:
        assert row.diff == 0 and row.ci_low == row.ci_high == 0.0 and row.excludes_zero is False, row.metric


def test_intervals_cover_zero_when_two_runs_differ_only_by_noise(tmp_path: Path) -> None:
    """Two runs of the same skill (60% right, different draws): the difference is noise and its interval
    contains 0."""
    from swcdata.evaluation.compare import compare

    cats = _records()[3]
    a = tmp_path / "a"
    b = tmp_path / "b"
    evaluation(a, answers_right(cats, 0.6, seed=11), "a")
    evaluation(b, answers_right(cats, 0.6, seed=12), "b")
    rows = _rows(compare(a, b, resamples=1000, seed=0))
    for name in ("strict: accuracy", "strict: macro F1"):
        assert rows[name]["ci_low"] < 0 < rows[name]["ci_high"] and rows[name]["excludes_zero"] is False


def test_bootstrap_pairs_by_record_id_and_notes_a_partial_overlap(tmp_path: Path) -> None:
    from swcdata.evaluation.compare import compare

    cats = _records()[3]
    evaluation(tmp_path / "a", answers_right(cats, 0.5, seed=3), "a")
    evaluation(tmp_path / "b", answers_right(cats, 0.5, seed=4), "b", n=120)
    rep = compare(tmp_path / "a", tmp_path / "b", resamples=200)
    assert rep.bootstrap is not None and rep.bootstrap.records == 120
    assert (rep.bootstrap.records_a, rep.bootstrap.records_b) == (N, 120)
    assert any("over the 120 records both evaluations answered" in n for n in rep.notes)


def test_no_intervals_without_per_record_scores_or_with_zero_resamples(weak: Path, strong: Path,
                                                                      tmp_path: Path) -> None:
    from swcdata.evaluation.compare import compare

    assert compare(weak, strong, resamples=0).bootstrap is None
    lone = tmp_path / "results.json"
    data = json.loads((strong / "results.json").read_text())
    data["files"].pop("scored")
    lone.write_text(json.dumps(data))
    rep = compare(weak, lone, resamples=100)
    assert rep.bootstrap is None and all(r.ci_low is None for r in rep.rows)
    assert any(n.startswith("no confidence intervals: B: no scored.jsonl") for n in rep.notes)
    # a scored.jsonl that no longer matches its results (evaluated again since) is not used
    (tmp_path / "scored.jsonl").write_text((weak / "scored.jsonl").read_text())
    rep = compare(weak, lone, resamples=100)
    assert rep.bootstrap is None and any("does not match its results.json" in n for n in rep.notes)


def test_numpy_bootstrap_draws_what_scipy_draws(weak: Path, strong: Path) -> None:
    """The intervals equal scipy.stats.bootstrap's (paired, percentile, same generator and batch)."""
    import numpy as np

    st = pytest.importorskip("scipy.stats")
    from swcdata.evaluation import metrics as M

    a = np.array([json.loads(x)["rouge_l"] for x in (weak / "scored.jsonl").read_text().splitlines()])
    b = np.array([json.loads(x)["rouge_l"] for x in (strong / "scored.jsonl").read_text().splitlines()])
    ours = M.paired_bootstrap(len(a), lambda idx: {"d": b[idx].mean(axis=1) - a[idx].mean(axis=1)},
                              resamples=1200, seed=5, chunk=400)["d"]
    ref = st.bootstrap((a, b), lambda x, y, axis=-1: y.mean(axis=axis) - x.mean(axis=axis), paired=True,
                       n_resamples=1200, batch=400, method="percentile", rng=np.random.default_rng(5))
    assert ours == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)


def test_compare_cli_shows_intervals_and_writes_markdown(weak: Path, strong: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["compare", str(weak), str(strong), "--json", "--resamples", "200", "--seed", "3"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    js.validate(rep, json.loads((SCHEMAS / "compare-report.schema.json").read_text()))
    assert rep["bootstrap"]["resamples"] == 200 and rep["bootstrap"]["seed"] == 3
    md_path = tmp_path / "compare.md"
    table = runner.invoke(app, ["compare", str(weak), str(strong), "--resamples", "200", "--markdown", str(md_path)])
    assert table.exit_code == 0, table.output
    assert "95% CI" in table.output and "excludes" in table.output
    md = md_path.read_text()
    assert md.startswith("# Comparison: A = `weak`, B = `strong`") and "| metric | A | B | B - A | 95% CI |" in md
    line = next(x for x in md.splitlines() if x.startswith("| strict: macro F1 |"))
    assert line.rstrip(" |").endswith("*")
    none = runner.invoke(app, ["compare", str(weak), str(strong), "--resamples", "0"])
    assert none.exit_code == 0 and "CI" not in none.output


# ---- the reference ceiling and degenerate output in an evaluation ---------------------------------------

def test_reference_ceiling_is_recorded_and_shown(weak: Path) -> None:
    r = EvalResults.model_validate_json((weak / "results.json").read_text())
    js.validate(json.loads((weak / "results.json").read_text()),
                json.loads((SCHEMAS / "eval-results.schema.json").read_text()))
    assert set(r.reference_classification) == {"seed", "strict"}
    # the synthetic references name their class by title and id: both rules read them right
    assert r.reference_classification["strict"].macro_f1 == 1.0
    md = (weak / "report.md").read_text()
    assert "| strict: reference ceiling | 100.0% | 1.000 |" in md and "| seed: reference ceiling |" in md
    assert r.degenerate is not None and r.degenerate.warnings == [] and "DEGENERATE" not in md
    assert "## Degenerate output" in md


@pytest.mark.parametrize(("kind", "answers"), [
    ("repetitive", ["." * 200] * N),
    ("empty", [""] * 150 + answers_right(_records()[3], 0.9, seed=0)[150:]),
    ("identical", ["The contract is vulnerable to reentrancy (SWC-107). Use a mutex."] * N),
])
def test_degenerate_answers_are_flagged_at_the_top(tmp_path: Path, kind: str, answers: list[str]) -> None:
    r = evaluation(tmp_path, answers)
    d = r.degenerate
    assert d is not None and getattr(d, kind) >= 150 and getattr(d, f"{kind}_examples") == [0, 1, 2]
    said = {"repetitive": "repeated token", "empty": "are empty", "identical": "different prompt"}[kind]
    assert any(said in w for w in d.warnings)
    assert any(w.startswith("DEGENERATE OUTPUT") for w in r.warnings)
    md = (tmp_path / "report.md").read_text().splitlines()
    assert md[0].startswith("# Evaluation of") and md[2].startswith("> **WARNING: DEGENERATE OUTPUT.**")
    assert not any(line.startswith("## Warnings") for line in md)  # (said once, at the top)

    import io

    from rich.console import Console

    from swcdata.cli import evaluate as C

    buf = io.StringIO()
    saved = C.out, C.err
    C.out = C.err = Console(file=buf, width=200, highlight=False)
    try:
        C.render_results(r)
    finally:
        C.out, C.err = saved
    text = buf.getvalue()
    assert text.lstrip().startswith("WARNING: DEGENERATE OUTPUT")
    assert text.index("DEGENERATE OUTPUT") < text.index("reference ceiling")


def test_compare_notes_a_degenerate_side(weak: Path, tmp_path: Path) -> None:
    from swcdata.evaluation.compare import compare

    evaluation(tmp_path / "dots", ["." * 200] * N, "dots")
    rep = compare(weak, tmp_path / "dots", resamples=200)
    assert any(n.startswith("B (dots) has DEGENERATE OUTPUT (100% repetitive, 100% identical answers)")
               for n in rep.notes)
    rows = _rows(rep)
    assert rows["degenerate: repetitive"]["diff"] == 1.0 and rows["degenerate: repetitive"]["excludes_zero"] is True
    assert rows["strict: macro F1"]["ci_high"] < 0
