"""Scoring generated answers against reference answers: pure functions, no model, no torch.

Three families, each a function from lists of strings to a pydantic score:

- **class**: the SWC class an answer names, by two rules (`seed_class`, `strict_class`), then
  accuracy, macro/weighted F1, per-class precision/recall and the confusion matrix (scikit-learn);
- **similarity**: ROUGE-L F-measure (`rouge-score`) and TF-IDF cosine (scikit-learn), each the
  mean over records;
- **code**: the share of answers with Solidity code that parses (tree-sitter) and whose code
  differs from the vulnerable code of the instruction.

scikit-learn and rouge-score come with the `train` extra and are imported inside the functions.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from swcdata.core.catalogue import BY_ID, CATALOGUE, MENTION_PATTERN, _keyword_pattern, first_keyword_class
from swcdata.core.text import fold_typography, normalize_text

NONE = "none"  # the predicted label when an answer names no class
RULES = ("seed", "strict")


# ---- class rules -------------------------------------------------------------------------------

def seed_class(text: str) -> str | None:
    """The seed project's rule: scan the catalogue in registry order (SWC-100, SWC-101, ...) and take the
    first class one of whose keywords occurs anywhere in the answer. An explicit id is ignored, so an answer
    saying "reentrancy (SWC-107), not an overflow" is SWC-101, because SWC-101 comes first in the catalogue."""
    return first_keyword_class(normalize_text(text))


def strict_class(text: str) -> str | None:
    """The stricter rule: the first explicit SWC id in the answer ("SWC-107", "swc 107") that exists in the
    registry; without one, the class whose catalogue keyword occurs *earliest in the answer* (at one position,
    the longest keyword, then registry order); None when the answer names no class."""
    folded = fold_typography(text)
    for m in MENTION_PATTERN.finditer(folded):
        cid = f"SWC-{m.group(1)}"
        if cid in BY_ID:
            return cid
    norm = normalize_text(text)
    best: tuple[int, int, int] | None = None  # (start, -length, catalogue index)
    for i, c in enumerate(CATALOGUE):
        m = _keyword_pattern(c.id).search(norm)
        if m:
            key = (m.start(), -(m.end() - m.start()), i)
            if best is None or key < best:
                best = key
    return CATALOGUE[best[2]].id if best else None


def predict(texts: Sequence[str], rule: str) -> list[str]:
    """Predicted labels of `texts` by `rule` (`seed` or `strict`), NONE where no class is named."""
    fn = {"seed": seed_class, "strict": strict_class}[rule]
    return [fn(t) or NONE for t in texts]


# ---- classification scores -------------------------------------------------------------------

class ClassScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    precision: float
    recall: float
    f1: float
    support: int = Field(description="Reference answers of this class.")
    predicted: int = Field(description="Answers predicted as this class.")


class ClassificationScores(BaseModel):
    """Scores of one class rule. F1 averages run over the reference classes only (a predicted class that no
    reference has counts as a miss of the true class, never as an extra class in the average)."""

    model_config = ConfigDict(extra="forbid")

    rule: str
    records: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    macro_precision: float
    macro_recall: float
    no_class: int = Field(description=f"Answers that name no class (predicted `{NONE}`).")
    per_class: list[ClassScore]
    labels: list[str] = Field(description="Row and column labels of `confusion`: the reference classes, then "
                              f"other predicted classes, then `{NONE}` when it occurs.")
    confusion: list[list[int]] = Field(description="confusion[i][j]: answers of true class labels[i] "
                                       "predicted as labels[j].")


def classification_scores(y_true: Sequence[str], y_pred: Sequence[str], rule: str = "") -> ClassificationScores:
    """Accuracy, macro/weighted F1 and per-class scores over the reference classes, and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} references but {len(y_pred)} predictions")
    if not y_true:
        return ClassificationScores(rule=rule, records=0, accuracy=0.0, macro_f1=0.0, weighted_f1=0.0,
                                    macro_precision=0.0, macro_recall=0.0, no_class=0, per_class=[], labels=[],
                                    confusion=[])
    classes = sorted(set(y_true))
    extra = sorted(set(y_pred) - set(classes) - {NONE})
    labels = classes + extra + ([NONE] if NONE in y_pred and NONE not in classes else [])
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    _, _, macro_f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes, average="macro",
                                                        zero_division=0)
    mp, mr, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes, average="macro", zero_division=0)
    _, _, weighted_f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes, average="weighted",
                                                           zero_division=0)
    with warnings.catch_warnings():  # (sklearn warns on a single label even when `labels` lists them all)
        warnings.simplefilter("ignore", UserWarning)
        cm = confusion_matrix(y_true, y_pred, labels=labels)
    per_class = [ClassScore(label=c, precision=_r(p[i]), recall=_r(r[i]), f1=_r(f[i]), support=int(s[i]),
                            predicted=sum(1 for y in y_pred if y == c)) for i, c in enumerate(classes)]
    return ClassificationScores(
        rule=rule, records=len(y_true), accuracy=_r(accuracy_score(y_true, y_pred)), macro_f1=_r(macro_f1),
        weighted_f1=_r(weighted_f1), macro_precision=_r(mp), macro_recall=_r(mr),
        no_class=sum(1 for y in y_pred if y == NONE), per_class=per_class, labels=labels,
        confusion=cm.astype(int).tolist())


