"""Frozen configuration dataclasses shared by training and the runtime (numpy only).

Fields carry their unit in the name; derived values are properties. Each config turns into a plain
dict for the JSON sidecar and back, so an exported model carries the settings it was trained with.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    """Plain-JSON dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict) -> T:
    """Build ``cls`` from a dict, ignoring unknown keys (newer sidecars) and using defaults for
    missing ones (older sidecars)."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return cls(**kwargs)


def check_types(cfg: Any) -> None:
    """TypeError ``"threshold is 'high', not a number"`` for the first number or true/false field of a config
    dataclass whose value is of another type (a hand-edited sidecar or preset, a ``--set`` typo), so it is named
    where it is read instead of failing later inside a model or a comparison."""
    for field in dataclasses.fields(cfg):
        value, kind = getattr(cfg, field.name), str(field.type)
        if kind == "bool" and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{field.name} is {value!r}, not true or false")
        if kind in ("int", "float") and (isinstance(value, (bool, np.bool_))
                                         or not isinstance(value, numbers.Integral if kind == "int" else numbers.Real)):
            raise TypeError(f"{field.name} is {value!r}, not {'a whole number' if kind == 'int' else 'a number'}")


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end: 25 ms Hann windows every 10 ms at 16 kHz (no centre padding)."""

    sample_rate_hz: int = 16000
    window_ms: float = 25.0
    hop_ms: float = 10.0
    fft_size: int = 512
    n_mels: int = 40
    fmin_hz: float = 20.0
    fmax_hz: float = 7600.0
    log_floor: float = 1e-6
    # Subtract each frame's mean before the window (Kaldi's remove_dc_offset): a microphone's DC offset
    # then leaves no trace in the features. Off in sidecars written before the option existed.
    remove_dc: bool = False

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.window_ms / 1000.0))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.hop_ms / 1000.0))

    def n_frames(self, n_samples: int) -> int:
        """Number of feature frames for ``n_samples`` of audio (0 if shorter than a window)."""
        if n_samples < self.window_samples:
            return 0
        return 1 + (n_samples - self.window_samples) // self.hop_samples

    def __post_init__(self) -> None:
        check_types(self)
        if self.window_samples > self.fft_size:
            raise ValueError(f"window of {self.window_samples} samples exceeds fft_size {self.fft_size}")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate_hz / 2:
            raise ValueError(f"need 0 <= fmin_hz < fmax_hz <= {self.sample_rate_hz / 2}")


def _check_freq_warp(value: float) -> None:
    if not 0.0 <= value < 0.5:
        raise ValueError(f"freq_warp must be within 0..0.5 (a share of the frequency axis), not {value}")


def _check_speed(value: tuple[float, float]) -> None:
    if len(value) != 2 or not 0.0 < value[0] <= value[1]:
        raise ValueError(f"speed must be a range low..high of factors above 0 (1: as recorded), not {list(value)}")


def differing_features(ours: FeatureConfig, theirs: FeatureConfig) -> list[str]:
    """The names of the fields two feature settings disagree on, in field order."""
    return [f.name for f in dataclasses.fields(FeatureConfig) if getattr(ours, f.name) != getattr(theirs, f.name)]


def feature_difference(ours: FeatureConfig, theirs: FeatureConfig) -> str:
    """The fields two feature settings disagree on, for a message: ``"remove_dc true against false"``."""
    show = lambda v: str(v).lower() if isinstance(v, bool) else str(v)
    return ", ".join(f"{name} {show(getattr(ours, name))} against {show(getattr(theirs, name))}"
                     for name in differing_features(ours, theirs))


