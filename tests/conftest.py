"""Shared fixtures: a tiny generated Speech Commands tree and tiny models exported from it."""

from __future__ import annotations

import contextlib
import io
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

SR = 16000
TINY_WORDS = ("stop", "yes", "no", "up")
# One base pitch per word, so even a tiny model has something to learn.
WORD_HZ = {"stop": 300.0, "yes": 900.0, "no": 500.0, "up": 1400.0, "left": 700.0}


def word_clip(word: str, rng: np.random.Generator, n: int = SR) -> np.ndarray:
    """``(n,)`` float32: a 0.4-0.6 s harmonic tone burst standing in for a spoken word."""
    length = int(rng.uniform(0.4, 0.6) * SR)
    t = np.arange(length) / SR
    f0 = WORD_HZ.get(word, 600.0) * rng.uniform(0.95, 1.05)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * np.hanning(length)
    out = np.zeros(n, np.float32)
    start = int(rng.integers(0, n - length))
    out[start : start + length] = 0.3 * tone / np.max(np.abs(tone))
    return out


def write_tree(root: str, words=TINY_WORDS, speakers: int = 6, per_speaker: int = 2, lists: bool = True, seed: int = 0) -> str:
    """Official layout under ``root``: WORD/<hex>_nohash_<n>.wav, _background_noise_/, list files."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:08x}" for i in rng.integers(0, 2**32, speakers)]
    val, test = [], []
    for word in words:
        os.makedirs(os.path.join(root, word), exist_ok=True)
        for s, spk in enumerate(ids):
            for n in range(per_speaker):
                rel = f"{word}/{spk}_nohash_{n}.wav"
                sf.write(os.path.join(root, rel), word_clip(word, rng), SR, subtype="PCM_16")
                (val if s == 0 else test if s == 1 else []).append(rel)
    os.makedirs(os.path.join(root, "_background_noise_"), exist_ok=True)
    sf.write(os.path.join(root, "_background_noise_", "white.wav"), (rng.standard_normal(3 * SR) * 0.1).astype(np.float32), SR, subtype="PCM_16")
    if lists:
        with open(os.path.join(root, "validation_list.txt"), "w") as f:
            f.write("\n".join(val + ["yes/deadbeef_nohash_9.wav"]) + "\n")  # one listed file that is missing
        with open(os.path.join(root, "testing_list.txt"), "w") as f:
            f.write("\n".join(test) + "\n")
    return root


CORRUPT_CLIP = "no/0badc0de_nohash_0.wav"


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> str:
    """The tiny tree, plus one corrupt WAV (CORRUPT_CLIP) that training must skip and count."""
    root = write_tree(str(tmp_path_factory.mktemp("speech_commands")))
    with open(os.path.join(root, CORRUPT_CLIP), "wb") as f:
        f.write(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    return root


@pytest.fixture
def lists_elsewhere(tiny_data_dir, tmp_path) -> tuple[str, str]:
    """A copy of the tiny tree whose list files moved to a folder of their own: ``(data, lists)``."""
    data, lists = str(tmp_path / "data"), str(tmp_path / "lists")
    shutil.copytree(tiny_data_dir, data)
    os.makedirs(lists)
    for name in ("validation_list.txt", "testing_list.txt"):
        shutil.move(os.path.join(data, name), os.path.join(lists, name))
    return data, lists


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory, tiny_data_dir) -> str:
    """An export folder (kws/ and words/) from the tiny preset, trained for a few steps through the
    real command line. Needs TensorFlow; tests using it are skipped on a runtime-only install."""
    pytest.importorskip("tensorflow")
    from kws_tf.train.__main__ import main

    out = str(tmp_path_factory.mktemp("models"))
    runs = str(tmp_path_factory.mktemp("runs"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["--data-dir", tiny_data_dir, "--preset", "tiny", "--words", *TINY_WORDS, "--out", out, "--run-dir", runs])
    with open(os.path.join(runs, "printed.txt"), "w", encoding="utf-8") as f:  # what the command told the user
        f.write(printed.getvalue())
    assert rc == 0
    return out
