"""The static HTML report of an evaluation: summary table, plots, a keyword trace over one 10 s
example, and misrecognized clips as audio players (numpy, soundfile, stdlib, and kws_tf.evaluate.plots)."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
from contextlib import ExitStack

import numpy as np
import soundfile as sf

from kws_tf.atomic_write import atomic_path
from kws_tf.evaluate import plots
from kws_tf.evaluate.streams import SR, WordBank

log = logging.getLogger(__name__)

# (section, label, path into a system's results, format, target from issue 5)
ROWS = [
    ("words", "accuracy, all clips", ("words", "accuracy"), "pct", None),
    ("words", "accuracy, 10 core words", ("words", "core_accuracy"), "pct", "≥ 96 %"),
    ("words", "macro accuracy over words", ("words", "macro_accuracy"), "pct", "≥ 90 %"),
    ("words", "accuracy at 20 dB SNR", ("words", "by_snr_db", "20", "accuracy"), "pct", None),
    ("words", "accuracy at 10 dB SNR", ("words", "by_snr_db", "10", "accuracy"), "pct", None),
    ("words", "accuracy at 5 dB SNR", ("words", "by_snr_db", "5", "accuracy"), "pct", None),
    ("words", "accuracy at 0 dB SNR", ("words", "by_snr_db", "0", "accuracy"), "pct", None),
    ("keyword", "recall at ≤ 0.5 false alarms/h", ("keyword", "recall_at_fa_per_hour", "0.5", "recall"), "pct", "≥ 97 %"),
    ("keyword", "… threshold for it", ("keyword", "recall_at_fa_per_hour", "0.5", "threshold"), "num", None),
    ("keyword", "recall at ≤ 1 false alarm/h", ("keyword", "recall_at_fa_per_hour", "1", "recall"), "pct", None),
    ("keyword", "recall at the sidecar threshold", ("keyword", "at_threshold", "recall"), "pct", None),
    ("keyword", "false alarms/h at the sidecar threshold", ("keyword", "at_threshold", "fa_per_hour"), "num", None),
    ("keyword", "word-model verification threshold", ("keyword", "verify_threshold"), "num", None),
    ("keyword", "frame F1, 10 s clips", ("keyword", "frame", "f1"), "num", "≥ 0.90"),
    ("sentences", "word error rate, gated", ("sentences", "wer"), "pct", "≤ 10 %"),
    ("sentences", "gate recall", ("sentences", "gate_recall"), "pct", None),
    ("sentences", "false gates, sentences without keyword", ("sentences", "false_gate_rate"), "pct", None),
    ("sentences", "words output without a keyword", ("sentences", "words_without_keyword"), "int", None),
    ("speed", "ms per 1 s clip", ("speed", "clip_ms"), "num", None),
    ("speed", "real-time factor, keyword stream", ("speed", "stream_rtf"), "num", None),
    ("speed", "real-time factor, gated sentences", ("speed", "sentence_rtf"), "num", None),
    ("size", "keyword model (KB)", ("model_bytes", "kws"), "kb", "≤ 300 KB int8"),
    ("size", "word model (KB)", ("model_bytes", "words"), "kb", "≤ 150 KB int8"),
    ("size", "verifier model(s) (KB, together), if separate", ("model_bytes", "verifier"), "kb", None),
]


def _get(d: dict | None, path: tuple) -> object:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _fmt(value: object, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "pct":
        return f"{100 * float(value):.1f} %"
    if kind == "kb":
        return f"{float(value) / 1000:.0f}"
    if kind == "int":
        return str(int(value))
    return f"{float(value):.3g}"


def summary_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Column names and rows of the summary table (also printed by the CLI)."""
    systems = dict(results["precisions"])
    if results.get("peer"):
        systems[results["peer"]["name"]] = results["peer"]
    header = ["measure", *systems, "target"]
    rows = []
    for section, label, path, kind, target in ROWS:
        rows.append([f"{section}: {label}", *[_fmt(_get(r, path), kind) for r in systems.values()], target or ""])
    return header, rows