@dataclass(frozen=True)
class KwsDataConfig:
    """Keyword clips and the frame labels of the keyword spotter."""

    clip_s: float = 10.0
    conv_kernel_frames: int = 15
    conv_stride_frames: int = 4
    # Output frames after the keyword's end that are labelled 1 (the Coursera rule, in seconds).
    label_s: float = 0.5
    max_keywords: int = 3
    max_other_words: int = 6
    min_gap_s: float = 0.1
    max_gap_s: float = 1.2
    noise_prob: float = 0.85
    # Speech level (RMS dBFS of a 1 s word clip) per clip, varied per word by +-word_spread_db;
    # the background sits snr_db below the clip's speech level.
    word_level_db: tuple[float, float] = (-32.0, -14.0)
    word_spread_db: float = 4.0
    snr_db: tuple[float, float] = (0.0, 25.0)
    speed: tuple[float, float] = (0.88, 1.12)
    # Hard negatives: this share of the other-word slots holds the first 40-70 % of a keyword ("sto"),
    # labelled 0.
    partial_keyword_prob: float = 0.0
    # SpecAugment for 10 s clips: this many frequency bands of up to freq_mask_bins mel bins each,
    # masked over the whole clip (no time masks: they could erase a keyword that its labels still mark).
    freq_masks: int = 0
    freq_mask_bins: int = 6
    # Vocal tract length perturbation: each training clip's spectrum is stretched by a factor drawn from
    # 1 +- freq_warp (0: off), moving its formants as another speaker's would (augment.frequency_warp).
    freq_warp: float = 0.0
    # Which clips the training timeline draws: where a pool holds both kinds, a synthetic clip with
    # probability synthetic_weight (None: real and synthetic clips pooled as they come), and this share
    # of the other-word slots from confusable_words, the words a keyword model mistakes for the keyword
    # (tools/keyword_confusions.py ranks them for a trained model). Validation clips are drawn plainly.
    synthetic_weight: float | None = None
    confusable_words: tuple[str, ...] = ()
    confusable_prob: float = 0.0

    def __post_init__(self) -> None:
        check_types(self)
        if self.synthetic_weight is not None and not 0.0 <= self.synthetic_weight <= 1.0:
            raise ValueError(f"synthetic_weight must be null or within 0..1, not {self.synthetic_weight}")
        if not 0.0 <= self.confusable_prob <= 1.0:
            raise ValueError(f"confusable_prob must be within 0..1, not {self.confusable_prob}")
        _check_freq_warp(self.freq_warp)
        _check_speed(self.speed)

    def clip_samples(self, features: FeatureConfig) -> int:
        return int(round(self.clip_s * features.sample_rate_hz))

    def input_frames(self, features: FeatureConfig) -> int:
        return features.n_frames(self.clip_samples(features))

    def output_frames(self, features: FeatureConfig) -> int:
        return (self.input_frames(features) - self.conv_kernel_frames) // self.conv_stride_frames + 1

    def output_hop_s(self, features: FeatureConfig) -> float:
        return self.conv_stride_frames * features.hop_ms / 1000.0

    def output_frame_time_s(self, index: int, features: FeatureConfig) -> float:
        """Time (s, from the clip start) of the end of the audio that output frame ``index`` sees."""
        last_input_frame = index * self.conv_stride_frames + self.conv_kernel_frames - 1
        return (last_input_frame * features.hop_samples + features.window_samples) / features.sample_rate_hz


