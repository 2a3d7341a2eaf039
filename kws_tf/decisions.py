"""Decisions on model scores: the keyword gate and the word decoder, and the events they emit
(numpy and kws_tf.config only). All times are seconds from the start of the stream, so decisions do
not depend on how the audio was split into blocks."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from kws_tf.config import DecoderConfig, DetectorConfig


@dataclass(frozen=True)
class KeywordEvent:
    """The keyword fired; ``time_s`` is the end of the audio the firing frame saw. ``verify_score``
    is the word model's keyword probability when the detection was verified (else None)."""

    time_s: float
    score: float
    verify_score: float | None = None
    kind: str = field(default="keyword", init=False)

    def to_dict(self) -> dict:
        out = {"time_s": round(self.time_s, 3), "score": round(self.score, 4)}
        if self.verify_score is not None:
            out["verify_score"] = round(self.verify_score, 4)
        return out


@dataclass(frozen=True)
class WordEvent:
    """A vocabulary word and where it was heard."""

    word: str
    start_s: float
    end_s: float
    score: float
    kind: str = field(default="word", init=False)

    def to_dict(self) -> dict:
        return {"word": self.word, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "score": round(self.score, 4)}


@dataclass(frozen=True)
class UtteranceEnd:
    """The words after a keyword (or, without the gate, between pauses) are complete."""

    start_s: float
    end_s: float
    words: tuple[WordEvent, ...]
    kind: str = field(default="utterance_end", init=False)

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)

    def to_dict(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "text": self.text}


Event = KeywordEvent | WordEvent | UtteranceEnd


def clamp_event(event: Event, max_s: float) -> Event:
    """The event with its times limited to ``max_s`` (used for the silence padded at the end)."""
    names = [n for n in ("time_s", "start_s", "end_s") if hasattr(event, n)]
    return dataclasses.replace(event, **{n: min(getattr(event, n), max_s) for n in names})


def is_word_label(label: str) -> bool:
    """``_silence_``, ``_unknown_`` and the like are classes, never words."""
    return not (label.startswith("_") and label.endswith("_"))


Verifier = Callable[[float], float]  # a candidate detection's time (s) -> the word model's keyword probability


class KeywordDetector:
    """Turns per-frame keyword probabilities into detections.

    A moving average over ``smoothing_frames`` frames must stay at or above ``threshold`` for
    ``patience_frames`` frames. After a detection the gate re-arms only when the smoothed probability
    has fallen below the threshold and ``refractory_s`` has passed, so one utterance fires once.

    With a ``verify`` function and ``verify_threshold`` > 0, such a frame is only a candidate: it fires
    when the word model confirms it (``verify(t) >= verify_threshold``). An unconfirmed candidate
    neither fires nor disarms the gate nor starts the refractory period, so the next frames above the
    threshold are asked again: the keyword model often crosses the threshold while the word is still
    being spoken, before any 1 s word window holds all of it.
    """

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        self._history: deque[float] = deque(maxlen=max(1, self.cfg.smoothing_frames))
        self._above = 0
        self._armed = True
        self._last_fire_s = -np.inf

    def _smooth(self, probs: np.ndarray) -> np.ndarray:
        """Moving average of each new frame with the ``smoothing_frames - 1`` before it (fewer at the
        start of the stream), continuing across calls."""
        k = self._history.maxlen
        buf = np.concatenate([np.array(self._history, float), probs])
        first = len(self._history)  # index in buf of the first new frame
        out = np.empty(len(probs))
        partial = min(len(probs), max(0, k - 1 - first))  # stream start: windows shorter than k
        for j in range(partial):
            out[j] = buf[: first + j + 1].sum() / (first + j + 1)
        if len(probs) > partial:
            out[partial:] = sliding_window_view(buf, k).sum(axis=1)[first + partial - k + 1 :] / k
        self._history.extend(probs[-k:])
        return out

    def update(self, times_s: np.ndarray, probs: np.ndarray, verify: Verifier | None = None) -> list[KeywordEvent]:
        """Consume consecutive output frames.

        Args:
            times_s: ``(n,)`` float, end time of each frame's audio, increasing.
            probs: ``(n,)`` float32 keyword probabilities.
            verify: the word model's keyword probability for a candidate at a time (see the class);
                ignored when ``cfg.verify_threshold`` is 0.

        Returns:
            The detections among these frames, in time order.
        """
        return self.update_smoothed(times_s, self._smooth(np.asarray(probs, float)), verify)

    def update_smoothed(self, times_s: np.ndarray, smoothed: np.ndarray, verify: Verifier | None = None) -> list[KeywordEvent]:
        """``update`` for frames already smoothed by this detector's moving average (``_smooth``): a
        replay over a whole trace smooths once and runs the gate at many thresholds."""
        times, smoothed = np.asarray(times_s, float), np.asarray(smoothed, float)
        if not len(smoothed):
            return []
        check = verify if self.cfg.verify_threshold > 0 else None
        events = []
        above = np.flatnonzero(smoothed >= self.cfg.threshold)
        # Runs of consecutive frames at or above the threshold; frames below only re-arm the gate.
        cuts = (np.flatnonzero(np.diff(above) != 1) + 1).tolist()
        for a, b in zip([0] + cuts, cuts + [len(above)]) if len(above) else ():
            # A run that starts after frames below the threshold starts afresh (the block's first
            # run may continue one from the previous block).
            if above[a] != 0:
                self._above, self._armed = 0, True
            before, self._above = self._above, self._above + (b - a)
            if not self._armed:
                continue
            for i in above[a + max(0, self.cfg.patience_frames - 1 - before) : b].tolist():
                t = float(times[i])
                if t - self._last_fire_s < self.cfg.refractory_s:
                    continue
                score = check(t) if check is not None else None
                if score is not None and score < self.cfg.verify_threshold:
                    continue  # not confirmed (yet): stay armed
                events.append(KeywordEvent(time_s=t, score=float(smoothed[i]), verify_score=score))
                self._armed, self._last_fire_s = False, t
                break
        if not len(above) or above[-1] != len(smoothed) - 1:  # the block ends below the threshold
            self._above, self._armed = 0, True
        return events


