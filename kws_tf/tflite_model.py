"""One exported TFLite model behind a plain ``run(features) -> scores`` call (numpy and
ai-edge-litert only; never TensorFlow). Quantized int8/uint8 input or output tensors are handled with
the tensor's own scale and zero point."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import numpy as np

log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """A TFLite file that cannot be loaded; ``str()`` is a one-line message for the user."""


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide the interpreter's native "INFO: Created TensorFlow Lite XNNPACK delegate" line, which no
    environment variable turns off, so CLIs keep stderr for messages meant for the user."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quantize(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


class TFLiteModel:
    """A TFLite model with one input ``(1, frames, n_mels)`` and one output.

    Args:
        path: the ``.tflite`` file.
        num_threads: interpreter threads (1 keeps a 2-core machine free for audio and features).
    """

    def __init__(self, path: str, num_threads: int = 1) -> None:
        # Imported here so that importing this module stays cheap and a missing wheel gives one line.
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelLoadError(f"ai-edge-litert is not installed ({exc}); run: pip install ai-edge-litert") from None
        if not os.path.exists(path):
            raise ModelLoadError(f"{path}: no such model file; re-export the model")
        try:
            self._interp = Interpreter(model_path=path, num_threads=num_threads)
            with _quiet_native_stderr():
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: cannot load TFLite model ({str(exc).splitlines()[0]}); re-export it") from None
        self.path = path
        self._input = self._interp.get_input_details()[0]
        self._output = self._interp.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in self._input["shape"])
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_dtype = np.dtype(self._output["dtype"])
        log.debug("loaded %s: input %s %s, output %s %s", path, self.input_shape, self.input_dtype,
                  tuple(self._output["shape"]), self.output_dtype)

    def expect_shapes(self, frames: int, n_mels: int, outputs: int | None = None) -> None:
        """Raise ModelLoadError unless the model takes ``(frames, n_mels)`` features (and, if given, gives
        ``outputs`` scores), as its sidecar says: a .tflite file copied from another model fails here."""
        try:
            self._ensure_shape((1, frames, n_mels))
        except ValueError:
            signature = tuple(int(d) for d in self._input.get("shape_signature", self._input["shape"]))
            raise ModelLoadError(f"{self.path}: takes input {signature[1:]}, but its sidecar says ({frames}, {n_mels}); "
                                 "the file belongs to another model: copy the export folder whole or re-export it") from None
        got = int(np.prod(self._output["shape"][1:]))
        if outputs is not None and got != outputs:
            raise ModelLoadError(f"{self.path}: gives {got} scores, but its sidecar lists {outputs} labels; "
                                 "the file belongs to another model: copy the export folder whole or re-export it")

    def _ensure_shape(self, shape: tuple[int, ...]) -> None:
        if shape == self.input_shape:
            return
        # Only models exported with a dynamic time dimension accept another length.
        signature = tuple(int(d) for d in self._input.get("shape_signature", self._input["shape"]))
        if len(signature) != len(shape) or any(s != -1 and s != n for s, n in zip(signature, shape)):
            raise ValueError(f"{self.path}: input shape {shape} does not fit the model's {signature}")
        self._interp.resize_tensor_input(self._input["index"], list(shape))
        self._interp.allocate_tensors()
        self._input = self._interp.get_input_details()[0]
        self._output = self._interp.get_output_details()[0]
        self.input_shape = shape

    def run(self, features: np.ndarray) -> np.ndarray:
        """Run the model on one example.

        Args:
            features: ``(frames, n_mels)`` float32 log-mel.

        Returns:
            float32 scores with the batch (and any trailing unit) dimension removed: ``(out_frames,)``
            keyword probabilities for the keyword model, ``(classes,)`` softmax for the word model.
        """
        x = np.asarray(features, np.float32)[None]
        self._ensure_shape(tuple(x.shape))
        if self.input_dtype != np.float32:
            scale, zero_point = self._input["quantization"]
            x = _quantize(x, self.input_dtype, scale, zero_point)
        self._interp.set_tensor(self._input["index"], x)
        self._interp.invoke()
        y = self._interp.get_tensor(self._output["index"])
        if self.output_dtype != np.float32:
            scale, zero_point = self._output["quantization"]
            y = (y.astype(np.float32) - zero_point) * np.float32(scale)
        return np.asarray(y, np.float32).reshape(-1)

    __call__ = run
