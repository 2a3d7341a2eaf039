"""Train, evaluate, plot and export the word classifier (residual CNN over 1 s of log-mel)."""

from __future__ import annotations

import logging
import os
import time

import keras
import numpy as np

from kws_tf.config import SILENCE_LABEL, to_dict
from kws_tf.dataset import CORE_WORDS, DatasetIndex, LoadedClips, load_clips, load_noise
from kws_tf.train.augment import NoiseBank
from kws_tf.train.export import export_model
from kws_tf.train.fitting import adam, fit, training_record
from kws_tf.train.models import build_word_model
from kws_tf.train.plots import plot_confusion, plot_curves
from kws_tf.train.presets import Preset
from kws_tf.train.word_data import mixup_batches, one_hot_batches, synthetic_weights, word_eval_arrays, word_train_dataset

log = logging.getLogger(__name__)


def word_loss(label_smoothing: float) -> keras.losses.Loss:
    """Cross-entropy on one-hot label rows, smoothed by ``label_smoothing`` (0: plain)."""
    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)


def _loaded(clips, n, desc, progress: bool) -> LoadedClips:
    loaded = load_clips(clips, n, progress=progress, desc=desc)
    for msg in loaded.failed[:5]:
        log.warning("skipped %s", msg)
    if loaded.failed:
        log.warning("%s: %d unreadable clips skipped", desc, len(loaded.failed))
    return loaded


