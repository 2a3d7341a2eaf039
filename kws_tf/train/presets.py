"""Training presets: JSON files in ``training/`` that set the config dataclasses, plus ``--set
section.field=value`` overrides from the command line. The resolved preset is saved with each run.
The ``detector`` and ``decoder`` sections are the keyword gate's and the word decoder's starting settings,
written into the exported sidecars (``tools/tune_detector.py`` and ``tools/tune_decoder.py`` tune them for
the trained models)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

from kws_tf.cli import INSTALLED_DATA
from kws_tf.config import DecoderConfig, DetectorConfig, FeatureConfig, KwsDataConfig, WordDataConfig, check_types, from_dict, to_dict

# Presets by name are looked for in training/ of the checkout holding this package, then of the current folder (a
# checkout whose package was installed without -e, as on machines without the pinned requirements), then in the
# copy installed with the package (setup.cfg's data_files).
CHECKOUT_PRESETS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "training")
INSTALLED_PRESETS = [os.path.join(folder, "training") for folder in INSTALLED_DATA]


def preset_dirs() -> list[str]:
    """The folders that hold presets by name, the first one first."""
    found = (CHECKOUT_PRESETS, os.path.abspath("training"), *INSTALLED_PRESETS)
    return [folder for folder in dict.fromkeys(found) if os.path.isdir(folder)]


LR_SCHEDULES = ("constant", "cosine")


def _check_counts(cfg) -> None:
    for name in ("batch_size", "steps_per_epoch", "epochs"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, not {getattr(cfg, name)}")
    if cfg.patience < 0:
        raise ValueError(f"patience must be >= 0, not {cfg.patience}")


@dataclass(frozen=True)
class KwsTrainConfig:
    conv_filters: int = 128
    gru_units: int = 64
    dropout: float = 0.2
    batch_size: int = 32
    steps_per_epoch: int = 100
    epochs: int = 20
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine" (decay to 1 % over all epochs)
    weight_decay: float = 0.0  # > 0: AdamW, decoupled weight decay on the kernels (fitting.adam)
    patience: int = 5
    val_examples: int = 256
    max_negatives: int = 20000  # cap on other-word clips held in memory

    def __post_init__(self) -> None:
        check_types(self)
        _check_counts(self)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0 (0 turns it off), not {self.weight_decay}")


@dataclass(frozen=True)
class WordTrainConfig:
    widths: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.2
    batch_size: int = 64
    steps_per_epoch: int = 150
    epochs: int = 30
    learning_rate: float = 2e-3
    lr_schedule: str = "constant"  # or "cosine" (decay to 1 % over all epochs)
    weight_decay: float = 0.0  # > 0: AdamW, decoupled weight decay on the kernels (fitting.adam)
    decay_head: bool = True  # False: the classifier's kernel (the last dense layer) is left out of the decay
    patience: int = 8
    synthetic_weight: float = 0.5
    # > 0: a word with more real training clips than this draws synthetic ones less often, in proportion
    # (synthetic_weight * synthetic_taper_clips / real clips); 0: every word uses synthetic_weight.
    synthetic_taper_clips: int = 0
    # Mixup (Zhang et al. 2018) on the log-mel batches: each example is blended with another of its
    # batch, weight ~ Beta(alpha, alpha), and so are the one-hot labels. 0 turns it off.
    mixup_alpha: float = 0.0
    # Label smoothing (Szegedy et al. 2016): the training targets put 1 - e on the word and e / n_classes on
    # every class. 0 turns it off.
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_types(self)
        _check_counts(self)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0 (0 turns it off), not {self.weight_decay}")
        if self.synthetic_taper_clips < 0:
            raise ValueError(f"synthetic_taper_clips must be >= 0 (0 turns the taper off), not {self.synthetic_taper_clips}")
        if self.mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be >= 0 (0 turns mixup off), not {self.mixup_alpha}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1) (0 turns it off), not {self.label_smoothing}")


@dataclass(frozen=True)
class Preset:
    name: str
    features: FeatureConfig
    kws_data: KwsDataConfig
    word_data: WordDataConfig
    kws: KwsTrainConfig
    words: WordTrainConfig
    detector: DetectorConfig
    decoder: DecoderConfig

    def to_dict(self) -> dict:
        return {f.name: (getattr(self, f.name) if f.name == "name" else to_dict(getattr(self, f.name))) for f in dataclasses.fields(self)}


SECTIONS = {"features": FeatureConfig, "kws_data": KwsDataConfig, "word_data": WordDataConfig, "kws": KwsTrainConfig, "words": WordTrainConfig,
            "detector": DetectorConfig, "decoder": DecoderConfig}


class PresetError(Exception):
    """Unknown preset or bad override; ``str()`` is a one-line message."""


def available_presets() -> list[str]:
    return sorted({n[:-5] for folder in preset_dirs() for n in os.listdir(folder) if n.endswith(".json")})


def _check_known(path: str, data: object) -> None:
    """PresetError for a preset file that is not an object of known sections and fields, besides a
    ``description`` text (a typo there would otherwise leave the default in place without a word)."""
    if not isinstance(data, dict):
        raise PresetError(f"{path}: a preset is a JSON object of sections ({', '.join(SECTIONS)}), not {type(data).__name__}")
    for section, fields in data.items():
        if section == "description":
            continue
        if section not in SECTIONS:
            raise PresetError(f"{path}: unknown section '{section}'; the sections are {', '.join(SECTIONS)} (and a description)")
        if not isinstance(fields, dict):
            raise PresetError(f"{path}: section '{section}' must be an object of fields, not {fields!r}")
        known = {f.name for f in dataclasses.fields(SECTIONS[section])}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise PresetError(f"{path}: unknown field {section}.{unknown[0]}; {section} has {', '.join(sorted(known))}")


def load_preset(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Preset:
    """Preset by name (``training/NAME.json``) or path, with ``section.field=value`` overrides."""
    if name_or_path.endswith(".json"):
        path = name_or_path
    else:
        named = [os.path.join(folder, f"{name_or_path}.json") for folder in preset_dirs()]
        path = next((p for p in named if os.path.exists(p)), f"{name_or_path}.json")
    if not os.path.exists(path):
        raise PresetError(f"preset '{name_or_path}' not found; choose one of {', '.join(available_presets()) or '(none)'} or pass a .json path")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise PresetError(f"{path}: invalid JSON ({exc})") from None
    _check_known(path, data)
    for item in overrides:
        key, sep, value = item.partition("=")
        section, _, field = key.partition(".")
        if not sep or section not in SECTIONS or field not in {f.name for f in dataclasses.fields(SECTIONS[section])}:
            raise PresetError(f"bad --set '{item}'; use section.field=value with section in {', '.join(SECTIONS)}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:  # a bare word, or a list of bare words: [up,off] as ["up", "off"]
            bare = value.strip()
            parsed = [w.strip(" '\"") for w in bare[1:-1].split(",") if w.strip(" '\"")] if bare[:1] + bare[-1:] == "[]" else value
        data.setdefault(section, {})[field] = parsed
    parts = {}
    for section, cls in SECTIONS.items():
        try:
            parts[section] = from_dict(cls, data.get(section, {}))
        except (TypeError, ValueError) as exc:
            given = f" with --set {' '.join(overrides)}" if overrides else ""  # the bad value may be either's
            raise PresetError(f"{path}{given}: {section}: {exc}") from None
    return Preset(name=os.path.basename(path)[:-5], **parts)
