"""The wheel carries the shipped models' TFLite files and sidecars (setup.cfg's data_files), every one of them,
so that an installed kws_tf finds them (kws_tf.cli.INSTALLED_MODELS) and runs without --models."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shipped_files() -> set[str]:
    """``saved_models/...`` paths of what the runtime loads: every model folder's sidecar and TFLite files."""
    names = glob.glob(os.path.join(REPO, "saved_models", "*", "model.json"))
    names += glob.glob(os.path.join(REPO, "saved_models", "*", "*.tflite"))
    return {os.path.relpath(n, REPO) for n in names} | {"saved_models/MODEL_CARD.md"}


def test_the_wheel_installs_every_shipped_model_where_the_runtime_looks(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.importorskip("wheel")  # bdist_wheel lives there before setuptools 70.1
    src = tmp_path / "src"  # what the build reads, not the checkout's data or run folders
    for name in ("setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", *shipped_files()):
        os.makedirs(os.path.dirname(src / name), exist_ok=True)
        shutil.copy(os.path.join(REPO, name), src / name)
    shutil.copytree(os.path.join(REPO, "kws_tf"), src / "kws_tf", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = glob.glob(str(tmp_path / "dist" / "kws_tf-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        data = {n.split(".data/data/", 1)[1] for n in zf.namelist() if ".data/data/" in n}
    assert len(shipped_files()) >= 10
    assert data == {"share/kws_tf/" + name for name in shipped_files()}

    # Installed in an environment of its own (no dependencies needed for the lookup), outside any checkout:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
                   check=True, capture_output=True, timeout=300)
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "from kws_tf.cli import default_models_dir as d; print(d())"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == str(venv / "share" / "kws_tf" / "saved_models"), found.stderr
    for name in shipped_files():
        installed = venv / "share" / "kws_tf" / name
        assert installed.read_bytes() == open(os.path.join(REPO, name), "rb").read(), name