def _wav_uri(audio: np.ndarray) -> str:
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), SR, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# Every file a report can hold: a run removes those an earlier run left that it did not write itself
# (never any other file in the folder).
REPORT_FILES = ("index.html", "results.json", "per_word.png", "snr.png", "det.png", "keyword_trace.png",
                "confusion_float32.png", "confusion_int8.png", "confusion_peer.png")


class ReportError(Exception):
    """The report could not be written (one line; the folder keeps the report that was there)."""


def write_report(results: dict, bank: WordBank, example: dict, report_dir: str, n_audio: int = 8) -> str:
    """Write ``results.json``, the PNGs and ``index.html`` into ``report_dir``; return the HTML path.

    Every file is first written beside its target and they replace the earlier report's files only once
    all are written, ``index.html`` last: an error or Ctrl-C partway leaves the earlier report whole.
    Files of an earlier report that this one does not have (e.g. ``confusion_peer.png``) are then removed.
    Raises ReportError (one line) where a file cannot be written."""
    try:
        with ExitStack() as stack:  # entered first, replaced last: index.html after everything it shows
            html_tmp = stack.enter_context(atomic_path(os.path.join(report_dir, "index.html"), ".html"))
            written = ["index.html"]

            def out(name: str) -> str:
                written.append(name)
                return stack.enter_context(atomic_path(os.path.join(report_dir, name), os.path.splitext(name)[1]))

            with open(out("results.json"), "w", encoding="utf-8") as f:
                json.dump(results, f, indent=1)
                f.write("\n")
            images = _write_images(results, example, out)
            page = _html(results, images, _misrecognized(results, bank, n_audio))
            with open(html_tmp, "w", encoding="utf-8") as f:
                f.write(page)
    except OSError as exc:
        raise ReportError(f"{report_dir}: cannot write the report ({exc.strerror or exc}); the folder keeps the report "
                          "it had; free space or fix its permissions, or choose another --report") from None
    for name in REPORT_FILES:
        if name not in written and os.path.lexists(os.path.join(report_dir, name)):
            try:
                os.remove(os.path.join(report_dir, name))
            except OSError as exc:
                log.warning("%s: an earlier run's %s is still there and is not part of this report (%s)", report_dir, name,
                            exc.strerror or exc)
    return os.path.join(report_dir, "index.html")


def _write_images(results: dict, example: dict, out) -> list[tuple[str, str]]:
    """Draw the report's PNGs, each to the path ``out(name)`` gives; return (title, name) pairs."""
    precisions = results["precisions"]
    peer = results.get("peer")
    images = []
    for p, r in precisions.items():
        name = f"confusion_{p}.png"
        plots.confusion_png(r["words"]["confusion"], out(name), f"{p}: words on {results['split']} clips")
        images.append((f"Confusion matrix, {p}", name))
    if peer:
        plots.confusion_png(peer["words"]["confusion"], out("confusion_peer.png"), f"{peer['name']}: words")
        images.append((f"Confusion matrix, {peer['name']}", "confusion_peer.png"))
    per_word = {p: r["words"]["per_word"] for p, r in precisions.items()}
    if peer:
        per_word[peer["name"]] = peer["words"]["per_word"]
    plots.per_word_png(per_word, out("per_word.png"))
    plots.snr_png({p: r["words"]["by_snr_db"] for p, r in precisions.items()}, out("snr.png"))
    plots.det_png({p: r["keyword"]["det"] for p, r in precisions.items()}, out("det.png"),
                  {p: r["keyword"]["threshold"] for p, r in precisions.items()})
    images = [("Accuracy per word", "per_word.png"), ("Accuracy against SNR", "snr.png"),
              ("Keyword DET curve (long streams)", "det.png")] + images
    if example:
        plots.transcript_png(example["audio"], SR, out("keyword_trace.png"),
                             times_s=example["times_s"], probs=example["probs"], threshold=example["threshold"],
                             detections=[k.time_s for k in example["detections"]],
                             words=[(w.word, w.start_s, w.end_s) for w in example["words"]], truth=example["spans"],
                             keyword=example["keyword"], title=f"{example['precision']}: one 10 s sentence; reference after the keyword: "
                             f"\"{' '.join(example['reference'])}\"")
        images.insert(0, ("Keyword probability and detections over one 10 s sentence", "keyword_trace.png"))
    return images


