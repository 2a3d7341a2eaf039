"""Keras 3 model builders: the keyword spotter (Conv1D + 2 GRUs, one sigmoid per output frame) and
the word classifier (residual CNN over 1 s of log-mel, softmax over the vocabulary)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


def _normalization(mean: np.ndarray | None, variance: np.ndarray | None) -> layers.Layer:
    # Per-mel standardization baked into the model, so the runtime feeds raw log-mel.
    if mean is None or variance is None:
        return layers.Identity(name="normalize")
    return layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalize")


def build_kws_model(
    *,
    input_frames: int,
    n_mels: int,
    conv_filters: int = 128,
    conv_kernel_frames: int = 15,
    conv_stride_frames: int = 4,
    gru_units: int = 64,
    dropout: float = 0.2,
    feature_mean: np.ndarray | None = None,
    feature_variance: np.ndarray | None = None,
) -> keras.Model:
    """Trigger-word model (Coursera design): ``(frames, n_mels)`` log-mel -> ``(out_frames, 1)`` sigmoid.

    ``out_frames = (input_frames - conv_kernel_frames) // conv_stride_frames + 1``.
    """
    inputs = keras.Input((input_frames, n_mels), name="log_mel")
    x = _normalization(feature_mean, feature_variance)(inputs)
    x = layers.Conv1D(conv_filters, conv_kernel_frames, strides=conv_stride_frames, padding="valid", name="conv")(x)
    x = layers.BatchNormalization(name="conv_bn")(x)
    x = layers.ReLU(name="conv_relu")(x)
    x = layers.Dropout(dropout, name="conv_dropout")(x)
    for i in (1, 2):
        x = layers.GRU(gru_units, return_sequences=True, name=f"gru{i}")(x)
        x = layers.Dropout(dropout, name=f"gru{i}_dropout")(x)
        x = layers.BatchNormalization(name=f"gru{i}_bn")(x)
    # A plain Dense on the 3-D tensor is one TFLite op; TimeDistributed would unroll per frame.
    outputs = layers.Dense(1, activation="sigmoid", name="keyword_prob")(x)
    return keras.Model(inputs, outputs, name="kws")


def residual_block(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Two 3x3 convs with batch norm and a (projected) shortcut, then 2x2 max pooling."""
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_proj")(x)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    y = layers.ReLU(name=f"{name}_relu2")(y)
    return layers.MaxPooling2D(2, name=f"{name}_pool")(y)


def build_word_model(
    *,
    input_frames: int,
    n_mels: int,
    n_classes: int,
    widths: tuple[int, ...] = (16, 32, 64),
    dropout: float = 0.2,
    feature_mean: np.ndarray | None = None,
    feature_variance: np.ndarray | None = None,
) -> keras.Model:
    """Residual CNN word classifier: ``(frames, n_mels)`` log-mel -> ``(n_classes,)`` softmax."""
    inputs = keras.Input((input_frames, n_mels), name="log_mel")
    x = _normalization(feature_mean, feature_variance)(inputs)
    x = layers.Reshape((input_frames, n_mels, 1), name="to_image")(x)
    for i, filters in enumerate(widths, start=1):
        x = residual_block(x, filters, name=f"block{i}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="word_probs")(x)
    return keras.Model(inputs, outputs, name="words")
