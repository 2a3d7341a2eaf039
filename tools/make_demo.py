"""Make the bundled demo recording: the keyword and a few command words spoken by espeak-ng (no
data set audio), with pauses, over pink noise at a fixed SNR.

    python tools/make_demo.py [--words stop go left yes] [--snr-db 15] [--out demo/stop_go_left_yes.flac]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import soundfile as sf

from kws_tf.cli import doc_summary
from kws_tf.dataset import speech_extent
from kws_tf.train.synth import Voice, render_word

SR = 16000


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=doc_summary(__doc__))
    p.add_argument("--words", nargs="+", default=["stop", "go", "left", "yes"])
    p.add_argument("--snr-db", type=float, default=15.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("demo", "stop_go_left_yes.flac"))
    args = p.parse_args(argv)
    audio = make_demo(args.words, Voice("en-US", "m3", 50, 150), args.snr_db, args.seed)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    sf.write(args.out, audio, SR, subtype="PCM_16")
    print(f"wrote {args.out} ({len(audio) / SR:.1f} s): {' '.join(args.words)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
