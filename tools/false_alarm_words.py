r"""Which words does a package's keyword gate fire on? Replays the gate at the package's setting on score
traces saved by ``tools/tune_detector.py --save-traces``, rebuilds each trace's stream from the data set
(the same split, seed and minutes: the words and where they lie), and names the word spoken last before
each false alarm, beside the keywords the gate catches there (both sides of a verifier's trade: judge a
new verifier behind the same gate with them). Also ranks the words, the keyword first, by how often the
verifier (the word model that confirms the keyword) scores the keyword at or above the gate's
verification threshold inside them. Prints a
``--set word_data.confusable_words=[...]`` line for the words with at least --min-alarms false alarms, to
draw them more often as hard negatives when training the next verifier. Run it on traces of streams
that will not judge that verifier (they chose its training).

    python tools/false_alarm_words.py --models saved_models --data-dir ../shared/speech_commands_subset \
        --traces gate_s23.npz gate_s24.npz [--min-alarms 2]
"""

from __future__ import annotations

import collections
import sys

import numpy as np

from kws_tf.cli import doc_summary, fold_arg, FOLD_HELP, LISTS_HELP, UsageParser
from kws_tf.config import DetectorConfig
from kws_tf.dataset import SPLITS, DataError, split_label
from kws_tf.decisions import verify_scores_at
from kws_tf.evaluate import metrics
from kws_tf.evaluate.streams import keyword_stream, split_bank
from kws_tf.evaluate.traces import TraceError, check_same_models, model_digests, read_traces
from kws_tf.runtime import detector_config
from kws_tf.sidecar import ModelDirError, load_sidecar


def stream_words(bank, keyword: str, minutes: float, seed: int) -> list[tuple[str, float, float]]:
    """``[(word, start_s, end_s)]`` of every clip in the seeded keyword stream (``keyword_stream``), in
    time order, spoken-part times from the stream's start."""
    return [(w, s + start, e + start) for start, seg in keyword_stream(bank, keyword, minutes, seed) for w, s, e in seg.words]


def word_before(words: list[tuple[str, float, float]], times_s: list[float]) -> list[str]:
    """For each time, the word whose spoken part started last at or before it ("" for none)."""
    starts = np.array([s for _, s, _ in words])
    idx = np.searchsorted(starts, np.asarray(times_s, float), "right") - 1
    return [words[i][0] if i >= 0 else "" for i in idx]


