"""``python -m kws_tf.train``: a tiny end-to-end run exports loadable TFLite files with sidecars,
and bad input gets a one-line message."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from kws_tf.sidecar import load_sidecar, model_file
from tests.conftest import TINY_WORDS, write_tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _invoke(models_dir: str, task: str, precision: str, make_input) -> tuple[np.ndarray, np.ndarray]:
    """Run one exported TFLite model once on ``make_input(input_shape)``; returns (input shape, output)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=model_file(models_dir, task, load_sidecar(models_dir, task), precision))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.set_tensor(inp["index"], make_input(inp["shape"]))
    interp.invoke()
    return inp["shape"], interp.get_tensor(out["index"])


@pytest.mark.parametrize("task", ["kws", "words"])
def test_tiny_run_exports_models_that_load(tiny_models_dir, task):
    sidecar = load_sidecar(tiny_models_dir, task)
    assert os.path.isdir(os.path.join(tiny_models_dir, task, "saved_model"))
    assert sidecar["parity"]["float32_max_abs_diff"] < 1e-3
    assert sidecar["quantization"]["int8"] in ("full_integer", "dynamic_range")
    assert sidecar["features"]["n_mels"] == 40 and sidecar["sample_rate_hz"] == 16000
    for precision in ("float32", "int8"):
        shape, result = _invoke(tiny_models_dir, task, precision, lambda shape: np.full(shape, -5.0, np.float32))
        assert list(shape) == [1, sidecar["input"]["frames"], sidecar["input"]["n_mels"]]
        if task == "kws":
            assert result.shape == (1, sidecar["output"]["frames"], 1)
            assert np.all((result >= 0) & (result <= 1))
        else:
            assert sidecar["labels"] == [*TINY_WORDS, "_silence_"]
            assert result.shape == (1, len(sidecar["labels"]))
            assert abs(float(result.sum()) - 1.0) < 1e-2


def test_sidecars_carry_the_resolved_recipe(tiny_models_dir):
    from kws_tf.train.presets import load_preset

    tiny = load_preset("tiny")
    words = load_sidecar(tiny_models_dir, "words")["training"]["recipe"]
    kws = load_sidecar(tiny_models_dir, "kws")["training"]["recipe"]
    assert words["words"]["widths"] == list(tiny.words.widths) and words["words"]["mixup_alpha"] == tiny.words.mixup_alpha
    assert words["word_data"]["noise_prob"] == tiny.word_data.noise_prob
    assert words["word_data"]["speed"] == list(tiny.word_data.speed) == [0.9, 1.1]  # the word model's speed range is recorded too
    assert kws["kws_data"]["confusable_words"] == ["up"] and kws["kws"]["gru_units"] == tiny.kws.gru_units


def test_set_takes_lists_of_bare_words_as_json_lists():
    from kws_tf.train.presets import load_preset

    bare = load_preset("tiny", ["word_data.confusable_words=[up, off]", "kws_data.confusable_words=[up]"])
    quoted = load_preset("tiny", ['word_data.confusable_words=["up","off"]', "word_data.confusable_prob=0.2"])
    assert bare.word_data.confusable_words == quoted.word_data.confusable_words == ("up", "off")
    assert bare.kws_data.confusable_words == ("up",) and quoted.word_data.confusable_prob == 0.2
    assert load_preset("tiny", ["word_data.confusable_words=[]"]).word_data.confusable_words == ()


def test_speed_ranges_are_checked():
    from kws_tf.train.presets import PresetError, load_preset

    assert load_preset("tiny", ["word_data.speed=[0.8, 1.2]"]).word_data.speed == (0.8, 1.2)
    for section in ("word_data", "kws_data"):
        for bad in ("[1.1, 0.9]", "[0, 1.1]", "[1.0]"):
            with pytest.raises(PresetError, match=rf"{section}: speed must be a range low\.\.high of factors above 0"):
                load_preset("tiny", [f"{section}.speed={bad}"])


def test_tiny_run_skips_and_counts_the_corrupt_clip(tiny_models_dir):
    assert load_sidecar(tiny_models_dir, "words")["data"]["skipped_unreadable"] == 1


def test_tiny_keyword_run_draws_its_confusable_words(tiny_models_dir):
    data = load_sidecar(tiny_models_dir, "kws")["data"]
    assert data["confusable_words"] == ["up"] and data["confusable_prob"] == 0.3  # from training/tiny.json
    assert data["train_confusable_clips"] == 8  # "up" from the four training speakers, two clips each
    assert data["train_synthetic_clips"] == {"keyword": 0, "other": 0}