def _misrecognized(results: dict, bank: WordBank, n: int) -> list[str]:
    first = next(iter(results["precisions"].values()))
    wrong = [p for p in first["words"]["predictions"] if p["predicted"] != p["word"]]
    wrong.sort(key=lambda p: -p["score"])  # the most confident mistakes first
    items = []
    for p in wrong[:n]:
        items.append(f"<li><b>{html.escape(p['word'])}</b> heard as <b>{html.escape(p['predicted'])}</b> "
                     f"(score {p['score']:.2f}) <audio controls src=\"{_wav_uri(bank.audio[p['index']])}\"></audio> "
                     f"<small>{html.escape(p['file'])}</small></li>")
    return items


CSS = ("body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222} table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} td:first-child,th:first-child{text-align:left}"
       "img{max-width:100%;border:1px solid #eee} li{margin:.4em 0} audio{vertical-align:middle;height:28px}"
       "code{background:#f4f4f4;padding:1px 4px} table.text td{text-align:left}")


def _html(results: dict, images: list[tuple[str, str]], audio_items: list[str]) -> str:
    header, rows = summary_rows(results)
    table = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>\n"
    table += "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    first = next(iter(results["precisions"].values()))
    pairs = ", ".join(f"{c['true']}→{c['predicted']} ({c['count']})" for c in first["words"]["most_confused"][:8])
    examples = "".join(f"<tr><td>{'yes' if e['keyword'] else 'no'}</td><td>{html.escape(e['reference'])}</td>"
                       f"<td>{html.escape(e['hypothesis'])}</td></tr>" for e in first["sentences"]["examples"])
    s = results["settings"]
    figures = "\n".join(f"<h3>{html.escape(t)}</h3><img src=\"{n}\" alt=\"{html.escape(t)}\">" for t, n in images)
    peer_note = f"<p>{html.escape(results['peer']['note'])}</p>" if results.get("peer") else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>kws_tf evaluation</title><style>{CSS}</style></head><body>
<h1>kws_tf evaluation: keyword “{html.escape(results['keyword'])}”, {len(results['vocabulary'])} words</h1>
<p>Models <code>{html.escape(results['models'])}</code>, data <code>{html.escape(results['data_dir'])}</code>, split
<b>{html.escape(results['split'])}</b> ({results['data']['vocabulary_clips']} word clips), seed {results['seed']}, created
{html.escape(results['created_utc'])}. Command: <code>{html.escape(results['command'])}</code></p>
<p>Keyword streams: {s['minutes']:g} min of the split's clips over background noise at {s['snr_db'][0]:g}–{s['snr_db'][1]:g} dB SNR,
{results['precisions'][next(iter(results['precisions']))]['keyword']['keywords']} keywords; a detection counts as a hit from the keyword's
start to {s['tolerance_s']:g} s after its end, any other detection is a false alarm (one false alarm in {s['minutes']:g} min is
{60 / s['minutes']:.3g} per hour: streams shorter than 2 h cannot tell 0.5 from 1 false alarm per hour). Frame F1 on {s['f1_clips']} training-like 10 s clips. Sentences:
{s['sentences_with_keyword']} with the keyword and {s['sentences_without_keyword']} without.</p>
{peer_note}
<h2>Summary</h2><table>{table}</table>
<p>Most confused ({html.escape(next(iter(results['precisions'])))}): {html.escape(pairs) or 'none'}</p>
<h2>Plots</h2>{figures}
<h2>Misrecognized clips ({html.escape(next(iter(results['precisions'])))}, most confident first)</h2><ul>{''.join(audio_items) or '<li>none</li>'}</ul>
<h2>Sentence examples ({html.escape(next(iter(results['precisions'])))})</h2>
<table class="text"><tr><th>keyword</th><th>reference (after the keyword)</th><th>gated transcript</th></tr>{examples}</table>
</body></html>
"""