def accuracy_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Overall, macro (over words present) and core-word accuracy, plus per word."""
    per_word = {}
    for c, word in enumerate(labels):
        mask = y_true == c
        if mask.any():
            per_word[word] = float(np.mean(y_pred[mask] == c))
    core = [per_word[w] for w in CORE_WORDS if w in per_word]
    words_only = [v for w, v in per_word.items() if w != SILENCE_LABEL]
    return {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else None,
        "macro_accuracy": float(np.mean(words_only)) if words_only else None,
        "core_accuracy": float(np.mean(core)) if core else None,
        "examples": int(len(y_true)),
        "per_word": per_word,
    }


def train_words(index: DatasetIndex, words: list[str], keyword: str, preset: Preset, *, out_dir: str, run_dir: str, seed: int,
                synthetic: DatasetIndex | None = None, epochs: int | None = None, verbose: int = 1, score_test: bool = True) -> dict:
    """Full word-model run; returns the run summary (also written into the sidecar). ``score_test=False``
    leaves the test split unread (no test metrics)."""
    keras.utils.set_random_seed(seed)  # weight initialisation and dropout follow --seed too, not only the data
    feats, wcfg, tcfg = preset.features, preset.word_data, preset.words
    n = wcfg.clip_samples(feats)
    labels = list(words) + [SILENCE_LABEL]
    label_of = {w: i for i, w in enumerate(words)}

    train = _loaded(index.select("train", words), n, "train clips", verbose == 1)
    synth = _loaded(synthetic.select("train", words) if synthetic else [], n, "synthetic clips", verbose == 1)
    val = _loaded(index.select("validation", words), n, "validation clips", verbose == 1)
    test = _loaded(index.select("test", words) if score_test else [], n, "test clips", verbose == 1)  # unread with score_test off
    noise_audio, noise_failed = load_noise(index.noise_files)
    noise = NoiseBank(noise_audio, n)
    unscored = {split: [w for w in words if w not in {c.word for c in loaded.clips}]  # e.g. words from synthetic speech alone
                for split, loaded in [("validation", val)] + ([("test", test)] if score_test else [])}
    for split, lacking in unscored.items():
        if lacking:
            log.warning("no %s clips of %s: the %s accuracy leaves %s out", split, ", ".join(lacking), split, "it" if len(lacking) == 1 else "them")

    audio = np.concatenate([train.audio, synth.audio]) if len(synth.audio) else train.audio  # no second copy without synthetic clips
    y = np.array([label_of[c.word] for c in train.clips + synth.clips], np.int32)
    is_synth = np.concatenate([np.zeros(len(train.clips), bool), np.ones(len(synth.clips), bool)])
    synth_weight = synthetic_weights(np.bincount(y[~is_synth], minlength=len(words)), tcfg.synthetic_weight, tcfg.synthetic_taper_clips)
    plain_ds = word_train_dataset(audio, y, is_synth, n_words=len(words), noise=noise, features=feats, word=wcfg,
                                  batch_size=tcfg.batch_size, seed=seed, synthetic_weight=synth_weight, keyword_class=label_of.get(keyword),
                                  confusable_classes=[label_of[w] for w in wcfg.confusable_words if w in label_of])
    one_hot = tcfg.mixup_alpha > 0 or tcfg.label_smoothing > 0  # label rows instead of class indices
    if tcfg.mixup_alpha > 0:
        train_ds = mixup_batches(plain_ds, n_classes=len(labels), alpha=tcfg.mixup_alpha, seed=seed)
    elif tcfg.label_smoothing > 0:
        train_ds = one_hot_batches(plain_ds, n_classes=len(labels))
    else:
        train_ds = plain_ds
    n_sil = max(4, len(val.clips) // len(words))
    scored = {}  # split -> (features, labels): validation, and test unless score_test is off
    for split, loaded, split_seed in [("validation", val, seed + 7)] + ([("test", test, seed + 8)] if score_test else []):
        y_split = np.array([label_of[c.word] for c in loaded.clips], np.int32)
        scored[split] = word_eval_arrays(loaded.audio, y_split, n_words=len(words), noise=noise, features=feats, n_silence=n_sil, seed=split_seed)
    x_val, y_val = scored["validation"]

    # Throughput of the input pipeline alone, to compare with what a training step consumes; its
    # (unmixed) examples also give the feature statistics and the int8 calibration set.
    it = iter(plain_ds)
    sample_x, _ = next(it)
    start, batches = time.perf_counter(), 10
    pipeline_x = np.concatenate([next(it)[0].numpy() for _ in range(batches)])
    pipeline_eps = batches * tcfg.batch_size / (time.perf_counter() - start)
    stats = pipeline_x.reshape(-1, feats.n_mels)

    model = build_word_model(input_frames=sample_x.shape[1], n_mels=feats.n_mels, n_classes=len(labels), widths=tuple(tcfg.widths),
                             dropout=tcfg.dropout, feature_mean=stats.mean(0), feature_variance=stats.var(0))
    head = [] if tcfg.decay_head else model.get_layer("word_probs").trainable_variables
    optimizer = adam(tcfg.learning_rate, tcfg.lr_schedule, (epochs or tcfg.epochs) * tcfg.steps_per_epoch, tcfg.weight_decay, head)
    if one_hot:  # mixed or smoothed labels are one-hot rows; validation labels follow
        model.compile(optimizer=optimizer, loss=word_loss(tcfg.label_smoothing), metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
        fit_val = (x_val, np.eye(len(labels), dtype=np.float32)[y_val])
    else:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        fit_val = (x_val, y_val)
    has_val = len(x_val) > 0
    history, timer = fit(model, train_ds, fit_val if has_val else None, run_dir=run_dir, epochs=epochs or tcfg.epochs,
                         steps_per_epoch=tcfg.steps_per_epoch, monitor="val_accuracy" if has_val else "accuracy", mode="max",
                         patience=tcfg.patience, verbose=verbose)

    results = {}
    for split, (x, yy) in scored.items():
        if len(x):
            pred = model.predict(x, batch_size=256, verbose=0).argmax(-1)
            results[split] = accuracy_report(yy, pred, labels)
            if split == list(scored)[-1]:  # the test split's confusions, else validation's
                plot_confusion(yy, pred, labels, os.path.join(run_dir, "confusion.png"), f"word model, {split} split (Keras)")
    plot_curves(os.path.join(run_dir, "log.csv"), os.path.join(run_dir, "curves.png"), "word model")
    summary = {
        "metrics": results,
        "training": training_record(preset.name, seed, tcfg, timer, pipeline_eps, {"word_data": to_dict(wcfg), "words": to_dict(tcfg)}),
        "data": {"index": index.summary(), "train_clips": len(train.clips), "synthetic_clips": len(synth.clips),
                 "unscored_words": unscored,
                 "synthetic_weight": tcfg.synthetic_weight,
                 "synthetic_weight_per_word": {w: round(float(v), 4) for w, v in zip(words, synth_weight)} if tcfg.synthetic_taper_clips else None,
                 "skipped_unreadable": len(train.failed + synth.failed + val.failed + test.failed) + len(noise_failed)},
    }
    probe = x_val if len(x_val) else pipeline_x
    rng = np.random.default_rng(seed)
    sidecar = {
        "labels": labels,
        "keyword": keyword,
        "sample_rate_hz": feats.sample_rate_hz,
        "features": to_dict(feats),
        "input": {"frames": int(sample_x.shape[1]), "n_mels": feats.n_mels, "clip_s": wcfg.clip_s},
        "output": {"classes": len(labels)},
        "thresholds": {"decoder": to_dict(preset.decoder)},
        **summary,
    }
    export_model(model, out_dir=out_dir, task="words", probe=probe[rng.permutation(len(probe))[:16]],
                 representative=pipeline_x[:200], sidecar=sidecar)
    return summary
