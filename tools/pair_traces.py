"""Pair the keyword scores of one saved trace with the word-model ("stop" verifier) scores of another
saved on the same validation stream: the traces a package of the first's keyword model and the second's
word model would save, without running either model again. Tune the pair's gate with
``tools/tune_detector.py --models PKG --traces OUT.npz``, PKG holding those two models.

    python tools/pair_traces.py KEYWORD_TRACES.npz VERIFIER_TRACES.npz --out PAIR.npz

Both files come from ``tools/tune_detector.py --save-traces`` with the same --split, --seed, --minutes
and --precision (different packages).
"""

from __future__ import annotations

import os
import sys

from kws_tf.cli import doc_summary, output_problem, UsageParser
from kws_tf.evaluate.traces import TraceError, pair_traces, save_traces


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(description=doc_summary(__doc__))
    p.add_argument("keyword_traces", help="traces whose keyword-model scores to keep")
    p.add_argument("verifier_traces", help="traces of the same stream whose word-model scores to use")
    p.add_argument("--out", required=True, metavar="PAIR.npz", help="where to write the paired traces")
    args = p.parse_args(argv)
    if not args.out.endswith(".npz"):
        p.error(f"--out {args.out}: name the paired traces FILE.npz")
    if os.path.abspath(args.out) in {os.path.abspath(args.keyword_traces), os.path.abspath(args.verifier_traces)}:
        p.error(f"--out {args.out}: is one of the inputs; write the pair to a new file")
    if problem := output_problem(args.out):
        p.error(f"--out {args.out}: {problem}")
    try:
        traces, stream = pair_traces(args.keyword_traces, args.verifier_traces)
    except TraceError as e:
        raise SystemExit(f"error: {e}")
    save_traces(args.out, traces, stream)
    print(f"wrote {args.out}: keyword scores of {args.keyword_traces}, word-model scores of {args.verifier_traces} "
          f"({stream['split']} seed {stream['seed']}, {len(traces[2])} keywords); tune it with "
          f"tools/tune_detector.py --models PKG --traces {args.out}, PKG holding that keyword model and that word model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