def test_model_builders_output_shapes():
    pytest.importorskip("tensorflow")
    from kws_tf.config import FeatureConfig, KwsDataConfig
    from kws_tf.train.models import build_kws_model, build_word_model

    feats, kws = FeatureConfig(), KwsDataConfig()
    kws_model = build_kws_model(input_frames=kws.input_frames(feats), n_mels=40, conv_filters=8, gru_units=4)
    assert kws_model.output_shape == (None, kws.output_frames(feats), 1) == (None, 246, 1)
    word_model = build_word_model(input_frames=98, n_mels=40, n_classes=31, widths=(4, 8))
    assert word_model.output_shape == (None, 31)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kws_tf.train", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_inputs_get_one_line_errors(tmp_path):
    pytest.importorskip("tensorflow")
    assert "no such folder" in one_line_error(run_cli("--data-dir", str(tmp_path / "missing")))
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    assert "no WORD/*.wav clips" in one_line_error(run_cli("--data-dir", str(tmp_path / "empty")))
    tree = write_tree(str(tmp_path / "tree"), speakers=3, per_speaker=1)
    assert "no train clips for zebra" in one_line_error(run_cli("--data-dir", tree, "--task", "words", "--words", "yes", "zebra"))
    assert "no clips of the keyword 'marvin'; pick another --keyword" in one_line_error(run_cli("--data-dir", tree, "--task", "kws", "--keyword", "marvin"))
    assert "preset 'nope' not found" in one_line_error(run_cli("--data-dir", tree, "--preset", "nope"))
    assert "bad --set" in one_line_error(run_cli("--data-dir", tree, "--set", "kws.nonsense=1"))
    assert "with --set kws_data.confusable_prob=2: kws_data: confusable_prob must be within 0..1" in one_line_error(
        run_cli("--data-dir", tree, "--set", "kws_data.confusable_prob=2"))
    assert "needs the keyword 'stop' among --words" in one_line_error(
        run_cli("--data-dir", tree, "--task", "words", "--words", "yes", "--set", "word_data.keyword_share=0.2"))
    assert "word_data.confusable_words names zebra, not among --words" in one_line_error(run_cli(
        "--data-dir", tree, "--task", "words", "--words", "yes", "stop", "--set", "word_data.confusable_words=[zebra]"))
    assert "neighbour_prob must be within 0..1" in one_line_error(run_cli("--data-dir", tree, "--set", "word_data.neighbour_prob=1.5"))
    assert "synthetic_taper_clips must be >= 0" in one_line_error(run_cli("--data-dir", tree, "--set", "words.synthetic_taper_clips=-1"))
    # values of the wrong type and counts below 1 stop before TensorFlow starts, naming the section and field
    assert "with --set kws.gru_units=abc: kws: gru_units is 'abc', not a whole number" in one_line_error(
        run_cli("--data-dir", tree, "--set", "kws.gru_units=abc"))
    assert "words: epochs must be at least 1, not 0" in one_line_error(run_cli("--data-dir", tree, "--set", "words.epochs=0"))
    assert "--epochs must be at least 1, not -1" in one_line_error(run_cli("--data-dir", tree, "--epochs", "-1"))
    # a typo in a preset file is named, not dropped for the default
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"kws": {"epochz": 1}}))
    assert f"{typo}: unknown field kws.epochz; kws has " in one_line_error(run_cli("--data-dir", tree, "--preset", str(typo)))
    typo.write_text("[1, 2]")
    assert "a preset is a JSON object of sections" in one_line_error(run_cli("--data-dir", tree, "--preset", str(typo)))
    # a named lists folder without list files, a missing synthetic folder, an export folder that is a file
    assert "no validation_list.txt or testing_list.txt there" in one_line_error(
        run_cli("--data-dir", tree, "--lists-dir", str(tmp_path / "nolists")))
    assert "pass --synthetic-dir with a folder" in one_line_error(run_cli("--data-dir", tree, "--synthetic-dir", str(tmp_path / "nosynth")))
    (tmp_path / "a_file").write_text("")
    assert "cannot be the export folder" in one_line_error(
        run_cli("--data-dir", tree, "--preset", "tiny", "--task", "kws", "--out", str(tmp_path / "a_file"), "--run-dir", str(tmp_path / "runs")))
    assert (tmp_path / "a_file").read_text() == ""


