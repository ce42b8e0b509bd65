"""Plots that people would rather look at than read: curves, confusion matrices, ROC, reliability."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        from dermedge.errors import missing_extra

        raise missing_extra("eval", "matplotlib") from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: dict[str, list[float]], path: Path, title: str,
                 kept: tuple[int, int] | None = None) -> None:
    """Training curves: loss and every metric, train against validation, plus the validation-only
    scores (e.g. the balanced accuracy that selects the model). `kept` (first, last epoch,
    1-based) shades the epochs whose weights the saved model holds: the best epoch restored by
    early stopping, or the span that tail averaging took the mean of."""
    plt = _pyplot()
    paired = [k for k in history if not k.startswith("val_") and k != "lr"]
    val_only = [k for k in history if k.startswith("val_") and k[len("val_"):] not in history]
    names = paired + val_only
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = range(1, len(history[name]) + 1)
        if name in paired:
            ax.plot(epochs, history[name], label="train")
        val_name = name if name in val_only else f"val_{name}"
        if val_name in history:
            ax.plot(epochs, history[val_name], label="val", color="C1")
        if kept is not None:
            first, last = kept
            ax.axvspan(first - 0.5, last + 0.5, color="0.5", alpha=0.2,
                       label="kept" if first == last else f"averaged ({first}-{last})")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: list[list[int]], classes: tuple[str, ...], path: Path, title: str) -> None:
    """Row-normalised confusion matrix (recall on the diagonal) with the raw counts printed."""
    plt = _pyplot()
    counts = np.asarray(matrix)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center",
                    fontsize=7, color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc(labels: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...],
             path: Path, title: str, malignant: frozenset[str] = frozenset()) -> None:
    """One-vs-rest ROC per class, plus the summed-malignant curve."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    curves = [(name, labels == i, probabilities[:, i]) for i, name in enumerate(classes)]
    malignant_idx = [i for i, c in enumerate(classes) if c in malignant]
    if malignant_idx:
        curves.append(("malignant", np.isin(labels, malignant_idx),
                       probabilities[:, malignant_idx].sum(axis=1)))
    for name, truth, score in curves:
        if truth.any() and (~truth).any():
            fpr, tpr, _ = roc_curve(truth, score)
            style = "k--" if name == "malignant" else "-"
            ax.plot(fpr, tpr, style, label=f"{name} ({roc_auc_score(truth, score):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_dice_histogram(dices: list[float], path: Path, title: str) -> None:
    """Where the segmenter fails: the distribution of per-image Dice."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(dices, bins=40, range=(0, 1), color="tab:blue")
    ax.axvline(float(np.mean(dices)), color="k", ls="--", label=f"mean {np.mean(dices):.3f}")
    ax.set_xlabel("per-image Dice")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(labels: np.ndarray, probabilities: np.ndarray, path: Path, title: str,
                     bins: int = 15) -> None:
    """Reliability diagram: top-1 confidence against accuracy per bin, with bin counts below."""
    plt = _pyplot()
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    accuracy = np.bincount(which, weights=correct, minlength=bins) / np.maximum(counts, 1)
    centres = (edges[:-1] + edges[1:]) / 2
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.8, 5.2), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.bar(centres[counts > 0], accuracy[counts > 0], width=1.0 / bins, edgecolor="k", label="accuracy")
    top.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, counts, width=1.0 / bins, color="grey")
    bottom.set_xlabel("top-1 confidence")
    bottom.set_ylabel("images")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_coverage(curve: list[dict], path: Path, title: str, min_confidence: float | None = None) -> None:
    """Accuracy of the answers kept against the share of images answered (the rest withheld as
    uncertain, least confident first), with the operating point the bundle uses marked."""
    plt = _pyplot()
    coverage = [c["coverage"] for c in curve]
    accuracy = [c["accuracy"] for c in curve]
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.plot(coverage, accuracy, marker="o", ms=3)
    if min_confidence:
        kept = [c for c in curve if c["min_confidence"] >= min_confidence]
        if kept:
            point = kept[-1]
            ax.scatter([point["coverage"]], [point["accuracy"]], color="red", zorder=3,
                       label=f"min confidence {min_confidence:.2f}")
            ax.legend(fontsize=8, loc="lower left")
    ax.invert_xaxis()
    ax.set_xlabel("coverage (share of images answered)")
    ax.set_ylabel("accuracy of the answers kept")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
