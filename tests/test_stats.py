"""`swcdata stats`: exact counts on a hand-made table, a real built version, the seed corpus, plots, tokenizers;
the polars figures against the row-by-row code they replaced (kept here as the reference), on edge cases, the seed
corpus and a generated corpus; numpy's percentiles and Python's regex and normalisation reproduced exactly."""

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
    chars = lengths["train"]["chars"]["instruction"]  # lengths as counts: 7 once, 10 once, 12 three times, 13 once
    assert chars.values.tolist() == [7, 10, 12, 13] and chars.counts.tolist() == [1, 1, 3, 1]


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


# ------------------------------------------------------------------------------ the row-by-row reference
# The code `stats` ran before its table work moved to polars (issue 21), kept only as the reference: lists of
# Python values, a Counter, a regex per text, the splits concatenated for the total.

def _ref_col(table: Any, name: str) -> list[Any]:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _ref_dist(values: list[int]) -> dict[str, Any]:
    import numpy as np

    if not values:
        return {"min": 0, "p50": 0.0, "mean": 0.0, "p95": 0.0, "max": 0, "total": 0}
    a = np.asarray(values)
    return {"min": int(a.min()), "p50": round(float(np.percentile(a, 50)), 1), "mean": round(float(a.mean()), 1),
            "p95": round(float(np.percentile(a, 95)), 1), "max": int(a.max()), "total": int(a.sum())}


