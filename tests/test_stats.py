"""`swcdata stats`: exact counts on a hand-made table, a real built version, the seed corpus, plots, tokenizers."""

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
SCHEMAS = REPO / "schemas"
runner = CliRunner()


def _rows() -> list[dict[str, Any]]:
    src = {"file": "x.jsonl", "line": 1}
    base = {"metadata": None, "parent_id": None, "transform": None, "template": None, "source": src}
    return [
        {**base, "id": "a" * 16, "instruction": "Find the bug", "response": "one two three", "category": "SWC-101"},
        {**base, "id": "a" * 16, "instruction": "Find the bug", "response": "one two three", "category": "SWC-101"},
        {**base, "id": "b" * 16, "instruction": "find  the BUG", "response": "x = 1;", "category": "SWC-107"},
        {**base, "id": "c" * 16, "instruction": "Explain", "response": "ok", "category": "SWC-107",
         "parent_id": "b" * 16, "transform": "rename_identifiers", "template": "find/01"},
        {**base, "id": "d" * 16, "instruction": "Explain it", "response": "ok", "category": "SWC-107",
         "parent_id": "b" * 16, "transform": "reflow_layout", "template": "find/02"},
        {**base, "id": "e" * 16, "instruction": "Explain that", "response": "ok", "category": "SWC-110",
         "parent_id": "b" * 16, "transform": "rename_identifiers", "template": "classify/01"},
    ]


def test_stats_counts_on_a_known_table() -> None:
    import pyarrow as pa

    from swcdata.core.records import RECORD_SCHEMA
    from swcdata.evaluation.stats import stats

    rows = _rows()
    train = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    test = pa.Table.from_pylist([rows[2]], schema=RECORD_SCHEMA)
    rep, lengths = stats({"train": train, "test": test}, source="hand-made")
    tr = rep.splits[0]
    assert tr.records == 6 and tr.classes == {"SWC-101": 2, "SWC-107": 3, "SWC-110": 1}
    assert tr.duplicate_ids == 1 and tr.repeated_instructions == 2  # "find  the BUG" normalises like "Find the bug"
    assert tr.augmented == 3 and tr.augmented_share == 0.5
    assert tr.transforms == {"rename_identifiers": 2, "reflow_layout": 1}
    assert tr.transform_shares == {"rename_identifiers": 0.6667, "reflow_layout": 0.3333}
    assert tr.template_families == {"find": 2, "classify": 1} and len(tr.templates) == 3
    assert tr.chars["response"].max == 13 and tr.chars["response"].min == 2
    assert tr.tokens["response"].max == 4 and tr.tokens["response"].total == 3 + 3 + 4 + 1 + 1 + 1  # x = 1 ;
    assert rep.total.records == 7 and rep.cross_split_duplicate_ids == 1
    assert lengths["train"]["chars"]["instruction"] == [12, 12, 13, 7, 10, 12]


def test_stats_on_a_built_version_with_plots(tmp_path: Path) -> None:
    home = tmp_path / "registry"
    built = runner.invoke(app, ["build", "--home", str(home), "--json"])
    assert built.exit_code == 0, built.output
    ref = json.loads(built.stdout[built.stdout.index("{"):])["ref"]
    plots = tmp_path / "plots"
    res = runner.invoke(app, ["stats", ref, "--home", str(home), "--plots", str(plots), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    js.validate(rep, json.loads((SCHEMAS / "stats-report.schema.json").read_text()))
    splits = {s["name"]: s for s in rep["splits"]}
    assert set(splits) == {"train", "validation", "test"} and rep["source"] == ref
    assert rep["total"]["records"] == sum(s["records"] for s in splits.values())
    for s in splits.values():
        assert sum(s["classes"].values()) == s["records"] and s["duplicate_ids"] == 0
    assert rep["cross_split_duplicate_ids"] == 0  # a built version never leaks between splits
    train = splits["train"]
    assert train["augmented"] > 0 and splits["test"]["augmented"] == 0  # augmentation touches train only
    assert sum(train["transforms"].values()) == train["augmented"]
    assert sum(train["transform_shares"].values()) == pytest.approx(1.0, abs=1e-3)
    assert sorted(Path(p).name for p in rep["plots"]) == ["chars-instruction.png", "chars-response.png",
                                                         "classes.png", "tokens-instruction.png",
                                                         "tokens-response.png"]
    assert all((plots / Path(p).name).read_bytes()[:4] == b"\x89PNG" for p in rep["plots"])
    table = runner.invoke(app, ["stats", ref, "--home", str(home)])
    assert table.exit_code == 0 and "rename_identifiers" in table.output


def test_stats_on_the_seed_corpus(seed_files: list[Path]) -> None:
    res = runner.invoke(app, ["stats", *map(str, seed_files), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    groups = {s["name"]: s for s in rep["splits"]}
    assert len(groups) == 6 and "test_data" in groups
    assert rep["total"]["records"] + rep["quarantined"] == 6000  # conservation: every line counted once
    for name, s in groups.items():
        if name != "test_data":
            assert list(s["classes"]) == [name.split("_")[2]]  # one class per category file
    # the evaluation file was drawn from the training pool: most of its records occur in a category file
    assert rep["cross_split_duplicate_ids"] > 500
    assert rep["total"]["repeated_instructions"] > rep["total"]["duplicate_ids"] > 0
    assert rep["total"]["augmented"] == 0


def test_stats_with_a_tokenizer_file(tmp_path: Path) -> None:
    from swcdata.finetune.tokenizer import train_tokenizer

    sample = REPO / "dataset" / "swc_sample.jsonl"
    rows = [json.loads(x) for x in sample.read_text().splitlines() if x.strip()]
    tok = train_tokenizer((r.get("instruction", "") for r in rows), 512)
    tok.save_pretrained(tmp_path / "tok")
    words = json.loads(runner.invoke(app, ["stats", str(sample), "--json"]).stdout)
    res = runner.invoke(app, ["stats", str(sample), "--tokenizer", str(tmp_path / "tok"), "--json"])
    assert res.exit_code == 0, res.output
    bpe = json.loads(res.stdout)
    assert bpe["tokenizer"].endswith("tokenizer.json") and words["tokenizer"].startswith("regex")
    assert bpe["total"]["chars"] == words["total"]["chars"]
    assert bpe["total"]["tokens"]["instruction"]["total"] != words["total"]["tokens"]["instruction"]["total"]
    bad = runner.invoke(app, ["stats", str(sample), "--tokenizer", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "no tokenizer.json" in bad.output and "Traceback" not in bad.output


def test_stats_errors_are_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["stats", "nothing@v1", "--home", str(tmp_path)])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output


def test_stats_on_files_never_imports_torch() -> None:
    code = ("import sys, runpy\nsys.argv = ['swcdata', 'stats', 'dataset/swc_sample.jsonl', '--json']\n"
            "try:\n    runpy.run_module('swcdata', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('HEAVY=' + ','.join(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "HEAVY=\n" in res.stdout, res.stdout[-300:] + res.stderr[-500:]
