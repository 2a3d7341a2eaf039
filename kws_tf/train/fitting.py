"""Keras ``fit`` with the run-folder conventions: best checkpoint, resume after an interrupted or
killed run (BackupAndRestore), early stopping, TensorBoard, CSV log, and timing per epoch."""

from __future__ import annotations

import logging
import os
import time

import keras

log = logging.getLogger(__name__)


def adam(learning_rate: float, schedule: str, total_steps: int) -> keras.optimizers.Adam:
    """Adam with a constant rate, or ``"cosine"``: decaying from ``learning_rate`` to 1 % of it over
    ``total_steps`` (the schedule follows the optimizer's step count, so a resumed run continues it)."""
    if schedule == "constant":
        return keras.optimizers.Adam(learning_rate)
    if schedule == "cosine":
        return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps), alpha=0.01))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; use 'constant' or 'cosine'")


class EpochTimer(keras.callbacks.Callback):
    """Seconds per epoch, kept for the run summary."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


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
    # double_checkpoint keeps the previous backup, so a kill while the new one is written (a
    # half-written HDF5 file) resumes from the epoch before instead of failing.
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup"), double_checkpoint=True),
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