@dataclass(frozen=True)
class WordDataConfig:
    """One-second word examples for the word classifier."""

    clip_s: float = 1.0
    time_shift_s: float = 0.15
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (0.0, 25.0)
    gain_db: tuple[float, float] = (-10.0, 6.0)
    speed: tuple[float, float] = (0.9, 1.1)  # speed perturbation (tempo and pitch) factor per example
    # Reverb: this share of examples is convolved with a synthetic room impulse response (exponential
    # noise tail, reverberation time and direct-to-reverberant ratio drawn from these ranges).
    reverb_prob: float = 0.0
    reverb_rt60_s: tuple[float, float] = (0.15, 0.8)
    reverb_drr_db: tuple[float, float] = (-3.0, 12.0)
    silence_fraction: float = 0.06
    # A _silence_ example is background noise at a level drawn from this range (dB against unit RMS).
    # Below about -70 dB the log-mel frames approach the floor (digital silence: -13.8 everywhere), which
    # a muted microphone or a padded file gives; the default keeps the original range.
    silence_db: tuple[float, float] = (-70.0, -20.0)
    # Neighbouring words: this share of the word examples gets the edge of another clip's word (any word)
    # at its start or its end, reaching neighbour_overlap_s into the 1 s window at neighbour_gain_db against
    # the example's level; the label stays the example's word. The runtime's windows slide over running
    # speech, so they hold bits of the words around the one they are labelled with.
    neighbour_prob: float = 0.0
    neighbour_at_end: float = 0.5  # the share of those edges at the window's end (the next word starting)
    neighbour_overlap_s: tuple[float, float] = (0.05, 0.3)
    neighbour_gain_db: tuple[float, float] = (-6.0, 3.0)
    # Which word each example is: 0 draws the words uniformly, whatever their clip counts; p > 0 draws
    # a word in proportion to (its real + synthetic clips)^p, so words with few clips are repeated less.
    class_power: float = 0.0
    # This share of the word examples is the keyword (the others drawn as above), so a model meant to
    # confirm the keyword for the gate (a verifier) hears it and its look-alikes more often. 0: off.
    keyword_share: float = 0.0
    # This share of the word examples is drawn from confusable_words instead (uniformly among them; the
    # keyword share above then applies on top), the words a gate's false alarms land on, so a verifier
    # learns them apart from the keyword (tools/false_alarm_words.py names them). 0: off.
    confusable_words: tuple[str, ...] = ()
    confusable_prob: float = 0.0
    specaugment: bool = True
    freq_mask_bins: int = 6
    time_mask_frames: int = 10
    # Vocal tract length perturbation, as KwsDataConfig.freq_warp (0: off).
    freq_warp: float = 0.0

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("neighbour_prob", "neighbour_at_end", "reverb_prob", "noise_prob", "silence_fraction", "keyword_share",
                     "confusable_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1, not {getattr(self, name)}")
        if self.keyword_share == 1.0:  # every word example the keyword: a model that never hears another word
            raise ValueError("keyword_share must be below 1 (at 1 every word example is the keyword), e.g. 0.2")
        if self.confusable_prob > 0 and not self.confusable_words:
            raise ValueError("confusable_prob needs confusable_words, e.g. confusable_words=[up,off]")
        _check_freq_warp(self.freq_warp)
        _check_speed(self.speed)
        if not self.silence_db[0] <= self.silence_db[1]:
            raise ValueError(f"silence_db must be a range low..high in dB, not {list(self.silence_db)}")

    def clip_samples(self, features: FeatureConfig) -> int:
        return int(round(self.clip_s * features.sample_rate_hz))


SILENCE_LABEL = "_silence_"


@dataclass(frozen=True)
class DetectorConfig:
    """Keyword gate: how the keyword model's per-frame probabilities become detections."""

    threshold: float = 0.5
    hop_s: float = 0.2  # the keyword model re-runs on the last window every hop
    smoothing_frames: int = 3  # moving average over output frames before thresholding
    refractory_s: float = 2.0  # no second detection this soon after one
    patience_frames: int = 1  # smoothed probability must stay above threshold this many frames
    # Second opinion: a detection stands only if the word model gives the keyword at least this
    # probability in a 1 s window whose audio ends within verify_window_s before it (0: off).
    verify_threshold: float = 0.0
    verify_window_s: float = 0.5

    def __post_init__(self) -> None:
        check_types(self)


@dataclass(frozen=True)
class DecoderConfig:
    """Word decoder: sliding 1 s windows after the keyword, smoothed, then picked."""

    threshold: float = 0.6  # words scored below this are left out rather than guessed
    hop_s: float = 0.1
    smoothing_windows: int = 3
    pause_s: float = 1.5  # the utterance ends after this long without a word
    max_s: float = 8.0  # and at the latest this long after the keyword
    merge_gap_s: float = 0.3  # two runs of the same word this close together are one word
    # The same word said twice in a row: the windows between the two often still vote for it, so its
    # run would write it once. A run longer than max_word_s (first to last window centre; 0 = off)
    # splits there, and runs the gap would merge into one that long stay two words.
    max_word_s: float = 0.0
    min_windows: int = 1  # a run of fewer windows is not a word (noise, or the rest of a split)
    # A window whose loudest log-mel value is below this holds no word (about -70 dBFS of white noise;
    # real clips reach 1 or more): it counts as silence without running the word model. Training never
    # shows the model digital silence or white dither, and word models heard "two" in both (-80 dBFS dither
    # reaches -10, the earlier setting).
    min_log_mel: float = -8.0

    def __post_init__(self) -> None:
        check_types(self)
