r"""Pick the word decoder's settings on the VALIDATION split: transcribe seeded 10 s sentences (as
``kws_tf.evaluate`` builds them) through the runtime for a grid of word threshold / smoothing /
pause / longest word (``max_word_s``) / shortest run (``min_windows``), count the errors of the
gated transcripts (substitutions, deletions, insertions, and any word written for a sentence without
the keyword), and optionally write the best setting into the words sidecar. The models run once per
distinct window (cached), so each setting after the first costs a few seconds (180 settings on 150
sentences: about 11 minutes, two runs side by side on 2 cores).

One seed's 150 sentences hardly tell two word models behind the same gate apart (they differ by an error or
two); ``--seed 1 2 3 4`` pools the sentences of several seeds, and ``--current`` scores only the setting in
the sidecar (no grid; under a minute per 150 sentences), to compare packages as they are.

    python tools/tune_decoder.py --models saved_models --data-dir ../shared/speech_commands_subset \
        [--split validation] [--sentences 100] [--seed 1 [2 ...]] [--current | --write]
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import sys

import numpy as np

from kws_tf.cli import doc_summary, fold_arg, FOLD_HELP, LISTS_HELP, UsageParser
from kws_tf.config import to_dict
from kws_tf.dataset import SPLITS, DataError, split_label
from kws_tf.evaluate import metrics
from kws_tf.evaluate.streams import sentences, split_bank
from kws_tf.evaluate.suite import check_rate, vocabulary
from kws_tf.runtime import Transcriber
from kws_tf.sidecar import ModelDirError, load_sidecar, save_sidecar
from kws_tf.tflite_model import ModelLoadError

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)
SMOOTHING_WINDOWS = (3, 5)
PAUSES_S = (1.5, 2.5)
MAX_WORDS_S = (0.0, 1.2, 1.5)
MIN_WINDOWS = (1, 3, 5)


def cached(runner):
    """``runner`` with its outputs remembered by input content."""
    memo: dict[bytes, np.ndarray] = {}

    def run(features: np.ndarray) -> np.ndarray:
        key = hashlib.sha1(np.ascontiguousarray(features).tobytes()).digest()
        if key not in memo:
            memo[key] = runner(features)
        return memo[key]
    return run


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(description=doc_summary(__doc__))
    p.add_argument("--models", default="saved_models")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--split", choices=SPLITS, default="validation")
    p.add_argument("--lists-dir", help=LISTS_HELP)
    p.add_argument("--fold", type=fold_arg, metavar="K/N", help=FOLD_HELP)
    p.add_argument("--sentences", type=int, default=100, help="sentences with the keyword; half as many without")
    p.add_argument("--seed", type=int, nargs="+", default=[1], help="sentence seeds; several pool their sentences (default: 1)")
    p.add_argument("--precision", choices=("float32", "int8"), default="float32")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="store the best setting in MODELS/words/model.json")
    mode.add_argument("--current", action="store_true", help="score only the setting in MODELS/words/model.json (no grid)")
    args = p.parse_args(argv)
    if args.sentences < 1:
        p.error(f"--sentences {args.sentences}: give the number of sentences with the keyword, 1 or more")
    split = split_label(args.split, args.fold, args.lists_dir)

    try:  # the models before the clips: a bad package fails before the data is read
        keyword, labels = vocabulary(args.models)
        tr = Transcriber.from_dir(args.models, args.precision)
        check_rate(args.models, tr.features.sample_rate_hz)
        bank = split_bank(args.data_dir, args.split, args.fold, args.lists_dir)
    except (ModelDirError, ModelLoadError, DataError) as e:
        raise SystemExit(f"error: {e}")
    items = [s for seed in args.seed for s in sentences(bank, keyword, set(labels), args.sentences, args.sentences // 2, seed)]
    if not items:
        print(f"{args.data_dir}: the {split} split has no clips of the model's words", file=sys.stderr)
        return 1
    tr.kws_runner, tr.word_runner = cached(tr.kws_runner), cached(tr.word_runner)
    tr.verifier_runner = cached(tr.verifier_runner) if tr.has_verifier else tr.word_runner
    base = tr.decoder_cfg
    n_ref = sum(len(s.reference) for s in items if s.has_keyword)
    seeds = " ".join(map(str, args.seed))
    print(f"{split} split: {len(items)} sentences (seed{'s' if len(args.seed) > 1 else ''} {seeds}; {n_ref} reference words "
          "after the keyword); errors per reference word")
    best, closed = None, None
    grid = itertools.product(THRESHOLDS, SMOOTHING_WINDOWS, PAUSES_S, MAX_WORDS_S, MIN_WINDOWS)
    if args.current:
        grid = [(base.threshold, base.smoothing_windows, base.pause_s, base.max_word_s, base.min_windows)]
    for threshold, smoothing, pause, max_word, min_windows in grid:
        tr.decoder_cfg = dataclasses.replace(base, threshold=threshold, smoothing_windows=smoothing, pause_s=pause,
                                             max_word_s=max_word, min_windows=min_windows)
        refs, hyps, stray, shut = [], [], 0, []
        for s in items:
            result = tr.transcribe(s.mixture.audio)
            words = [w.word for w in result.words]
            if s.has_keyword:
                refs.append(s.reference)
                hyps.append(words)
                if not result.keywords:
                    shut.append(len(s.reference))
            else:
                stray += len(words)
        if closed is None:  # the gate does not depend on the decoder's settings
            closed = shut
            print(f"the gate opened on {len(refs) - len(closed)} of {len(refs)} sentences with the keyword; the other "
                  f"{sum(closed)} reference words are deletions at every setting")
        wer = metrics.word_error_rate(refs, hyps)
        errors = wer["substitutions"] + wer["deletions"] + wer["insertions"] + stray
        rate = errors / max(n_ref, 1)
        print(f"  threshold {threshold:.1f}  smoothing {smoothing}  pause {pause:.1f} s  max word {max_word:.1f} s  "
              f"min windows {min_windows}: {rate:.3f} "
              f"(S {wer['substitutions']}  D {wer['deletions']}  I {wer['insertions']}  without keyword {stray})", flush=True)
        if best is None or rate < best[0] - 1e-12:
            best = (rate, tr.decoder_cfg)
    if args.current:
        return 0
    print(f"best: {to_dict(best[1])} ({best[0]:.3f} errors per reference word)")
    if args.write:
        sidecar = load_sidecar(args.models, "words")
        sidecar.setdefault("thresholds", {})["decoder"] = to_dict(best[1])
        sidecar["thresholds"]["decoder_tuning"] = {"split": split, "sentences": len(items),
                                                   "seed": args.seed[0] if len(args.seed) == 1 else args.seed,
                                                   "errors_per_reference_word": round(best[0], 4)}
        save_sidecar(args.models, "words", {k: v for k, v in sidecar.items() if k not in ("format", "task")})
        print(f"wrote the decoder settings into {args.models}/words/model.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
