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

import warnings
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from swcdata.catalogue import BY_ID, CATALOGUE, MENTION_PATTERN, _keyword_pattern, first_keyword_class
from swcdata.text import fold_typography, normalize_text

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


def similarity_scores(predictions: Sequence[str], references: Sequence[str]) -> SimilarityScores:
    import statistics

    rl = rouge_l(predictions, references) or [0.0]
    tc = tfidf_cosine(predictions, references) or [0.0]
    return SimilarityScores(rouge_l=_r(statistics.fmean(rl)), tfidf_cosine=_r(statistics.fmean(tc)),
                            rouge_l_median=_r(statistics.median(rl)), tfidf_cosine_median=_r(statistics.median(tc)))


# ---- code quality ----------------------------------------------------------------------------

def main_code(text: str) -> str | None:
    """The longest code span of `text` (fenced, inline or block), or None."""
    from swcdata.solidity import extract_code

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
    from swcdata.solidity import normalize_code, parse

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
