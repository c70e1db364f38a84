"""`swcdata evaluate` end to end on a tiny run (JSON, Markdown, PNG; resume; base model), the contamination
guard on a leaky version, `compare`, and one-line errors. CPU only, no download."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema as js
import pytest
from typer.testing import CliRunner

from swcdata.cli.main import app

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "dataset" / "swc_sample.jsonl"
SCHEMAS = REPO / "schemas"
runner = CliRunner()

# the tiny recipe, smaller and shorter (as in test_finetune.py): 2 steps are enough to have an adapter
FAST = ["model.tiny.hidden_size=64", "model.tiny.intermediate_size=192", "model.tiny.num_hidden_layers=2",
        "model.tiny.num_attention_heads=4", "model.tiny.num_key_value_heads=2", "model.tiny.vocab_size=768",
        "data.max_length=384", "training.per_device_train_batch_size=2", "training.learning_rate=5e-3",
        "training.max_steps=2", "data.eval_split=null", "training.save_steps=100"]
GEN = ["--limit", "6", "--max-new-tokens", "8", "--batch-size", "4"]
LEAKED = 3


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sample@v1 (its test split is clean) and leaky@v1 (three training records copied into test)."""
    import pyarrow as pa

    from swcdata.registry.store import Registry
    from swcdata.steps.validate import ValidateConfig, load_valid

    table, _, _ = load_valid([SAMPLE], ValidateConfig(check_code=False))
    n = table.num_rows
    train, validation, test = table.slice(0, n - 20), table.slice(n - 20, 10), table.slice(n - 10, 10)
    h = tmp_path_factory.mktemp("registry")
    reg = Registry(h)
    reg.publish("sample", {"train": train, "validation": validation, "test": test})
    leaky_test = pa.concat_tables([test, train.slice(5, LEAKED)])
    reg.publish("leaky", {"train": train, "validation": validation, "test": leaky_test})
    return h


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    """A tiny QLoRA run on sample@v1 (the default tiny-cpu recipe, smaller, 2 steps)."""
    from swcdata.finetune.recipe import load_recipe
    from swcdata.finetune.source import load_dataset
    from swcdata.finetune.train import finetune

    out = tmp_path_factory.mktemp("runs")
    dd, ref = load_dataset("sample@v1", home)
    info = finetune(dd, ref, load_recipe("tiny-cpu", FAST), out, run_id="tiny", progress=False)
    assert info.status == "completed"
    return out / "tiny"


def _evaluate(run: Path, home: Path, *args: str) -> Any:
    return runner.invoke(app, ["evaluate", str(run), "--home", str(home), *args])


def _json(res: Any) -> dict[str, Any]:
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout[res.stdout.index("{"):])


@pytest.fixture(scope="module")
def evaluated(run: Path, home: Path) -> dict[str, Any]:
    return _json(_evaluate(run, home, *GEN, "--json"))


