"""PNG figures: confusion matrices of an evaluation, length and class histograms of a dataset.

matplotlib is imported inside the functions (it comes with the `train` extra) and only through its
object-oriented API (`Figure`, no pyplot), so no display or global state is involved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swcdata.core.errors import InputError

if TYPE_CHECKING:
    from swcdata.evaluation.metrics import ClassificationScores


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("plots need matplotlib", hint="pip install 'swcdata[train]' (or: pip install matplotlib)"
                         ) from None
    return Figure(**kwargs)


def _save(fig: Any, path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from None
    return path


def confusion_png(scores: Sequence[ClassificationScores], path: Path, title: str = "") -> Path:
    """One panel per class rule: counts, rows = reference class, columns = predicted class."""
    n = max(len(scores), 1)
    size = max((len(s.labels) for s in scores), default=2)
    side = 1.2 + 0.62 * size
    fig = _figure(figsize=(side * n + 0.6, side + 0.9), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, s in zip(axes, scores, strict=False):
        m = s.confusion or [[0]]
        labels = s.labels or ["-"]
        ax.imshow(m, cmap="Blues", vmin=0)
        peak = max((v for row in m for v in row), default=0)
        for i, row in enumerate(m):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if peak and v > peak / 2 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        ax.set_title(f"{s.rule}: acc {s.accuracy:.1%}, macro F1 {s.macro_f1:.3f}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def histograms_png(values: Mapping[str, Sequence[float]], path: Path, *, title: str, xlabel: str,
                   bins: int = 40) -> Path:
    """Overlaid histograms, one per named series (e.g. per split), on shared bins."""
    fig = _figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    everything = [v for vs in values.values() for v in vs]
    if everything:
        lo, hi = min(everything), max(everything)
        edges = [lo + (hi - lo) * k / bins for k in range(bins + 1)] if hi > lo else bins
        for name, vs in values.items():
            if vs:
                ax.hist(list(vs), bins=edges, alpha=0.55, label=f"{name} ({len(vs)})")
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("records")
    return _save(fig, path)


def bars_png(counts: Mapping[str, Mapping[str, int]], path: Path, *, title: str) -> Path:
    """Grouped bars: for each category (x), one bar per series (e.g. per split)."""
    cats = sorted({c for m in counts.values() for c in m})
    fig = _figure(figsize=(max(5, 0.9 * len(cats) + 2), 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(counts), 1)
    for k, (name, m) in enumerate(counts.items()):
        ax.bar([i + k * width for i in range(len(cats))], [m.get(c, 0) for c in cats], width=width, label=name)
    ax.set_xticks([i + width * (len(counts) - 1) / 2 for i in range(len(cats))], cats, rotation=30, ha="right",
                  fontsize=8)
    ax.set_ylabel("records")
    ax.set_title(title, fontsize=10)
    if counts:
        ax.legend(fontsize=8)
    return _save(fig, path)
