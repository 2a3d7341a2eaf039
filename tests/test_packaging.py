"""The wheel carries the shipped models' TFLite files and sidecars and the training presets (setup.cfg's
data_files), every one of them, so that an installed kws_tf finds them (kws_tf.cli.INSTALLED_MODELS,
kws_tf.train.presets.INSTALLED_PRESETS) and runs without --models or a preset path."""

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
    """Repository paths of what an install carries: every model folder's sidecar and TFLite files, the presets."""
    names = glob.glob(os.path.join(REPO, "saved_models", "*", "model.json"))
    names += glob.glob(os.path.join(REPO, "saved_models", "*", "*.tflite"))
    names += glob.glob(os.path.join(REPO, "training", "*.json"))  # the presets
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


def test_presets_by_name_come_from_the_checkout_the_current_folder_or_the_install(tmp_path, monkeypatch):
    """A checkout installed without -e (pip install '.[train]', as where the pinned requirements do not install)
    has no training/ beside the installed package: the current folder's or the installed copy's presets serve."""
    from kws_tf.train import presets

    installed = tmp_path / "venv" / "share" / "kws_tf" / "training"
    installed.mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "training", "tiny.json"), installed / "tiny.json")
    monkeypatch.setattr(presets, "CHECKOUT_PRESETS", str(tmp_path / "site-packages" / "training"))
    monkeypatch.setattr(presets, "INSTALLED_PRESETS", [str(installed)])
    monkeypatch.chdir(tmp_path)
    assert presets.available_presets() == ["tiny"] and presets.load_preset("tiny").name == "tiny"
    with pytest.raises(presets.PresetError, match="preset 'default' not found; choose one of tiny or pass a .json path"):
        presets.load_preset("default")
    (tmp_path / "training").mkdir()  # a checkout's training/ in the current folder comes first
    shutil.copy(os.path.join(REPO, "training", "default.json"), tmp_path / "training" / "default.json")
    assert presets.available_presets() == ["default", "tiny"] and presets.load_preset("default").name == "default"

