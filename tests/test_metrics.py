"""Metrics on hand-made answers with known scores: both class rules, F1 and the confusion matrix, ROUGE-L,
TF-IDF cosine, and the code checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swcdata.evaluation import metrics as M

ANSWERS = {
    # an explicit id, but "overflow" comes first in the catalogue: the seed rule says SWC-101
    "id_and_other_word": ("This contract has a reentrancy bug (SWC-107); an overflow is not possible.",
                          "SWC-101", "SWC-107"),
    # no id: the seed rule scans the catalogue in order, the strict rule takes the earliest word in the text
    "earliest_word": ("A denial of service through a failed call, and no integer overflow.", "SWC-101", "SWC-113"),
    "one_word": ("The loop counter can overflow.", "SWC-101", "SWC-101"),
    "typographic_id": ("This is SWC\u2011114 \u2014 front\u2011running.", "SWC-114", "SWC-114"),
    "lower_case_id": ("classified as swc 110 (assert violation)", "SWC-110", "SWC-110"),
    "unknown_id_then_word": ("SWC-999 is not a class; this is reentrancy.", "SWC-107", "SWC-107"),
    "nothing": ("Use a mutex and check the result.", None, None),
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_seed_and_strict_class_rules(name: str) -> None:
    text, seed, strict = ANSWERS[name]
    assert M.seed_class(text) == seed
    assert M.strict_class(text) == strict


def test_predict_marks_answers_without_a_class() -> None:
    texts = [t for t, _, _ in ANSWERS.values()]
    assert M.predict(texts, "seed") == [s or M.NONE for _, s, _ in ANSWERS.values()]
    assert M.predict(texts, "strict")[-1] == M.NONE


def test_classification_scores_known_answers() -> None:
    y_true = ["SWC-101", "SWC-101", "SWC-107", "SWC-107", "SWC-110"]
    y_pred = ["SWC-101", "SWC-107", "SWC-107", M.NONE, "SWC-101"]
    s = M.classification_scores(y_true, y_pred, "seed")
    assert s.records == 5 and s.accuracy == 0.4 and s.no_class == 1
    by = {c.label: c for c in s.per_class}
    assert (by["SWC-101"].precision, by["SWC-101"].recall, by["SWC-101"].f1) == (0.5, 0.5, 0.5)
    assert (by["SWC-107"].precision, by["SWC-107"].recall, by["SWC-107"].f1) == (0.5, 0.5, 0.5)
    assert (by["SWC-110"].precision, by["SWC-110"].recall, by["SWC-110"].f1) == (0.0, 0.0, 0.0)
    assert by["SWC-101"].support == 2 and by["SWC-101"].predicted == 2 and by["SWC-110"].predicted == 0
    assert s.macro_f1 == pytest.approx(1 / 3, abs=1e-4)
    assert s.weighted_f1 == pytest.approx((0.5 * 2 + 0.5 * 2 + 0) / 5, abs=1e-4)
    assert s.labels == ["SWC-101", "SWC-107", "SWC-110", M.NONE]
    assert s.confusion == [[1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]]


def test_a_predicted_class_outside_the_references_is_a_miss_not_an_extra_class() -> None:
    s = M.classification_scores(["SWC-101", "SWC-107"], ["SWC-101", "SWC-136"])
    assert s.labels == ["SWC-101", "SWC-107", "SWC-136"]
    assert [c.label for c in s.per_class] == ["SWC-101", "SWC-107"]
    assert s.macro_f1 == 0.5 and s.accuracy == 0.5
    assert s.confusion[1] == [0, 0, 1]


def test_perfect_predictions() -> None:
    y = ["SWC-101", "SWC-107", "SWC-110", "SWC-113", "SWC-114"]
    s = M.classification_scores(y, y)
    assert s.accuracy == s.macro_f1 == s.weighted_f1 == 1.0 and s.no_class == 0
    assert s.confusion == [[1 if i == j else 0 for j in range(5)] for i in range(5)]


def test_rouge_l_known_values() -> None:
    assert M.rouge_l(["the cat on mat"], ["the cat sat on the mat"]) == [pytest.approx(0.8)]
    assert M.rouge_l(["same words here"], ["Same words, here!"]) == [pytest.approx(1.0)]
    assert M.rouge_l(["alpha beta"], ["gamma delta"]) == [0.0]


def test_tfidf_cosine_per_pair_known_values() -> None:
    # fitted on the pair: shared words get idf 1, "guard" idf 1 + ln(3/2); cosine 2 / (|a| |b|)
    import math

    g = 1 + math.log(3 / 2)
    expected = 2 / (math.sqrt(2 + g * g) * math.sqrt(2))
    got = M.tfidf_cosine(["solidity reentrancy", "ab cd", "", "identical text here"],
                         ["solidity reentrancy guard", "ef gh", "", "identical text here"])
    assert got[0] == pytest.approx(expected, abs=1e-9)
    assert got[1] == 0.0 and got[2] == 0.0 and got[3] == pytest.approx(1.0)


INSTRUCTION = ("Find the bug:\n\nfunction pay(uint amount) public {\n    balance -= amount;\n"
               "    owner.transfer(amount);\n}")


def test_code_flags() -> None:
    fixed = ("The subtraction can underflow (SWC-101). Fixed:\n\n```solidity\nfunction pay(uint amount) public {\n"
             "    require(balance >= amount);\n    balance -= amount;\n    owner.transfer(amount);\n}\n```")
    same = ("Fixed:\n\n```solidity\nfunction pay(uint amount) public {\n    balance -= amount;   // unchanged\n"
            "    owner.transfer(amount);\n}\n```")
    broken = "Fixed:\n\n```solidity\nfunction pay(uint amount) public {{ require(balance >=\n```"
    prose = "Check the balance before subtracting."
    assert M.code_flags(fixed, INSTRUCTION) == M.CodeFlags(has_code=True, parses=True, differs=True)
    assert M.code_flags(same, INSTRUCTION) == M.CodeFlags(has_code=True, parses=True, differs=False)
    flags = M.code_flags(broken, INSTRUCTION)
    assert flags.has_code and not flags.parses
    assert M.code_flags(prose, INSTRUCTION) == M.CodeFlags(has_code=False, parses=False, differs=False)
    s = M.code_scores([fixed, same, broken, prose], [INSTRUCTION] * 4)
    assert (s.records, s.with_code, s.parseable, s.differs_from_input, s.parseable_and_differs) == (
        4, 0.75, 0.5, 0.5, 0.25)


def test_class_rules_on_the_seed_test_sets_reference_answers(seed_test_file: Path) -> None:
    """Real data: the seed test set's own answers, scored as if a model had written them. The strict rule
    (explicit SWC id first) recovers the labels far better than the seed's first-keyword rule."""
    rows = [json.loads(line) for line in seed_test_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if isinstance(r.get("response"), str) and isinstance(r.get("category"), str)]
    assert len(rows) >= 990
    truth = [r["category"] for r in rows]
    seed = M.classification_scores(truth, M.predict([r["response"] for r in rows], "seed"), "seed")
    strict = M.classification_scores(truth, M.predict([r["response"] for r in rows], "strict"), "strict")
    assert strict.weighted_f1 > 0.9 and strict.weighted_f1 > seed.weighted_f1 + 0.1
    assert strict.no_class < seed.no_class
    assert seed.records == strict.records == len(rows)


