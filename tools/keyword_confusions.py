r"""Which words does a keyword model mistake for its keyword? Each clip of a split is laid alone into
the keyword model's window (10 s) of background noise at --snr-db (mixed as ``kws_tf.evaluate`` mixes
speech), the keyword model (TFLite, the runtime's features) scores it, and the words are ranked by how
often their peak score reaches --threshold. Prints a ``--set kws_data.confusable_words=[...]`` line for
the words at or above --min-rate, to draw them more often in the next keyword training run. Run it on
the TRAINING split: the words listed then shape training, and validation and test stay untouched.

    python tools/keyword_confusions.py --models saved_models --data-dir ../shared/speech_commands_subset \
        [--split train] [--snr-db 10] [--threshold 0.5] [--min-rate 0.1]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np

from kws_tf.cli import doc_summary, LISTS_HELP, UsageParser
from kws_tf.config import FeatureConfig, from_dict
from kws_tf.dataset import DataError
from kws_tf.evaluate.streams import mix, split_bank
from kws_tf.evaluate.suite import check_rate
from kws_tf.features import log_mel
from kws_tf.sidecar import ModelDirError, load_sidecar, model_file
from kws_tf.tflite_model import ModelLoadError, TFLiteModel


def peak_scores(model: TFLiteModel, bank, features, keyword: str, clip_s: float, snr_db: float, seed: int,
                progress: bool = True) -> dict[str, np.ndarray]:
    """``{word: (n,) peak keyword probability of each of its clips}``; each 1 s clip starts
    ``clip_s / 2 - 1`` s into a ``clip_s`` window of noise (the model's input length)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = defaultdict(list)
    order = range(len(bank.words))
    if progress:
        from tqdm import tqdm

        order = tqdm(order, desc="clips", unit="clip", leave=False, file=sys.stderr)
    for i in order:
        clip = mix(bank, [(i, max(clip_s / 2 - 1.0, 0.0))], clip_s, keyword, rng, snr_db=(snr_db, snr_db))
        out[str(bank.words[i])].append(float(np.max(model.run(log_mel(clip.audio, features)))))
    return {w: np.array(v) for w, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(description=doc_summary(__doc__))
    p.add_argument("--models", default="saved_models")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--lists-dir", help=LISTS_HELP)
    p.add_argument("--split", default="train", choices=("train", "validation", "test"))
    p.add_argument("--snr-db", type=float, default=10.0, help="speech over background noise (default 10)")
    p.add_argument("--threshold", type=float, default=0.5, help="a peak score at or above this counts as a false fire")
    p.add_argument("--min-rate", type=float, default=0.1, help="words that fire this often are suggested as confusable")
    p.add_argument("--precision", default="float32", choices=("float32", "int8"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    try:
        sidecar = load_sidecar(args.models, "kws")
        features = from_dict(FeatureConfig, sidecar["features"])
        check_rate(args.models, features.sample_rate_hz)
        model = TFLiteModel(model_file(args.models, "kws", sidecar, args.precision))
        bank = split_bank(args.data_dir, args.split, lists_dir=args.lists_dir)
    except (ModelDirError, ModelLoadError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    keyword = sidecar["keyword"]
    if not len(bank.words):
        print(f"error: {args.data_dir}: no clips in the {args.split} split; choose another --split", file=sys.stderr)
        return 1
    clip_s = float(sidecar["input"]["clip_s"])
    scores = peak_scores(model, bank, features, keyword, clip_s, args.snr_db, args.seed, not args.quiet)
    rate = {w: float(np.mean(v >= args.threshold)) for w, v in scores.items()}
    print(f"keyword '{keyword}', {args.split} split, one clip per {clip_s:g} s at {args.snr_db:g} dB SNR; "
          f"share of clips whose peak score is >= {args.threshold:g}:")
    for w in sorted(scores, key=lambda w: (w != keyword, -rate[w], w)):
        tag = "  (the keyword: recall)" if w == keyword else ""
        print(f"  {w:10s} {len(scores[w]):5d} clips  {rate[w]:6.1%}  mean peak {scores[w].mean():.3f}{tag}")
    confusable = [w for w in sorted(rate, key=lambda w: -rate[w]) if w != keyword and rate[w] >= args.min_rate]
    print(f"words firing on >= {args.min_rate:.0%} of their clips: {', '.join(confusable) or '(none)'}")
    if confusable:
        print(f"next run: --set 'kws_data.confusable_words={json.dumps(confusable)}' --set kws_data.confusable_prob=0.4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
