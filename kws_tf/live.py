"""``python -m kws_tf.live``: transcribe the microphone as you speak (runtime modules, numpy, soxr and
sounddevice; never TensorFlow). The PortAudio callback only queues blocks; the main thread resamples,
runs the models and prints."""

from __future__ import annotations

import kws_tf.one_blas_thread  # noqa: F401, I001  (before numpy)

import argparse
import datetime
import logging
import math
import os
import queue
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import soxr

from kws_tf.audio_io import to_mono_float, write_wav_atomic
from kws_tf.cli import UsageError, UsageParser, add_model_options, check_thresholds, transcriber_kwargs
from kws_tf.decisions import KeywordEvent, UtteranceEnd
from kws_tf.runtime import Transcriber
from kws_tf.sidecar import ModelDirError
from kws_tf.tflite_model import ModelLoadError

PROG = "python -m kws_tf.live"
PREROLL_S = 1.5  # saved utterances start this long before the keyword fired, so they include it
UNGATED_HISTORY_S = 120.0  # --no-gate utterances end only at a pause: this much audio is kept for saving them (7.7 MB)
QUEUE_S = 5.0  # audio the microphone may run ahead of the models before blocks are dropped (and counted)
log = logging.getLogger(__name__)


class LiveError(Exception):
    """A problem with the audio set-up; ``str()`` is a one-line message saying what to do."""


@dataclass
class LiveStats:
    audio_s: float = 0.0
    keywords: int = 0
    utterances: int = 0
    overflows: int = 0
    saved: list[str] = field(default_factory=list)
    feed_ms: list[float] = field(default_factory=list)  # processing time of each block


class _AudioHistory:
    """At least the last ``seconds`` of the models' audio, addressed by absolute sample index. Blocks are kept as
    they come (appending copies nothing else) and joined only when a slice is asked for."""

    def __init__(self, seconds: float, rate_hz: int) -> None:
        self.rate, self.capacity = rate_hz, int(seconds * rate_hz)
        self._blocks: deque[np.ndarray] = deque()
        self._held = 0
        self.end = 0

    @property
    def begin(self) -> int:
        """The absolute index of the oldest sample still held."""
        return self.end - self._held

    def append(self, x: np.ndarray) -> None:
        if len(x):
            self._blocks.append(np.array(x, np.float32))
            self._held += len(x)
            self.end += len(x)
        while self._blocks and self._held - len(self._blocks[0]) >= self.capacity:
            self._held -= len(self._blocks.popleft())

    def slice_s(self, start_s: float, end_s: float) -> np.ndarray:
        lo = max(int(start_s * self.rate), self.begin)
        hi = min(int(end_s * self.rate), self.end)
        if hi <= lo:
            return np.zeros(0, np.float32)
        return np.concatenate(self._blocks)[lo - self.begin:hi - self.begin]


def run_live(tr: Transcriber, blocks: Iterable[np.ndarray], rate_hz: int, save_dir: str | None = None,
             duration_s: float | None = None, emit: Callable[[str], None] = print) -> LiveStats:
    """The live loop over any block source (a microphone, or a list in tests).

    Args:
        tr: a transcriber (reset here).
        blocks: ``(samples,)`` or ``(samples, channels)`` float32 blocks at ``rate_hz``.
        rate_hz: the source's sample rate; resampled to the models' rate as a stream.
        save_dir: where each utterance is kept as ``utterance-<time>.wav`` (None: not kept).
        duration_s: stop after this much audio (None: until the source ends).
        emit: where the printed lines go.

    Returns:
        counts and the processing time of each block.
    """
    sr = tr.features.sample_rate_hz
    tr.reset()
    stats = LiveStats()
    resampler = None if rate_hz == sr else soxr.ResampleStream(rate_hz, sr, 1, dtype="float32")
    history = _AudioHistory(UNGATED_HISTORY_S if tr.mode == "no_gate" else tr.decoder_cfg.max_s + PREROLL_S + 5.0, sr)
    if save_dir:
        check_save_dir(save_dir)
    it = iter(blocks)
    try:
        _loop(tr, it, resampler, history, stats, save_dir, duration_s, emit)
    except KeyboardInterrupt:  # Ctrl-C ends listening, not the program's bookkeeping
        log.info("interrupted")
    finally:
        getattr(it, "close", lambda: None)()  # closes the stream of a generator source
    try:  # the source ended, --duration was reached or Ctrl-C: the utterance in progress is printed (and kept) too
        _finish(tr, resampler, history, stats, save_dir, duration_s, emit)
    except KeyboardInterrupt:
        log.info("interrupted")
    return stats


