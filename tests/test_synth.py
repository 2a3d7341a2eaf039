"""Synthetic Speech Commands clips: format, layout, levels, determinism and the CLI's bad inputs."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader")

from kws_tf.dataset import speaker_of  # noqa: E402
from kws_tf.train import synth  # noqa: E402

NAME = re.compile(r"^synth-[a-z0-9-]+_nohash_\d+\.wav$")


def _files(root: str) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_speaker_id_survives_nohash_split():
    voice = synth.Voice("en-GB-x-rp", "AnxiousAndy", 42, 173)
    assert voice.speaker_id == "synth-engbxrp-anxiousandy-p42-s173"
    assert speaker_of(f"{voice.speaker_id}_nohash_3.wav") == voice.speaker_id
    assert not re.fullmatch(r"[0-9a-f]{8}", voice.speaker_id)
    assert synth.Voice("en-US", "", 50, 160).speaker_id == "synth-enus-base-p50-s160"


def test_render_word_is_one_second_at_a_speech_commands_level():
    rng = np.random.default_rng(0)
    for word in ["yes", "backward", "sheila"]:
        voice = synth.random_voice(rng)
        clip = synth.render_word(word, voice, rng)
        assert clip.shape == (16000,) and clip.dtype == np.float32
        peak_db = 20 * np.log10(np.abs(clip).max())
        assert synth.PEAK_DB[0] - 0.5 <= peak_db <= 0.0
        frames = np.sqrt((clip.reshape(100, 160) ** 2).mean(axis=1))
        voiced = frames > frames.max() / 100  # within 40 dB of the loudest 10 ms
        assert 0.1 <= voiced.sum() / 100 <= synth.MAX_WORD_S + 0.05
        assert frames.min() > 0  # a faint noise floor, never digital silence


def test_long_word_is_sped_up_to_fit():
    rng = np.random.default_rng(0)
    clip = synth.render_word("internationalization", synth.Voice("en-US", "m3", 50, 120), rng, perturb=False)
    frames = np.sqrt((clip.reshape(100, 160) ** 2).mean(axis=1))
    assert (frames > frames.max() / 100).sum() <= 96


def test_layout_format_and_determinism(tmp_path):
    a, b, c = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c")
    assert synth.synthesize_words(["yes", "no"], a, per_word=3, seed=1, progress=False) == {"yes": 3, "no": 3}
    synth.synthesize_words(["yes", "no"], b, per_word=3, seed=1, jobs=2, progress=False)
    synth.synthesize_words(["yes", "no"], c, per_word=3, seed=2, progress=False)
    files = _files(a)
    assert sorted({os.path.dirname(p) for p in files}) == ["no", "yes"] and len(files) == 6
    assert files == _files(b)
    assert files != _files(c)
    for rel in files:
        assert NAME.match(os.path.basename(rel)), rel
        info = sf.info(os.path.join(a, rel))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")


def test_rerun_skips_and_never_overwrites(tmp_path):
    out = str(tmp_path)
    synth.synthesize_words(["go"], out, per_word=2, seed=0, progress=False)
    assert synth.synthesize_words(["go"], out, per_word=2, seed=0, progress=False) == {"go": 0}
    assert synth.synthesize_words(["go"], out, per_word=3, seed=0, progress=False) == {"go": 1}
    name = sorted(os.listdir(os.path.join(out, "go")))[0]
    path = os.path.join(out, "go", name)
    sf.write(path, np.zeros(16000, np.float32), 16000, subtype="PCM_16")  # someone else's file
    assert synth.synthesize_words(["go"], out, per_word=3, seed=0, progress=False) == {"go": 1}
    assert np.all(sf.read(path)[0] == 0)
    assert len(os.listdir(os.path.join(out, "go"))) == 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--words"], "no words given"),
        (["--words", "Yes!"], "not a lowercase English word"),
        (["--words", "yes", "--per-word", "0"], "at least 1"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, argv, message):
    assert synth.main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert synth.main(["--words", "yes", "--out", str(target)]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_cli_library_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(synth, "_ENGINE", None)
    monkeypatch.setattr(synth, "_library_paths", lambda: (str(tmp_path / "libespeak-ng.so"), str(tmp_path)))
    assert synth.main(["--words", "yes", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot load libespeak-ng") and len(err.splitlines()) == 1


def test_cli_writes_clips(tmp_path, capsys):
    assert synth.main(["--words", "up", "--out", str(tmp_path), "--per-word", "2", "--jobs", "1"]) == 0
    assert "wrote 2 clips" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "up")) == 2


def test_cli_on_python_3_10_is_one_line(tmp_path, capsys, monkeypatch):
    """The workers take a fresh library per shard with 3.11's max_tasks_per_child: on 3.10 the run stops in one
    line naming the version needed, before it makes any folder."""
    monkeypatch.setattr(synth.sys, "version_info", (3, 10, 13, "final", 0))
    assert synth.main(["--words", "yes", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: synthesis needs Python 3.11 or newer") and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_write_failure_is_one_line_and_keeps_what_was_written(tmp_path, capsys, monkeypatch):
    """A clip that cannot be written (a full disk) stops the run in one line saying that a rerun keeps the
    clips already there, not a traceback."""
    real = synth.write_wav_atomic
    calls = []

    def fill_up(path, audio, rate):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        real(path, audio, rate)
    monkeypatch.setattr(synth, "write_wav_atomic", fill_up)
    assert synth.main(["--words", "up", "--out", str(tmp_path), "--per-word", "3", "--jobs", "1"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # the bar has lines of its own
    assert err == [f"error: No space left on device; free space in {tmp_path} (or pick another --out) and run the command "
                   "again: it keeps the clips already written"]
    assert len(os.listdir(tmp_path / "up")) == 1
