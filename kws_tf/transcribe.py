"""``python -m kws_tf.transcribe``: transcribe audio files, folders and globs offline with the exported
models (runtime modules, numpy, tqdm; never TensorFlow). Exit code 0 when every file succeeded, 2 when
any failed, 1 for usage errors."""

from __future__ import annotations

import kws_tf.one_blas_thread  # noqa: F401, I001  (before numpy)

import argparse
import csv
import glob
import io
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

from kws_tf.audio_io import AUDIO_EXTENSIONS, AudioError, audio_duration_s, iter_audio_blocks, read_audio
from kws_tf.cli import UsageError, UsageParser, add_model_options, check_thresholds, output_problem, run_main, transcriber_kwargs
from kws_tf.atomic_write import atomic_path
from kws_tf.runtime import Transcriber, result_from_events
from kws_tf.sidecar import ModelDirError
from kws_tf.tflite_model import ModelLoadError

PROG = "python -m kws_tf.transcribe"
FORMATS = ("text", "jsonl", "csv")


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog=PROG, description="Transcribe recordings: words spoken after the keyword (default), all "
                "words (--no-gate), or the one word of a clip (--single-word).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders (searched recursively) or globs")
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    p.add_argument("--output", metavar="FILE", help="write here instead of stdout (atomically; an existing file is kept when every input fails)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--no-gate", action="store_true", help="transcribe all words, not only after the keyword")
    mode.add_argument("--single-word", action="store_true", help="each file is one word clip: report its top word")
    add_model_options(p)
    p.add_argument("--jobs", type=int, default=1, help="files decoded in parallel (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--plot", metavar="DIR", help="also write a PNG per file into DIR: waveform with keyword and word "
                   "segments, keyword probability over time (needs matplotlib)")
    return p


def expand_inputs(inputs: list[str]) -> list[tuple[str, str | None]]:
    """``(name, error)`` per file: folders searched recursively for audio, globs expanded; inputs
    that name nothing come back with an error message instead of a file."""
    out: list[tuple[str, str | None]] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(_audio_in(item))
            out += [(f, None) for f in found] or [(item, f"{item}: folder has no audio files (WAV, FLAC, OGG, MP3, M4A)")]
        elif os.path.exists(item) or not glob.has_magic(item):
            out.append((item, None))  # a missing file is reported when it is read
        else:
            matches = sorted(glob.glob(item, recursive=True))
            files = [f for m in matches for f in (sorted(_audio_in(m)) if os.path.isdir(m) else [m])]
            out += [(f, None) for f in files] or [(item, f"{item}: no files match this pattern")]
    return out


def _audio_in(folder: str) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            if os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
                yield os.path.join(root, name)


def transcribe_file(tr: Transcriber, path: str, on_seconds: Callable[[float], None] | None = None) -> dict:
    """One file as the jsonl record (``error`` set and no exception when it cannot be read)."""
    record = {"file": path, "duration_s": 0.0, "keywords": [], "words": [], "text": "", "error": None}
    try:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise AudioError(f"{path}: file is empty (0 bytes)")
        if tr.mode == "single_word":
            result = tr.transcribe(read_audio(path, tr.features.sample_rate_hz))
        else:
            tr.reset()
            events, samples = [], 0
            for block in iter_audio_blocks(path, tr.features.sample_rate_hz):
                samples += len(block)
                events += tr.feed(block)
                if on_seconds:
                    on_seconds(len(block) / tr.features.sample_rate_hz)
            events += tr.finish()
            result = result_from_events(events, samples / tr.features.sample_rate_hz)
    except AudioError as exc:
        record["error"] = str(exc)
        return record
    except Exception as exc:  # a bug must not stop a batch; it is reported with the file
        logging.getLogger(__name__).debug("failed on %s", path, exc_info=True)
        record["error"] = f"{path}: failed ({type(exc).__name__}: {exc})"
        return record
    record.update(result.to_dict())
    return record


_worker: Transcriber | None = None


def _init_worker(kwargs: dict) -> None:
    global _worker
    _worker = Transcriber.from_dir(**kwargs)


def _work(job: tuple[tuple[str, str | None], str | None]) -> dict:
    return _one(_worker, job[0], png=job[1])


def _one(tr: Transcriber, item: tuple[str, str | None], on_seconds: Callable[[float], None] | None = None,
         png: str | None = None) -> dict:
    name, error = item
    if error:
        return {"file": name, "duration_s": 0.0, "keywords": [], "words": [], "text": "", "error": error}
    if png is None:
        return transcribe_file(tr, name, on_seconds)
    times, probs = [], []
    tr.on_kws_scores = lambda t, p: (times.append(t), probs.append(p))
    try:
        record = transcribe_file(tr, name, on_seconds)
    finally:
        tr.on_kws_scores = None
    if not record["error"]:
        from kws_tf.evaluate.plots import file_png

        file_png(name, record, times, probs, tr.detector_cfg.threshold, png, keyword=tr.keyword or "",
                 rate_hz=tr.features.sample_rate_hz)
    return record


