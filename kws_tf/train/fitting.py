"""Keras ``fit`` with the run-folder conventions: best checkpoint, resume after an interrupted or
killed run (BackupAndRestore), early stopping, TensorBoard, CSV log, and timing per epoch."""

from __future__ import annotations

import json
import logging
import os
import statistics
import time

import keras

log = logging.getLogger(__name__)


def adam(learning_rate: float, schedule: str, total_steps: int, weight_decay: float = 0.0,
         not_decayed: list | tuple = ()) -> keras.optimizers.Adam:
    """Adam with a constant rate, or ``"cosine"``: decaying from ``learning_rate`` to 1 % of it over
    ``total_steps`` (the schedule follows the optimizer's step count, so a resumed run continues it).
    ``weight_decay`` > 0 makes it AdamW (decoupled weight decay, Loshchilov & Hutter 2019): each step shrinks
    the kernels by ``weight_decay`` times the current rate; biases and batch-norm scales and offsets are left alone,
    and so are the variables in ``not_decayed`` (e.g. a classifier head)."""
    if schedule == "constant":
        rate = learning_rate
    elif schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps), alpha=0.01)
    else:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; use 'constant' or 'cosine'")
    if weight_decay <= 0:
        return keras.optimizers.Adam(rate)
    optimizer = keras.optimizers.AdamW(rate, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_list=list(not_decayed), var_names=["bias", "gamma", "beta"])
    return optimizer


def backup_dir(run_dir: str) -> str:
    """Where ``fit`` keeps an unfinished run's backup (its presence makes the same command resume)."""
    return os.path.join(run_dir, "backup")


class ResumeError(Exception):
    """The backup of an interrupted run cannot be read."""


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose files are never half-written: weights and the epoch counter go to
    temporary files that replace the old ones (``os.replace``), so ``kill -9`` at any moment leaves
    the previous complete backup or the new one. (Keras writes in place; a kill while it writes the
    epoch counter leaves an empty JSON file that the resumed run cannot read.)"""

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp_weights = os.path.join(self.backup_dir, "writing.weights.h5")  # Keras wants the suffix
        self.model.save_weights(tmp_weights, overwrite=True)
        tmp_meta = self._training_metadata_path + ".writing"
        with open(tmp_meta, "w") as f:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
        # Weights first: a kill between the two replaces resumes with the new weights and the old
        # epoch counter, so one epoch is repeated, nothing is lost.
        os.replace(tmp_weights, self._weights_path)
        os.replace(tmp_meta, self._training_metadata_path)

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError) as exc:
            raise ResumeError(
                f"{self.backup_dir}: the backup of the interrupted run cannot be read ({type(exc).__name__}: {exc}); "
                "rerun with --fresh to start over"
            ) from exc


class EpochTimer(keras.callbacks.Callback):
    """Seconds per epoch, kept for the run summary."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def training_record(preset_name: str, seed: int, tcfg, timer: EpochTimer, pipeline_eps: float, recipe: dict) -> dict:
    """The run summary's ``training`` section, the same for both models: epochs run and their median time, the
    input pipeline's and the training's examples per second, and ``recipe`` (the resolved preset sections, ``--set``
    overrides included: the model says how it was made)."""
    epoch_s = float(statistics.median(timer.seconds)) if timer.seconds else None
    return {"preset": preset_name, "seed": seed, "epochs_run": len(timer.seconds), "seconds_per_epoch": epoch_s,
            "steps_per_epoch": tcfg.steps_per_epoch, "batch_size": tcfg.batch_size, "pipeline_examples_per_s": pipeline_eps,
            "train_examples_per_s": tcfg.steps_per_epoch * tcfg.batch_size / epoch_s if epoch_s else None,
            "recipe": recipe}


def fit(
    model: keras.Model,
    train_ds,
    validation_data,
    *,
    run_dir: str,
    epochs: int,
    steps_per_epoch: int,
    monitor: str,
    mode: str,
    patience: int,
    verbose: int = 1,
) -> tuple[keras.callbacks.History, EpochTimer]:
    """Train, then load the best checkpoint's weights into ``model``.

    Files in ``run_dir``: ``best.weights.h5``, ``log.csv``, ``tensorboard/``, ``backup/`` (removed
    when training completes; its presence makes the same command resume).
    """
    os.makedirs(run_dir, exist_ok=True)
    best = os.path.join(run_dir, "best.weights.h5")
    timer = EpochTimer()
    callbacks = [
        AtomicBackupAndRestore(backup_dir(run_dir)),
        keras.callbacks.ModelCheckpoint(best, monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), write_graph=False, profile_batch=0),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "log.csv"), append=True),
        timer,
    ]
    history = model.fit(
        train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=validation_data, callbacks=callbacks, verbose=verbose,
        shuffle=False,  # the tf.data pipeline draws its own random examples (Keras warns otherwise)
    )
    if os.path.exists(best):
        try:
            model.load_weights(best)
        except OSError as exc:  # killed while ModelCheckpoint was writing it
            log.warning("%s is damaged (%s); exporting the last weights", best, exc)
    else:
        log.warning("no checkpoint was written in %s; exporting the last weights", run_dir)
    return history, timer