def test_words_not_in_the_data_get_close_matches_and_the_folders_searched(tmp_path, capsys):
    """A typo, an uppercase word or a phrase is not sent to the synthesizer blindly: the message names the
    folders searched, suggests the word folders meant, and gives the synthesis command for lowercase words only."""
    from kws_tf.train.__main__ import main

    tree = write_tree(str(tmp_path / "tree"), speakers=3, per_speaker=1)
    synth = write_tree(str(tmp_path / "synth"), words=("left",), speakers=3, per_speaker=1, lists=False)
    argv = ["--data-dir", tree, "--preset", "tiny", "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")]

    def error(*args: str) -> str:
        assert main([*argv, *args]) == 1
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return lines[0]

    line = error("--task", "kws", "--keyword", "Stop")
    assert line == (f"error: {tree}: no clips of the keyword 'Stop'; did you mean 'stop' for 'Stop'? "
                    "Else pick another --keyword or add its WORD/*.wav folder")  # no synthesis for a word it cannot render
    line = error("--task", "kws", "--keyword", "stpo", "--synthetic-dir", synth)
    assert line.startswith(f"error: {tree} and {synth}: no clips of the keyword 'stpo'; did you mean 'stop' for 'stpo'?")
    assert line.endswith(f"or synthesize stpo into the synthetic folder: python -m kws_tf.train.synth --words stpo --out {synth}")
    line = error("--task", "words", "--words", "yes", "ligths", "Lef", "turn on", "--synthetic-dir", synth)
    assert line.startswith(f"error: {tree} and {synth}: no train clips for ligths, Lef, turn on; did you mean 'left' for 'Lef'?")
    assert line.endswith("--words ligths --out " + synth)
    assert not (tmp_path / "runs").exists()


def test_training_without_tensorflow_says_how_to_install_it(tiny_data_dir, tmp_path, monkeypatch, capsys):
    """The runtime-only install has no Keras: one line saying what to install, before any run folder is made."""
    from kws_tf.train.__main__ import main

    for name in ("keras", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails, as where they are not installed
    for name in ("kws_tf.train.fitting", "kws_tf.train.train_kws", "kws_tf.train.train_words"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    rc = main(["--data-dir", tiny_data_dir, "--preset", "tiny", "--task", "kws", "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")])
    assert rc == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: training needs TensorFlow: pip install '.[train]' (or the pinned set: pip install -r requirements.txt)"]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_a_run_refused_on_its_data_keeps_the_run_folders_earlier_record(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorflow")
    from kws_tf.dataset import DataError
    from kws_tf.train import train_kws
    from kws_tf.train.__main__ import main

    def no_clips(*_args, **_kwargs):
        raise DataError("no train clips of the keyword")
    monkeypatch.setattr(train_kws, "train_kws", no_clips)
    tree = write_tree(str(tmp_path / "tree"), speakers=3, per_speaker=1)
    runs = tmp_path / "runs"
    (runs / "kws").mkdir(parents=True)
    (runs / "kws" / "config.json").write_text('{"a finished run": true}')
    argv = ["--data-dir", tree, "--preset", "tiny", "--task", "kws", "--out", str(tmp_path / "out"), "--quiet"]
    assert main([*argv, "--run-dir", str(runs)]) == 1
    assert (runs / "kws" / "config.json").read_text() == '{"a finished run": true}'
    assert main([*argv, "--run-dir", str(tmp_path / "new_runs")]) == 1
    assert not (tmp_path / "new_runs" / "kws" / "config.json").exists()
    assert capsys.readouterr().err.count("error: no train clips of the keyword") == 2


def test_bad_fold_is_a_usage_error(tmp_path):
    tree = write_tree(str(tmp_path / "tree"), speakers=3, per_speaker=1)
    proc = run_cli("--data-dir", tree, "--fold", "6/5")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "argument --fold: '6/5': a fold K/N needs N >= 2 and 1 <= K <= N" in proc.stderr


def test_options_by_full_name_only(tmp_path):
    tree = write_tree(str(tmp_path / "tree"), speakers=3, per_speaker=1)
    proc = run_cli("--data", tree)  # not taken for --data-dir
    assert proc.returncode == 1 and "unrecognized arguments: --data" in proc.stderr
    proc = run_cli("--data-dir", tree, "--words", "yes", "")
    assert proc.returncode == 1 and "'' is not a word folder name" in proc.stderr


def test_no_data_dir_says_how_to_get_data(tmp_path):
    env = {**os.environ, "KWS_TF_DATA_DIR": ""}
    proc = subprocess.run([sys.executable, "-m", "kws_tf.train"], capture_output=True, text=True, cwd=tmp_path, env={**env, "PYTHONPATH": ROOT}, timeout=120)
    assert "download_speech_commands.py" in one_line_error(proc)