def test_evaluate_writes_json_markdown_and_png(run: Path, evaluated: dict[str, Any]) -> None:
    r = evaluated
    js.validate(r, json.loads((SCHEMAS / "eval-results.schema.json").read_text()))
    folder = run / "eval" / "test"
    for name in ("results.json", "report.md", "confusion.png", "generations.jsonl", "scored.jsonl",
                 "settings.json"):
        assert (folder / name).is_file(), name
    assert (folder / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((folder / "results.json").read_text()) == r
    assert r["records"] == 6 and r["limit"] == 6 and r["settings"]["adapter"] is True
    assert r["settings"]["dataset"] == "sample@v1" and r["settings"]["split"] == "test"
    assert set(r["classification"]) == {"seed", "strict"}
    for scores in r["classification"].values():
        assert sum(map(sum, scores["confusion"])) == 6
        assert scores["labels"][: len(r["classes"])] == r["classes"]
    t = r["timing"]
    assert t["records_generated"] == 6 and t["records_resumed"] == 0 and t["seconds_per_record"] > 0
    assert 0 < t["new_tokens_per_record"] <= 8
    c = r["contamination"]
    assert c["checked"] and c["leaked"] == 0 and c["reference"] == "sample@v1:train" and not c["allowed"]
    assert r["reference_code"]["parseable"] > 0.5  # the reference answers hold parseable fixes
    ceiling = r["reference_classification"]
    assert set(ceiling) == {"seed", "strict"} and ceiling["strict"]["records"] == 6
    assert ceiling["strict"]["accuracy"] >= ceiling["seed"]["accuracy"]
    d = r["degenerate"]
    assert d["records"] == 6 and d["config"]["empty_share"] == 0.1
    assert [w for w in r["warnings"] if w.startswith("DEGENERATE")] == d["warnings"]
    scored = [json.loads(x) for x in (folder / "scored.jsonl").read_text().splitlines()]
    assert len(scored) == 6 and {"seed", "strict", "rouge_l", "tfidf_cosine", "parses", "differs"} <= set(scored[0])
    md = (folder / "report.md").read_text()
    assert md.startswith("# Evaluation of `tiny`") and "| seed |" in md and "| strict |" in md
    assert "ROUGE-L" in md and "TF-IDF cosine" in md and "confusion.png" in md
    assert "| strict: reference ceiling |" in md and "## Degenerate output" in md
    assert {"empty", "repetitive", "identical"} <= set(scored[0])


def test_interrupted_evaluation_resumes_and_skips_answered_records(run: Path, home: Path,
                                                                   evaluated: dict[str, Any]) -> None:
    gen = run / "eval" / "test" / "generations.jsonl"
    lines = gen.read_text().splitlines(keepends=True)
    assert len(lines) == 6
    gen.write_text("".join(lines[:2]) + lines[2][:30])  # killed while writing the third answer
    r = _json(_evaluate(run, home, *GEN, "--json"))
    assert r["timing"]["records_resumed"] == 2 and r["timing"]["records_generated"] == 4
    after = gen.read_text().splitlines(keepends=True)
    assert len(after) == 6 and after[:2] == lines[:2]
    assert sorted(json.loads(x)["id"] for x in after) == sorted(json.loads(x)["id"] for x in lines)
    again = _json(_evaluate(run, home, *GEN, "--json"))  # everything answered: nothing generated
    assert again["timing"]["records_generated"] == 0 and again["timing"]["records_resumed"] == 6
    # other settings would mix answers: refused, with the way out
    res = _evaluate(run, home, "--limit", "6", "--max-new-tokens", "9")
    assert res.exit_code == 2 and "max_new_tokens: 8 -> 9" in res.output and "--restart" in res.output


def test_answers_of_an_earlier_adapter_are_not_resumed(run: Path, home: Path, evaluated: dict[str, Any],
                                                       tmp_path: Path) -> None:
    """The run trained further (`finetune --resume`) after an evaluation: its answers came from the
    old adapter, so resuming them is refused (settings.json records the adapter's digest)."""
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(run, copy)
    weights = next((copy / "adapter").glob("adapter_model.*"))
    weights.write_bytes(weights.read_bytes() + b" ")  # (only the digest matters: refused before loading)
    res = _evaluate(copy, home, *GEN)
    assert res.exit_code == 2 and "adapter weights changed" in res.output and "--restart" in res.output


def test_base_only_and_compare(run: Path, home: Path, evaluated: dict[str, Any]) -> None:
    base = _json(_evaluate(run, home, *GEN, "--base-only", "--json"))
    assert base["settings"]["adapter"] is False and (run / "eval" / "test-base" / "confusion.png").is_file()
    res = runner.invoke(app, ["compare", str(run / "eval" / "test-base"), str(run), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    js.validate(rep, json.loads((SCHEMAS / "compare-report.schema.json").read_text()))
    assert rep["a_label"] == "tiny (base)" and rep["b_label"] == "tiny"
    rows = {row["metric"]: row for row in rep["rows"]}
    for name in ("seed: macro F1", "strict: weighted F1", "ROUGE-L", "TF-IDF cosine", "code: parseable",
                 "seconds per record"):
        row = rows[name]
        assert row["diff"] == pytest.approx(row["b"] - row["a"], abs=1e-4)
    assert rows["seed: macro F1"]["a"] == base["classification"]["seed"]["macro_f1"]
    assert rows["seed: macro F1"]["b"] == evaluated["classification"]["seed"]["macro_f1"]
    assert rows["records"]["diff"] == 0 and not [n for n in rep["notes"] if "different" in n]
    assert rep["bootstrap"]["records"] == 6 and rep["bootstrap"]["resamples"] == 1000
    for name in ("seed: macro F1", "strict: accuracy", "ROUGE-L"):
        assert rows[name]["ci_low"] <= rows[name]["ci_high"] and rows[name]["excludes_zero"] is not None
    table = runner.invoke(app, ["compare", str(run / "eval" / "test-base"), str(run)])
    assert table.exit_code == 0 and "B - A" in table.output and "strict: macro F1" in table.output


def test_guard_refuses_a_contaminated_version(run: Path, home: Path) -> None:
    from swcdata.registry.store import Registry

    dd, _ = Registry(home).load("leaky@v1")
    leaked_ids = dd["test"]["id"][-LEAKED:]
    res = _evaluate(run, home, "--dataset", "leaky@v1", *GEN)
    assert res.exit_code == 1
    msg = " ".join(res.output.split())
    assert "contaminated" in msg and f"{LEAKED} of 13 records duplicate the training split sample@v1:train" in msg
    assert all(i in msg for i in leaked_ids) and "--allow-contaminated" in msg and "Traceback" not in res.output
    assert not list((run / "eval").glob("leaky*/generations.jsonl"))  # refused before generating anything

    ok = _evaluate(run, home, "--dataset", "leaky@v1", "--allow-contaminated", "--limit", "2",
                   "--max-new-tokens", "2", "--json")
    r = _json(ok)
    c = r["contamination"]
    assert c["allowed"] and c["leaked"] == LEAKED and c["exact"] == LEAKED
    assert sorted(x["id"] for x in c["leaked_records"]) == sorted(leaked_ids)
    assert r["warnings"][0].startswith("CONTAMINATED")
    folder = run / "eval" / "leaky-v1-test"
    assert "WARNING: CONTAMINATED EVALUATION" in (folder / "report.md").read_text()
    assert "WARNING" in ok.stderr
    cmp = runner.invoke(app, ["compare", str(run), str(folder), "--json"])
    notes = json.loads(cmp.stdout)["notes"]
    assert any("CONTAMINATED" in n for n in notes) and any("different data" in n for n in notes)


@pytest.mark.parametrize(("args", "message"), [
    (["evaluate", "{tmp}"], "is not a run folder"),
    (["evaluate", "{run}", "--split", "nope"], "has no split 'nope'"),
    (["evaluate", "{run}", "--dataset", "missing@v1"], "missing"),
    (["compare", "{tmp}", "{run}"], "holds no evaluation results"),
])
def test_errors_are_one_line(run: Path, home: Path, tmp_path: Path, args: list[str], message: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(run)) for a in args]
    res = runner.invoke(app, [*args, *(["--home", str(home)] if args[0] == "evaluate" else [])])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and message in " ".join(res.output.split()) and "Traceback" not in res.output


def test_evaluation_modules_import_without_torch() -> None:
    code = ("import sys, swcdata.cli.evaluate, swcdata.evaluation.evaluate, swcdata.evaluation.metrics, "
            "swcdata.evaluation.compare, swcdata.evaluation.stats, swcdata.evaluation.plots; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'sklearn', 'matplotlib') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert res.stdout.strip() == "[]"


def test_compare_labels_the_same_run_apart_and_notes_unchecked_and_retrained_sides(
        run: Path, evaluated: dict[str, Any], tmp_path: Path) -> None:
    """Two evaluations of one run get distinct labels; an unchecked side is called unchecked (not
    contaminated); another adapter or prompt setting is noted."""
    from swcdata.evaluation.compare import compare
    from swcdata.evaluation.evaluate import EvalResults, markdown

    res = EvalResults.model_validate(evaluated)
    other = res.model_copy(deep=True)
    other.settings.split = "validation"
    other.settings.adapter_sha256 = "0" * 64
    other.settings.system_prompt = "You audit Solidity."
    other.contamination.checked, other.contamination.allowed = False, True
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(res.model_dump_json())
    b.write_text(other.model_dump_json())
    rep = compare(a, b)
    assert rep.a_label != rep.b_label and "test" in rep.a_label and "validation" in rep.b_label
    notes = " ".join(rep.notes)
    assert "adapter weights differ" in notes and "different system_prompt" in notes
    assert "not checked for contamination" in notes and "CONTAMINATED" not in notes
    md = markdown(other)
    assert "NOT CHECKED FOR CONTAMINATION" in md and "CONTAMINATED EVALUATION" not in md