def verifier_hits(words: list[tuple[str, float, float]], verify: metrics.Trace, cfg: DetectorConfig) -> dict[str, tuple[int, int]]:
    """``{word: (occurrences, occurrences the verifier confirms)}``: confirmed when a candidate at some
    frame from the word's start to its end plus the matching tolerance would be confirmed
    (``verify_scores_at`` >= ``cfg.verify_threshold``), i.e. the verifier hears the keyword there."""
    # The gate asks at the keyword model's frames; the verifier's window ends are as fine a grid. Whether
    # each end would confirm, once, then per word a count over its stretch of ends (prefix sums).
    ends = np.asarray(verify[0], float)
    confirms = np.concatenate([[0], np.cumsum(verify_scores_at(ends, ends, verify[1], cfg) >= cfg.verify_threshold)])
    lo = np.searchsorted(ends, [s for _, s, _ in words], "left")
    hi = np.searchsorted(ends, [e + metrics.TOLERANCE_S for _, _, e in words], "right")
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for (w, _, _), yes in zip(words, confirms[hi] > confirms[lo]):
        out[w][0] += 1
        out[w][1] += int(yes)
    return {w: (n, k) for w, (n, k) in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(description=doc_summary(__doc__))
    p.add_argument("--models", default="saved_models", help="the package the traces came from (its gate setting is replayed)")
    p.add_argument("--data-dir", required=True, help="the data set the traces' streams were built from")
    p.add_argument("--traces", nargs="+", required=True, metavar="FILE.npz", help="saved by tools/tune_detector.py --save-traces")
    p.add_argument("--lists-dir", help=LISTS_HELP)
    p.add_argument("--fold", type=fold_arg, metavar="K/N", help=FOLD_HELP)
    p.add_argument("--min-alarms", type=int, default=2, help="suggest the words with at least this many false alarms")
    args = p.parse_args(argv)
    try:
        sidecar = load_sidecar(args.models, "kws")
        cfg = detector_config(args.models, sidecar)
    except ModelDirError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    keyword = sidecar["keyword"]
    alarms: collections.Counter = collections.Counter()
    confirmed: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    hours, caught, keywords, banks, digests = 0.0, 0, 0, {}, {}
    for path in args.traces:
        try:
            (t, pr, spans, duration, vt, vp), stream = read_traces(path)
        except TraceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        split = str(stream.get("split", "")).split(" ")[0]
        if split not in SPLITS or "seed" not in stream or "minutes" not in stream:
            print(f"error: {path}: saved without its stream record; save it again with tools/tune_detector.py --save-traces", file=sys.stderr)
            return 1
        if split_label(split, args.fold, args.lists_dir) != stream["split"]:
            print(f"error: {path}: a stream of the '{stream['split']}' split; pass the --fold and --lists-dir it was saved with", file=sys.stderr)
            return 1
        precision = stream.get("precision", "float32")
        try:
            if precision not in digests:  # the package's files at each precision the traces were saved at, once
                digests[precision] = model_digests(args.models, precision)
            check_same_models([{"file": path, **stream}], digests[precision], args.models)
            if split not in banks:
                banks[split] = split_bank(args.data_dir, split, args.fold, args.lists_dir)
        except (DataError, ModelDirError, TraceError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        words = stream_words(banks[split], keyword, float(stream["minutes"]), int(stream["seed"]))
        kw = np.array([(s, e) for w, s, e in words if w == keyword]).reshape(-1, 2)
        if kw.shape != spans.shape or not np.allclose(kw, spans, atol=1e-6):
            print(f"error: {path}: the stream rebuilt from {args.data_dir} does not hold the traces' keywords; "
                  "pass the --data-dir the traces were saved from", file=sys.stderr)
            return 1
        verify = (vt, vp) if len(vt) else None
        found = metrics.detections(t, pr, cfg, cfg.threshold, verify)
        false_fires = metrics.false_alarm_times(found, spans)
        caught += len(found) - len(false_fires)  # every other detection hit a keyword of its own
        keywords += len(spans)
        alarms.update(word_before(words, false_fires))
        if verify is not None and cfg.verify_threshold > 0:
            for w, (n, k) in verifier_hits(words, verify, cfg).items():
                confirmed[w][0] += n
                confirmed[w][1] += k
        hours += duration / 3600.0
    total = sum(alarms.values())
    print(f"keyword '{keyword}', gate at {args.models}'s setting (threshold {cfg.threshold:g}, verify >= {cfg.verify_threshold:g}); "
          f"{caught} of {keywords} keywords caught ({caught / max(keywords, 1):.1%}), "
          f"{total} false alarms in {hours:.1f} h of stream ({len(args.traces)} file(s)), by the word spoken last before each:")
    for w, n in alarms.most_common():
        print(f"  {w or '(none)':10s} {n:4d}")
    if confirmed:
        print(f"words the verifier confirms as '{keyword}' (score >= {cfg.verify_threshold:g} inside the word), share of their occurrences:")
        for w in sorted(confirmed, key=lambda w: (w != keyword, -confirmed[w][1] / confirmed[w][0], w)):
            n, k = confirmed[w]
            if k or w == keyword:
                print(f"  {w:10s} {k:5d} of {n:6d}  {k / n:6.2%}" + ("  (the keyword itself)" if w == keyword else ""))
    suggest = [w for w, n in alarms.most_common() if w and n >= args.min_alarms]
    print(f"words with >= {args.min_alarms} false alarms: {', '.join(suggest) or '(none)'}")
    if suggest:
        print(f"next verifier: --set 'word_data.confusable_words=[{','.join(suggest)}]' --set word_data.confusable_prob=0.15")
    return 0


if __name__ == "__main__":
    sys.exit(main())
