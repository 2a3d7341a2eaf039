"""``python -m kws_tf.evaluate``: report and JSON schema on tiny exported models, bad input, and the
runtime boundary (no TensorFlow in the evaluation modules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kws_tf.evaluate.__main__ import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_MODULES = ["kws_tf.evaluate", "kws_tf.evaluate.__main__", "kws_tf.evaluate.metrics", "kws_tf.evaluate.streams",
                "kws_tf.evaluate.suite", "kws_tf.evaluate.report", "kws_tf.evaluate.plots", "kws_tf.evaluate.peer"]
SYSTEM_KEYS = {"model_bytes", "words", "keyword", "sentences", "speed"}
WORD_KEYS = {"n", "accuracy", "macro_accuracy", "core_accuracy", "per_word", "confusion", "most_confused", "by_snr_db", "predictions"}
KEYWORD_KEYS = {"stream_s", "keywords", "threshold", "at_threshold", "recall_at_fa_per_hour", "det", "frame"}
SENTENCE_KEYS = {"wer", "reference_words", "hits", "substitutions", "deletions", "insertions", "with_keyword", "without_keyword",
                 "gate_recall", "false_gates", "false_gate_rate", "words_without_keyword", "examples"}


def test_evaluation_modules_import_with_tensorflow_blocked():
    code = ("import sys, importlib\n"
            "for name in ('tensorflow', 'keras', 'tf_keras'):\n"
            "    sys.modules[name] = None\n"
            f"for mod in {EVAL_MODULES!r}:\n"
            "    importlib.import_module(mod)\n"
            "from kws_tf.evaluate.__main__ import main\n"
            "assert main(['--help']) == 0\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _fails(capsys, argv: list[str], needle: str) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and needle in err, err
    assert len(err.strip().splitlines()) == 1 or err.startswith("usage:"), err


def test_bad_input_is_one_line(capsys, tmp_path, tiny_data_dir):
    from conftest import write_tree

    _fails(capsys, ["--models", str(tmp_path / "none"), "--data-dir", tiny_data_dir], "model.json: not found")
    _fails(capsys, ["--models", str(tmp_path), "--data-dir", str(tmp_path / "missing")], "no such folder")
    empty = write_tree(str(tmp_path / "data"), speakers=3)
    with open(os.path.join(empty, "testing_list.txt"), "w") as f:
        f.write("yes/notthere_nohash_0.wav\n")
    _fails(capsys, ["--models", str(tmp_path), "--data-dir", empty], "test split has no clips")
    _fails(capsys, ["--models", str(tmp_path), "--data-dir", tiny_data_dir, "--minutes", "0"], "--minutes must be positive")
    _fails(capsys, ["--models", str(tmp_path), "--data-dir", tiny_data_dir, "--minutes", "nan"], "--minutes must be positive, not nan")
    _fails(capsys, ["--models", str(tmp_path), "--data-dir", tiny_data_dir, "--lists-dir", str(tmp_path / "nolists")],
           "no validation_list.txt or testing_list.txt there")
    assert main(["--data-dir", tiny_data_dir, "--split", "nope"]) == 1
    assert "invalid choice" in capsys.readouterr().err
    _fails(capsys, ["--models", str(tmp_path), "--data-dir", tiny_data_dir, "--fold", "2"], "write a fold as K/N")


@pytest.fixture(scope="module")
def report_dir(tiny_models_dir, tiny_data_dir, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("report"))
    rc = main(["--models", tiny_models_dir, "--data-dir", tiny_data_dir, "--report", out, "--minutes", "0.5",
               "--sentences", "2", "--f1-clips", "2", "--jobs", "1", "--quiet"])
    assert rc == 0
    return out


def test_report_and_json_schema(report_dir):
    with open(os.path.join(report_dir, "results.json"), encoding="utf-8") as f:
        r = json.load(f)
    assert r["format"] == "kws_tf.evaluate/1" and r["split"] == "test" and r["keyword"] == "stop"
    assert set(r["precisions"]) == {"float32", "int8"} and r["peer"] is None
    for res in r["precisions"].values():
        assert set(res) == SYSTEM_KEYS
        assert WORD_KEYS <= set(res["words"]) and KEYWORD_KEYS <= set(res["keyword"]) and SENTENCE_KEYS <= set(res["sentences"])
        assert set(res["words"]["by_snr_db"]) == {"clean", "20", "10", "5", "0"}
        assert set(res["keyword"]["recall_at_fa_per_hour"]) == {"0.5", "1"}
        assert res["keyword"]["stream_s"] == pytest.approx(30.0)
        assert {"threshold", "recall", "miss_rate", "false_alarms", "fa_per_hour"} == set(res["keyword"]["det"][0])
        assert set(res["speed"]) == {"clip_ms", "stream_rtf", "sentence_rtf"} and res["speed"]["stream_rtf"] > 0
        assert 0.0 <= res["words"]["accuracy"] <= 1.0 and 0.0 <= res["keyword"]["frame"]["f1"] <= 1.0
        assert all(os.path.exists(os.path.join(r["data_dir"], p["file"])) for p in res["words"]["predictions"])
    with open(os.path.join(report_dir, "index.html"), encoding="utf-8") as f:
        page = f.read()
    images = ["det.png", "snr.png", "per_word.png", "confusion_float32.png", "confusion_int8.png", "keyword_trace.png"]
    for name in images:
        assert f'src="{name}"' in page
        with open(os.path.join(report_dir, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in page and "word error rate" in page


def test_a_report_folder_that_cannot_be_made_stops_before_the_work(capsys, tiny_models_dir, tiny_data_dir, tmp_path):
    (tmp_path / "a_file").write_text("")
    _fails(capsys, ["--models", tiny_models_dir, "--data-dir", tiny_data_dir, "--report", str(tmp_path / "a_file")],
           f"--report {tmp_path / 'a_file'}: cannot make this folder")
    assert (tmp_path / "a_file").read_text() == ""


def test_models_at_another_sample_rate_stop_before_the_work(capsys, tiny_models_dir, tiny_data_dir, tmp_path):
    """The evaluation builds its clips and streams at 16 kHz: a package trained at another rate is refused in one
    line, not scored on audio at the wrong rate."""
    import shutil

    models = str(tmp_path / "models")
    shutil.copytree(tiny_models_dir, models)
    for task in ("kws", "words"):
        path = os.path.join(models, task, "model.json")
        with open(path, encoding="utf-8") as f:
            sidecar = json.load(f)
        sidecar["features"].update(sample_rate_hz=8000, fmax_hz=3800.0)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(sidecar, f)
    _fails(capsys, ["--models", models, "--data-dir", tiny_data_dir, "--report", str(tmp_path / "report")],
           "its models take 8000 Hz audio, and the evaluation builds its clips and streams at 16000 Hz")
    assert not (tmp_path / "report").exists()


def test_missing_peer_is_one_line(capsys, monkeypatch, tiny_models_dir, tiny_data_dir, tmp_path):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    _fails(capsys, ["--models", tiny_models_dir, "--data-dir", tiny_data_dir, "--report", str(tmp_path), "--compare", "pocketsphinx"],
           "pip install pocketsphinx")


def test_transcribe_plot_writes_a_png_per_file(tiny_models_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    from kws_tf.evaluate import plots
    from kws_tf.transcribe import main as transcribe

    real_png, keywords = plots.transcript_png, []
    monkeypatch.setattr(plots, "transcript_png", lambda *a, **kw: keywords.append(kw["keyword"]) or real_png(*a, **kw))

    files = [os.path.join(tiny_data_dir, "stop", n) for n in sorted(os.listdir(os.path.join(tiny_data_dir, "stop")))[:2]]
    twin = tmp_path / "other"
    twin.mkdir()
    same_name = str(twin / os.path.basename(files[0]))
    with open(files[0], "rb") as src, open(same_name, "wb") as dst:
        dst.write(src.read())
    plot_dir = tmp_path / "plots"
    assert transcribe(["--models", tiny_models_dir, "--plot", str(plot_dir), "--quiet", *files, same_name]) == 0
    names = sorted(os.listdir(plot_dir))
    stem = os.path.splitext(os.path.basename(files[0]))[0]
    assert len(names) == 3 and f"{stem}.png" in names and f"{stem}-2.png" in names
    for name in names:
        with open(plot_dir / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert keywords == ["stop"] * 3  # the score axis names the models' keyword: P(stop)


def test_transcribe_plot_without_matplotlib_is_one_line(tiny_models_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    from kws_tf.transcribe import main as transcribe

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    clip = os.path.join(tiny_data_dir, "stop", sorted(os.listdir(os.path.join(tiny_data_dir, "stop")))[0])
    assert transcribe(["--models", tiny_models_dir, "--plot", str(tmp_path), clip]) == 1
    err = capsys.readouterr().err
    assert "matplotlib" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_lists_from_another_folder_score_the_same_clips(tiny_models_dir, tiny_data_dir, lists_elsewhere, tmp_path):
    """--lists-dir: a data folder whose list files live elsewhere is scored on the clips those lists name
    (the same word clips as with the lists in place), and results.json names the list folder."""
    data, lists = lists_elsewhere
    runs = {}
    for label, args in (("in place", ["--data-dir", tiny_data_dir]), ("elsewhere", ["--data-dir", data, "--lists-dir", lists])):
        out = str(tmp_path / label.replace(" ", "_"))
        assert main(["--models", tiny_models_dir, *args, "--report", out, "--minutes", "0.2", "--sentences", "1",
                     "--f1-clips", "1", "--precision", "float32", "--jobs", "1", "--quiet"]) == 0
        with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
            runs[label] = json.load(f)
    assert runs["in place"]["lists_dir"] is None and runs["elsewhere"]["lists_dir"] == os.path.abspath(lists)
    clips = {k: sorted(p["file"] for p in r["precisions"]["float32"]["words"]["predictions"]) for k, r in runs.items()}
    assert clips["in place"] and clips["in place"] == clips["elsewhere"]