def test_run_folder_holds_config_logs_and_plots(tiny_models_dir, tmp_path_factory):
    runs = [p for p in (tmp_path_factory.getbasetemp()).glob("runs*")]
    assert runs
    for task in ("kws", "words"):
        folder = runs[0] / task
        for name in ("config.json", "summary.json", "log.csv", "curves.png", "best.weights.h5"):
            assert (folder / name).exists(), f"{task}/{name}"
        assert not (folder / "backup").exists()  # removed after a completed run
        assert json.loads((folder / "config.json").read_text())["preset"]["name"] == "tiny"
    assert not list(runs[0].glob("*.lock")) and not list(Path(tiny_models_dir).glob("*.lock"))  # both locks released
    assert (runs[0] / "kws" / "keyword_trace.png").exists() and (runs[0] / "words" / "confusion.png").exists()
    printed = (runs[0] / "printed.txt").read_text()  # the run says how to tune what it could not
    assert f"tools/tune_detector.py --models {tiny_models_dir} --data-dir" in printed and "--write" in printed
    assert f"tools/tune_decoder.py --models {tiny_models_dir} --data-dir" in printed
    # printed to a file (not a terminal): one summary line per epoch (tiny: 1 epoch of 2 steps per task),
    # not Keras's self-redrawing per-step bar
    assert len(re.findall(r"^2/2 - .* - val_loss: ", printed, re.M)) == 2
    assert "\r" not in printed and "\u2501" not in printed


