"""``python -m kws_tf.evaluate``: how good exported models are on a Speech Commands split, through the
TFLite runtime, float32 and int8 side by side; writes results.json and an HTML report (runtime modules,
numpy, jiwer, matplotlib, tqdm, optional pocketsphinx; never TensorFlow)."""

from __future__ import annotations

import kws_tf.one_blas_thread  # noqa: F401, I001  (before numpy)

import argparse
import datetime
import logging
import math
import multiprocessing
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from kws_tf.cli import FOLD_HELP, LISTS_HELP, UsageError, UsageParser, default_models_dir, fold_arg, run_main
from kws_tf.dataset import SPLITS, DataError, DatasetIndex, fold_text, index_speech_commands, load_clips, load_noise
from kws_tf.evaluate import metrics, plots, report, suite
from kws_tf.evaluate.peer import PEERS, PeerError, PocketSphinx, evaluate_pocketsphinx
from kws_tf.evaluate.streams import SR, STREAM_SNR_DB, WordBank, sentences
from kws_tf.runtime import Transcriber
from kws_tf.sidecar import ModelDirError
from kws_tf.tflite_model import ModelLoadError

PROG = "python -m kws_tf.evaluate"
FORMAT = "kws_tf.evaluate/1"


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog=PROG, description="Evaluate exported models on a Speech Commands split: word accuracy, "
                    "keyword recall and false alarms, gated sentence WER and speed; writes results.json and index.html.")
    p.add_argument("--models", default=None, help="export folder with kws/ and words/, optionally verifier/ and verifier_NAME/ (default: ./saved_models, else the checkout's or the one installed with kws_tf)")
    p.add_argument("--data-dir", required=True, help="Speech Commands folder (official layout)")
    p.add_argument("--split", choices=SPLITS, default="test", help="which split's clips to use (default: test)")
    p.add_argument("--lists-dir", help=LISTS_HELP)
    p.add_argument("--fold", type=fold_arg, metavar="K/N", help=FOLD_HELP)
    p.add_argument("--report", default=os.path.join("reports", "evaluation"), metavar="DIR", help="output folder (default: reports/evaluation/)")
    p.add_argument("--minutes", type=float, default=30.0, help="length of the keyword streams (default: 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of all synthesized audio (default: 0)")
    p.add_argument("--precision", nargs="+", choices=("float32", "int8"), default=["float32", "int8"])
    p.add_argument("--compare", nargs="+", choices=PEERS, default=[], metavar="PEER", help=f"also run a peer recognizer ({', '.join(PEERS)})")
    p.add_argument("--sentences", type=int, default=40, help="10 s sentences with the keyword; half as many without (default: 40)")
    p.add_argument("--peer-sentences", type=int, default=None, help="sentences for the peer (default: all; 0: the peer on the word clips only)")
    p.add_argument("--f1-clips", type=int, default=100, help="10 s clips for the frame F1 (default: 100)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes, at most one per CPU (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _task(kind: str, models: str, precision: str, bank: WordBank, settings: suite.Settings, position: int,
          peer_counts: tuple[int, int]) -> tuple[str, dict, dict]:
    if kind == "peer":
        keyword, labels = suite.vocabulary(models)
        items = sentences(bank, keyword, set(labels), *peer_counts, settings.seed)
        return kind, evaluate_pocketsphinx(bank, labels, keyword, items, settings.progress, position), {}
    result, artifacts = suite.evaluate_precision(models, precision, bank, settings, position)
    return precision, result, artifacts


