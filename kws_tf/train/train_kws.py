"""Train, evaluate, plot and export the keyword spotter (Conv1D + 2 GRUs over a 10 s window)."""

from __future__ import annotations

import logging
import os
import time

import keras
import numpy as np

from kws_tf.config import to_dict
from kws_tf.dataset import DataError, DatasetIndex, load_clips, load_noise, speech_extents
from kws_tf.evaluate.metrics import frame_f1
from kws_tf.train.augment import NoiseBank
from kws_tf.train.export import export_model
from kws_tf.train.fitting import adam, fit, training_record
from kws_tf.train.kws_data import kws_dataset
from kws_tf.train.models import build_kws_model
from kws_tf.train.plots import plot_curves, plot_keyword_trace
from kws_tf.train.presets import Preset

log = logging.getLogger(__name__)


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def train_kws(index: DatasetIndex, keyword: str, preset: Preset, *, out_dir: str, run_dir: str, seed: int,
              synthetic: DatasetIndex | None = None, epochs: int | None = None, verbose: int = 1, score_test: bool = True) -> dict:
    """Full keyword-model run; returns the run summary (also written into the sidecar). ``score_test=False``
    leaves the test split unread (no test metrics)."""
    keras.utils.set_random_seed(seed)  # weight initialisation and dropout follow --seed too, not only the data
    feats, kcfg, tcfg = preset.features, preset.kws_data, preset.kws
    word_n = feats.sample_rate_hz  # 1 s word clips
    sources = [index] + ([synthetic] if synthetic else [])

    def clips(split: str, is_keyword: bool):
        found = [c for ix in sources for c in ix.select(split) if (c.word == keyword) == is_keyword]
        if not is_keyword and len(found) > tcfg.max_negatives:
            keep = np.random.default_rng(seed).choice(len(found), tcfg.max_negatives, replace=False)
            found = [found[i] for i in sorted(keep)]
        loaded = load_clips(found, word_n, progress=verbose == 1, desc=f"{split} {'keyword' if is_keyword else 'other'} clips")
        if loaded.failed:
            log.warning("%d unreadable clips skipped, e.g. %s", len(loaded.failed), loaded.failed[0])
        return loaded

    noise_audio, _ = load_noise(index.noise_files)
    noise = NoiseBank(noise_audio, kcfg.clip_samples(feats))
    synthetic_paths = {c.path for c in synthetic.clips} if synthetic else set()
    data = {}
    from_training = {"keyword": [], "other": []}  # the splits scored on training clips, having none of their own
    for split in ("train", "validation", "test") if score_test else ("train", "validation"):
        kw, other = clips(split, True), clips(split, False)
        if len(kw.clips) == 0:
            if split == "train":
                raise DataError(f"{index.root}: no training clips of the keyword '{keyword}'; choose a --keyword with a WORD/ folder or synthesize it")
            kw = clips("train", True)  # e.g. a keyword from synthetic speech alone: scored on what it trained on
            n_synth = sum(c.path in synthetic_paths for c in kw.clips)
            log.warning("no %s clips of the keyword '%s': its %s numbers come from its training clips (%d of %d of them "
                        "synthetic speech), not held-out speech, so they overstate how it does on new speakers", split, keyword, split, n_synth, len(kw.clips))
            from_training["keyword"].append(split)
        if len(other.clips) == 0:
            other = clips("train", False)
            from_training["other"].append(split)
        extents = speech_extents(kw.audio, feats.sample_rate_hz).astype(np.float32)
        data[split] = (kw, extents, other)

    unknown = sorted(set(kcfg.confusable_words) - {c.word for ix in sources for c in ix.clips})
    if unknown:
        log.warning("confusable words without clips (ignored): %s", ", ".join(unknown))

    # Only training clips are drawn by weight; validation and test clips come as they are.
    train_kw, _, train_other = data["train"]
    train_flags = {"keyword_synthetic": np.array([c.path in synthetic_paths for c in train_kw.clips], bool),
                   "other_synthetic": np.array([c.path in synthetic_paths for c in train_other.clips], bool),
                   "other_confusable": np.array([c.word in kcfg.confusable_words for c in train_other.clips], bool)}

    def dataset(split: str, split_seed: int, repeat: bool, n_examples: int | None = None):
        kw, extents, other = data[split]
        return kws_dataset(kw.audio, extents[:, 1], other.audio, noise=noise, features=feats, kws=kcfg, batch_size=tcfg.batch_size,
                           seed=split_seed, repeat=repeat, n_examples=n_examples, keyword_start_s=extents[:, 0],
                           **(train_flags if split == "train" else {}))

    train_ds = dataset("train", seed, True)
    it = iter(train_ds)
    next(it)
    start, batches = time.perf_counter(), 6
    pipeline = [next(it) for _ in range(batches)]
    pipeline_eps = batches * tcfg.batch_size / (time.perf_counter() - start)
    pipeline_x = np.concatenate([x.numpy() for x, _ in pipeline])
    stats = pipeline_x.reshape(-1, feats.n_mels)
    x_val, y_val = _arrays(dataset("validation", seed + 1000, False, tcfg.val_examples))
    scored = {"validation": (x_val, y_val)}
    if score_test:
        scored["test"] = _arrays(dataset("test", seed + 2000, False, tcfg.val_examples))

    model = build_kws_model(input_frames=kcfg.input_frames(feats), n_mels=feats.n_mels, conv_filters=tcfg.conv_filters,
                            conv_kernel_frames=kcfg.conv_kernel_frames, conv_stride_frames=kcfg.conv_stride_frames,
                            gru_units=tcfg.gru_units, dropout=tcfg.dropout, feature_mean=stats.mean(0), feature_variance=stats.var(0))
    model.compile(optimizer=adam(tcfg.learning_rate, tcfg.lr_schedule, (epochs or tcfg.epochs) * tcfg.steps_per_epoch, tcfg.weight_decay), loss="binary_crossentropy",
                  metrics=[keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")])
    history, timer = fit(model, train_ds, (x_val, y_val), run_dir=run_dir, epochs=epochs or tcfg.epochs,
                         steps_per_epoch=tcfg.steps_per_epoch, monitor="val_loss", mode="min", patience=tcfg.patience, verbose=verbose)

    metrics = {}
    for split, (x, y) in scored.items():
        probs = model.predict(x, batch_size=tcfg.batch_size, verbose=0)
        metrics[split] = {"frame": frame_f1(y, probs), "examples": int(len(x))}
        if split == "validation":
            k = int(np.argmax(y.sum(axis=(1, 2))))  # the validation clip with the most keyword frames
            times = np.array([kcfg.output_frame_time_s(t, feats) for t in range(y.shape[1])])
            plot_keyword_trace(x[k], probs[k, :, 0], y[k, :, 0], times, feats.hop_ms / 1000, os.path.join(run_dir, "keyword_trace.png"),
                               f"keyword '{keyword}': probability over a validation clip (Keras)")
    plot_curves(os.path.join(run_dir, "log.csv"), os.path.join(run_dir, "curves.png"), f"keyword model ('{keyword}')")
    summary = {
        "metrics": metrics,
        "training": training_record(preset.name, seed, tcfg, timer, pipeline_eps, {"kws_data": to_dict(kcfg), "kws": to_dict(tcfg)}),
        "data": {"index": index.summary(), "keyword_clips": {s: len(d[0].clips) for s, d in data.items()},
                 "other_clips": {s: len(d[2].clips) for s, d in data.items()},
                 "from_training_clips": from_training,
                 "train_synthetic_clips": {"keyword": int(train_flags["keyword_synthetic"].sum()),
                                           "other": int(train_flags["other_synthetic"].sum())},
                 "train_confusable_clips": int(train_flags["other_confusable"].sum()),
                 "synthetic_weight": kcfg.synthetic_weight, "confusable_words": list(kcfg.confusable_words),
                 "confusable_prob": kcfg.confusable_prob},
    }
    sidecar = {
        "labels": [keyword],
        "keyword": keyword,
        "sample_rate_hz": feats.sample_rate_hz,
        "features": to_dict(feats),
        "input": {"frames": kcfg.input_frames(feats), "n_mels": feats.n_mels, "clip_s": kcfg.clip_s},
        "output": {"frames": kcfg.output_frames(feats), "hop_s": kcfg.output_hop_s(feats), "kernel_frames": kcfg.conv_kernel_frames,
                   "stride_frames": kcfg.conv_stride_frames, "label_s": kcfg.label_s},
        "thresholds": {"detector": to_dict(preset.detector)},
        **summary,
    }
    export_model(model, out_dir=out_dir, task="kws", probe=x_val[:4], representative=pipeline_x[:64], sidecar=sidecar)
    return summary