def test_killed_run_resumes_where_it_stopped(tmp_path):
    """kill -9 a training run after two epochs; the same command continues from the last epoch."""
    pytest.importorskip("tensorflow")
    import signal
    import time

    tree = write_tree(str(tmp_path / "tree"), speakers=3, per_speaker=1)
    args = ["--data-dir", tree, "--preset", "tiny", "--task", "words", "--words", *TINY_WORDS, "--out", str(tmp_path / "out"),
            "--run-dir", str(tmp_path / "run"), "--quiet", "--set", "words.patience=1000"]
    log_csv = tmp_path / "run" / "words" / "log.csv"
    proc = subprocess.Popen([sys.executable, "-m", "kws_tf.train", *args, "--epochs", "500"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and (not log_csv.exists() or len(log_csv.read_text().splitlines()) < 3):
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = len(log_csv.read_text().splitlines()) - 1
    assert 2 <= done < 500 and (tmp_path / "run" / "words" / "backup").exists()
    finished = run_cli(*args, "--epochs", str(done + 2))
    assert finished.returncode == 0, finished.stderr
    epochs = [int(line.split(",")[0]) for line in log_csv.read_text().splitlines()[1:]]
    # Continued from the last backup (the kill may land between the backup and the CSV line, so an
    # epoch can repeat), not restarted from epoch 0.
    assert epochs[-1] == done + 1 and len(epochs) - done <= 3 and epochs[done] >= done - 1, epochs
    assert not (tmp_path / "run" / "words" / "backup").exists()


def test_a_word_the_data_lacks_trains_from_synthetic_clips(tmp_path):
    """--words and --keyword with a word that only --synthetic-dir has (e.g. made by kws_tf.train.synth): it
    trains (here with mixup and the synthetic taper on), and the synthetic clips only ever serve training.
    Where it has no held-out clips, the run says so, records it, and does not offer to tune the gate on them."""
    pytest.importorskip("tensorflow")
    tree = write_tree(str(tmp_path / "tree"), words=("stop", "yes", "no"), speakers=4, per_speaker=1)  # 2 train clips a word
    synth = write_tree(str(tmp_path / "synth"), words=("left",), speakers=4, per_speaker=1, lists=False, seed=5)
    out = tmp_path / "out"
    proc = run_cli("--data-dir", tree, "--synthetic-dir", synth, "--preset", "tiny", "--keyword", "left", "--words", "yes", "no", "left",
                   "--out", str(out), "--run-dir", str(tmp_path / "run"), "--quiet", "--set", "words.mixup_alpha=0.2", "--set", "words.synthetic_taper_clips=1")
    assert proc.returncode == 0, proc.stderr
    sidecar = load_sidecar(str(out), "words")
    # taper 1: a word with n > 1 real train clips would draw a synthetic one with 0.5 / n (yes and no have no
    # synthetic clips here, so their weights are only recorded; left has no real clips and keeps 0.5)
    assert sidecar["data"]["synthetic_weight_per_word"] == {"yes": 0.25, "no": 0.25, "left": 0.5}
    assert sidecar["training"]["recipe"]["words"]["mixup_alpha"] == 0.2  # --set overrides are part of the record
    assert sidecar["labels"] == ["yes", "no", "left", "_silence_"]
    assert sidecar["data"]["synthetic_clips"] == 4
    assert "left" not in sidecar["metrics"]["test"]["per_word"]  # no real test clips of it
    assert sidecar["data"]["unscored_words"] == {"validation": ["left"], "test": ["left"]}
    assert "WARNING no validation clips of left: the validation accuracy leaves it out" in proc.stderr
    # the keyword model scores the keyword on its (synthetic) training clips: said, recorded, and no tuning offered
    kws = load_sidecar(str(out), "kws")
    assert kws["data"]["from_training_clips"] == {"keyword": ["validation", "test"], "other": []}
    assert ("WARNING no validation clips of the keyword 'left': its validation numbers come from its training clips "
            "(4 of 4 of them synthetic speech), not held-out speech") in proc.stderr
    assert "tune_detector.py" not in proc.stdout
    assert ("kws: the gate cannot be tuned on this data's validation split: it has no real clips of 'left'; record real clips of it "
            "(WORD/*.wav in the data folder, some in its validation split) and tune then, or keep the preset's gate settings") in proc.stdout
    assert "tune_decoder.py" in proc.stdout


def test_conversion_failure_note_names_the_crash_not_the_log_noise():
    pytest.importorskip("tensorflow")
    from kws_tf.train.export import _failure

    log_line = "I0000 00:00:1796144034.946283   21194 port.cc:153] oneDNN custom operations are on."
    assert _failure(-11, log_line + "\n") == "killed by SIGSEGV"
    assert _failure(1, "Traceback ...\nValueError: bad op\n" + log_line) == "exit 1: ValueError: bad op"
    assert _failure(2, log_line) == "exit 2"


def test_unreadable_backup_gets_a_one_line_error(tmp_path):
    """A backup damaged by something other than our own writes (ours are atomic) names the folder
    and the way out, instead of a JSON traceback."""
    pytest.importorskip("tensorflow")
    tree = write_tree(str(tmp_path / "tree"), speakers=3, per_speaker=1)
    backup = tmp_path / "run" / "words" / "backup"
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text("")
    args = ["--data-dir", tree, "--preset", "tiny", "--task", "words", "--words", *TINY_WORDS, "--out", str(tmp_path / "out"),
            "--run-dir", str(tmp_path / "run"), "--quiet", "--epochs", "1"]
    line = one_line_error(run_cli(*args))
    assert str(backup) in line and "--fresh" in line
    assert run_cli(*args, "--fresh").returncode == 0


def _tiny_keras_model(keras):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    return model


def test_backup_writes_leave_no_partial_files(tmp_path):
    keras = pytest.importorskip("keras")
    from kws_tf.train.fitting import AtomicBackupAndRestore

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))  # nonzero data: each epoch changes the weights
    model = _tiny_keras_model(keras)
    backup = AtomicBackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[backup])
    assert sorted(os.listdir(tmp_path / "backup")) == ["latest.weights.h5", "training_metadata.json"]
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 2

    # A write that fails half-way (disk full, say) at the end of epoch 2 leaves the complete epoch 1 backup.
    model = _tiny_keras_model(keras)
    save_weights, saved = model.save_weights, []

    def failing_save_weights(filepath, *args, **kwargs):  # Keras's own name: it passes filepath=...
        if saved:
            with open(filepath, "wb") as f:
                f.write(b"\x89HDF\r\n garbage")  # a partial file, then the failure
            raise OSError(28, "No space left on device")
        save_weights(filepath, *args, **kwargs)
        saved.append([w.copy() for w in model.get_weights()])

    model.save_weights = failing_save_weights
    backup = AtomicBackupAndRestore(str(tmp_path / "failing"), delete_checkpoint=False)
    with pytest.raises(OSError, match="No space left"):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[backup])
    assert len(saved) == 1
    folder = tmp_path / "failing"
    assert json.loads((folder / "training_metadata.json").read_text())["epoch"] == 1
    restored = _tiny_keras_model(keras)
    with warnings.catch_warnings():  # the backup also holds the optimizer's state, which a fresh model has none of yet
        warnings.simplefilter("ignore", UserWarning)
        restored.load_weights(str(folder / "latest.weights.h5"))
    assert all(np.array_equal(a, b) for a, b in zip(restored.get_weights(), saved[0], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(), saved[0], strict=True))  # epoch 2 trained on


def _model_output(models_dir: str, task: str = "words") -> np.ndarray:
    make_input = lambda shape: np.random.default_rng(0).normal(-4.0, 2.0, shape).astype(np.float32)  # noqa: E731
    return _invoke(models_dir, task, "float32", make_input)[1][0]


