"""PNG figures: confusion matrices of an evaluation, length and class histograms of a dataset.

Histograms and bars of several splits show each split as the share of its own records, so a small
validation split reads as well as a large train split; legends stand right of the axes, never over the bars.

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
        fig.savefig(path, dpi=110, bbox_inches="tight")
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


def _legend_outside(ax: Any) -> None:
    """The legend right of the axes, never over the bars (savefig's tight bounding box keeps it in the PNG)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, frameon=False)


def _colors() -> list[str]:
    import matplotlib

    return list(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])


def histograms_figure(counts: Mapping[str, tuple[Sequence[float], Sequence[int]]], *, title: str, xlabel: str,
                      bins: int = 40, marker: tuple[float, str] | None = None) -> Any:
    """Overlaid histograms, one per named series (e.g. per split), on shared bins, each as the share of its own
    records (a small split stays as visible as a large one). A series is (values, records with that value), as
    `swcdata.evaluation.lengths.LengthCounts` holds it; `marker` (x, label) draws a dashed vertical line, e.g. the
    recipe's max_length."""
    import numpy as np
    from matplotlib.ticker import PercentFormatter

    fig = _figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    series = {name: (np.asarray(v, dtype=float), np.asarray(c, dtype=float)) for name, (v, c) in counts.items()}
    filled = {name: vc for name, vc in series.items() if vc[1].sum() > 0}
    if filled:
        lo = min(float(v.min()) for v, _ in filled.values())
        hi = max(float(v.max()) for v, _ in filled.values())
        edges = np.array([lo + (hi - lo) * k / bins for k in range(bins + 1)] if hi > lo else [lo - 0.5, lo + 0.5])
        for (name, (values, n)), color in zip(filled.items(), _colors() * len(filled), strict=False):
            share = np.histogram(values, bins=edges, weights=n)[0] / n.sum()
            ax.stairs(share, edges, fill=True, alpha=0.15, color=color)
            ax.stairs(share, edges, color=color, linewidth=1.4, label=f"{name} ({int(n.sum()):,} records)")
    if marker is not None:
        ax.axvline(marker[0], color="black", linestyle="--", linewidth=1.2, label=marker[1])
    if filled or marker is not None:
        _legend_outside(ax)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of the split's records")
    return fig


def histograms_png(counts: Mapping[str, tuple[Sequence[float], Sequence[int]]], path: Path, *, title: str,
                   xlabel: str, bins: int = 40, marker: tuple[float, str] | None = None) -> Path:
    """`histograms_figure` written as a PNG."""
    return _save(histograms_figure(counts, title=title, xlabel=xlabel, bins=bins, marker=marker), path)


def bars_figure(counts: Mapping[str, Mapping[str, int]], *, title: str) -> Any:
    """Grouped bars: for each category (x), one bar per series (e.g. per split), as the share of the series'
    records."""
    from matplotlib.ticker import PercentFormatter

    cats = sorted({c for m in counts.values() for c in m})
    fig = _figure(figsize=(max(5, 0.9 * len(cats) + 3), 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(counts), 1)
    for k, (name, m) in enumerate(counts.items()):
        n = sum(m.values())
        ax.bar([i + k * width for i in range(len(cats))], [m.get(c, 0) / n if n else 0.0 for c in cats],
               width=width, label=f"{name} ({n:,} records)")
    ax.set_xticks([i + width * (len(counts) - 1) / 2 for i in range(len(cats))], cats, rotation=30, ha="right",
                  fontsize=8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("share of the split's records")
    ax.set_title(title, fontsize=10)
    if counts:
        _legend_outside(ax)
    return fig


def bars_png(counts: Mapping[str, Mapping[str, int]], path: Path, *, title: str) -> Path:
    """`bars_figure` written as a PNG."""
    return _save(bars_figure(counts, title=title), path)
