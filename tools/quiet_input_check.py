r"""Does a model package write words where nobody speaks? Transcribes seconds of input without speech
(digital silence, DC offsets, int16-rounded faint tones, white / pink / brown noise and 50 Hz hum at
-100..-30 dBFS, and optionally the recordings of a noise folder at the same levels) through the runtime,
with and without the keyword gate, and prints the words written for each case. Exits 0 when nothing was
written, 1 otherwise (or on an error), so it can guard a newly trained package.

    python tools/quiet_input_check.py [--models saved_models] [--noise-dir DATA/_background_noise_] \
        [--seconds 20] [--precision float32] [--no-level-guard]

``--no-level-guard`` turns off the decoder's ``min_log_mel`` shortcut (windows quieter than it count as
silence without running the word model), to see what the word model itself makes of quiet input.
"""

from __future__ import annotations

import glob
import os
import sys

import numpy as np

from kws_tf.audio_io import AudioError, read_audio
from kws_tf.cli import doc_summary, run_main, UsageError, UsageParser
from kws_tf.runtime import Transcriber
from kws_tf.sidecar import ModelDirError
from kws_tf.tflite_model import ModelLoadError

LEVELS_DBFS = (-100, -90, -80, -70, -60, -50, -40, -30)
SR = 16000


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    return x / x.std()


def noise_sources(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Unit-RMS noises of ``n`` samples: white, pink (1/f power), brown (1/f^2, above ~10 Hz) and mains hum."""
    rng = np.random.default_rng(seed)
    f = np.fft.rfftfreq(n)
    shaped = {}
    for name, power in (("pink", 1), ("brown", 2)):
        spectrum = rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))
        spectrum[1:] /= np.maximum(f[1:], 10 / SR) ** (power / 2)
        spectrum[0] = 0
        shaped[name] = _unit(np.fft.irfft(spectrum, n))
    t = np.arange(n) / SR
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5))
    return {"white": _unit(rng.standard_normal(n)), **shaped, "hum 50 Hz": _unit(hum)}


def fixed_cases(n: int) -> dict[str, np.ndarray]:
    """Inputs at one level each: digital silence, DC offsets (with -80 dBFS dither), int16 rounding of a faint tone."""
    dither = np.random.default_rng(1).standard_normal(n) * 1e-4
    tone = np.round(np.sin(2 * np.pi * 440 * np.arange(n) / SR) * 2) / 32768
    return {"zeros": np.zeros(n), "dc 0.01": 0.01 + dither, "dc 0.1": 0.1 + dither, "int16 faint tone": tone}


def words_written(tr: Transcriber, audio: np.ndarray) -> list[str]:
    return tr.transcribe(audio.astype(np.float32)).text.split()


def run(args) -> int:
    overrides = {"min_log_mel": -np.inf} if args.no_level_guard else None
    n = int(args.seconds * SR)
    if n < SR:
        raise UsageError("--seconds must be at least 1")
    sources = noise_sources(n)
    if args.noise_dir:
        files = sorted(glob.glob(os.path.join(args.noise_dir, "*.wav")))
        if not files:
            raise UsageError(f"{args.noise_dir}: no .wav files; pass a folder of noise recordings (e.g. DATA/_background_noise_)")
        for path in files:
            try:
                x = read_audio(path)
            except AudioError as exc:
                print(f"skipped {exc}", file=sys.stderr)
                continue
            if len(x) < n or x.std() == 0:
                print(f"skipped {path}: shorter than {args.seconds:g} s or silent", file=sys.stderr)
                continue
            sources[os.path.basename(path)] = _unit(x[:n].astype(np.float64))
    cases = fixed_cases(n)
    for name, unit in sources.items():
        for db in LEVELS_DBFS:
            cases[f"{name} at {db} dBFS"] = unit * 10 ** (db / 20)
    total = 0
    for mode in ("gated", "no_gate"):
        tr = Transcriber.from_dir(args.models, args.precision, mode=mode, decoder_overrides=overrides)
        loud = []
        for name, audio in cases.items():
            words = words_written(tr, audio)
            total += len(words)
            if words:
                loud.append(f"{name}: {len(words)} ({' '.join(words[:4])}{' ...' if len(words) > 4 else ''})")
        guard = "level guard off" if args.no_level_guard else "level guard on"
        print(f"{mode} ({guard}): {len(cases)} cases of {args.seconds:g} s, words in {len(loud)}"
              + "".join(f"\n  {line}" for line in loud))
    print("nothing written" if total == 0 else f"{total} words written where nobody speaks")
    return 0 if total == 0 else 1


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(prog="quiet_input_check.py", description=doc_summary(__doc__))
    p.add_argument("--models", default="saved_models", help="export folder with kws/ and words/ (default: saved_models/)")
    p.add_argument("--noise-dir", help="also use these .wav noise recordings (each at least --seconds long)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each case (default: 20)")
    p.add_argument("--precision", default="float32", choices=("float32", "int8"))
    p.add_argument("--no-level-guard", action="store_true", help="run the word model on every window, however quiet")
    return run_main("quiet_input_check.py", p, argv, run, (ModelDirError, ModelLoadError))


if __name__ == "__main__":
    sys.exit(main())