def test_the_presets_gate_and_decoder_settings_go_into_the_sidecars(tiny_models_dir, tiny_data_dir, tmp_path, capsys):
    """A fresh export starts from its preset's ``detector`` and ``decoder`` sections (``--set`` included):
    the tiny preset has the dataclass defaults, and the default preset the settings tuned for the shipped
    models, the same as the shipped sidecars."""
    from kws_tf.config import DecoderConfig, DetectorConfig, to_dict
    from kws_tf.train.__main__ import main
    from kws_tf.train.presets import load_preset

    out = str(tmp_path / "my models")  # a space: the printed tuning commands quote it
    assert main(["--data-dir", tiny_data_dir, "--preset", "tiny", "--words", *TINY_WORDS, "--no-test", "--out", out,
                 "--run-dir", str(tmp_path / "runs"), "--quiet", "--set", "detector.verify_threshold=0.3",
                 "--set", "decoder.pause_s=2.0"]) == 0
    assert f"tools/tune_decoder.py --models '{out}' --data-dir" in capsys.readouterr().out
    detector, decoder = (load_sidecar(out, "kws")["thresholds"]["detector"], load_sidecar(out, "words")["thresholds"]["decoder"])
    assert detector == {**to_dict(DetectorConfig()), "verify_threshold": 0.3}
    assert decoder == {**to_dict(DecoderConfig()), "pause_s": 2.0}
    assert load_sidecar(tiny_models_dir, "kws")["thresholds"]["detector"] == to_dict(DetectorConfig())
    shipped = load_preset("default")
    assert to_dict(shipped.detector) == load_sidecar(os.path.join(ROOT, "saved_models"), "kws")["thresholds"]["detector"] != to_dict(DetectorConfig())
    assert to_dict(shipped.decoder) == load_sidecar(os.path.join(ROOT, "saved_models"), "words")["thresholds"]["decoder"] != to_dict(DecoderConfig())


def test_fold_moves_the_validation_split_to_fold_k(tmp_path, monkeypatch):
    """--fold K/N trains on the other folds and selects on fold K (recorded in the run's summary); its run
    and export folders default to the fold's own, so a fold run neither resumes another run nor replaces
    saved_models/."""
    from kws_tf.dataset import index_speech_commands
    from kws_tf.train.__main__ import main

    tree = write_tree(str(tmp_path / "tree"), speakers=10, per_speaker=1)
    folded = index_speech_commands(tree, fold=(1, 2))
    train, val = ({c.speaker for c in folded.select(s)} for s in ("train", "validation"))
    assert train and val and not train & val
    monkeypatch.chdir(tmp_path)
    assert main(["--data-dir", tree, "--preset", "tiny", "--task", "words", "--words", *TINY_WORDS, "--fold", "1/2",
                 "--no-test", "--quiet"]) == 0
    runs = tmp_path / "training" / "runs"
    assert sorted(os.listdir(runs)) == ["tiny-fold1of2-models", "tiny-fold1of2-words"] and not os.path.exists(tmp_path / "saved_models")
    assert os.path.exists(runs / "tiny-fold1of2-models" / "words" / "model.json")
    with open(runs / "tiny-fold1of2-words" / "summary.json", encoding="utf-8") as f:
        data = json.load(f)["data"]
    assert data["index"]["fold"] == "1/2" and data["train_clips"] == len(folded.select("train"))


