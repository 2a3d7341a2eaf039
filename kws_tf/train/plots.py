"""PNG plots written at the end of a training run: loss/metric curves from the CSV log, the word
confusion matrix, and a keyword probability trace over a validation clip (matplotlib, Agg)."""

from __future__ import annotations

import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(csv_path: str, out_path: str, title: str) -> None:
    """Every metric in a Keras CSVLogger file against the epoch, train and validation together."""
    with open(csv_path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    metrics = [k for k in rows[0] if k != "epoch" and not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for ax, m in zip(axes[0], metrics):
        ax.plot(epochs, [float(r[m]) for r in rows], label="train")
        if f"val_{m}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{m}"]) for r in rows], label="validation")
        ax.set_title(m)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], out_path: str, title: str) -> np.ndarray:
    """Row-normalized confusion matrix (true word per row); returns the count matrix."""
    n = len(labels)
    counts = np.zeros((n, n), np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.32 * n + 3, 0.32 * n + 2.5))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, counts[i, j], ha="center", va="center", fontsize=6, color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return counts


def plot_keyword_trace(features: np.ndarray, probs: np.ndarray, labels: np.ndarray, frame_times_s: np.ndarray, hop_s: float, out_path: str, title: str) -> None:
    """Log-mel of a 10 s clip above the keyword probability per output frame, true windows shaded."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    top.imshow(features.T, origin="lower", aspect="auto", extent=(0, features.shape[0] * hop_s, 0, features.shape[1]))
    top.set_ylabel("mel bin")
    bottom.plot(frame_times_s, probs, label="keyword probability")
    bottom.fill_between(frame_times_s, 0, labels, step="mid", alpha=0.3, color="green", label="label (after keyword)")
    bottom.set_ylim(0, 1.05)
    bottom.set_xlabel("time (s)")
    bottom.legend(loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