def format_records(records: list[dict], fmt: str) -> str:
    """The whole output text for ``records`` in ``fmt`` (text, jsonl or csv)."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "duration_s", "keyword_times_s", "text", "error"])
        for r in records:
            times = " ".join(f"{k['time_s']:.3f}" for k in r["keywords"])
            w.writerow([r["file"], f"{r['duration_s']:.3f}", times, r["text"], r["error"] or ""])
        return buf.getvalue()
    return "".join(f"{r['file']}\t{r['text']}\n" for r in records if not r["error"])


def check_output(path: str) -> str:
    """``--output`` checked before any work: the file to write (a link's target), else a UsageError."""
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target) and not os.path.isdir(target):  # /dev/null, a pipe: written in place
        if not os.access(target, os.W_OK):
            raise UsageError(f"--output {path}: cannot write there (permission denied); choose another file")
        return target
    if problem := output_problem(target):
        raise UsageError(f"--output {path}: {problem}")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise UsageError(f"--output {path}: the file is read-only; choose another file or make it writable")
    probe = f"{target}.tmp-{os.getpid()}"
    try:
        open(probe, "x").close()
        os.remove(probe)
    except OSError as exc:
        raise UsageError(f"--output {path}: cannot write there ({exc.strerror or exc}); choose another file") from None
    return target


def write_output(target: str, text: str) -> None:
    """Replace ``target`` with ``text`` through a temporary file beside it (a regular file keeps its
    permissions), or write in place when it is a device or a pipe. OSError leaves ``target`` untouched."""
    if os.path.exists(target) and not os.path.isfile(target):
        with open(target, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if os.path.exists(target):
            shutil.copymode(target, tmp)


def _plot_paths(plot_dir: str, items: list[tuple[str, str | None]]) -> dict[str, str]:
    """``--plot``: check matplotlib and the folder before any work; a PNG path per readable input."""
    from kws_tf.evaluate.plots import PlotError, pyplot, plot_names

    try:
        pyplot()
        os.makedirs(plot_dir, exist_ok=True)
    except (PlotError, OSError) as exc:
        raise UsageError(f"--plot {plot_dir}: {exc}") from None
    return plot_names([name for name, error in items if not error], plot_dir)


def _run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    check_thresholds(args)
    if args.output == "":
        raise UsageError("--output needs a file name (leave it out to write to stdout)")
    target = check_output(args.output) if args.output else None
    kwargs = transcriber_kwargs(args, "single_word" if args.single_word else "no_gate" if args.no_gate else "gated")
    tr = Transcriber.from_dir(**kwargs)
    items = expand_inputs(args.inputs)
    pngs = _plot_paths(args.plot, items) if args.plot else {}
    from tqdm import tqdm

    durations = [audio_duration_s(n) or 0.0 for n, e in items if not e] if len(items) == 1 else []
    by_seconds = len(items) == 1 and sum(durations) > 60.0
    show = not args.quiet and (len(items) > 1 or by_seconds)
    bar = tqdm(total=round(sum(durations)) if by_seconds else len(items), unit="s" if by_seconds else "file",
               file=sys.stderr, disable=None if show else True, leave=False)
    records = []
    if args.jobs == 1 or len(items) == 1:
        for item in items:
            records.append(_one(tr, item, bar.update if by_seconds else None, pngs.get(item[0])))
            bar.update(0 if by_seconds else 1)
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, initializer=_init_worker, initargs=(kwargs,)) as pool:
            for record in pool.map(_work, [(item, pngs.get(item[0])) for item in items]):
                records.append(record)
                bar.update(1)
    bar.close()
    failed = [r for r in records if r["error"]]
    for r in failed:
        print(f"{PROG}: {r['error']}", file=sys.stderr)
    text = format_records(records, args.format)
    code = 2 if failed else 0
    if target and len(failed) == len(records) and os.path.isfile(target):
        print(f"{PROG}: every file failed, so {args.output} was left as it was", file=sys.stderr)
    elif target:
        try:
            write_output(target, text)
        except OSError as exc:  # e.g. the disk filled up: the results go to stdout rather than nowhere
            print(f"{PROG}: error: --output {args.output}: cannot write ({exc.strerror or exc}); "
                  "the results follow on stdout", file=sys.stderr)
            sys.stdout.write(text)
            code = 1
    else:
        sys.stdout.write(text)
    sys.stdout.flush()
    if failed:
        print(f"{PROG}: {len(failed)} of {len(records)} files failed", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    return run_main(PROG, build_parser(), argv, _run, (ModelDirError, ModelLoadError))


if __name__ == "__main__":
    sys.exit(main())
