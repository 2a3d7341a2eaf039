"""Make the bundled demo recording: the keyword and a few command words spoken by espeak-ng (no
data set audio), with pauses, over pink noise at a fixed SNR.

    python tools/make_demo.py [--words stop go left yes] [--snr-db 15] [--out demo/stop_go_left_yes.flac]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import soundfile as sf

from kws_tf.atomic_write import atomic_path
from kws_tf.cli import UsageError, UsageParser, doc_summary, run_main
from kws_tf.dataset import SYNTH_WORD_RE, speech_extent
from kws_tf.train.synth import SynthError, Voice, render_word

SR = 16000
PROG = "make_demo.py"
# What --out may end in: soundfile format and subtype for each (the bundled demo is FLAC).
OUT_FORMATS = {".flac": ("FLAC", "PCM_16"), ".wav": ("WAV", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
SNR_RANGE_DB = (-50.0, 100.0)


class WriteError(Exception):
    """The demo file could not be written; ``str()`` is a one-line message."""


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` float32 noise with a 1/f power spectrum, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, n)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def make_demo(words: list[str], voice: Voice, snr_db: float, seed: int, gap_s: float = 0.6, lead_s: float = 1.0) -> np.ndarray:
    """Words one after another (each trimmed to its spoken part, ``gap_s`` apart) after ``lead_s``
    of noise, then 1.5 s of noise; ``(samples,)`` float32."""
    rng = np.random.default_rng(seed)
    pieces = [np.zeros(int(lead_s * SR), np.float32)]
    for word in words:
        clip = render_word(word, voice, rng, perturb=False)
        start, end = speech_extent(clip)
        pieces += [clip[int(start * SR) : int(end * SR)] / np.abs(clip).max() * 0.5, np.zeros(int(gap_s * SR), np.float32)]
    pieces.append(np.zeros(int(1.5 * SR), np.float32))
    speech = np.concatenate(pieces)
    active = speech[np.abs(speech) > 1e-3]
    noise = pink_noise(len(speech), rng) * np.sqrt(np.mean(active**2)) / 10 ** (snr_db / 20)
    return np.clip(speech + noise, -1, 1)


def check_args(args: argparse.Namespace) -> None:
    """UsageError for a bad option value, before any synthesis: the words (as ``kws_tf.train.synth``
    takes them), the SNR, the seed, and --out (a writable file path with a known audio extension)."""
    bad = [w for w in args.words if not SYNTH_WORD_RE.match(w)]
    if bad:
        raise UsageError(f"--words: not a lowercase English word: {', '.join(map(repr, bad))}; "
                         "use lowercase letters, ' and - (starting with a letter)")
    low, high = SNR_RANGE_DB
    if not (math.isfinite(args.snr_db) and low <= args.snr_db <= high):
        raise UsageError(f"--snr-db must be a number between {low:g} and {high:g} dB, not {args.snr_db}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, not {args.seed}")
    out = args.out
    if os.path.isdir(out):
        raise UsageError(f"--out {out}: is a folder; give a file name such as {os.path.join(out, 'demo.flac')}")
    ext = os.path.splitext(out)[1].lower()
    if ext not in OUT_FORMATS:
        raise UsageError(f"--out {out}: cannot write '{ext or 'no extension'}' files; end the name in {', '.join(OUT_FORMATS)}")
    folder = os.path.dirname(os.path.abspath(out))
    existing = folder
    while not os.path.exists(existing):  # the folder is created only once the audio is ready
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"--out {out}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: no permission to write in {existing}; choose another path")


def write_atomic(path: str, audio: np.ndarray) -> None:
    """Write through a temporary file beside ``path`` (same extension and format), then rename it
    into place: a failed run leaves any file already at ``path`` as it was."""
    fmt, subtype = OUT_FORMATS[os.path.splitext(path)[1].lower()]
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path, suffix=os.path.splitext(path)[1]) as tmp:
            sf.write(tmp, audio, SR, format=fmt, subtype=subtype)
    except (OSError, RuntimeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        text = (getattr(exc, "strerror", None) or str(exc)).strip().splitlines()
        raise WriteError(f"cannot write {path}: {text[0] if text else type(exc).__name__}") from None


def run(args: argparse.Namespace) -> int:
    check_args(args)
    audio = make_demo(args.words, Voice("en-US", "m3", 50, 150), args.snr_db, args.seed)
    if not np.all(np.isfinite(audio)):
        raise WriteError(f"the demo audio is not finite; {args.out} was not written")
    write_atomic(args.out, audio)
    print(f"wrote {args.out} ({len(audio) / SR:.1f} s): {' '.join(args.words)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(prog=PROG, description=doc_summary(__doc__))
    p.add_argument("--words", nargs="+", default=["stop", "go", "left", "yes"], help="lowercase words to speak, in order")
    p.add_argument("--snr-db", type=float, default=15.0, help="speech-to-noise ratio in dB (default: 15)")
    p.add_argument("--seed", type=int, default=0, help="noise draw (default: 0)")
    p.add_argument("--out", default=os.path.join("demo", "stop_go_left_yes.flac"),
                   help=f"output file, {', '.join(OUT_FORMATS)} (default: demo/stop_go_left_yes.flac)")
    return run_main(PROG, p, argv, run, (SynthError, WriteError))


if __name__ == "__main__":
    sys.exit(main())