def _ref_split_stats(name: str, table: Any, count_tokens: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from collections import Counter

    from swcdata.core.text import normalize_text

    fields = ("instruction", "response")
    texts = {f: [t or "" for t in _ref_col(table, f)] for f in fields}
    chars = {f: [len(t) for t in texts[f]] for f in fields}
    tokens = {f: count_tokens(texts[f]) for f in fields}
    seen: set[Any] = set()
    dup_ids = 0
    for i in _ref_col(table, "id"):
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
    aug_rows = [k for k, p in enumerate(_ref_col(table, "parent_id")) if p is not None]
    tr, tp = _ref_col(table, "transform"), _ref_col(table, "template")
    transforms = Counter(str(tr[k] or "none") for k in aug_rows)
    templates = Counter(str(tp[k] or "none") for k in aug_rows)
    n_aug = len(aug_rows)
    stats = {
        "name": name, "records": table.num_rows, "classes": dict(sorted(Counter(_ref_col(table, "category")).items())),
        "chars": {f: _ref_dist(v) for f, v in chars.items()}, "tokens": {f: _ref_dist(v) for f, v in tokens.items()},
        "duplicate_ids": dup_ids, "repeated_instructions": repeated, "augmented": n_aug,
        "augmented_share": round(n_aug / table.num_rows, 4) if table.num_rows else 0.0,
        "transforms": dict(transforms.most_common()), "templates": dict(templates.most_common()),
        "template_families": dict(Counter(str(tp[k] or "none").split("/")[0] for k in aug_rows).most_common()),
        "transform_shares": {k: round(v / n_aug, 4) for k, v in transforms.most_common()},
        "template_shares": {k: round(v / n_aug, 4) for k, v in templates.most_common()},
        "augmentation": None,
    }
    return stats, {"chars": chars, "tokens": tokens}


def _ref_augmentation(table: Any) -> list[Any]:
    from swcdata.steps.augment.quality import measure_isolated

    cols = [c for c in ("id", "instruction", "response", "parent_id", "transform", "template")
            if c in table.column_names]
    rows = table.select(cols).to_pylist()
    by_id = {r["id"]: r for r in rows if r.get("parent_id") is None}
    pairs = [(by_id[r["parent_id"]], r) for r in rows if r.get("parent_id") is not None and r["parent_id"] in by_id]
    return [(p, v, q) for (p, v), q in zip(pairs, measure_isolated(pairs), strict=True)]


def _reference(splits: dict[str, Any], tokenizer: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the StatsReport as a dict, split -> kind -> field -> every record's length) as the old code made them."""
    import pyarrow as pa

    from swcdata.evaluation.stats import load_tokenizer
    from swcdata.steps.augment.quality import summarise

    count_tokens, tok_name = load_tokenizer(tokenizer)
    per, lengths, where, measured = [], {}, {}, []  # type: ignore[var-annotated]
    for name, table in splits.items():
        s, lens = _ref_split_stats(name, table, count_tokens)
        if s["augmented"]:
            triples = _ref_augmentation(table)
            measured += triples
            s["augmentation"] = summarise(triples).model_dump()
        per.append(s)
        lengths[name] = lens
        for i in set(_ref_col(table, "id")) - {None}:
            where.setdefault(i, set()).add(name)
    cols = [c for c in ("id", "instruction", "response", "category", "parent_id", "transform", "template")
            if all(c in t.column_names for t in splits.values())]
    everything = pa.concat_tables([t.select(cols) for t in splits.values()], promote_options="permissive")
    total, _ = _ref_split_stats("all", everything, count_tokens)
    if total["augmented"]:
        total["augmentation"] = summarise(measured).model_dump()
    report = {"source": "", "content_hash": None, "tokenizer": tok_name, "splits": per, "total": total,
              "cross_split_duplicate_ids": sum(1 for s in where.values() if len(s) > 1), "quarantined": 0,
              "plots": []}
    return report, lengths


def _assert_same(splits: dict[str, Any], tokenizer: str | None = None) -> None:
    """`stats` gives the reference's report to the last digit, and its length counts hold the reference's lists."""
    from swcdata.evaluation.stats import StatsConfig, stats

    rep, lengths = stats(splits, StatsConfig(tokenizer=tokenizer))
    want, want_lengths = _reference(splits, tokenizer)
    assert json.dumps(rep.model_dump(mode="json")) == json.dumps(want)  # (as text: the order of keys counts too)
    for split, kinds in want_lengths.items():
        for kind, fields in kinds.items():
            for field, values in fields.items():
                lc = lengths[split][kind][field]
                assert [v for v, k in zip(lc.values.tolist(), lc.counts.tolist(), strict=True) for _ in range(k)] \
                    == sorted(values), (split, kind, field)


# Characters that tell the implementations apart: typography normalize_text folds, blanks str.split() knows
# and Rust's \s does not (\x1c-\x1f) or the other way round, case folding beyond lower() (ß, İ), NFKC
# (ﬁ, full-width), numerals Python's \w takes (½, ²) and marks and connectors Rust's \w takes (U+0301, ‿).
_ALPHABET = ("aB_z09 .;{}()=\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000\u200b\ufeff"
             "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00b4\u02bc\u00ad"
             "ßİı½²٣\u0301\u203fﬁＡｂ한中é\U0001d400\U0001f600`'\"-")


def _text(rng: Any, n: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(n)))


def _random_rows(rng: Any, n: int, hex_ids: bool) -> list[dict[str, Any]]:
    pool = [_text(rng, 12) for _ in range(6)]  # repeated instructions, some differing only in blanks or case
    pool += [p.upper() for p in pool[:2]] + [" " + p.replace(" ", "\t ") + "\x1c" for p in pool[:2]]
    ids = [f"{rng.getrandbits(64):016x}" if hex_ids else rng.choice(["x", "Y", "ab", f"{rng.getrandbits(64):016X}"])
           for _ in range(max(n // 3, 1))]
    names = [None, "", "find/01", "find/02", "classify/01", "/odd", "plain", "a/b/c"]
    rows = []
    for _ in range(n):
        aug = rng.random() < 0.4
        rows.append({"id": rng.choice([*ids, None]) if rng.random() < 0.95 else None,
                     "instruction": rng.choice([rng.choice(pool), _text(rng, 30), None, ""]),
                     "response": rng.choice([_text(rng, 40), None, "x = 1;", ""]),
                     "category": rng.choice(["SWC-101", "SWC-107", "SWC-110"]),
                     "parent_id": rng.choice(ids) if aug else None,
                     "transform": rng.choice(["rename_identifiers", "reflow_layout", None, ""]) if aug else None,
                     "template": rng.choice(names) if aug else None})
    return rows


@pytest.mark.parametrize("chunk", [50_000, 3])
@pytest.mark.parametrize("seed", range(4))
def test_stats_equals_the_row_by_row_reference_on_edge_cases(seed: int, chunk: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Random tables built to hit every rule: null and non-hex ids, null and empty texts and names, tied counts
    (ordered by their first record), unicode that polars and Python read differently; several splits, an empty
    split, a split without some columns (then the total is read again with the common columns); frames of 3
    records (every figure added up across frames)."""
    import random

    import pyarrow as pa

    from swcdata.evaluation import stats as st

    monkeypatch.setattr(st, "CHUNK_ROWS", chunk)
    rng = random.Random(seed)
    hex_ids = seed % 2 == 0
    splits = {"train": pa.Table.from_pylist(_random_rows(rng, 240, hex_ids)),
              "validation": pa.Table.from_pylist(_random_rows(rng, 30, hex_ids)),
              "test": pa.Table.from_pylist(_random_rows(rng, 25, hex_ids))}
    # tied counts: the first record decides, across frames too (b before a before c: neither name order)
    base = {"instruction": "x", "response": "y", "category": "SWC-101"}
    splits["ties"] = pa.Table.from_pylist(
        [{**base, "id": f"{k:016x}", "parent_id": None, "transform": None, "template": None} for k in range(2)]
        + [{**base, "id": f"{k + 9:016x}", "parent_id": f"{k % 2:016x}", "transform": ["t-b", "t-a", "t-c"][k % 3],
            "template": ["z/1", "a/2", "m/3", "z/2"][k % 4]} for k in range(12)])
    if seed == 1:
        splits["empty"] = splits["test"].slice(0, 0)
    if seed >= 2:  # a split without transform/template (seed 2) or without parent_id and id (seed 3)
        drop = ["transform", "template"] if seed == 2 else ["parent_id", "id"]
        splits["test"] = splits["test"].drop_columns(drop)
    from swcdata.steps.augment import quality
    from swcdata.steps.augment.quality import AugmentQuality

    with monkeypatch.context() as m:  # (the augmentation quality is compared on real records, below: here the
        # parents and variants are only counted, in their order, as texts may be null)
        m.setattr(st, "_measured", lambda pairs: ((p, v, None) for p, v in pairs))
        m.setattr(quality, "summarise", lambda triples: AugmentQuality(
            variants=len(t := list(triples)), bool_renamed_off_type=[f"{p['id']}>{v['id']}" for p, v, _ in t]))
        m.setattr(sys.modules[__name__], "_ref_augmentation",
                  lambda table: [(p, v, None) for p, v, _ in _pairs_of(table)])
        _assert_same(splits)


def _pairs_of(table: Any) -> list[Any]:
    cols = [c for c in ("id", "instruction", "response", "parent_id", "transform", "template")
            if c in table.column_names]
    rows = table.select(cols).to_pylist()
    by_id = {r["id"]: r for r in rows if r.get("parent_id") is None}
    return [(by_id[r["parent_id"]], r, None) for r in rows
            if r.get("parent_id") is not None and r["parent_id"] in by_id]


def test_repeated_instructions_are_exact_when_hashes_collide(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hash only narrows the search: with a hash that collides all the time (the key's length mod 3) the
    counts are still the texts' own."""
    import random

    import polars as pl
    import pyarrow as pa

    from swcdata.evaluation import stats as st

    monkeypatch.setattr(st, "_key_hashes", lambda keys: (keys.str.len_bytes() % 3).cast(pl.UInt64))
    monkeypatch.setattr(st, "CHUNK_ROWS", 7)
    rng = random.Random(5)
    rows = [{**r, "parent_id": None, "transform": None, "template": None} for r in _random_rows(rng, 120, True)]
    splits = {"a": pa.Table.from_pylist(rows[:80]), "b": pa.Table.from_pylist(rows[80:])}
    _assert_same(splits)
    splits["b"] = splits["b"].drop_columns(["template"])  # (the total read again)
    _assert_same(splits)


def test_stats_equals_the_reference_on_the_seed_corpus_and_a_generated_one(seed_files: list[Path],
                                                                           tmp_path: Path) -> None:
    """The seed files (one split per file, as `swcdata stats FILES` groups them), with the words tokenizer and
    a tokenizer.json; and 3,000 generated records."""
    from swcdata.cli.inputs import load_records
    from swcdata.finetune.tokenizer import train_tokenizer
    from swcdata.synthetic.corpus import generate

    splits = {f.stem: load_records([str(f)], json_out=True)[0] for f in seed_files}
    _assert_same(splits)
    tok = train_tokenizer((r for t in splits.values() for r in t.column("instruction").to_pylist()[:300]), 512)
    tok.save_pretrained(tmp_path / "tok")
    _assert_same(dict(list(splits.items())[:2]), tokenizer=str(tmp_path / "tok"))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in generate(3000, seed=7)))
    _assert_same({"corpus": load_records([str(corpus)], json_out=True)[0]})


def test_stats_equals_the_reference_with_augmentation(tmp_path: Path) -> None:
    """Augmented splits, their quality measured (tree-sitter, in isolated children): the sample split and
    augmented in all three splits, so the total's quality is measured again over them."""
    from swcdata.cli.inputs import load_records

    split = runner.invoke(app, ["split", str(REPO / "dataset"), "--out", str(tmp_path / "s")])
    assert split.exit_code == 0, split.output
    aug = runner.invoke(app, ["augment", str(tmp_path / "s"), "--out", str(tmp_path / "a"), "--factor", "2",
                              "--splits", "train,validation,test", "--allow-eval-splits"])
    assert aug.exit_code == 0, aug.output
    splits = {n: load_records([str(tmp_path / "a" / f"{n}.jsonl")], json_out=True)[0]
              for n in ("train", "validation", "test")}
    assert all(t.column("parent_id").null_count < t.num_rows for t in splits.values())
    _assert_same(splits)


# ------------------------------------------------------------------------------ the exact pieces

def test_length_counts_give_numpys_percentiles_and_mean() -> None:
    import random

    import numpy as np

    from swcdata.evaluation.lengths import LengthCounts

    rng = random.Random(0)
    for trial in range(400):
        n = rng.choice([1, 2, 3, 5, 19, 20, 21, 100, 101, 997, 4000])
        top = rng.choice([1, 3, 50, 10_000, 10**7])
        values = [rng.randrange(top) for _ in range(n)]
        u, c = np.unique(np.asarray(values), return_counts=True)
        lc = LengthCounts(u.astype(np.int64), c.astype(np.int64))
        for q in (0, 5, 50, 90, 95, 99, 100):
            assert lc.percentile(q) == float(np.percentile(np.asarray(values), q)), (trial, q)
        assert lc.mean() == float(np.asarray(values).mean()) and lc.total == sum(values) and lc.records == n
        parts = [LengthCounts(*(np.unique(np.asarray(values[k::3]), return_counts=True))) for k in range(3)]
        merged = LengthCounts.merge(parts)
        assert merged.values.tolist() == u.tolist() and merged.counts.tolist() == c.tolist()


def test_token_pattern_counts_what_pythons_regex_counts() -> None:
    """Every code point on its own and after a letter (which tells word, space and other apart), and random
    texts: polars' count equals len(re.findall(r"\\w+|[^\\w\\s]", text))."""
    import random
    import re

    import polars as pl

    from swcdata.evaluation.lengths import token_pattern

    python = re.compile(r"\w+|[^\w\s]")
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    alone = pl.Series(points).str.count_matches(token_pattern()).to_list()
    after = pl.Series(["a" + p for p in points]).str.count_matches(token_pattern()).to_list()
    every = "".join(points)
    word = set(m.start() for m in re.finditer(r"\w", every))
    space = set(m.start() for m in re.finditer(r"\s", every))
    want_alone = [0 if k in space else 1 for k in range(len(points))]
    want_after = [1 if k in word or k in space else 2 for k in range(len(points))]
    assert alone == want_alone and after == want_after
    rng = random.Random(1)
    texts = [_text(rng, 60) for _ in range(3000)]
    assert pl.Series(texts).str.count_matches(token_pattern()).to_list() == [len(python.findall(t)) for t in texts]


def test_instruction_keys_are_normalize_text() -> None:
    import random

    import polars as pl

    from swcdata.core.text import normalize_text
    from swcdata.evaluation.stats import _instruction_keys

    rng = random.Random(2)
    texts = [_text(rng, 50) for _ in range(5000)] + ["", " ", "  ", "\t", " a ", "a  b", "a \t b", "a\x1c \x1c b",
                                                     "\x1c", "A\u2019B", "ﬁ  X", "STRASSE straße", "\u2019 \u2019"]
    assert _instruction_keys(pl.Series(texts)).to_list() == [normalize_text(t) for t in texts]


# ------------------------------------------------------------------------------ plots

def test_plots_are_shares_with_the_legend_outside_and_max_length_marked(tmp_path: Path) -> None:
    import pyarrow as pa
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from swcdata.core.records import RECORD_SCHEMA
    from swcdata.evaluation.plots import bars_figure, histograms_figure
    from swcdata.evaluation.stats import stats, write_plots

    rows = _rows()
    rep, lengths = stats({"train": pa.Table.from_pylist(rows * 30, schema=RECORD_SCHEMA),
                          "test": pa.Table.from_pylist(rows[:2], schema=RECORD_SCHEMA)}, source="hand-made")
    written = write_plots(rep, lengths, tmp_path / "p", marker=(6, "max_length 6 (recipe x)"))
    assert sorted(p.name for p in written) == ["chars-instruction.png", "chars-response.png", "classes.png",
                                               "tokens-instruction.png", "tokens-response.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    counts = {s: (lens["tokens"]["response"].values, lens["tokens"]["response"].counts)
              for s, lens in lengths.items()}
    figures = [histograms_figure(counts, title="t", xlabel="tokens", marker=(6, "max_length 6 (recipe x)")),
               bars_figure({s.name: s.classes for s in rep.splits}, title="c")]
    for fig in figures:
        FigureCanvasAgg(fig).draw()
        ax = fig.axes[0]
        box, legend = ax.get_window_extent(), ax.get_legend().get_window_extent()
        assert legend.x0 >= box.x1, (legend, box)  # right of the axes: it covers no bar
        assert legend.x1 <= fig.bbox.x1 + 1  # and inside the figure (constrained layout made room for it)
    hist = figures[0].axes[0]
    marks = [ln for ln in hist.get_lines() if ln.get_label().startswith("max_length")]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [6, 6]
    # each split as the share of its own records: the 2-record split sums to 1 as the 180-record one does
    stairs = [p for p in hist.patches if p.get_label() and not p.get_label().startswith("_")]
    assert [p.get_label() for p in stairs] == ["train (180 records)", "test (2 records)"]
    for p in stairs:
        assert sum(p.get_data().values) == pytest.approx(1.0)
    plain = histograms_figure(counts, title="t", xlabel="tokens")
    assert not [ln for ln in plain.axes[0].get_lines() if ln.get_label().startswith("max_length")]


def test_stats_recipe_marks_max_length_and_needs_plots(tmp_path: Path) -> None:
    sample = str(REPO / "dataset" / "swc_sample.jsonl")
    res = runner.invoke(app, ["stats", sample, "--plots", str(tmp_path / "p"), "--recipe", "tiny-cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["plots"]) == 5
    bad = runner.invoke(app, ["stats", sample, "--recipe", "tiny-cpu"])
    assert bad.exit_code == 2 and "--plots" in bad.output and "Traceback" not in bad.output