def test_every_registry_title_is_its_own_class_by_the_strict_rule() -> None:
    """A registry title names its class: plural words ("Shadowing State Variables", "Hash Collisions ..."),
    and SWC-128's "DoS With Block Gas Limit" (not SWC-113's "dos", which starts at the same place)."""
    from swcdata.core.catalogue import CATALOGUE

    assert {c.id: M.strict_class(c.title) for c in CATALOGUE} == {c.id: c.id for c in CATALOGUE}


@pytest.mark.parametrize(("text", "cls"), [
    ("integer overflows", "SWC-101"), ("the balance overflowed", "SWC-101"), ("race conditions", "SWC-114"),
    ("unchecked return values", "SWC-104"), ("could re-enter withdraw", "SWC-107"),
    ("unbounded loops", "SWC-128"), ("the doses", None), ("todos", None),
])
def test_keywords_match_their_inflections_but_short_ones_only_as_words(text: str, cls: str | None) -> None:
    assert M.strict_class(text) == cls and M.seed_class(text) == cls


# ---- the reference ceiling on the real evaluation set --------------------------------------------------

def _seed_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_reference_ceiling_of_the_seed_test_set(seed_test_file: Path) -> None:
    """The seed test set's reference answers scored as a model's answers (what `evaluate` records as the
    reference ceiling): the seed's keyword rule cannot exceed macro F1 0.762 on its own references, the strict
    rule reaches 0.964. (All 1000 lines; the 999 distinct records give the same figures to 3 decimals.)"""
    rows = _seed_rows(seed_test_file)
    assert len(rows) == 1000
    truth = [r["category"] for r in rows]
    got = {rule: M.classification_scores(truth, M.predict([r["response"] for r in rows], rule), rule)
           for rule in M.RULES}
    assert (got["seed"].accuracy, round(got["seed"].macro_f1, 3), round(got["seed"].weighted_f1, 3)) == (
        0.709, 0.762, 0.757)
    assert (got["strict"].accuracy, round(got["strict"].macro_f1, 3), round(got["strict"].weighted_f1, 3)) == (
        0.938, 0.964, 0.964)
    assert (got["seed"].no_class, got["strict"].no_class) == (128, 53)
    # nor are the references degenerate: no empty, repetitive or identical answer, no warning
    d = M.degenerate_summary([r["response"] for r in rows], [r["instruction"] for r in rows])
    assert (d.empty, d.repetitive, d.identical, d.warnings) == (0, 0, 0, [])


