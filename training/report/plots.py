"""Matplotlib figures for the report, drawn with the Agg canvas directly (no pyplot, no global state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from datatools.files import write_bytes


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    """Render to PNG and write it through a temporary sibling, renamed into place."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write_bytes(tmp, buf.getvalue())
    tmp.replace(path)


LR_COLUMNS = ("learning_rate", "lr")


def curve_groups(columns: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Group history columns into panels: [(title, [train column, val column]), ..., ("learning rate", [lr])]."""
    cols = [c for c in columns if c != "epoch"]
    groups: list[tuple[str, list[str]]] = []
    for c in cols:
        if c.startswith("val_") or c in LR_COLUMNS:
            continue
        pair = [c] + ([f"val_{c}"] if f"val_{c}" in cols else [])
        groups.append((c, pair))
    for c in cols:  # a val_ column without its training counterpart
        if c.startswith("val_") and c[4:] not in cols:
            groups.append((c, [c]))
    for c in cols:
        if c in LR_COLUMNS:
            groups.append(("learning rate", [c]))
    return groups


def plot_history(history: Mapping[str, Sequence[float]], path: Path) -> None:
    """Training curves: one panel per metric (train and validation), plus the learning rate (log scale)."""
    groups = curve_groups(list(history))
    n = len(groups)
    ncols = min(3, n)
    nrows = (n + ncols - 1) // ncols
    fig = _figure(4.2 * ncols, 3.0 * nrows)
    epochs = np.asarray(history.get("epoch", range(1, len(next(iter(history.values()))) + 1)), float)
    if "epoch" in history and epochs.size and epochs.min() == 0:
        epochs = epochs + 1  # Keras' CSVLogger counts epochs from 0
    for k, (title, cols) in enumerate(groups):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        for c in cols:
            y = np.asarray(history[c], float)
            ax.plot(
                epochs[: y.size], y, marker="o", markersize=2.5, label="validation" if c.startswith("val_") else "train"
            )
        if title == "learning rate":
            vals = np.asarray(history[cols[0]], float)
            if np.all(vals > 0):
                ax.set_yscale("log")
        elif len(cols) > 1 and "loss" in title and "val_loss" in cols[1]:
            best = int(np.nanargmin(np.asarray(history[cols[1]], float)))
            ax.axvline(epochs[best], color="grey", linestyle=":", linewidth=1, label=f"best (epoch {epochs[best]:g})")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(cols) > 1 or title != "learning rate":
            ax.legend(fontsize=8)
    _save(fig, path)


def plot_confusion(cm: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Row-normalised confusion matrix (each row = the true class's pixels), annotated with percentages."""
    cm = np.asarray(cm, float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(names)
    side = max(3.5, 0.7 * k + 2.0)
    fig = _figure(side + 0.8, side)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), labels=list(names), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{100 * norm[i, j]:.1f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true pixels")
    _save(fig, path)
