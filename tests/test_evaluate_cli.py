"""``python -m kws_tf.evaluate``: report and JSON schema on tiny exported models, bad input, and the
runtime boundary (no TensorFlow in the evaluation modules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
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
    _fails(capsys, ["--models", str(tmp_path), "--data-dir", tiny_data_dir, "--compare"], "--compare: expected at least one argument")
    _fails(capsys, ["--models", str(tmp_path), "--data-dir", tiny_data_dir, "--peer-sentences", "-1"],
           "--peer-sentences must be 0 or more (0: the peer on the word clips only), not -1")


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
    assert r["settings"]["jobs"] == 1 and r["settings"]["cpu_count"] == os.cpu_count()


def test_a_report_folder_that_cannot_be_made_stops_before_the_work(capsys, tiny_models_dir, tiny_data_dir, tmp_path):
    (tmp_path / "a_file").write_text("")
    _fails(capsys, ["--models", tiny_models_dir, "--data-dir", tiny_data_dir, "--report", str(tmp_path / "a_file")],
           f"--report {tmp_path / 'a_file'}: cannot make this folder")
    assert (tmp_path / "a_file").read_text() == ""


def test_a_report_folder_that_cannot_take_files_stops_before_the_work(capsys, monkeypatch, tiny_models_dir, tiny_data_dir, tmp_path):
    """An existing --report folder the user cannot write to is refused in one line before the clips are loaded,
    not found out with a traceback when results.json is opened at the end."""
    from kws_tf.evaluate import __main__ as cli

    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    real_access = os.access
    if os.geteuid() == 0:  # root writes anywhere: make the folder read as not writable, as for a user
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) == str(folder) else real_access(p, mode, **kw))
    monkeypatch.setattr(cli, "_load", lambda *a: pytest.fail("the clips were loaded"))
    try:
        _fails(capsys, ["--models", tiny_models_dir, "--data-dir", tiny_data_dir, "--report", str(folder), "--minutes", "0.2",
                        "--sentences", "1", "--f1-clips", "1", "--jobs", "1", "--quiet"],
               f"--report {folder}: this folder is not writable; choose another or fix its permissions")
    finally:
        folder.chmod(0o755)
    assert os.listdir(folder) == []


def _old_report(report_dir: str, tmp_path) -> tuple[str, dict]:
    """A copy of the fixture's report (float32, int8, keyword trace) with two files of the user's beside it."""
    import shutil

    old = str(tmp_path / "old")
    shutil.copytree(report_dir, old)
    for name in ("notes.txt", "my_plot.png"):
        with open(os.path.join(old, name), "w") as f:
            f.write("mine")
    contents = {}
    for name in os.listdir(old):
        with open(os.path.join(old, name), "rb") as f:
            contents[name] = f.read()
    return old, contents


def _fake_bank():
    import collections
    import types

    import numpy as np

    return types.SimpleNamespace(audio=collections.defaultdict(lambda: np.zeros(16000, np.float32)))


def test_a_new_report_replaces_the_earlier_one_whole(report_dir, tmp_path, monkeypatch):
    """A run with fewer systems leaves no file of the earlier report behind (a stale confusion_int8.png or
    keyword_trace.png would pass for this run's), keeps the user's own files, writes index.html last
    and leaves no temporary file."""
    from kws_tf.evaluate import report

    old, contents = _old_report(report_dir, tmp_path)
    with open(os.path.join(report_dir, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    results["precisions"] = {"float32": results["precisions"]["float32"]}
    results["created_utc"] = "2000-01-01T00:00:00Z"
    replaced, real_replace = [], os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: replaced.append(os.path.basename(dst)) or real_replace(src, dst))
    assert report.write_report(results, _fake_bank(), {}, old) == os.path.join(old, "index.html")
    pngs = {"per_word.png", "snr.png", "det.png", "confusion_float32.png"}
    assert set(os.listdir(old)) == {"index.html", "results.json", "notes.txt", "my_plot.png", *pngs}
    assert replaced[-1] == "index.html" and set(replaced) == {"index.html", "results.json", *pngs}
    with open(os.path.join(old, "index.html"), encoding="utf-8") as f:
        page = f.read()
    assert "2000-01-01T00:00:00Z" in page and all(f'src="{n}"' in page for n in pngs) and "keyword_trace.png" not in page
    for name in ("notes.txt", "my_plot.png"):
        with open(os.path.join(old, name), "rb") as f:
            assert f.read() == contents[name]


def test_a_report_that_cannot_be_written_keeps_the_earlier_one(report_dir, tmp_path, monkeypatch):
    """A write error partway (here a full disk while drawing the DET curve) is one line, and the folder keeps the
    earlier report as it was: no new results.json beside the old index.html and PNGs, no temporary file."""
    from kws_tf.evaluate import plots, report

    old, contents = _old_report(report_dir, tmp_path)
    with open(os.path.join(report_dir, "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    results["created_utc"] = "2000-01-01T00:00:00Z"

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "det_png", full_disk)
    with pytest.raises(report.ReportError) as err:
        report.write_report(results, _fake_bank(), {}, old)
    assert str(err.value).startswith(f"{old}: cannot write the report (No space left on device)") and "\n" not in str(err.value)
    assert sorted(os.listdir(old)) == sorted(contents)
    for name, data in contents.items():
        with open(os.path.join(old, name), "rb") as f:
            assert f.read() == data, name


def test_a_failed_report_write_at_the_end_is_one_line(capsys, monkeypatch, tiny_models_dir, tiny_data_dir, tmp_path):
    """An error writing the report after the work is one line after the printed summary (whose numbers are
    thus not lost), not a traceback."""
    from kws_tf.evaluate import plots

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(plots, "det_png", denied)
    out = tmp_path / "report"
    assert main(["--models", tiny_models_dir, "--data-dir", tiny_data_dir, "--report", str(out), "--minutes", "0.2",
                 "--sentences", "1", "--f1-clips", "1", "--precision", "float32", "--jobs", "1", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "words: accuracy, all clips" in captured.out
    assert captured.err.strip() == (f"python -m kws_tf.evaluate: error: {out}: cannot write the report (Permission denied); the folder "
                                    "keeps the report it had; free space or fix its permissions, or choose another --report")
    assert os.listdir(out) == []


def test_jobs_are_capped_at_the_cpu_count(monkeypatch, caplog, tiny_models_dir, tiny_data_dir, tmp_path):
    """Speed is measured with one process per core: --jobs above the CPU count is capped with a note, and
    results.json records the processes used and the CPU count."""
    from kws_tf.evaluate import __main__ as cli

    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setattr(cli, "_pool_map", lambda *a: pytest.fail("a process pool on one CPU"))
    out = str(tmp_path / "report")
    assert main(["--models", tiny_models_dir, "--data-dir", tiny_data_dir, "--report", out, "--minutes", "0.2",
                 "--sentences", "1", "--f1-clips", "1", "--jobs", "3", "--quiet"]) == 0
    assert "--jobs 3: more than the 1 CPU(s) here; using 1, one process per CPU" in caplog.text
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
        settings = json.load(f)["settings"]
    assert settings["jobs"] == 1 and settings["cpu_count"] == 1


def test_ctrl_c_stops_the_workers_without_running_the_queued_tasks():
    """Ctrl-C while the pool works: queued tasks (e.g. the slow PocketSphinx pass) are cancelled and the
    running ones stopped, rather than the interrupt waiting for all of them to finish."""
    import multiprocessing
    import signal
    import time

    from kws_tf.evaluate.__main__ import _pool_map

    def ctrl_c(signum, frame):
        raise KeyboardInterrupt

    before = set(multiprocessing.active_children())
    previous = signal.signal(signal.SIGALRM, ctrl_c)
    start = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            _pool_map(time.sleep, [(10,), (10,), (10,)], 2)  # two running, one queued: 20 s if waited for
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - start < 6
    assert set(multiprocessing.active_children()) <= before


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


def test_file_png_reads_the_file_at_the_models_rate(tmp_path, monkeypatch):
    from kws_tf.audio_io import write_wav_atomic
    from kws_tf.evaluate import plots

    wav = str(tmp_path / "two_seconds.wav")
    write_wav_atomic(wav, np.zeros(32000, np.float32), 16000)
    seen = []
    monkeypatch.setattr(plots, "transcript_png", lambda audio, sr, png, **kw: seen.append((len(audio), sr)) or png)
    record = {"duration_s": 2.0, "words": [], "keywords": [], "text": ""}
    out = plots.file_png(wav, record, [], [], 0.5, str(tmp_path / "p.png"), rate_hz=8000)
    assert out == str(tmp_path / "p.png") and seen == [(16000, 8000)]  # 2 s at the models' 8 kHz


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
