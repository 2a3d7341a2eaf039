"""Export a trained Keras model: SavedModel (batch 1 signature), TFLite float32 and int8, a parity
check of each TFLite file against Keras, and the JSON sidecar."""

from __future__ import annotations

import datetime
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kws_tf import __version__
from kws_tf.atomic_write import atomic_path
from kws_tf.sidecar import save_sidecar

log = logging.getLogger(__name__)

FLOAT_TOLERANCE = 1e-3  # max |TFLite - Keras| for the float32 file
INT8_TOLERANCE = 0.25  # max |TFLite - Keras| for the int8 file (probabilities)


class ExportError(Exception):
    """Conversion failed or the TFLite file disagrees with Keras."""


def save_batch1_saved_model(model: keras.Model, directory: str) -> None:
    """SavedModel whose signature has batch size 1: the GRUs then convert to built-in WHILE ops
    (an unbatched signature needs Flex ops that ai-edge-litert cannot run)."""
    shutil.rmtree(directory, ignore_errors=True)
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name="log_mel")
    model.export(directory, format="tf_saved_model", input_signature=[spec], verbose=False)


def convert(saved_model_dir: str, mode: str, representative: np.ndarray | None = None) -> bytes:
    """TFLite flatbuffer: ``mode`` is "float32", "dynamic_range" or "full_integer" (built-in ops only;
    full_integer keeps float input/output and needs ``representative`` of shape (N, ...))."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode in ("dynamic_range", "full_integer"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "full_integer":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in representative)
    return converter.convert()


def _failure(returncode: int, stderr: str) -> str:
    """``"killed by SIGSEGV"`` or ``"exit 1: <last message>"``: how a conversion child ended, without
    the TensorFlow/absl log lines (``I0000 ...``) that a crash leaves as the last thing on stderr."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    noise = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages)")
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not noise.match(ln.strip())]
    return f"exit {returncode}" + (f": {lines[-1][:200]}" if lines else "")


def convert_full_integer_isolated(saved_model_dir: str, representative: np.ndarray, timeout_s: float = 900) -> tuple[bytes | None, str]:
    """Full-integer conversion in a child process: the calibrator segfaults on GRU WHILE loops
    (TF 2.20/2.21), which must not take the training run down. Returns (model or None, reason)."""
    with tempfile.TemporaryDirectory() as tmp:
        rep, out = os.path.join(tmp, "rep.npy"), os.path.join(tmp, "model.tflite")
        np.save(rep, representative)
        cmd = [sys.executable, "-m", "kws_tf.train.export", saved_model_dir, rep, out]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None, f"full-integer conversion timed out after {timeout_s:.0f} s"
        if proc.returncode != 0 or not os.path.exists(out):
            return None, f"full-integer conversion failed ({_failure(proc.returncode, proc.stderr)})"
        with open(out, "rb") as f:
            return f.read(), "full-integer int8 (float input/output)"


def run_tflite(model_content: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run a TFLite model example by example with ai-edge-litert (what users run)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_content)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    results = []
    for x in inputs:
        interp.set_tensor(inp["index"], x[None].astype(np.float32))
        interp.invoke()
        results.append(interp.get_tensor(out["index"])[0].copy())
    return np.stack(results)


def git_commit() -> str | None:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def export_model(
    model: keras.Model,
    *,
    out_dir: str,
    task: str,
    probe: np.ndarray,
    representative: np.ndarray,
    sidecar: dict,
) -> dict:
    """Write ``out_dir/task/{saved_model/, float32.tflite, int8.tflite, model.json}``.

    Args:
        probe: ``(N, frames, n_mels)`` inputs compared between Keras and TFLite.
        representative: ``(N, frames, n_mels)`` calibration inputs for int8.
        sidecar: task-specific sidecar keys (labels, features, thresholds, data, metrics ...).

    Returns:
        The sidecar as written. Raises ExportError when a TFLite file disagrees with Keras.
    """
    task_dir = os.path.join(out_dir, task)
    os.makedirs(task_dir, exist_ok=True)
    saved_model_dir = os.path.join(task_dir, "saved_model")
    save_batch1_saved_model(model, saved_model_dir)
    reference = model.predict(probe, batch_size=len(probe), verbose=0)

    float_model = convert(saved_model_dir, "float32")
    float_diff = float(np.max(np.abs(run_tflite(float_model, probe) - reference)))
    if float_diff > FLOAT_TOLERANCE:
        raise ExportError(f"{task}: float32 TFLite differs from Keras by {float_diff:.2e} (> {FLOAT_TOLERANCE})")

    int8_model, note = convert_full_integer_isolated(saved_model_dir, representative)
    kind = "full_integer"
    if int8_model is None:
        log.warning("%s: %s; using dynamic-range int8 (int8 weights, float activations)", task, note)
        note = f"{note}; dynamic-range quantization used instead (int8 weights, float activations)"
        int8_model, kind = convert(saved_model_dir, "dynamic_range"), "dynamic_range"
    int8_out = run_tflite(int8_model, probe)
    int8_diff = float(np.max(np.abs(int8_out - reference)))
    if int8_diff > INT8_TOLERANCE:
        raise ExportError(f"{task}: int8 TFLite differs from Keras by {int8_diff:.3f} (> {INT8_TOLERANCE})")

    for name, content in (("float32.tflite", float_model), ("int8.tflite", int8_model)):
        with atomic_path(os.path.join(task_dir, name)) as tmp, open(tmp, "wb") as f:
            f.write(content)
    data = {
        **sidecar,
        "model_files": {"float32": "float32.tflite", "int8": "int8.tflite"},
        "model_bytes": {"float32": len(float_model), "int8": len(int8_model)},
        "quantization": {"int8": kind, "note": note},
        "parity": {"probe_examples": int(len(probe)), "float32_max_abs_diff": float_diff, "int8_max_abs_diff": int8_diff},
        "params": int(model.count_params()),
        "git_commit": git_commit(),
        "kws_tf_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    save_sidecar(out_dir, task, data)
    log.info("%s: exported to %s (float32 %d B, int8 %s %d B; parity %.1e / %.3f)", task, task_dir, len(float_model), kind, len(int8_model), float_diff, int8_diff)
    return data


def _full_integer_child(argv: list[str]) -> int:
    saved_model_dir, rep_path, out_path = argv
    content = convert(saved_model_dir, "full_integer", np.load(rep_path))
    with open(out_path, "wb") as f:
        f.write(content)
    return 0


if __name__ == "__main__":  # the isolated full-integer conversion (see convert_full_integer_isolated)
    sys.exit(_full_integer_child(sys.argv[1:]))