# ---- degenerate output ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "." * 200, "the the the the the the the the the", "SWC-101 " * 30, "a" * 200, "-=" * 50,
    "Reentrancy. " + "The contract is vulnerable. " * 20, "\n\n" + "!" * 40 + "\n",
    "The answer is " + ". " * 150,
])
def test_repetitive_answers(text: str) -> None:
    assert M.is_repetitive(text)


@pytest.mark.parametrize("text", [
    "", "...", "SWC-107", "ok ok ok", "The withdraw function sends ether before it updates the balance, so an "
    "attacker can re-enter it (SWC-107). Update the balance first, then transfer, and add a reentrancy guard.",
    INSTRUCTION, "```solidity\nuint a; uint b; uint c; uint d; uint e;\n```",
])
def test_normal_and_short_answers_are_not_repetitive(text: str) -> None:
    assert not M.is_repetitive(text)


def test_no_seed_text_is_repetitive(seed_files: list[Path]) -> None:
    """Every response and instruction of the six seed files: none is called repetitive (the most periodic,
    a list of transfers to different addresses, repeats 72% of its tokens, under the 85% threshold)."""
    texts = [r[k] for f in seed_files for r in _seed_rows(f) for k in ("response", "instruction")
             if isinstance(r.get(k), str)]
    assert len(texts) > 11_000
    assert [t[:80] for t in texts if M.is_repetitive(t)] == []


def test_degenerate_summary_counts_shares_and_warnings() -> None:
    prompts = [f"prompt {i}" for i in range(20)]
    normal = [f"Answer {i}: function f{i} can overflow (SWC-101); use checked arithmetic." for i in range(20)]
    d = M.degenerate_summary(normal, prompts)
    assert (d.empty, d.repetitive, d.identical, d.warnings, d.most_common_answer) == (0, 0, 0, [], None)

    answers = ["", " \n", "." * 200, "." * 200, "same words", "same words", "same words", *normal[7:]]
    d = M.degenerate_summary(answers, prompts)
    assert (d.empty, d.repetitive, d.identical) == (2, 2, 5)  # the dots are identical too
    assert (d.empty_share, d.repetitive_share, d.identical_share) == (0.1, 0.1, 0.25)
    assert d.empty_examples == [0, 1] and d.repetitive_examples == [2, 3] and d.identical_examples == [2, 3, 4]
    assert d.most_common_answer == "same words" and d.most_common_count == 3
    assert d.warnings == []  # every share at its threshold, none above it
    strict = M.DegenerateConfig(empty_share=0.05, repetitive_share=0.05, identical_share=0.2)
    d = M.degenerate_summary(answers, prompts, strict)
    assert len(d.warnings) == 3 and all(w.startswith("DEGENERATE OUTPUT: ") for w in d.warnings)
    assert "2 of 20 answers (10%) are empty" in d.warnings[0] and "records 0, 1" in d.warnings[0]
    assert "repeated token or short pattern" in d.warnings[1]
    assert "5 of 20 answers (25%)" in d.warnings[2] and "3 times: 'same words'" in d.warnings[2]


def test_the_same_answer_to_the_same_prompt_asked_twice_is_not_identical() -> None:
    flags = M.degenerate_flags(["A reentrancy bug.", "A reentrancy  bug.", "A reentrancy bug."],
                               ["Audit f()", "audit  f()", "Audit g()"])
    assert [f.identical for f in flags] == [True, True, True]
    flags = M.degenerate_flags(["A reentrancy bug.", "a reentrancy bug."], ["Audit f()", "audit  f()"])
    assert [f.identical for f in flags] == [False, False]


# ---- the bootstrap's class scores ------------------------------------------------------------------------

def test_resampled_class_scores_equal_classification_scores_on_each_resample() -> None:
    import random

    import numpy as np

    rng = random.Random(0)
    classes = ["SWC-101", "SWC-107", "SWC-110"]
    y_true = [rng.choice(classes) for _ in range(60)]
    y_pred = [t if rng.random() < 0.6 else rng.choice([*classes, M.NONE, "SWC-136"]) for t in y_true]
    code = {c: i for i, c in enumerate(classes)}
    t = np.array([code[y] for y in y_true])
    p = np.array([code.get(y, len(classes)) for y in y_pred])
    idx = np.random.default_rng(1).integers(0, 8, (40, 8))  # small resamples: classes go missing in some
    for rows in (np.arange(60)[None, :], np.random.default_rng(2).integers(0, 60, (20, 60)), idx):
        got = M.class_scores_resampled(t, p, len(classes), rows)
        for k, ix in enumerate(rows):
            want = M.classification_scores([y_true[i] for i in ix], [y_pred[i] for i in ix])
            assert got["accuracy"][k] == pytest.approx(want.accuracy, abs=5e-5)
            assert got["macro_f1"][k] == pytest.approx(want.macro_f1, abs=5e-5)
            assert got["weighted_f1"][k] == pytest.approx(want.weighted_f1, abs=5e-5)
            by = {c.label: c.f1 for c in want.per_class}
            for c, i in code.items():
                assert got["f1"][k, i] == pytest.approx(by.get(c, 0.0), abs=5e-5)
