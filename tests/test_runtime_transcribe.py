"""``python -m kws_tf.transcribe``: formats, the jsonl schema, inputs (folders, globs), every bad input
a user can give and its message, exit codes, atomic --output; stand-in models in process, and the
exported tiny models through a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from kws_tf import transcribe
from kws_tf.runtime import Transcriber
from runtime_fakes import fake_transcriber, synth

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEECH = [("", 0.5), ("stop", 0.5), ("", 0.3), ("one", 0.5), ("", 0.3), ("two", 0.5), ("", 2.0)]


@pytest.fixture
def fake_models(monkeypatch):
    """``Transcriber.from_dir`` returns the stand-in models, honouring mode and overrides."""
    def from_dir(models_dir, precision="float32", mode="gated", detector_overrides=None, decoder_overrides=None, **_):
        from kws_tf.config import DecoderConfig, DetectorConfig
        return fake_transcriber(mode, DetectorConfig(**(detector_overrides or {})), DecoderConfig(**(decoder_overrides or {})))
    monkeypatch.setattr(Transcriber, "from_dir", staticmethod(from_dir))


@pytest.fixture
def clips(tmp_path):
    audio = synth(SPEECH)
    root = tmp_path / "clips"
    (root / "sub" / "deeper").mkdir(parents=True)
    sf.write(root / "a.wav", audio, 16000, subtype="PCM_16")
    stereo_44k = soxr.resample(np.stack([audio, audio], axis=1), 16000, 44100)
    sf.write(root / "sub" / "b.flac", stereo_44k, 44100)
    sf.write(root / "sub" / "deeper" / "c.ogg", soxr.resample(audio, 16000, 22050), 22050)
    (root / "sub" / "notes.txt").write_text("not audio")
    return root


def run(capsys, *argv):
    rc = transcribe.main(["--models", "unused", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_jsonl_schema_and_folder_recursion(fake_models, clips, capsys):
    rc, out, err = run(capsys, "--format", "jsonl", clips)
    assert rc == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [os.path.relpath(r["file"], clips) for r in records] == ["a.wav", "sub/b.flac", "sub/deeper/c.ogg"]
    for r in records:
        assert list(r) == ["file", "duration_s", "keywords", "words", "text", "error"]
        assert r["error"] is None and r["text"] == "one two"
        assert abs(r["duration_s"] - 4.6) < 0.01
        assert len(r["keywords"]) == 1 and set(r["keywords"][0]) == {"time_s", "score"}
        assert all(set(w) == {"word", "start_s", "end_s", "score"} for w in r["words"])
        assert all(isinstance(v, float) for k in r["keywords"] for v in k.values())


def test_text_csv_no_gate_single_word_and_glob(fake_models, clips, capsys):
    rc, out, _ = run(capsys, clips / "a.wav")
    assert rc == 0 and out == f"{clips / 'a.wav'}\tone two\n"
    rc, out, _ = run(capsys, "--no-gate", clips / "a.wav")
    assert out.endswith("\tstop one two\n")
    rc, out, _ = run(capsys, "--format", "csv", str(clips / "**" / "*.flac"))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and len(rows) == 1 and rows[0]["text"] == "one two" and rows[0]["error"] == ""
    word = clips / "word.wav"
    sf.write(word, synth([("", 0.3), ("two", 0.4), ("", 0.3)]), 16000)
    rc, out, _ = run(capsys, "--single-word", "--format", "jsonl", word)
    record = json.loads(out)
    assert rc == 0 and [w["word"] for w in record["words"]] == ["two"] and record["text"] == "two"


def test_bad_inputs_are_reported_per_file_and_the_batch_goes_on(fake_models, clips, tmp_path, capsys):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "empty_dir").mkdir()
    bad = [tmp_path / "missing.wav", tmp_path / "corrupt.wav", tmp_path / "empty.wav", clips / "sub" / "notes.txt",
           tmp_path / "empty_dir", str(tmp_path / "nothing*.wav")]
    rc, out, err = run(capsys, "--format", "jsonl", clips / "a.wav", *bad)
    assert rc == 2
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["error"] is None and records[0]["text"] == "one two"
    errors = [r["error"] for r in records[1:]]
    expected = ["no such file", "cannot read audio", "file is empty", "unsupported file type '.txt'",
                "folder has no audio files", "no files match"]
    assert len(errors) == len(expected)
    for message, fragment, record in zip(errors, expected, records[1:]):
        assert fragment in message and record["file"] in message and record["words"] == []
    assert "Traceback" not in err and "6 of 7 files failed" in err
    assert all(len(line) < 300 for line in err.splitlines())


def test_samples_that_are_not_numbers_fail_their_file(fake_models, clips, tmp_path, capsys):
    """A float WAV with NaN or infinity in it would blank every score after them: its file fails, saying where."""
    audio = synth(SPEECH)
    audio[16000 + 123] = np.nan
    sf.write(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")
    audio[16000 + 123] = np.inf
    sf.write(tmp_path / "inf.wav", audio, 16000, subtype="DOUBLE")
    rc, out, err = run(capsys, "--format", "jsonl", tmp_path / "nan.wav", clips / "a.wav", tmp_path / "inf.wav")
    records = [json.loads(line) for line in out.splitlines()]
    assert rc == 2 and records[1]["text"] == "one two"
    for record in (records[0], records[2]):
        assert record["error"] == f"{record['file']}: holds samples that are not numbers (NaN or infinity) from 1.01 s; repair the file or export it again"
    assert "2 of 3 files failed" in err and "Traceback" not in err


def test_usage_errors_exit_1_without_traceback(clips, tmp_path, capsys):
    assert transcribe.main(["--models", str(tmp_path), str(clips / "a.wav")]) == 1
    err = capsys.readouterr().err
    assert "model.json: not found" in err and "Traceback" not in err
    assert transcribe.main(["--format", "xml", str(clips / "a.wav")]) == 1
    # options by full name only: "--mode" is not taken for "--models"
    assert transcribe.main(["--mode", str(tmp_path), str(clips / "a.wav")]) == 1
    assert "unrecognized arguments: --mode" in capsys.readouterr().err
    assert transcribe.main([]) == 1
    assert transcribe.main(["--help"]) == 0
    capsys.readouterr()


def test_no_models_folder_anywhere_says_to_pass_models(clips, tmp_path, capsys, monkeypatch):
    """No ./saved_models, none in a checkout beside the package and none installed with it: the default is no path
    that then fails as a missing sidecar; one line says to pass --models."""
    from kws_tf import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "CHECKOUT_MODELS", str(tmp_path / "site-packages" / "saved_models"))
    monkeypatch.setattr(cli, "INSTALLED_MODELS", [str(tmp_path / "venv" / "share" / "kws_tf" / "saved_models")])
    assert transcribe.main([str(clips / "a.wav")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"python -m kws_tf.transcribe: error: no saved_models/ folder here, in the checkout or installed with "
                   f"kws_tf ({tmp_path}/venv/share/kws_tf/saved_models); pass --models DIR, a folder with kws/ and words/, "
                   "or reinstall kws_tf"]


def test_the_models_installed_with_the_package_are_the_default_outside_a_checkout(tmp_path, monkeypatch):
    from kws_tf import cli

    installed = tmp_path / "venv" / "share" / "kws_tf" / "saved_models"
    installed.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "CHECKOUT_MODELS", str(tmp_path / "site-packages" / "saved_models"))
    monkeypatch.setattr(cli, "INSTALLED_MODELS", [str(tmp_path / "user" / "saved_models"), str(installed)])
    assert cli.default_models_dir() == str(installed)
    (tmp_path / "saved_models").mkdir()  # a folder here comes first
    assert cli.default_models_dir() == "saved_models"


def test_m4a_without_pydub_fails_its_file_in_one_line(fake_models, clips, tmp_path, capsys, monkeypatch):
    """An M4A file needs ffmpeg and pydub: with ffmpeg there but pydub missing, that file fails with one line
    naming what to install, and the batch goes on."""
    from kws_tf import audio_io

    m4a = tmp_path / "voice.m4a"
    m4a.write_bytes(b"\0" * 64)
    monkeypatch.setattr(audio_io.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setitem(sys.modules, "pydub", None)
    rc, out, err = run(capsys, m4a, clips / "a.wav")
    assert rc == 2 and "a.wav" in out  # some files failed, the others were transcribed
    lines = [line for line in err.splitlines() if "voice.m4a" in line]
    assert len(lines) == 1 and "needs pydub" in lines[0] and "pip install pydub" in lines[0] and "Traceback" not in err


def test_usage_errors_in_values(fake_models, clips, tmp_path, capsys):
    for argv in (["--jobs", "0"], ["--threshold", "1.5"], ["--verify-threshold", "-0.1"], ["--output", str(tmp_path / "no" / "out.txt")], ["--output", ""]):
        rc, _, err = run(capsys, *argv, clips / "a.wav")
        assert rc == 1 and "error:" in err, argv


def test_verify_threshold_option_reaches_the_detector(fake_models, clips, capsys):
    rc, out, _ = run(capsys, "--format", "jsonl", "--verify-threshold", "0.5", clips / "a.wav")
    record = json.loads(out)
    assert rc == 0 and record["text"] == "one two"
    assert record["keywords"][0]["verify_score"] > 0.5  # the stand-in word model heard "stop"
    rc, out, _ = run(capsys, "--format", "jsonl", clips / "a.wav")
    assert "verify_score" not in json.loads(out)["keywords"][0]  # off by default


def test_output_is_written_atomically(fake_models, clips, tmp_path, capsys, monkeypatch):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    rc, out, _ = run(capsys, "--format", "jsonl", "--output", target, clips / "a.wav")
    assert rc == 0 and out == "" and json.loads(target.read_text())["text"] == "one two"
    assert sorted(os.listdir(tmp_path)) == ["clips", "out.jsonl"]

    def crash(*_args, **_kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(transcribe, "transcribe_file", crash)
    rc, _, _ = run(capsys, "--format", "jsonl", "--output", target, clips / "a.wav")
    assert rc == 130 and json.loads(target.read_text())["text"] == "one two"  # old output intact

    # write_output itself: its temporary file is written, then the rename fails (a full disk, say)
    def no_space(*_args, **_kw):
        raise OSError(28, "No space left on device")
    old = target.read_text()
    with monkeypatch.context() as patched, pytest.raises(OSError, match="No space left on device"):
        patched.setattr(transcribe.os, "replace", no_space)
        transcribe.write_output(str(target), "new\n")
    assert target.read_text() == old  # old content intact
    assert sorted(os.listdir(tmp_path)) == ["clips", "out.jsonl"]  # no temporary file left
    transcribe.write_output(str(target), "new\n")  # and without the failure it does replace it
    assert target.read_text() == "new\n" and sorted(os.listdir(tmp_path)) == ["clips", "out.jsonl"]


def test_output_that_cannot_or_should_not_be_replaced(fake_models, clips, tmp_path, capsys, monkeypatch):
    # a folder is refused before any work
    rc, _, err = run(capsys, "--output", tmp_path, clips / "a.wav")
    assert rc == 1 and f"--output {tmp_path}: is a folder; give a file name" in err
    # when every input fails, an existing output file is kept (text format would leave it empty)
    kept = tmp_path / "kept.txt"
    kept.write_text("earlier results\n")
    rc, _, err = run(capsys, "--output", kept, tmp_path / "missing.wav")
    assert rc == 2 and kept.read_text() == "earlier results\n" and f"so {kept} was left as it was" in err
    # a link is written through: it stays a link, its target gets the results
    link = tmp_path / "link.txt"
    link.symlink_to(kept)
    rc, _, _ = run(capsys, "--output", link, clips / "a.wav")
    assert rc == 0 and link.is_symlink() and kept.read_text().endswith("\tone two\n")
    # a device is written in place, not replaced by a regular file
    rc, _, _ = run(capsys, "--output", os.devnull, clips / "a.wav")
    assert rc == 0 and not os.path.isfile(os.devnull)
    # a write that fails after the work (a full disk, say) puts the results on stdout and leaves the file
    def full(*_args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(transcribe, "write_output", full)
    kept.write_text("earlier results\n")
    rc, out, err = run(capsys, "--output", kept, clips / "a.wav")
    assert rc == 1 and out.endswith("\tone two\n") and kept.read_text() == "earlier results\n"
    assert f"--output {kept}: cannot write (No space left on device); the results follow on stdout" in err
    assert sorted(os.listdir(tmp_path)) == ["clips", "kept.txt", "link.txt"]  # no temporary file left


def test_jobs_keep_input_order(fake_models, clips, capsys):
    rc1, out1, _ = run(capsys, "--format", "jsonl", clips)
    rc2, out2, _ = run(capsys, "--format", "jsonl", "--jobs", "2", clips)
    assert rc1 == rc2 == 0 and out1 == out2


def test_cli_with_exported_models(tiny_models_dir, clips):
    env = {**os.environ, "PYTHONPATH": REPO}
    for precision in ("float32", "int8"):
        proc = subprocess.run([sys.executable, "-m", "kws_tf.transcribe", "--models", tiny_models_dir, "--precision", precision,
                               "--format", "jsonl", "--threshold", "0", "--no-gate", str(clips)],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # no native log lines, no warnings
        records = [json.loads(line) for line in proc.stdout.splitlines()]
        assert len(records) == 3 and all(r["error"] is None and r["keywords"] for r in records)


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_shipped_models_write_nothing_for_silence(precision):
    """Word training never shows the model digital silence, but a muted microphone or a padded file is
    exactly that: the shipped package must stay quiet on zeros, a DC offset (small, and a large one with dither,
    which made the word models write "no" before features.remove_dc) and faint dither, with the keyword gate and
    without it (every 1 s window goes to the word model)."""
    shipped = os.path.join(REPO, "saved_models")
    if not os.path.exists(os.path.join(shipped, "kws", "model.json")):
        pytest.skip("no shipped models in saved_models/")
    n = 16000 * 20
    dither = (np.random.default_rng(0).standard_normal(n) * 1e-4).astype(np.float32)
    cases = (("zeros", np.zeros(n, np.float32)), ("dc", np.full(n, 0.01, np.float32)), ("dither", dither),
             ("large dc", 0.1 + dither))
    for name, audio in cases:
        for mode in ("gated", "no_gate"):
            tr = Transcriber.from_dir(shipped, precision, mode=mode)
            peak = []
            tr.on_kws_scores = lambda t, p: peak.append(float(np.max(p, initial=0.0)))
            result = tr.transcribe(audio)
            assert result.text == "" and not result.keywords, (name, mode, result.text)
            assert max(peak) < 0.1, (name, mode, max(peak))  # far under any threshold the tuner can pick
