"""Measure the runtime: real-time factor on a 10 s clip (float32 and int8), per-hop latency of the
live loop, CPU share of one core when fed in real time, model sizes and the runtime's install size.
Runtime modules and numpy only (no TensorFlow).

    python tools/benchmark_runtime.py --models saved_models [--clip some10s.wav] [--realtime-s 10]
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import math
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kws_tf.audio_io import AudioError, read_audio  # noqa: E402
from kws_tf.cli import default_models_dir, doc_summary, UsageError, UsageParser  # noqa: E402
from kws_tf.runtime import Transcriber  # noqa: E402
from kws_tf.sidecar import ModelDirError, verifier_folders  # noqa: E402
from kws_tf.tflite_model import ModelLoadError  # noqa: E402

SR = 16000
# The base install's distributions (setup.cfg install_requires and what they pull in).
RUNTIME_DISTS = ("numpy", "ai-edge-litert", "flatbuffers", "protobuf", "ml_dtypes", "backports.strenum",
                 "typing_extensions", "soundfile", "cffi", "pycparser", "soxr", "pydub", "tqdm")


def test_clip(path: str | None, seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    """``(seconds * 16000,)`` float32: the given file (cut/looped) or faint noise with tone bursts."""
    n = int(seconds * SR)
    if path:
        audio = read_audio(path, SR)
        return np.resize(audio, n).astype(np.float32)
    rng = np.random.default_rng(seed)
    audio = 0.01 * rng.standard_normal(n)
    t = np.arange(int(0.4 * SR)) / SR
    for k, start in enumerate(np.arange(0.5, seconds - 0.5, 0.8)):
        i = int(start * SR)
        audio[i:i + len(t)] += 0.2 * np.sin(2 * np.pi * (300 + 150 * k) * t) * np.hanning(len(t))
    return audio.astype(np.float32)


def real_time_factor(tr: Transcriber, audio: np.ndarray, repeats: int) -> dict:
    tr.transcribe(audio)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tr.transcribe(audio)
        times.append(time.perf_counter() - t0)
    best, median = min(times), float(np.median(times))
    return {"seconds_median": round(median, 4), "rtf_median": round(median / (len(audio) / SR), 5),
            "rtf_best": round(best / (len(audio) / SR), 5)}


def model_call_ms(runner, frames: int, n_mels: int, repeats: int = 50) -> float:
    x = np.random.default_rng(0).standard_normal((frames, n_mels)).astype(np.float32)
    runner(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        runner(x)
    return round(1000 * (time.perf_counter() - t0) / repeats, 3)


def hop_latency(tr: Transcriber, audio: np.ndarray, block_s: float = 0.05) -> dict:
    """Wall time of ``feed`` per 50 ms block (what the live loop does per PortAudio block), split
    into blocks that completed a keyword hop (the model re-run on the last window) and the rest."""
    tr.reset()
    block = int(block_s * SR)
    hop, other = [], []
    for i in range(0, len(audio), block):
        before = tr._next_kws_end
        t0 = time.perf_counter()
        tr.feed(audio[i:i + block])
        (hop if tr._next_kws_end != before else other).append(1000 * (time.perf_counter() - t0))

    def stats(ms: list[float]) -> dict:
        a = np.array(ms)
        return {"blocks": len(a), "median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
                "max_ms": round(float(a.max()), 3)}
    return {"block_ms": block_s * 1000, "blocks_with_keyword_hop": stats(hop), "other_blocks": stats(other)}


def cpu_share_realtime(tr: Transcriber, audio: np.ndarray, seconds: float, block_s: float = 0.05) -> dict:
    """Feed blocks at the pace a microphone delivers them; CPU time / wall time of this process."""
    tr.reset()
    block = int(block_s * SR)
    n_blocks = int(seconds / block_s)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for k in range(n_blocks):
        i = (k * block) % (len(audio) - block)
        tr.feed(audio[i:i + block])
        delay = wall0 + (k + 1) * block_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"seconds": round(wall, 2), "cpu_share_of_one_core": round(cpu / wall, 4)}


def dist_size_mb(names: tuple[str, ...]) -> dict:
    """Installed size of distributions, from their RECORD file lists."""
    sizes = {}
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        total = 0
        for f in dist.files or []:
            p = dist.locate_file(f)
            if os.path.isfile(p):
                total += os.path.getsize(p)
        sizes[dist.metadata["Name"]] = round(total / 1e6, 1)
    return {"per_distribution_mb": sizes, "total_mb": round(sum(sizes.values()), 1)}


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(description=doc_summary(__doc__))
    p.add_argument("--models", default=None)
    p.add_argument("--clip", help="a WAV to use (cut or looped to 10 s); default: synthetic")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--realtime-s", type=float, default=10.0, help="seconds of real-time feeding per mode")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads")
    args = p.parse_args(argv)
    if args.repeats < 1 or not 0 < args.realtime_s < math.inf or args.threads < 1:
        p.error(f"--repeats and --threads must be 1 or more and --realtime-s more than 0, not {args.repeats}, "
                f"{args.threads} and {args.realtime_s}")
    try:
        models = args.models or default_models_dir()
        audio = test_clip(args.clip)
        for precision in ("float32", "int8"):  # a missing or broken package fails now, in one line
            Transcriber.from_dir(models, precision=precision)
    except (UsageError, AudioError, ModelDirError, ModelLoadError) as exc:
        p.error(str(exc))
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                    "models": os.path.abspath(models)}
    for task in ("kws", "words", *verifier_folders(models)):
        folder = os.path.join(models, task)
        if not os.path.isdir(folder):
            continue
        report[f"{task}_files_kb"] = {f: round(os.path.getsize(os.path.join(folder, f)) / 1024, 1)
                                      for f in sorted(os.listdir(folder)) if f.endswith(".tflite")}
    for precision in ("float32", "int8"):
        r: dict = {}
        for mode in ("gated", "no_gate"):
            tr = Transcriber.from_dir(models, precision=precision, mode=mode, num_threads=args.threads)
            r[f"rtf_10s_{mode}"] = real_time_factor(tr, audio, args.repeats)
        n_mels = tr.features.n_mels
        r["kws_call_ms"] = model_call_ms(tr.kws_runner, tr.kws_frames, n_mels)
        r["word_call_ms"] = model_call_ms(tr.word_runner, tr.word_frames, n_mels)
        if tr.has_verifier:  # all its verifiers, once per window the gate asks about
            r["verifier_call_ms"] = model_call_ms(tr.verifier_runner, tr.word_frames, n_mels)
        r["live_feed_per_block_no_gate"] = hop_latency(tr, audio)
        for mode in ("gated", "no_gate"):
            tr = Transcriber.from_dir(models, precision=precision, mode=mode, num_threads=args.threads)
            r[f"realtime_{mode}"] = cpu_share_realtime(tr, audio, args.realtime_s)
        report[precision] = r
    report["runtime_install"] = dist_size_mb(RUNTIME_DISTS)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