def _r(x: float) -> float:
    return round(float(x), 4)


# ---- similarity ------------------------------------------------------------------------------

def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F-measure of each prediction against its reference (rouge-score's tokenizer: lower-cased
    alphanumeric words, no stemming)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [float(scorer.score(ref, pred)["rougeL"].fmeasure) for pred, ref in zip(predictions, references,
                                                                                    strict=True)]


def tfidf_cosine(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """TF-IDF cosine of each prediction with its reference, the vectoriser fitted on the pair alone (the seed
    notebooks' `TfidfVectorizer().fit_transform([reference, answer])` idiom, so the numbers are comparable).
    0.0 when either text has no word."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    out = []
    for pred, ref in zip(predictions, references, strict=True):
        try:
            m = TfidfVectorizer().fit_transform([ref, pred])
        except ValueError:  # empty vocabulary: no word in either text
            out.append(0.0)
            continue
        out.append(float(m[0].multiply(m[1]).sum()))  # rows are L2-normalised
    return out


class SimilarityScores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rouge_l: float = Field(description="Mean ROUGE-L F-measure against the reference answer.")
    tfidf_cosine: float = Field(description="Mean TF-IDF cosine with the reference answer (vectoriser per pair, "
                                "as in the seed notebooks).")
    rouge_l_median: float
    tfidf_cosine_median: float


# ---- code quality ----------------------------------------------------------------------------

def main_code(text: str) -> str | None:
    """The longest code span of `text` (fenced, inline or block), or None."""
    from swcdata.solidity.spans import extract_code

    spans = extract_code(text)
    return max(spans, key=lambda s: len(s.text)).text if spans else None


class CodeFlags(BaseModel):
    model_config = ConfigDict(extra="forbid")

    has_code: bool
    parses: bool
    differs: bool


def code_flags(answer: str, instruction: str) -> CodeFlags:
    """Whether `answer` holds code, whether its main code span parses as Solidity, and whether that code differs
    (after layout, comments and whitespace are normalised) from the main code span of the instruction."""
    from swcdata.solidity.lexer import normalize_code
    from swcdata.solidity.treesitter import parse

    code = main_code(answer)
    if code is None:
        return CodeFlags(has_code=False, parses=False, differs=False)
    given = main_code(instruction)
    differs = given is None or normalize_code(code) != normalize_code(given)
    return CodeFlags(has_code=True, parses=parse(code).ok, differs=differs)


class CodeScores(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: int
    with_code: float = Field(description="Share of answers holding Solidity code.")
    parseable: float = Field(description="Share of answers whose main code span parses (tree-sitter-solidity).")
    differs_from_input: float = Field(description="Share of answers with code that differs from the vulnerable "
                                      "code of the instruction.")
    parseable_and_differs: float = Field(description="Share of answers whose code both parses and differs.")


def code_scores(answers: Sequence[str], instructions: Sequence[str]) -> CodeScores:
    flags = [code_flags(a, i) for a, i in zip(answers, instructions, strict=True)]
    n = len(flags) or 1
    return CodeScores(records=len(flags), with_code=_r(sum(f.has_code for f in flags) / n),
                      parseable=_r(sum(f.parses for f in flags) / n),
                      differs_from_input=_r(sum(f.differs for f in flags) / n),
                      parseable_and_differs=_r(sum(f.parses and f.differs for f in flags) / n))


# ---- degenerate output -------------------------------------------------------------------------

class DegenerateConfig(BaseModel):
    """When answers count as degenerate, and the shares above which an evaluation is flagged."""

    model_config = ConfigDict(extra="forbid")

    empty_share: float = Field(0.10, ge=0, le=1, description="Warn when more than this share of answers is empty.")
    repetitive_share: float = Field(0.10, ge=0, le=1, description="Warn when more than this share of answers is "
                                    "repetitive.")
    identical_share: float = Field(0.25, ge=0, le=1, description="Warn when more than this share of answers repeats, "
                                   "word for word, the answer to a different prompt.")
    repeat_coverage: float = Field(0.85, gt=0, le=1, description="An answer is repetitive when at least this share "
                                   "of its tokens (or of its non-blank characters) is one token, or repeats the token "
                                   "`p` places before for one period `p <= max_pattern` (the seed data's answers and "
                                   "instructions reach 0.72 at most).")
    max_pattern: int = Field(16, ge=1, description="Longest repeated pattern looked for, in tokens (in characters for "
                             "the character check).")
    min_tokens: int = Field(8, ge=2, description="Shorter answers are never called repetitive (and a pattern must "
                            "occur at least 3 times).")


class DegenerateFlags(BaseModel):
    model_config = ConfigDict(extra="forbid")

    empty: bool
    repetitive: bool
    identical: bool


class DegenerateSummary(BaseModel):
    """Answers that are empty, one token or short pattern over and over, or the same text for different prompts:
    the signs of a broken model or decoding that the class scores alone do not show (they are just low)."""

    model_config = ConfigDict(extra="forbid")

    records: int
    empty: int = Field(description="Answers with no visible character.")
    repetitive: int = Field(description="Answers that are mostly one repeated token or a repeated short pattern.")
    identical: int = Field(description="Non-empty answers whose text (whitespace and case aside) is also the answer "
                           "to a different prompt.")
    empty_share: float
    repetitive_share: float
    identical_share: float
    empty_examples: list[int] = Field(default_factory=list, description="Positions (0-based) of the first 3.")
    repetitive_examples: list[int] = Field(default_factory=list)
    identical_examples: list[int] = Field(default_factory=list)
    most_common_answer: str | None = Field(None, description="The most frequent non-empty answer (first 120 "
                                           "characters), when it occurs more than once.")
    most_common_count: int = 0
    config: DegenerateConfig = Field(default_factory=DegenerateConfig)
    warnings: list[str] = Field(default_factory=list, description="One per share above its threshold.")


_TOKEN = re.compile(r"\w+|[^\w\s]")  # words and single punctuation marks


def _best_agreement(ids: Any, max_pattern: int) -> float:
    """The largest share of positions i with ids[i] == ids[i - p] over periods p <= max_pattern (a pattern
    must fit 3 times), or the share of the most common id, whichever is larger."""
    import numpy as np

    n = len(ids)
    best = float(np.bincount(np.unique(ids, return_inverse=True)[1]).max()) / n
    for p in range(1, min(max_pattern, n // 3) + 1):
        best = max(best, float(np.count_nonzero(ids[p:] == ids[:-p])) / (n - p))
    return best


def is_repetitive(text: str, config: DegenerateConfig | None = None) -> bool:
    """Whether `text` is mostly one token or a short pattern over and over ("......", "the the the",
    "SWC-101 SWC-101 ..."), by its tokens (words and single punctuation marks, case folded) or by its
    non-blank characters (a run of one long "word")."""
    import numpy as np

    cfg = config or DegenerateConfig()
    tokens = [t.casefold() for t in _TOKEN.findall(text)]
    if len(tokens) >= cfg.min_tokens:
        vocab: dict[str, int] = {}
        ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int64, count=len(tokens))
        if _best_agreement(ids, cfg.max_pattern) >= cfg.repeat_coverage:
            return True
    chars = "".join(text.split())
    if len(chars) >= 3 * cfg.min_tokens:
        codes = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)
        return _best_agreement(codes, cfg.max_pattern) >= cfg.repeat_coverage
    return False


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def degenerate_flags(answers: Sequence[str], prompts: Sequence[str],
                     config: DegenerateConfig | None = None) -> list[DegenerateFlags]:
    """Per answer: empty, repetitive, and identical to the answer given to a different prompt (prompts compared
    after whitespace and case are folded, so a prompt asked twice may get the same answer twice)."""
    cfg = config or DegenerateConfig()
    if len(answers) != len(prompts):
        raise ValueError(f"{len(answers)} answers but {len(prompts)} prompts")
    keys = [_key(a) for a in answers]
    asked: dict[str, set[str]] = {}
    for k, p in zip(keys, prompts, strict=True):
        if k:
            asked.setdefault(k, set()).add(_key(p))
    return [DegenerateFlags(empty=not k, repetitive=bool(k) and is_repetitive(a, cfg),
                            identical=bool(k) and len(asked[k]) > 1)
            for a, k in zip(answers, keys, strict=True)]


def degenerate_summary(answers: Sequence[str], prompts: Sequence[str], config: DegenerateConfig | None = None,
                       flags: Sequence[DegenerateFlags] | None = None) -> DegenerateSummary:
    """Counts, shares and first examples of empty, repetitive and identical answers, with a warning for each
    share above its threshold in `config`."""
    from collections import Counter

    cfg = config or DegenerateConfig()
    flags = list(flags) if flags is not None else degenerate_flags(answers, prompts, cfg)
    n = len(flags)
    idx = {kind: [i for i, f in enumerate(flags) if getattr(f, kind)] for kind in ("empty", "repetitive",
                                                                                    "identical")}
    share = {kind: (len(v) / n if n else 0.0) for kind, v in idx.items()}
    counts = Counter(k for k in map(_key, answers) if k)
    common, common_n = counts.most_common(1)[0] if counts else ("", 0)
    first_common = next((i for i, a in enumerate(answers) if _key(a) == common), 0) if common_n > 1 else None
    shown = answers[first_common][:120] if first_common is not None else None

    def snippet(i: int) -> str:
        a = answers[i]
        return repr(a[:60] + ("..." if len(a) > 60 else ""))

    warnings = []
    if share["empty"] > cfg.empty_share:
        warnings.append(f"DEGENERATE OUTPUT: {len(idx['empty'])} of {n} answers ({share['empty']:.0%}) are empty "
                        f"(threshold {cfg.empty_share:.0%}); first at records {_list(idx['empty'])}")
    if share["repetitive"] > cfg.repetitive_share:
        warnings.append(f"DEGENERATE OUTPUT: {len(idx['repetitive'])} of {n} answers ({share['repetitive']:.0%}) are "
                        f"mostly one repeated token or short pattern (threshold {cfg.repetitive_share:.0%}), e.g. "
                        f"record {idx['repetitive'][0]}: {snippet(idx['repetitive'][0])}")
    if share["identical"] > cfg.identical_share:
        warnings.append(f"DEGENERATE OUTPUT: {len(idx['identical'])} of {n} answers ({share['identical']:.0%}) are "
                        f"word for word the answer to a different prompt (threshold {cfg.identical_share:.0%}); the "
                        f"most common answer, {common_n} times: {snippet(first_common or 0)}")
    return DegenerateSummary(
        records=n, empty=len(idx["empty"]), repetitive=len(idx["repetitive"]), identical=len(idx["identical"]),
        empty_share=_r(share["empty"]), repetitive_share=_r(share["repetitive"]),
        identical_share=_r(share["identical"]),
        empty_examples=idx["empty"][:3], repetitive_examples=idx["repetitive"][:3],
        identical_examples=idx["identical"][:3], most_common_answer=shown,
        most_common_count=common_n if shown is not None else 0, config=cfg, warnings=warnings)


def _list(ix: list[int]) -> str:
    return ", ".join(str(i) for i in ix[:3]) + (", ..." if len(ix) > 3 else "")


# ---- paired bootstrap ------------------------------------------------------------------------------

BOOTSTRAP_CHUNK = 500  # resamples drawn and scored together (memory: chunk x records integers)


def class_scores_resampled(y_true: Any, y_pred: Any, n_classes: int, idx: Any) -> dict[str, Any]:
    """Accuracy, macro F1 and weighted F1 (arrays of shape (R,)) and F1 per class (R, C) of each resample.

    `y_true` holds class codes 0..C-1, `y_pred` codes 0..C-1 or C for any other prediction (no class, or a class
    no reference has); `idx` (R, n) the record indices of R resamples. As `classification_scores` on each resample:
    the averages run over the classes that occur in the resample's references (sklearn's zero_division=0).
    """
    import numpy as np

    c, k = n_classes, n_classes + 1
    codes = np.asarray(y_true, dtype=np.int64) * k + np.asarray(y_pred, dtype=np.int64)
    r, n = idx.shape
    flat = (np.arange(r, dtype=np.int64)[:, None] * (c * k) + codes[idx]).ravel()
    cm = np.bincount(flat, minlength=r * c * k).reshape(r, c, k)  # cm[r, true, predicted]
    diag = np.arange(c)
    tp = cm[:, diag, diag].astype(np.float64)
    support = cm.sum(axis=2)
    denom = support + cm[:, :, :c].sum(axis=1)  # true + predicted: F1 = 2 tp / (support + predicted)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return {"accuracy": tp.sum(axis=1) / n, "macro_f1": (f1 * present).sum(axis=1) / present.sum(axis=1),
            "weighted_f1": (f1 * support).sum(axis=1) / support.sum(axis=1), "f1": f1}


def paired_bootstrap(n: int, statistic: Callable[[Any], dict[str, Any]], *, resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95, chunk: int = BOOTSTRAP_CHUNK) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the statistics `statistic(idx)` computes (name -> array of shape (R,)) from
    `resamples` resamples of the record indices 0..n-1 drawn with replacement (numpy's default_rng(seed),
    `chunk` resamples at a time: the same draws as `scipy.stats.bootstrap(..., paired=True, batch=chunk)`).
    For a paired comparison, `statistic` returns B - A on the same indices."""
    import numpy as np

    if n < 1 or resamples < 1:
        raise ValueError("a bootstrap needs at least one record and one resample")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[Any]] = {}
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, (min(chunk, resamples - start), n))
        for name, values in statistic(idx).items():
            parts.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
    alpha = (1 - confidence) / 2
    out = {}
    for name, chunks in parts.items():
        low, high = np.percentile(np.concatenate(chunks), [100 * alpha, 100 * (1 - alpha)])
        out[name] = (float(low), float(high))
    return out
