"""The runtime never imports TensorFlow or Keras: by source scan and by importing with them blocked."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "kws_tf")
RUNTIME_MODULES = ["kws_tf", "kws_tf.config", "kws_tf.features", "kws_tf.audio_io", "kws_tf.sidecar", "kws_tf.dataset",
                   "kws_tf.tflite_model", "kws_tf.decisions", "kws_tf.runtime", "kws_tf.transcribe", "kws_tf.live", "kws_tf.atomic_write"]
FORBIDDEN = ("tensorflow", "keras", "tf_keras")


def _runtime_files() -> list[str]:
    """Every Python file of the package outside kws_tf/train/ (evaluate/ included), and the tools."""
    files = []
    for top in (PACKAGE, os.path.join(REPO, "tools")):
        for folder, dirs, names in os.walk(top):
            dirs[:] = [d for d in dirs if os.path.join(folder, d) != os.path.join(PACKAGE, "train") and d != "__pycache__"]
            files += [os.path.join(folder, n) for n in names if n.endswith(".py")]
    return sorted(files)


def test_runtime_sources_do_not_import_tensorflow():
    offenders = []
    for path in _runtime_files():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{os.path.relpath(path, REPO)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert len(_runtime_files()) > 20 and offenders == []


def test_runtime_modules_import_with_tensorflow_blocked():
    code = (
        "import sys, importlib\n"
        "for name in ('tensorflow', 'keras', 'tf_keras'):\n"
        "    sys.modules[name] = None\n"
        f"for mod in {RUNTIME_MODULES!r}:\n"
        "    importlib.import_module(mod)\n"
        "import kws_tf.runtime, kws_tf.transcribe\n"
        "assert kws_tf.transcribe.main(['--help']) == 0\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert all(m.split(".")[-1] + ".py" in os.listdir(PACKAGE) or m == "kws_tf" for m in RUNTIME_MODULES)