def _ignore_sigint() -> None:
    # Workers leave Ctrl-C to the main process, which stops them (no traceback from each worker).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_map(fn: Callable, calls: Sequence[tuple], workers: int) -> list:
    """``[fn(*c) for c in calls]`` in ``workers`` processes. On Ctrl-C (or any error) the queued calls are
    cancelled and the workers stopped at once, rather than waiting for every queued call to run to its end."""
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
    try:
        futures = [pool.submit(fn, *c) for c in calls]
        outputs = [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        _stop([proc for proc in multiprocessing.active_children() if proc not in before])
        raise
    pool.shutdown()
    return outputs


def _stop(workers: list) -> None:
    """Terminate ``workers`` (the pool's processes: the children that appeared while it ran, also one forked just as
    Ctrl-C came) and wait until none is left a child: SIGKILL after 5 s, give up after 10. ``active_children()``
    reaps those that ended; the pool's own thread may reap one first, which then leaves the list a moment later."""
    for proc in workers:
        proc.terminate()
    for tick in range(200):
        children = multiprocessing.active_children()
        left = [proc for proc in workers if proc in children]
        if not left:
            return
        if tick == 100:
            for proc in left:
                proc.kill()
        time.sleep(0.05)


def _load(args: argparse.Namespace, index: DatasetIndex, labels: list[str], keyword: str) -> tuple[WordBank, list[str], dict]:
    clips = index.select(args.split)
    loaded = load_clips(clips, SR, progress=not args.quiet, desc=f"loading {args.split} clips")
    if not len(loaded.clips):
        raise DataError(f"{args.data_dir}: none of the {len(clips)} {args.split} clips could be read ({loaded.failed[0]})")
    words = [c.word for c in loaded.clips]
    if keyword not in words:
        raise DataError(f"{args.data_dir}: the {args.split} split has no clips of the keyword '{keyword}'")
    if not set(labels) & set(words):
        raise DataError(f"{args.data_dir}: the {args.split} split has no clips of the word model's words")
    noise, noise_failed = load_noise(index.noise_files)
    bank = WordBank.build(loaded.audio, words, noise)
    files = [os.path.relpath(c.path, index.root) for c in loaded.clips]
    data = {"root": index.root, "clips": len(loaded.clips), "vocabulary_clips": int(sum(w in set(labels) for w in words)),
            "keyword_clips": words.count(keyword), "noise_files": len(noise), "failed": loaded.failed + noise_failed}
    return bank, files, data


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    for name in ("minutes", "sentences", "f1_clips", "jobs"):
        if not 0 < getattr(args, name) < math.inf:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, not {getattr(args, name)}")
    if args.peer_sentences is not None and args.peer_sentences < 0:
        raise UsageError(f"--peer-sentences must be 0 or more (0: the peer on the word clips only), not {args.peer_sentences}")
    index = index_speech_commands(args.data_dir, args.lists_dir, args.fold)
    if not index.select(args.split):
        raise DataError(f"{args.data_dir}: the {args.split} split has no clips; choose another --split or add list files")
    models = args.models or default_models_dir()
    keyword, labels = suite.vocabulary(models)
    precisions = list(dict.fromkeys(args.precision))
    for p in precisions:  # fail on a missing, broken or other-rate model now, not after minutes of work
        suite.check_rate(models, Transcriber.from_dir(models, p).features.sample_rate_hz)
    plots.pyplot()
    try:
        import jiwer  # noqa: F401  (needed only at the end: fail before minutes of work)
    except ImportError:
        raise UsageError("the word error rate needs jiwer: pip install jiwer (or pip install '.[eval]' in the checkout)") from None

    if args.compare:
        PocketSphinx(labels, keyword)
    try:  # the report folder, now rather than after the work
        os.makedirs(args.report, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report {args.report}: cannot make this folder ({exc.strerror or exc}); choose another") from None
    if not os.access(args.report, os.W_OK | os.X_OK):
        raise UsageError(f"--report {args.report}: this folder is not writable; choose another or fix its permissions")
    bank, files, data = _load(args, index, labels, keyword)
    settings = suite.Settings(seed=args.seed, minutes=args.minutes, f1_clips=args.f1_clips, sentences_with_keyword=args.sentences,
                              sentences_without_keyword=max(1, args.sentences // 2), progress=not args.quiet)
    n_peer = settings.sentences_with_keyword + settings.sentences_without_keyword if args.peer_sentences is None else args.peer_sentences
    peer_counts = (min(settings.sentences_with_keyword, round(n_peer * 2 / 3)), 0)
    peer_counts = (peer_counts[0], min(settings.sentences_without_keyword, max(0, n_peer - peer_counts[0])))
    tasks = [("precision", p) for p in precisions] + [("peer", "") for _ in dict.fromkeys(args.compare)]
    cpus = os.cpu_count() or 1
    if args.jobs > cpus:  # the speed rows assume one process per core
        logging.warning("--jobs %d: more than the %d CPU(s) here; using %d, one process per CPU", args.jobs, cpus, cpus)
    workers = min(args.jobs, cpus, len(tasks))
    start = time.perf_counter()
    if workers == 1:
        outputs = [_task(k, models, p, bank, settings, 0, peer_counts) for k, p in tasks]
    else:
        outputs = _pool_map(_task, [(k, models, p, bank, settings, i % workers, peer_counts) for i, (k, p) in enumerate(tasks)], workers)
    results = {
        "format": FORMAT, "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join([PROG, *argv]), "models": os.path.abspath(models), "data_dir": data["root"],
        "split": args.split, "fold": fold_text(index.fold), "lists_dir": os.path.abspath(args.lists_dir) if args.lists_dir else None,
        "seed": args.seed, "keyword": keyword, "vocabulary": labels, "data": data,
        "settings": {"minutes": args.minutes, "snr_db": list(STREAM_SNR_DB), "tolerance_s": metrics.TOLERANCE_S,
                     "f1_clips": settings.f1_clips, "sentences_with_keyword": settings.sentences_with_keyword,
                     "sentences_without_keyword": settings.sentences_without_keyword, "snrs_db": list(suite.SNRS_DB),
                     "jobs": workers, "cpu_count": cpus},
        "precisions": {}, "peer": None,
    }
    example = {}
    for name, result, artifacts in outputs:
        if name == "peer":
            result["note"] = (f"PocketSphinx {result['version']} (bundled en-us model) with a JSGF grammar of the {len(labels)} words: "
                              f"one word per clip; on sentences a word loop decoded in one pass, on the first {peer_counts[0]} "
                              f"sentences with the keyword and {peer_counts[1]} without; its gated transcript is what follows "
                              f"the first '{keyword}' it hears.")
            result["sentences"]["sentences_evaluated"] = sum(peer_counts)
            results["peer"] = result
            continue
        for pred in result["words"]["predictions"]:
            pred["file"] = files[pred["index"]]
        results["precisions"][name] = result
        example = example or artifacts.get("example", {})
    results["elapsed_s"] = round(time.perf_counter() - start, 1)
    header, rows = report.summary_rows(results)  # printed first: the numbers are seen even if the report cannot be written
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    html_path = report.write_report(results, bank, example, args.report)
    print(f"report: {html_path}\nresults: {os.path.join(args.report, 'results.json')} ({results['elapsed_s']:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 done, 1 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    return run_main(PROG, build_parser(), argv, lambda args: _run(args, argv),
                    (ModelDirError, ModelLoadError, DataError, PeerError, plots.PlotError, report.ReportError))


if __name__ == "__main__":
    sys.exit(main())