def verify_windows(window_end_s: np.ndarray, fire_s: float, cfg: DetectorConfig) -> np.ndarray:
    """Which 1 s word windows (by the end time of their audio) verify a detection at ``fire_s``:
    those ending in ``[fire_s - verify_window_s, fire_s]``, where the keyword just spoken lies."""
    t = np.asarray(window_end_s, float)
    return (t >= fire_s - cfg.verify_window_s - 1e-6) & (t <= fire_s + 1e-6)


def verify_scores_at(times_s: np.ndarray, window_end_s: np.ndarray, keyword_probs: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    """For a candidate at each of ``times_s``: the best keyword probability among the word windows
    that verify it (``verify_windows``; 0 where there are none). ``window_end_s`` must increase (a
    trace, or the windows the runtime ran, in time order)."""
    t, ends = np.asarray(times_s, float), np.asarray(window_end_s, float)
    probs = np.append(np.asarray(keyword_probs, float), -np.inf)  # index len(ends): "no window"
    lo = np.searchsorted(ends, t - cfg.verify_window_s - 1e-6, "left")
    hi = np.searchsorted(ends, t + 1e-6, "right")
    best = np.full(len(t), -np.inf)
    for k in range(int(np.max(hi - lo, initial=0))):
        best = np.maximum(best, probs[np.where(lo + k < hi, lo + k, len(ends))])
    return np.where(hi > lo, best, 0.0)


def verify_score(window_end_s: np.ndarray, keyword_probs: np.ndarray, fire_s: float, cfg: DetectorConfig) -> float:
    """``verify_scores_at`` for one candidate at ``fire_s``."""
    return float(verify_scores_at(np.array([fire_s]), window_end_s, keyword_probs, cfg)[0])


@dataclass
class _Run:
    """Consecutive windows whose smoothed top class is the same word."""

    label: str
    peak: float
    first_end_s: float
    last_start_s: float
    first_center_s: float
    last_center_s: float
    windows: int = 1

    def to_event(self) -> WordEvent:
        # The word lies where all windows of the run overlap.
        a, b = self.last_start_s, self.first_end_s
        return WordEvent(word=self.label, start_s=min(a, b), end_s=max(a, b), score=self.peak)


class WordDecoder:
    """Sliding-window word decoder with posterior smoothing (after TF's RecognizeCommands).

    Each 1 s window's softmax is averaged with the previous ``smoothing_windows - 1``; runs of
    windows whose top class is the same word scoring at least ``threshold`` become one word (runs
    of the same word less than ``merge_gap_s`` apart are merged; a run longer than ``max_word_s`` is
    the word said twice; runs of fewer than ``min_windows`` windows are left out). Non-word classes such as
    ``_silence_`` are never emitted; unsure windows are left out. Gated, an utterance opens at a
    keyword and closes after ``pause_s`` without a word or ``max_s`` after the keyword; ungated, the
    decoder is always open and a pause only ends the current utterance.

    Args:
        cfg: decoder settings.
        labels: class names in the word model's output order.
        gated: whether utterances are opened by ``open`` (keyword) or always open.
    """

    def __init__(self, cfg: DecoderConfig, labels: list[str], gated: bool = True) -> None:
        self.cfg = cfg
        self.labels = list(labels)
        self._is_word = np.array([is_word_label(lab) for lab in self.labels])
        self.gated = gated
        self.reset()

    def reset(self) -> None:
        self._history: deque[tuple[float, float, np.ndarray]] = deque(maxlen=max(1, self.cfg.smoothing_windows))
        self._run: _Run | None = None
        self._pending: _Run | None = None
        self._words: list[WordEvent] = []
        self._open_s: float | None = None if self.gated else 0.0
        self._last_activity_s: float | None = None
        # Where the audio ends, once the stream is finishing: later windows are mostly the silence
        # padded after it and may only end words, not start them.
        self.audio_end_s: float | None = None

    @property
    def is_open(self) -> bool:
        return self._open_s is not None

    def open(self, time_s: float) -> None:
        """Start an utterance (the keyword fired at ``time_s``)."""
        self._history.clear()
        self._run = self._pending = None
        self._words = []
        self._open_s = time_s
        self._last_activity_s = None

    def update(self, start_s: float, end_s: float, probs: np.ndarray) -> list[WordEvent | UtteranceEnd]:
        """Consume the next window's softmax.

        Args:
            start_s, end_s: the window's audio span.
            probs: ``(classes,)`` float32 softmax.

        Returns:
            Words that became final and, when the utterance ended, its ``UtteranceEnd``.
        """
        if not self.is_open:
            return []
        self._history.append((start_s, end_s, np.asarray(probs, np.float32)))
        smoothed = np.mean([h[2] for h in self._history], axis=0)
        # The average describes the middle of the windows it spans, not the newest one.
        start_s, end_s = self._history[(len(self._history) - 1) // 2][:2]
        center = 0.5 * (start_s + end_s)
        if self._last_activity_s is None:
            self._last_activity_s = center
        top = int(np.argmax(smoothed))
        score = float(smoothed[top])
        events: list[WordEvent | UtteranceEnd] = []
        label = self.labels[top] if top < len(self.labels) else f"class_{top}"
        heard = self.audio_end_s is None or center < self.audio_end_s
        if heard and bool(self._is_word[top]) and score >= self.cfg.threshold:
            same = self._run is not None and self._run.label == label
            if same and not self._too_long(self._run, center):
                self._run.peak = max(self._run.peak, score)
                self._run.last_start_s, self._run.last_center_s = start_s, center
                self._run.windows += 1
            else:
                events += self._end_run()
                self._run = _Run(label, score, end_s, start_s, center, center)
            self._last_activity_s = center
        else:
            events += self._end_run()
        if self._pending is not None:
            running_other = self._run is not None and self._run.label != self._pending.label
            gap_over = self._run is None and center - self._pending.last_center_s > self.cfg.merge_gap_s
            if running_other or gap_over:
                events += self._emit_pending()
        paused = center - self._last_activity_s >= self.cfg.pause_s
        too_long = self.gated and end_s - self._open_s >= self.cfg.max_s
        if (paused or too_long) and self._run is None:
            if self.gated or self._words or self._pending is not None:
                events += self.close(end_s)
        elif too_long:
            events += self.close(end_s)
        return events

    def close(self, time_s: float) -> list[WordEvent | UtteranceEnd]:
        """End the utterance now: final words, then ``UtteranceEnd`` (if an utterance was open)."""
        if not self.is_open:
            return []
        events = self._end_run() + self._emit_pending()
        if not self.gated and not self._words:
            self._last_activity_s = None
            return events
        start = self._open_s if self.gated else (self._words[0].start_s if self._words else time_s)
        events.append(UtteranceEnd(start_s=start, end_s=time_s, words=tuple(self._words)))
        self._words = []
        if self.gated:
            self._open_s = None
        else:
            self._last_activity_s = None
        return events

    def _end_run(self) -> list[WordEvent]:
        run, self._run = self._run, None
        if run is None:
            return []
        pending = self._pending
        near = pending is not None and pending.label == run.label and run.first_center_s - pending.last_center_s <= self.cfg.merge_gap_s + 1e-9
        # A run split off for length would make its predecessor too long again: never merged back.
        if near and not self._too_long(pending, run.last_center_s):
            pending.peak = max(pending.peak, run.peak)
            pending.last_start_s, pending.last_center_s = run.last_start_s, run.last_center_s
            pending.windows += run.windows
            return []
        events = self._emit_pending()
        self._pending = run
        return events

    def _too_long(self, run: _Run, center_s: float) -> bool:
        """Whether ``run`` extended to the window centred at ``center_s`` is longer than one word."""
        return self.cfg.max_word_s > 0 and center_s - run.first_center_s > self.cfg.max_word_s + 1e-9

    def _emit_pending(self) -> list[WordEvent]:
        pending, self._pending = self._pending, None
        if pending is None or pending.windows < self.cfg.min_windows:
            return []
        word = pending.to_event()
        self._words.append(word)
        return [word]