def _loop(tr: Transcriber, it: Iterator[np.ndarray], resampler, history: _AudioHistory, stats: LiveStats,
          save_dir: str | None, duration_s: float | None, emit: Callable[[str], None]) -> None:
    sr = tr.features.sample_rate_hz
    for block in it:
        mono = to_mono_float(block)
        x = mono if resampler is None else resampler.resample_chunk(mono)
        if duration_s is not None:
            x = x[: max(0, int(duration_s * sr) - history.end)]
        history.append(x)
        t0 = time.perf_counter()
        events = tr.feed(x)
        stats.feed_ms.append(1000.0 * (time.perf_counter() - t0))
        stats.audio_s = history.end / sr
        _report(events, history, stats, save_dir, emit, sr)
        if duration_s is not None and history.end >= int(duration_s * sr):
            return


def _finish(tr: Transcriber, resampler, history: _AudioHistory, stats: LiveStats, save_dir: str | None,
            duration_s: float | None, emit: Callable[[str], None]) -> None:
    """End the stream: the resampler's last samples, then ``Transcriber.finish`` (the words of an utterance
    whose pause never came)."""
    sr = tr.features.sample_rate_hz
    events = []
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if duration_s is not None:
            tail = tail[: max(0, int(duration_s * sr) - history.end)]
        history.append(tail)
        events += tr.feed(tail)
    events += tr.finish()
    stats.audio_s = history.end / sr
    _report(events, history, stats, save_dir, emit, sr)


def _report(events: list, history: _AudioHistory, stats: LiveStats, save_dir: str | None, emit: Callable[[str], None], sr: int) -> None:
    """Print the keyword detections and utterances among ``events``, count them, and keep each utterance's audio."""
    for event in events:
        clock = datetime.datetime.now().strftime("%H:%M:%S")
        if isinstance(event, KeywordEvent):
            stats.keywords += 1
            emit(f"{clock}  {event.time_s:8.2f} s  keyword  (score {event.score:.2f})")
        elif isinstance(event, UtteranceEnd):
            stats.utterances += 1
            emit(f"{clock}  {event.end_s:8.2f} s  text     {event.text or '(no words)'}")
            if save_dir:
                start_s = max(0.0, event.start_s - PREROLL_S)
                if int(start_s * sr) < history.begin:  # only a --no-gate utterance without a pause is this long
                    print(f"{PROG}: warning: the utterance ending at {event.end_s:.1f} s is kept without its first "
                          f"{history.begin / sr - start_s:.1f} s (only the last {history.capacity / sr:.0f} s "
                          "of audio are held)", file=sys.stderr, flush=True)
                try:
                    stats.saved.append(_save(save_dir, history.slice_s(start_s, event.end_s), event, sr))
                except OSError as exc:  # e.g. the disk filled up: listening goes on
                    print(f"{PROG}: warning: could not save the utterance in {save_dir} ({exc.strerror or exc}); "
                          "listening goes on", file=sys.stderr, flush=True)


def check_save_dir(save_dir: str) -> None:
    """Make ``save_dir`` and check that files can be written there, else UsageError (one line)."""
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise UsageError(f"--save-dir {save_dir}: is a file, not a folder; choose a folder")
    try:
        os.makedirs(save_dir, exist_ok=True)
        probe = os.path.join(save_dir, f".write-check-{os.getpid()}")
        open(probe, "x").close()
        os.remove(probe)
    except OSError as exc:
        raise UsageError(f"--save-dir {save_dir}: cannot write there ({exc.strerror or exc}); choose another folder") from None


def _save(save_dir: str, audio: np.ndarray, event: UtteranceEnd, sr: int) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(save_dir, f"utterance-{stamp}-{event.start_s:09.2f}s.wav")
    write_wav_atomic(path, audio, sr)
    log.info("saved %s (%s)", path, event.text)
    return path


def import_sounddevice():
    """sounddevice, or LiveError saying what to install."""
    try:
        import sounddevice
    except OSError:  # raised at import when the PortAudio shared library is missing
        raise LiveError("the PortAudio library is missing; install it: sudo apt install libportaudio2 "
                        "(Debian, Ubuntu, Raspberry Pi OS) or brew install portaudio (macOS)") from None
    except ImportError:
        raise LiveError("sounddevice is not installed; run: pip install sounddevice") from None
    return sounddevice


