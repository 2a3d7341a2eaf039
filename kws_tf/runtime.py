"""The streaming transcriber: audio blocks of any size -> log-mel -> keyword model every hop on the
last window -> keyword gate -> word model on sliding 1 s windows -> events (numpy, ai-edge-litert
and kws_tf runtime modules only). Batch transcription is this loop fed one big block."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from kws_tf.config import SILENCE_LABEL, DecoderConfig, DetectorConfig, FeatureConfig, feature_difference, from_dict
from kws_tf.dataset import fit_length
from kws_tf.decisions import (Event, KeywordDetector, KeywordEvent, UtteranceEnd, WordDecoder, WordEvent, clamp_event, is_word_label,
                               verify_score, verify_windows)
from kws_tf.features import log_mel
from kws_tf.sidecar import ModelDirError, load_sidecar, load_verifiers, model_file, sidecar_path
from kws_tf.tflite_model import TFLiteModel

log = logging.getLogger(__name__)

# features (frames, n_mels) float32 -> scores float32 ((out_frames,) or (classes,))
Runner = Callable[[np.ndarray], np.ndarray]
MODES = ("gated", "no_gate", "single_word")


@dataclass(frozen=True)
class TranscriptResult:
    """What one recording contained."""

    duration_s: float
    keywords: list[KeywordEvent]
    words: list[WordEvent]

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)

    def to_dict(self) -> dict:
        return {"duration_s": round(self.duration_s, 3), "keywords": [k.to_dict() for k in self.keywords],
                "words": [w.to_dict() for w in self.words], "text": self.text}


class _GroupedLogMel:
    """Log-mel of a stream, computed in groups of ``group`` frames at fixed absolute positions, so
    the numbers are bit-identical however the audio was split into blocks."""

    def __init__(self, cfg: FeatureConfig, group: int) -> None:
        self.cfg, self.group = cfg, group
        self._need = (group - 1) * cfg.hop_samples + cfg.window_samples
        self._blocks: list[np.ndarray] = []
        self._count = 0

    def push(self, block: np.ndarray) -> Iterator[np.ndarray]:
        """Add ``(samples,)`` float32; yield each completed ``(group, n_mels)`` float32 group."""
        block = np.asarray(block, np.float32).reshape(-1)
        if len(block):
            self._blocks.append(block)
            self._count += len(block)
        if self._count < self._need:
            return
        pending = np.concatenate(self._blocks)
        step, pos = self.group * self.cfg.hop_samples, 0
        self._blocks, self._count = [], 0
        while len(pending) - pos >= self._need:
            yield log_mel(np.array(pending[pos:pos + self._need]), self.cfg)
            pos += step
        rest = pending[pos:]
        self._blocks, self._count = [rest], len(rest)


class _FrameBuffer:
    """The recent feature frames, addressed by absolute frame index; frames before the stream are
    the log-mel of silence."""

    def __init__(self, n_mels: int, silence: float, keep_frames: int) -> None:
        self.n_mels, self.silence, self.keep = n_mels, np.float32(silence), keep_frames
        self._data = np.zeros((0, n_mels), np.float32)
        self.start = 0  # absolute index of _data[0]

    @property
    def end(self) -> int:
        return self.start + len(self._data)

    def append(self, frames: np.ndarray) -> None:
        self._data = np.concatenate([self._data, frames])
        if len(self._data) > 2 * self.keep:
            drop = len(self._data) - self.keep
            self._data, self.start = self._data[drop:], self.start + drop

    def window(self, end: int, n: int) -> np.ndarray:
        """Frames ``[end - n, end)`` as ``(n, n_mels)`` float32, left-padded with silence."""
        lo = end - n
        if lo < self.start and lo >= 0:
            raise RuntimeError("frame buffer trimmed too early")
        pad = max(0, -lo)
        part = self._data[max(lo, 0) - self.start:end - self.start]
        if pad == 0:
            return part
        return np.concatenate([np.full((pad, self.n_mels), self.silence, np.float32), part])


def mean_runner(runners: Sequence[Runner]) -> Runner:
    """One runner from several models with the same outputs: the mean of their outputs (a verifier
    ensemble; the mean softmax's keyword entry is the mean of their keyword probabilities)."""
    def run(x: np.ndarray) -> np.ndarray:
        return np.mean([np.asarray(r(x), np.float32).reshape(-1) for r in runners], axis=0, dtype=np.float32)
    return run


def _config(cls, data: dict, sidecar: str):
    """A config dataclass from a sidecar section; a value of the wrong type or out of range is a ModelDirError
    naming the sidecar."""
    if not isinstance(data, dict):
        raise ModelDirError(f"{sidecar}: a settings section is {data!r}, not an object; re-export the model")
    try:
        return from_dict(cls, data)
    except (TypeError, ValueError) as exc:
        raise ModelDirError(f"{sidecar}: {exc}; correct it or re-export the model") from None


def _section(sidecar: dict, cls, name: str, path: str):
    """``cls`` from the sidecar's ``thresholds.<name>`` (its defaults where the sidecar has none)."""
    thresholds = sidecar.get("thresholds", {})
    return _config(cls, thresholds.get(name, {}) if isinstance(thresholds, dict) else thresholds, path)


def detector_config(models_dir: str, sidecar: dict | None = None) -> DetectorConfig:
    """The gate setting of ``models_dir/kws/model.json``, checked as the runtime loads it: a missing sidecar or a
    bad value is a ModelDirError naming the file (one line), not a traceback in a tool. ``sidecar``: that
    file already loaded (``load_sidecar(models_dir, "kws")``), so that it is not read twice."""
    if sidecar is None:
        sidecar = load_sidecar(models_dir, "kws")
    return _section(sidecar, DetectorConfig, "detector", sidecar_path(models_dir, "kws"))


class Transcriber:
    """Streaming keyword-gated transcription.

    Args:
        features: the feature settings both models were trained with.
        kws_runner: keyword model, ``(kws_frames, n_mels)`` -> ``(out_frames,)`` probabilities.
        kws_frames: keyword model input frames (10 s).
        kernel_frames, stride_frames: how keyword output frames map to input frames.
        word_runner: word model, ``(word_frames, n_mels)`` -> ``(classes,)`` softmax.
        word_frames: word model input frames (1 s).
        labels: word classes in output order.
        detector, decoder: decision settings.
        mode: "gated" (words only after a keyword), "no_gate" (all words) or "single_word".
        keyword: the keyword; when it is one of the verifier's labels and ``detector.verify_threshold`` > 0,
            the verifier must confirm each keyword detection.
        verifier_runner, verifier_labels: a second word model (same features and input frames) that
            confirms keyword detections instead of ``word_runner``; None: the word model verifies.
    """

    def __init__(self, features: FeatureConfig, kws_runner: Runner, kws_frames: int, kernel_frames: int,
                 stride_frames: int, word_runner: Runner, word_frames: int, labels: Sequence[str],
                 detector: DetectorConfig = DetectorConfig(), decoder: DecoderConfig = DecoderConfig(),
                 mode: str = "gated", keyword: str | None = None, verifier_runner: Runner | None = None,
                 verifier_labels: Sequence[str] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.features, self.mode = features, mode
        self.kws_runner, self.word_runner = kws_runner, word_runner
        self.kws_frames, self.kernel_frames, self.stride_frames = kws_frames, kernel_frames, stride_frames
        self.word_frames, self.labels = word_frames, list(labels)
        self.detector_cfg, self.decoder_cfg = detector, decoder
        frame_s = features.hop_ms / 1000.0
        # Keyword hops are whole multiples of the output stride, so every run lands on the same grid.
        self.kws_hop_frames = max(1, round(detector.hop_s / frame_s / stride_frames)) * stride_frames
        self.word_hop_frames = max(1, round(decoder.hop_s / frame_s))
        # Called with ``(times_s, probs)`` of each hop's new keyword frames, exactly what the detector
        # sees (evaluation sweeps thresholds over it; --plot draws it). None: no trace.
        self.on_kws_scores: Callable[[np.ndarray, np.ndarray], None] | None = None
        self.keyword = keyword
        # What a window without sound scores (DecoderConfig.min_log_mel); None: no silence class.
        self._silence_probs = (np.eye(len(self.labels), dtype=np.float32)[self.labels.index(SILENCE_LABEL)]
                               if SILENCE_LABEL in self.labels else None)
        self.has_verifier = verifier_runner is not None
        self.verifier_runner = verifier_runner if verifier_runner is not None else word_runner
        self.verifier_labels = list(verifier_labels) if verifier_runner is not None and verifier_labels is not None else self.labels
        self._keyword_index = self.verifier_labels.index(keyword) if keyword in self.verifier_labels else None
        self._verifier_knows_silence = SILENCE_LABEL in self.verifier_labels
        if detector.verify_threshold > 0 and self._keyword_index is None:
            log.warning("the %s has no class %r: keyword detections are not verified",
                        "verifier" if self.has_verifier else "word model", keyword)
        # Called with ``(window_end_s, keyword_probs)`` of the word model on every word-hop window
        # (evaluation replays verification over it), whether a gate is open or not. None: not run.
        self.on_verify_scores: Callable[[np.ndarray, np.ndarray], None] | None = None
        self.reset()

    @classmethod
    def from_dir(cls, models_dir: str, precision: str = "float32", mode: str = "gated",
                 detector_overrides: dict | None = None, decoder_overrides: dict | None = None,
                 num_threads: int = 1) -> Transcriber:
        """Load ``models_dir/kws`` and ``models_dir/words`` as exported by ``kws_tf.train``, and
        ``models_dir/verifier`` when there is one (a word model export that confirms keyword detections
        in place of ``words``, which then only transcribes), with any ``models_dir/verifier_<name>``
        beside it (their softmaxes averaged: ``mean_runner``).

        Settings come from the sidecars; ``*_overrides`` replace single fields (e.g.
        ``{"threshold": 0.7}``). Raises ModelDirError or ModelLoadError with a one-line message.
        """
        kws, words = load_sidecar(models_dir, "kws"), load_sidecar(models_dir, "words")
        kws_path, words_path = sidecar_path(models_dir, "kws"), sidecar_path(models_dir, "words")
        try:
            features = _config(FeatureConfig, kws["features"], kws_path)
            detector = _section(kws, DetectorConfig, "detector", kws_path)
            kws_in, kws_out = kws["input"], kws["output"]
        except (KeyError, TypeError) as exc:
            raise ModelDirError(f"{kws_path}: sidecar lacks {exc}; re-export the models") from None
        try:
            word_features = _config(FeatureConfig, words["features"], words_path)
            decoder = _section(words, DecoderConfig, "decoder", words_path)
            words_in, labels = words["input"], list(words["labels"])
        except (KeyError, TypeError) as exc:
            raise ModelDirError(f"{words_path}: sidecar lacks {exc}; re-export the models") from None
        if word_features != features:
            raise ModelDirError(f"{models_dir}: the keyword and word models use different features "
                                f"({feature_difference(features, word_features)}); "
                                "export them together, or make the 'features' of kws/model.json and words/model.json agree")
        # Overrides come from the caller, not the sidecars: a bad one is the caller's TypeError (naming the field).
        detector = dataclasses.replace(detector, **(detector_overrides or {}))
        decoder = dataclasses.replace(decoder, **(decoder_overrides or {}))
        verifier_runner = verifier_labels = None
        verifier_runners, verifiers = [], load_verifiers(models_dir)
        for folder, verifier in verifiers:
            try:
                verifier_features = _config(FeatureConfig, verifier["features"], sidecar_path(models_dir, folder))
                same = verifier_features == features and int(verifier["input"]["frames"]) == int(words_in["frames"])
                labels_here = list(verifier["labels"])
            except (KeyError, TypeError) as exc:
                raise ModelDirError(f"{sidecar_path(models_dir, folder)}: sidecar lacks {exc}; re-export the model") from None
            if not same:
                differ = feature_difference(features, verifier_features) or "input frames"
                raise ModelDirError(f"{sidecar_path(models_dir, folder)}: the verifier's features or input differ from the "
                                    f"word model's ({differ}); use a word model exported with the same preset")
            if verifier_labels is not None and labels_here != verifier_labels:
                raise ModelDirError(f"{sidecar_path(models_dir, folder)}: its labels differ from {verifiers[0][0]}/'s, so their "
                                    "scores cannot be averaged; use verifiers trained on the same words")
            verifier_labels = labels_here
            verifier_model = TFLiteModel(model_file(models_dir, folder, verifier, precision), num_threads)
            verifier_model.expect_shapes(int(words_in["frames"]), features.n_mels, len(labels_here))
            verifier_runners.append(verifier_model.run)
        if verifier_runners:
            verifier_runner = verifier_runners[0] if len(verifier_runners) == 1 else mean_runner(verifier_runners)
        kws_model = TFLiteModel(model_file(models_dir, "kws", kws, precision), num_threads)
        kws_model.expect_shapes(int(kws_in["frames"]), features.n_mels)
        word_model = TFLiteModel(model_file(models_dir, "words", words, precision), num_threads)
        word_model.expect_shapes(int(words_in["frames"]), features.n_mels, len(labels))
        return cls(features, kws_model.run, int(kws_in["frames"]), int(kws_out["kernel_frames"]),
                   int(kws_out["stride_frames"]), word_model.run, int(words_in["frames"]), labels,
                   detector, decoder, mode, keyword=kws.get("keyword"), verifier_runner=verifier_runner,
                   verifier_labels=verifier_labels)

    def reset(self) -> None:
        """Forget all audio; the next block starts at time 0."""
        group = math.gcd(self.kws_hop_frames, self.word_hop_frames)
        self._mel = _GroupedLogMel(self.features, group)
        keep = self.kws_frames + self.word_frames + self.kws_hop_frames + self.word_hop_frames
        self._frames = _FrameBuffer(self.features.n_mels, math.log(self.features.log_floor), keep)
        self.detector = KeywordDetector(self.detector_cfg)
        self.decoder = WordDecoder(self.decoder_cfg, self.labels, gated=self.mode != "no_gate")
        self._next_kws_end = self.kws_hop_frames
        self._next_word_end = self._grid_end(0)
        self._next_trace_end = self._grid_end(0)
        self.trace_busy_s = 0.0  # seconds spent on on_verify_scores' extra word-model runs
        self._verify_cache: dict[int, float] = {}  # word-window end frame -> keyword probability
        self.samples_seen = 0

    def _grid_end(self, first_frame: int) -> int:
        """First word-window end on the hop grid whose window starts at or after ``first_frame``."""
        h = self.word_hop_frames
        return -(-(first_frame + self.word_frames) // h) * h

    def _frame_time_s(self, frame: int) -> float:
        """End (s) of the audio of feature frame ``frame``."""
        f = self.features
        return (frame * f.hop_samples + f.window_samples) / f.sample_rate_hz

    def feed(self, block: np.ndarray) -> list[Event]:
        """Add ``(samples,)`` float32 mono 16 kHz audio; return the events it completed, in order (ValueError
        for integer samples or several channels: ``mono_samples``)."""
        block = mono_samples(block)
        self.samples_seen += len(block)
        events: list[Event] = []
        for frames in self._mel.push(block):
            self._frames.append(frames)
            events += self._work()
        return events

    def _work(self) -> list[Event]:
        """Run every keyword hop and word window whose frames are all there, in time order."""
        events: list[Event] = []
        self._trace_verify_scores()
        while True:
            avail = self._frames.end
            kws_due = self._next_kws_end <= avail
            words_due = self.decoder.is_open and self._next_word_end <= avail
            if kws_due and (not words_due or self._next_kws_end <= self._next_word_end):
                events += self._run_kws()
            elif words_due:
                events += self._run_words()
            else:
                return events

    def _run_kws(self) -> list[Event]:
        end = self._next_kws_end
        self._next_kws_end += self.kws_hop_frames
        probs = np.asarray(self.kws_runner(self._frames.window(end, self.kws_frames)), np.float32).reshape(-1)
        # Output frame j sees input frames [start + j*stride, start + j*stride + kernel); only the
        # newest hop's worth is used: those saw the longest context.
        last_input = end - self.kws_frames + np.arange(len(probs)) * self.stride_frames + self.kernel_frames - 1
        new = slice(len(probs) - self.kws_hop_frames // self.stride_frames, None)
        last_input, probs = last_input[new], probs[new]
        real = last_input >= 0
        times = np.array([self._frame_time_s(int(i)) for i in last_input[real]])
        if self.on_kws_scores is not None:
            self.on_kws_scores(times, probs[real])
        events: list[Event] = []
        verify = self._verify_at if self._keyword_index is not None else None
        for kw in self.detector.update(times, probs[real], verify):
            events.append(kw)
            if self.mode != "gated":
                continue
            if self.decoder.is_open:
                events += self.decoder.close(kw.time_s)
            self.decoder.open(kw.time_s)
            first = int(last_input[real][np.searchsorted(times, kw.time_s)]) + 1
            self._next_word_end = self._grid_end(first)
        return events

    def _word_probs(self, window: np.ndarray) -> np.ndarray:
        """The word model's ``(classes,)`` softmax on a ``(word_frames, n_mels)`` window, or all on
        ``_silence_`` for a window without sound (``DecoderConfig.min_log_mel``)."""
        if self._silence_probs is not None and window.max() < self.decoder_cfg.min_log_mel:
            return self._silence_probs
        return np.asarray(self.word_runner(window), np.float32).reshape(-1)

    def _keyword_probs(self, ends: np.ndarray) -> np.ndarray:
        """The verifier's (by default the word model's) keyword probability on the 1 s windows ending at
        frames ``ends``; 0 for a window without sound when the verifier has a silence class."""
        out = []
        for e in ends:
            window = self._frames.window(int(e), self.word_frames)
            if self._verifier_knows_silence and window.max() < self.decoder_cfg.min_log_mel:
                out.append(0.0)
            else:
                out.append(float(np.asarray(self.verifier_runner(window), np.float32).reshape(-1)[self._keyword_index]))
        return np.array(out, np.float32)

    def _verify_at(self, fire_s: float) -> float:
        """The word model's second opinion on a candidate at ``fire_s`` (``decisions.verify_score``
        over the hop-grid windows ending in ``[fire_s - verify_window_s, fire_s]``); each window is
        scored once, however many candidates ask about it."""
        cfg, f, h = self.detector_cfg, self.features, self.word_hop_frames
        last = int((fire_s * f.sample_rate_hz - f.window_samples) // f.hop_samples) + 1
        first = last - int(math.ceil(cfg.verify_window_s * 1000.0 / f.hop_ms)) - h
        ends = np.arange(first - first % h, last + h + 1, h)
        ends = ends[(ends >= self._grid_end(0)) & (ends <= self._frames.end)]
        times = np.array([self._frame_time_s(int(e) - 1) for e in ends])
        sel = verify_windows(times, fire_s, cfg)
        ends, times = ends[sel], times[sel]
        missing = [int(e) for e in ends if int(e) not in self._verify_cache]
        if missing:
            self._verify_cache.update(zip(missing, self._keyword_probs(np.array(missing)).tolist()))
            for old in [e for e in self._verify_cache if e < ends[0] - 4 * self.word_frames]:
                del self._verify_cache[old]
        return verify_score(times, np.array([self._verify_cache[int(e)] for e in ends]), fire_s, cfg)

    def _trace_verify_scores(self) -> None:
        if self.on_verify_scores is None or self._keyword_index is None:
            return
        start, ends = time.perf_counter(), []
        while self._next_trace_end <= self._frames.end:
            ends.append(self._next_trace_end)
            self._next_trace_end += self.word_hop_frames
        if ends:
            times = np.array([self._frame_time_s(e - 1) for e in ends])
            self.on_verify_scores(times, self._keyword_probs(np.array(ends)))
        self.trace_busy_s += time.perf_counter() - start

    def _run_words(self) -> list[Event]:
        end = self._next_word_end
        self._next_word_end += self.word_hop_frames
        probs = self._word_probs(self._frames.window(end, self.word_frames))
        start_s = (end - self.word_frames) * self.features.hop_ms / 1000.0
        return self.decoder.update(start_s, self._frame_time_s(end - 1), probs)

    def finish(self) -> list[Event]:
        """End of the stream: decide on the last audio (it is followed by silence) and close the
        open utterance. Call ``reset`` before feeding a new stream."""
        duration = self.samples_seen / self.features.sample_rate_hz
        f = self.features
        pad_frames = self.word_frames + self.kws_hop_frames + self.word_hop_frames
        # Windows centred in the padding: the model has never seen audio that stops dead, and a
        # word "heard" only there is not in the audio (a word model heard "two" after the demo recording).
        self.decoder.audio_end_s = duration
        events = self.feed(np.zeros(pad_frames * f.hop_samples + f.window_samples, np.float32))
        events += self.decoder.close(duration)
        self.samples_seen = int(round(duration * f.sample_rate_hz))
        return [clamp_event(e, duration) for e in events]

    def transcribe(self, audio: np.ndarray) -> TranscriptResult:
        """Whole recording: ``(samples,)`` float32 mono 16 kHz -> result (the stream fed in one block)."""
        audio = mono_samples(audio)
        if self.mode == "single_word":
            duration = len(audio) / self.features.sample_rate_hz
            return TranscriptResult(duration, [], [self.classify_clip(audio)])
        self.reset()
        events = self.feed(audio) + self.finish()
        return result_from_events(events, len(audio) / self.features.sample_rate_hz)

    def classify_clip(self, audio: np.ndarray) -> WordEvent:
        """The top word of a one-word clip, from its most energetic 1 s (centre-padded if shorter)."""
        f = self.features
        clip = (self.word_frames - 1) * f.hop_samples + f.window_samples
        if f.n_frames(f.sample_rate_hz) == self.word_frames:
            clip = f.sample_rate_hz  # exactly 1 s, as in training
        audio = mono_samples(audio)
        start = 0
        if len(audio) > clip:
            energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
            starts = np.unique(np.append(np.arange(0, len(audio) - clip, f.sample_rate_hz // 10), len(audio) - clip))
            start = int(starts[np.argmax(energy[starts + clip] - energy[starts])])
        segment = fit_length(audio[start:start + clip], clip)
        probs = np.asarray(self.word_runner(log_mel(segment, f)[: self.word_frames]), np.float32)
        words = [i for i, lab in enumerate(self.labels) if is_word_label(lab)] or list(range(len(self.labels)))
        best = max(words, key=lambda i: probs[i])
        return WordEvent(word=self.labels[best], start_s=start / f.sample_rate_hz,
                         end_s=(start + min(clip, len(audio))) / f.sample_rate_hz, score=float(probs[best]))


def mono_samples(audio) -> np.ndarray:
    """``audio`` as ``(samples,)`` float32, or ValueError (one line) for what would be silently misheard: integer
    samples (int16 PCM is 32768 times too loud) or several channels (flattening would interleave them)."""
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.integer):
        raise ValueError(f"audio samples are {audio.dtype}; give float32 in -1..1 (int16: divide by 32768), "
                         "or read files with kws_tf.audio_io.read_audio")
    if sum(n > 1 for n in audio.shape) > 1:
        raise ValueError(f"audio has shape {audio.shape}; give mono (samples,) audio (e.g. audio.mean(axis=1) for "
                         "(samples, channels)), or read files with kws_tf.audio_io.read_audio")
    return audio.astype(np.float32, copy=False).reshape(-1)


def result_from_events(events: Sequence[Event], duration_s: float) -> TranscriptResult:
    """Collect a stream's events: every keyword detection, and the words of closed utterances."""
    keywords = [e for e in events if isinstance(e, KeywordEvent)]
    words = [w for e in events if isinstance(e, UtteranceEnd) for w in e.words]
    return TranscriptResult(duration_s, keywords, words)
