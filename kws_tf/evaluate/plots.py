"""PNG figures of evaluation results and of one transcribed recording (numpy and matplotlib with the
Agg backend, imported on first use; install with ``pip install matplotlib`` (or ``pip install '.[eval]'`` in the checkout))."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

COLORS = {"float32": "tab:blue", "int8": "tab:orange", "pocketsphinx": "tab:green"}


class PlotError(Exception):
    """matplotlib is missing; ``str()`` is a one-line message."""


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("plots need matplotlib: pip install matplotlib (or pip install '.[eval]' in the checkout)") from None
    return plt


def _save(fig, path: str) -> str:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return path


def confusion_png(confusion: dict, path: str, title: str) -> str:
    """Row-normalized confusion matrix (``{"labels", "matrix"}`` from ``metrics.word_accuracy``)."""
    plt = pyplot()
    labels, m = confusion["labels"], np.asarray(confusion["matrix"], float)
    rows = np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.32 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(m / rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i, j in zip(*np.nonzero(m)):
        ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=6, color="white" if m[i, j] / rows[i, 0] > 0.5 else "black")
    ax.set_xlabel("recognized")
    ax.set_ylabel("spoken")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the spoken word's clips")
    return _save(fig, path)


def per_word_png(per_word: dict[str, dict], path: str) -> str:
    """Accuracy per word, one bar group per system (``{system: {word: {"accuracy", "n"}}}``)."""
    plt = pyplot()
    words = sorted({w for d in per_word.values() for w in d})
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.15 * len(words) * len(per_word) + 2)), 3.5))
    width = 0.8 / max(len(per_word), 1)
    for k, (name, d) in enumerate(per_word.items()):
        acc = [d[w]["accuracy"] if w in d else np.nan for w in words]
        ax.bar(np.arange(len(words)) + k * width, acc, width, label=name, color=COLORS.get(name))
    ax.set_xticks(np.arange(len(words)) + 0.4 - width / 2, [f"{w}" for w in words], rotation=90)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def snr_png(by_snr: dict[str, dict], path: str) -> str:
    """Accuracy against SNR (``{system: {"clean"|"20"|...: {"accuracy"}}}``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, d in by_snr.items():
        keys = [k for k in d if k != "clean"]
        xs = [float(k) for k in keys]
        ax.plot(xs, [d[k]["accuracy"] for k in keys], "o-", label=name, color=COLORS.get(name))
        if "clean" in d:
            ax.axhline(d["clean"]["accuracy"], ls=":", color=COLORS.get(name), alpha=0.7)
    ax.set_xlabel("SNR (dB); dotted: clean")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def det_png(curves: dict[str, list[dict]], path: str, marks: dict[str, float] | None = None) -> str:
    """DET curve: miss rate against false alarms per hour, one line per system; the sidecar's
    threshold is marked on each (``marks``: system -> threshold)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    floor = 0.05  # zero false alarms drawn at this FA/h on the log axis
    for name, pts in curves.items():
        pts = sorted((p for p in pts if p["recall"] is not None), key=lambda p: (p["fa_per_hour"], -p["miss_rate"]))
        fa = np.maximum([p["fa_per_hour"] for p in pts], floor)
        miss = [p["miss_rate"] for p in pts]
        ax.plot(fa, miss, "o-", ms=3, label=name, color=COLORS.get(name))
        if marks and name in marks:
            best = min(pts, key=lambda p: abs(p["threshold"] - marks[name]))
            ax.plot(max(best["fa_per_hour"], floor), best["miss_rate"], "k*", ms=10)
    for target in (0.5, 1.0):
        ax.axvline(target, ls="--", color="grey", alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel(f"false alarms per hour (0 drawn at {floor})")
    ax.set_ylabel("miss rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, title="★ sidecar threshold", title_fontsize=8)
    return _save(fig, path)


def transcript_png(audio: np.ndarray, sample_rate_hz: int, path: str, *, times_s: np.ndarray, probs: np.ndarray,
                   threshold: float, detections: Sequence[float], words: Sequence[tuple[str, float, float]],
                   truth: Sequence[tuple[str, float, float]] = (), keyword: str = "", title: str = "") -> str:
    """Waveform with the keyword detections and word segments marked, and the keyword probability.

    Args:
        audio: ``(samples,)`` float32.
        times_s, probs: ``(n,)`` the keyword score trace (frame end times, probabilities).
        detections: keyword detection times (s).
        words: recognized ``(word, start_s, end_s)``.
        truth: optional spoken ``(word, start_s, end_s)`` (evaluation audio), drawn under the waveform.
    """
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 4.8), sharex=True, gridspec_kw={"height_ratios": [1.4, 1]})
    t = np.arange(len(audio)) / sample_rate_hz
    step = max(1, len(audio) // 20000)
    ax1.plot(t[::step], audio[::step], lw=0.5, color="0.35")
    peak = float(np.max(np.abs(audio))) or 1.0
    for word, s, e in words:
        ax1.axvspan(s, e, color="tab:green", alpha=0.2)
        ax1.text((s + e) / 2, 0.9 * peak, word, ha="center", va="top", fontsize=9, color="darkgreen")
    for word, s, e in truth:
        ax1.plot([s, e], [-1.05 * peak] * 2, lw=3, color="tab:red" if word == keyword else "tab:purple")
        ax1.text((s + e) / 2, -1.12 * peak, word, ha="center", va="top", fontsize=8)
    for d in detections:
        ax1.axvline(d, color="tab:red", lw=1.5)
        ax2.axvline(d, color="tab:red", lw=1.5)
    ax1.set_ylim(-1.3 * peak, 1.1 * peak)
    ax1.set_ylabel("waveform")
    ax1.set_title(title or "green: recognized words; red lines: keyword detections" + ("; bars: spoken words" if truth else ""), fontsize=10)
    ax2.plot(times_s, probs, color="tab:blue", lw=1)
    ax2.axhline(threshold, ls="--", color="grey", label=f"threshold {threshold:g}")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel(f"P({keyword or 'keyword'})")
    ax2.set_xlabel("time (s)")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.set_xlim(0, len(audio) / sample_rate_hz)
    return _save(fig, path)


def plot_names(paths: Sequence[str], plot_dir: str) -> dict[str, str]:
    """A PNG path in ``plot_dir`` per input file: its name without extension, made unique with a
    number when two inputs share a name."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0] or "audio"
        name, n = stem, 1
        while name in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name)
        out[path] = os.path.join(plot_dir, f"{name}.png")
    return out


def file_png(path: str, record: dict, times_s: Sequence[np.ndarray], probs: Sequence[np.ndarray], threshold: float,
             png: str, keyword: str = "", rate_hz: int = 16000) -> str | None:
    """The transcript plot of one transcribed file (a ``kws_tf.transcribe`` jsonl record and the
    keyword score trace collected while transcribing it), its audio read at the models' ``rate_hz``.
    Returns the PNG path, or None (logged) when the file could not be plotted."""
    from kws_tf.audio_io import AudioError, read_audio

    try:
        audio = read_audio(path, rate_hz)
        t = np.concatenate(times_s) if len(times_s) else np.zeros(0)
        p = np.concatenate(probs) if len(probs) else np.zeros(0)
        keep = t <= record["duration_s"] + 1e-6
        words = [(w["word"], w["start_s"], w["end_s"]) for w in record["words"]]
        title = f"{os.path.basename(path)}: \"{record['text']}\""
        return transcript_png(audio, rate_hz, png, times_s=t[keep], probs=p[keep], threshold=threshold,
                              detections=[k["time_s"] for k in record["keywords"]], words=words, keyword=keyword, title=title)
    except (AudioError, OSError, ValueError) as exc:
        log.warning("%s: no plot (%s)", path, exc)
        return None
