"""The JSON sidecar that travels with each exported model (numpy-free, stdlib only).

Layout of an export folder (``saved_models/`` by default)::

    kws/model.json       words/model.json        # sidecars (this module)
    kws/float32.tflite   words/float32.tflite
    kws/int8.tflite      words/int8.tflite
    kws/saved_model/     words/saved_model/

and, optionally, ``verifier/``: a copy of another word model's export folder (its sidecar's task stays
"words") that confirms keyword detections in place of ``words/``, which then only transcribes. More
verifiers may sit beside it as ``verifier_<name>/`` folders (copies of word model exports too, with the
same labels): the gate then confirms with their keyword probabilities averaged.

Sidecar keys (``format`` = ``kws_tf.sidecar/1``):
    task: "kws" | "words"
    labels: output names; kws: [keyword]; words: class names in output order (may include "_silence_")
    keyword: the keyword (both tasks, for reference)
    features: FeatureConfig as a dict (sample_rate_hz: a copy of its rate for readers of the file; the runtime reads features)
    input: {"frames", "n_mels", "clip_s"}            model input is (1, frames, n_mels) float32 log-mel
    output: {"frames", "hop_s", "kernel_frames", "stride_frames", "label_s"}   (kws; words: {"classes"})
            label_s: how long after each keyword's end the training targets were 1 (frame F1 labels the same way)
    model_files: {"float32": "float32.tflite", "int8": "int8.tflite"}
    quantization: {"int8": "full_integer" | "dynamic_range", "note": str}
    thresholds: runtime decision settings (see kws_tf.decisions for the meaning of each key)
    parity: {"float32_max_abs_diff", "int8_max_abs_diff"} TFLite vs Keras on a probe batch
    data, metrics, training: summaries; git_commit, kws_tf_version, created_utc
"""

from __future__ import annotations

import json
import os

from kws_tf.atomic_write import atomic_path

FORMAT = "kws_tf.sidecar/1"
SIDECAR_NAME = "model.json"
TASKS = ("kws", "words")
VERIFIER = "verifier"  # optional folder: a word model export that verifies keyword detections
# (more of them: ``verifier_<name>/`` folders beside it; the gate averages their keyword probabilities)


class ModelDirError(Exception):
    """A models folder that cannot be used; ``str()`` is a one-line message for the user."""


def sidecar_path(models_dir: str, task: str) -> str:
    return os.path.join(models_dir, task, SIDECAR_NAME)


def verifier_folders(models_dir: str) -> list[str]:
    """The package's verifier folders, ``verifier`` and any ``verifier_<name>`` (sorted), whether or not
    each holds its sidecar (``load_verifiers`` says what is missing); [] when it has none."""
    try:
        names = os.listdir(models_dir)
    except OSError:
        return []
    return sorted(n for n in names if (n == VERIFIER or n.startswith(VERIFIER + "_"))
                  and os.path.isdir(os.path.join(models_dir, n)))


def load_verifiers(models_dir: str) -> list[tuple[str, dict]]:
    """``[(folder, sidecar)]`` of the package's verifiers, in ``verifier_folders`` order; [] when it has
    none. Raises ModelDirError for a verifier folder without its sidecar or with an unusable one."""
    out = []
    for folder in verifier_folders(models_dir):
        if not os.path.exists(sidecar_path(models_dir, folder)):
            path = os.path.join(models_dir, folder)
            raise ModelDirError(f"{path}: no model.json; copy a whole word model export folder there "
                                f"(cp -r OTHER/words {path}) or remove the folder")
        out.append((folder, load_sidecar(models_dir, folder, task_in_file="words")))
    return out


def confirming_folders(models_dir: str) -> list[str]:
    """The folders of the models that confirm keyword detections: the verifier folders if there are
    any, else ``["words"]``."""
    return verifier_folders(models_dir) or ["words"]


def load_sidecar(models_dir: str, task: str, task_in_file: str | None = None) -> dict:
    """Read ``models_dir/task/model.json`` (whose task must be ``task_in_file``, by default ``task``);
    raise ModelDirError with what to do when it is unusable."""
    path = sidecar_path(models_dir, task)
    expected = task_in_file or task
    if not os.path.exists(path):
        raise ModelDirError(f"{path}: not found; point --models at a folder that 'python -m kws_tf.train' exported (e.g. saved_models/)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{path}: unreadable sidecar ({exc}); re-export the model") from None
    if data.get("format") != FORMAT or data.get("task") != expected:
        raise ModelDirError(f"{path}: not a kws_tf {expected} sidecar (format {data.get('format')!r}); re-export the model")
    return data


def save_sidecar(models_dir: str, task: str, data: dict) -> str:
    """Write the sidecar atomically (temporary file, then rename)."""
    path = sidecar_path(models_dir, task)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = {"format": FORMAT, "task": task, **data}
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    return path


def model_file(models_dir: str, task: str, sidecar: dict, precision: str) -> str:
    """Path of the TFLite file for ``precision`` ("float32" or "int8")."""
    files = sidecar.get("model_files", {})
    if precision not in files:
        raise ModelDirError(f"{sidecar_path(models_dir, task)}: no {precision} model listed; choose one of {sorted(files)}")
    path = os.path.join(models_dir, task, files[precision])
    if not os.path.exists(path):
        raise ModelDirError(f"{path}: missing; re-export the model")
    return path