def test_resume_refuses_an_interrupted_run_with_other_settings(tiny_data_dir, tmp_path, capsys):
    """A rerun whose data, model or schedule settings differ from the interrupted run in its run folder stops
    with a one-line error (Keras would resume the old backup under the new settings); run-time settings may
    change; the old run's files stay as they were."""
    from kws_tf.train.__main__ import build_parser, changed_since_interrupted, main
    from kws_tf.train.fitting import backup_dir
    from kws_tf.train.presets import load_preset

    def record(argv, sets=()):
        return {"args": vars(build_parser().parse_args(["--data-dir", tiny_data_dir, *argv])), "preset": load_preset("tiny", list(sets)).to_dict()}

    argv = ["--preset", "tiny", "--task", "words", "--words", *TINY_WORDS, "--run-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "models"), "--quiet"]
    run_dir = tmp_path / "runs" / "words"
    backup = backup_dir(str(run_dir))  # where fit keeps an interrupted run's backup
    os.makedirs(backup)
    with open(run_dir / "config.json", "w", encoding="utf-8") as f:
        json.dump(record([*argv, "--seed", "0"]), f)
    before = (run_dir / "config.json").read_text()
    assert changed_since_interrupted(str(run_dir), record([*argv, "--seed", "0"])) is None
    assert changed_since_interrupted(str(run_dir), record([*argv, "--seed", "0", "--no-test"], ["detector.threshold=0.9"])) is None
    assert changed_since_interrupted(str(run_dir), record([*argv, "--seed", "0", "--epochs", "9"], ["words.patience=3"])) is None
    assert changed_since_interrupted(str(run_dir), record([*argv, "--seed", "0"], ["words.batch_size=7"])) == "words.batch_size 8 -> 7"
    assert changed_since_interrupted(str(run_dir), record([*argv, "--seed", "0", "--fold", "1/2"])) == "--fold None -> [1, 2]"
    assert main(["--data-dir", tiny_data_dir, *argv, "--seed", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds an interrupted run with other settings (--seed 0 -> 1)" in err and "--fresh" in err
    assert (run_dir / "config.json").read_text() == before and os.path.isdir(backup)
    old = record([*argv, "--seed", "0"])
    old["args"]["data_dir"] = None  # an older run's record of the default folder
    with open(run_dir / "config.json", "w", encoding="utf-8") as f:
        json.dump(old, f)
    assert changed_since_interrupted(str(run_dir), record([*argv, "--seed", "0"])) is None
    del old["preset"]["words"]["label_smoothing"]  # recorded before the setting existed: it had its default
    with open(run_dir / "config.json", "w", encoding="utf-8") as f:
        json.dump(old, f)
    assert changed_since_interrupted(str(run_dir), record([*argv, "--seed", "0"])) is None
    assert changed_since_interrupted(str(run_dir), record([*argv, "--seed", "0"], ["words.label_smoothing=0.1"])) == "words.label_smoothing 0.0 -> 0.1"
    os.rmdir(backup)  # a finished run (no backup): nothing to resume, nothing to compare
    assert changed_since_interrupted(str(run_dir), record([*argv, "--seed", "1"])) is None


def test_seed_fixes_the_trained_weights(tiny_models_dir, tiny_data_dir, tmp_path):
    """--seed seeds weight initialisation and dropout as well as the data: the words model of the
    fixture's run (seed 0) comes back from a second run with seed 0, and not with seed 1."""
    from kws_tf.train.__main__ import main

    outputs = {}
    for seed in (0, 1):
        out, runs = str(tmp_path / f"models{seed}"), str(tmp_path / f"runs{seed}")
        assert main(["--data-dir", tiny_data_dir, "--preset", "tiny", "--task", "words", "--words", *TINY_WORDS,
                     "--seed", str(seed), "--out", out, "--run-dir", runs, "--quiet"]) == 0
        outputs[seed] = _model_output(out)
    reference = _model_output(tiny_models_dir)
    np.testing.assert_allclose(outputs[0], reference, atol=1e-5)
    assert np.abs(outputs[1] - reference).max() > 1e-3


@pytest.mark.parametrize("verifiers", [("verifier",), ("verifier", "verifier_b")])
def test_a_kept_verifier_is_named_and_still_loads(verifiers, tiny_models_dir, tiny_data_dir, tmp_path, capsys):
    """Training into a folder that holds verifier/ (as saved_models/ does), or verifier/ and a second
    verifier_NAME/, keeps them, says so for each task it exports, and the package loads with them
    confirming the keyword."""
    from kws_tf.runtime import Transcriber
    from kws_tf.train.__main__ import main

    out = tmp_path / "models"
    for folder in verifiers:
        shutil.copytree(os.path.join(tiny_models_dir, "words"), out / folder)
    assert main(["--data-dir", tiny_data_dir, "--preset", "tiny", "--task", "both", "--words", *TINY_WORDS,
                 "--out", str(out), "--run-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    names = ", ".join(f"{out / folder}/" for folder in verifiers)
    verb = "is kept and still confirms" if len(verifiers) == 1 else "are kept and still confirm"
    for task in ("kws", "words"):
        assert f"{task}: {names} {verb} the keyword" in printed
    assert "warning" not in printed  # same preset, same features; the verifiers know the keyword
    assert all((out / folder / "model.json").exists() for folder in verifiers)
    assert Transcriber.from_dir(str(out)).has_verifier


def test_a_model_that_would_not_load_beside_the_kept_ones_is_refused_before_training(tiny_models_dir, tiny_data_dir, tmp_path, capsys):
    """A keyword model trained into a folder whose word model runs another front end (as a preset-trained model
    beside the shipped ones: remove_dc false against true) would leave a package that does not load: the run is
    refused before any training, in one line naming the folder, the setting and the ways out, and nothing is
    written. With the suggested --set the run goes through and the package loads."""
    from kws_tf.runtime import Transcriber
    from kws_tf.train.__main__ import main

    out = tmp_path / "models"
    shutil.copytree(os.path.join(tiny_models_dir, "words"), out / "words")
    sidecar = json.loads((out / "words" / "model.json").read_text())
    assert sidecar["features"]["remove_dc"] is False
    sidecar["features"]["remove_dc"] = True
    (out / "words" / "model.json").write_text(json.dumps(sidecar))
    argv = ["--data-dir", tiny_data_dir, "--preset", "tiny", "--task", "kws", "--words", *TINY_WORDS,
            "--out", str(out), "--run-dir", str(tmp_path / "runs"), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out / 'words'}/ runs other features than this run (remove_dc true, this run false), so "
                   f"{out} would not load once this run exported into it: add --set features.remove_dc=true to train "
                   "with its features, or pass --out with a folder of its own"]
    assert sorted(os.listdir(out)) == ["words"] and not (tmp_path / "runs").exists()
    assert main([*argv, "--set", "features.remove_dc=true"]) == 0
    assert Transcriber.from_dir(str(out)).features.remove_dc is True


def test_a_differing_verifier_is_named_with_the_way_to_move_it(tiny_models_dir, tiny_data_dir, tmp_path, capsys):
    """With --task both, a kept verifier/ whose features differ from the new models' is the one conflict, and the
    message offers moving it out (words/ then confirms the keyword) besides matching its features."""
    from kws_tf.train.__main__ import main

    out = tmp_path / "models"
    shutil.copytree(os.path.join(tiny_models_dir, "words"), out / "verifier")
    sidecar = json.loads((out / "verifier" / "model.json").read_text())
    sidecar["features"]["remove_dc"] = True
    (out / "verifier" / "model.json").write_text(json.dumps(sidecar))
    assert main(["--data-dir", tiny_data_dir, "--preset", "tiny", "--task", "both", "--words", *TINY_WORDS,
                 "--out", str(out), "--run-dir", str(tmp_path / "runs"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out / 'verifier'}/ runs other features than this run (remove_dc true, this run false)")
    assert err[0].endswith(f"or pass --out with a folder of its own, or move {out / 'verifier'}/ out of it "
                           "(words/ then confirms the keyword)")
    assert sorted(os.listdir(out)) == ["verifier"]


def test_a_kept_verifier_without_the_keyword_is_not_said_to_confirm_it(tiny_models_dir, tiny_data_dir, tmp_path, capsys):
    """A kept verifier with no class for the keyword (the shipped "stop" verifier beside another keyword) confirms
    nothing at run time: the run warns so and says to remove it, instead of saying it still confirms the keyword."""
    from kws_tf.train.__main__ import main

    out = tmp_path / "models"
    shutil.copytree(tiny_models_dir, out)
    shutil.copytree(os.path.join(tiny_models_dir, "words"), out / "verifier")
    sidecar = json.loads((out / "verifier" / "model.json").read_text())
    sidecar["labels"] = ["halt" if w == "stop" else w for w in sidecar["labels"]]
    (out / "verifier" / "model.json").write_text(json.dumps(sidecar))
    assert main(["--data-dir", tiny_data_dir, "--preset", "tiny", "--task", "kws", "--words", *TINY_WORDS,
                 "--out", str(out), "--run-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "still confirm" not in printed
    assert (f"kws: warning: {out / 'verifier'}/ has no 'stop' class, so the package confirms no keyword detection; "
            f"remove that folder to let {out / 'words'}/ confirm the keyword, then tune the gate again") in printed


def test_no_test_leaves_the_test_split_unscored(tiny_models_dir, tiny_data_dir, tmp_path):
    """--no-test: neither the sidecars nor the output carry test-split numbers (so runs can be compared
    without seeing them), each split's numbers print on their own line, and the models come out the same
    as the fixture's run without the flag."""
    out = tmp_path / "models"
    proc = run_cli("--data-dir", tiny_data_dir, "--preset", "tiny", "--words", *TINY_WORDS, "--no-test", "--out", str(out),
                   "--run-dir", str(tmp_path / "runs"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    score_lines = [line for line in proc.stdout.splitlines() if "split (Keras)" in line]
    assert [line.split(" split")[0] for line in score_lines] == ["kws: validation", "words: validation"]
    for task in ("kws", "words"):
        assert list(load_sidecar(str(out), task)["metrics"]) == ["validation"]
        assert list(load_sidecar(tiny_models_dir, task)["metrics"]) == ["validation", "test"]
        np.testing.assert_allclose(_model_output(str(out), task), _model_output(tiny_models_dir, task), atol=1e-5)