class MicrophoneSource:
    """Mono blocks from a PortAudio input stream at the device's native rate. A device that records only in
    stereo (or more channels) is opened so and mixed down (the mean, as for files). PortAudio's overflows are
    counted; so are the blocks dropped when the models fall more than ``QUEUE_S`` behind the microphone (a board
    slower than real time), oldest first and with a warning, so that the delay cannot grow without end.

    Args:
        sd: the sounddevice module.
        device: index or name (None: the default input).
        block_s: seconds per block.
    """

    def __init__(self, sd, device: int | str | None = None, block_s: float = 0.05) -> None:
        self.sd, self.device = sd, device
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise LiveError(f"no usable input device ({exc}); connect a microphone or pick one with --device "
                            "(see --list-devices)") from None
        self.name = info["name"]
        self.rate_hz = int(info["default_samplerate"])
        self.block_frames = max(1, int(block_s * self.rate_hz))
        self.channels = self._channels(int(info.get("max_input_channels") or 1))
        self.overflows = 0
        self.dropped_frames = 0
        self._warned_frames = 0
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(2, math.ceil(QUEUE_S / block_s)))
        self._silence_s = 3.0 + 2 * block_s  # this long without a block: the device has stopped

    @property
    def dropped_s(self) -> float:
        return self.dropped_frames / self.rate_hz

    def _channels(self, most: int) -> int:
        """1 where the device can record mono, else the fewest channels it takes (mixed down in the callback)."""
        for channels in dict.fromkeys((1, 2, max(1, most))):
            try:
                self.sd.check_input_settings(device=self.device, channels=channels, dtype="float32",
                                             samplerate=self.rate_hz)
                return channels
            except (ValueError, self.sd.PortAudioError):
                continue
        return 1  # none fits: opening the stream says why

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        block = to_mono_float(indata)  # a new array: PortAudio reuses indata
        try:
            self._queue.put_nowait(block)
        except queue.Full:  # the oldest block goes, so that the models catch up with the newest audio
            try:
                self.dropped_frames += len(self._queue.get_nowait())
            except queue.Empty:  # taken by the main thread meanwhile
                pass
            self._queue.put_nowait(block)

    def _warn_dropped(self) -> None:
        """A warning at the first dropped block, then whenever another 10 s have been dropped."""
        dropped = self.dropped_frames  # read once: the callback thread adds to it
        if dropped > self._warned_frames and (self._warned_frames == 0 or dropped - self._warned_frames >= 10 * self.rate_hz):
            print(f"{PROG}: warning: the models fall behind the microphone; {dropped / self.rate_hz:.1f} s of audio "
                  "dropped so far (the machine is too busy to keep up: close other programs, or try --precision int8)",
                  file=sys.stderr, flush=True)
            self._warned_frames = dropped

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            stream = self.sd.InputStream(device=self.device, samplerate=self.rate_hz, channels=self.channels,
                                         dtype="float32", blocksize=self.block_frames, callback=self._callback)
        except (ValueError, self.sd.PortAudioError) as exc:
            raise LiveError(f"cannot open input device {self.name!r} ({exc}); pick another with --device") from None
        with stream:
            while True:
                try:
                    block = self._queue.get(timeout=self._silence_s)
                except queue.Empty:
                    raise LiveError(f"no audio from {self.name!r} for {self._silence_s:.0f} s; check the device") from None
                self._warn_dropped()
                yield block


def _device(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog=PROG, description="Listen to the microphone; print when the keyword fires and the words after it.")
    p.add_argument("--device", type=_device, default=None, help="input device index or name (default: system default)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--save-dir", help="keep each utterance as a WAV file here")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds of audio")
    p.add_argument("--no-gate", action="store_true", help="transcribe all words, not only after the keyword")
    add_model_options(p)
    p.add_argument("--block-ms", type=float, default=50.0, help="audio block size (default: 50 ms)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 also after Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    source = None
    stats = LiveStats()
    try:
        check_thresholds(args)
        if args.block_ms <= 0 or (args.duration is not None and args.duration <= 0):
            raise UsageError("--block-ms and --duration must be more than 0")
        if args.save_dir:
            check_save_dir(args.save_dir)
        sd = import_sounddevice()
        if args.list_devices:
            print(sd.query_devices())
            return 0
        tr = Transcriber.from_dir(**transcriber_kwargs(args, "no_gate" if args.no_gate else "gated"))
        source = MicrophoneSource(sd, args.device, args.block_ms / 1000.0)
        print(f"listening on {source.name!r} at {source.rate_hz} Hz; press Ctrl-C to stop", file=sys.stderr, flush=True)
        stats = run_live(tr, source, source.rate_hz, args.save_dir, args.duration,
                         emit=lambda line: print(line, flush=True))
    except (LiveError, ModelDirError, ModelLoadError, UsageError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # during start-up
        pass
    overflows = source.overflows if source else 0
    dropped = f", {source.dropped_s:.1f} s of audio dropped (models behind)" if source and source.dropped_frames else ""
    mean_ms = float(np.mean(stats.feed_ms)) if stats.feed_ms else 0.0
    print(f"{PROG}: {stats.audio_s:.1f} s of audio, {stats.keywords} keyword(s), {stats.utterances} utterance(s), "
          f"{overflows} input overflow(s){dropped}, {mean_ms:.1f} ms per block", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
