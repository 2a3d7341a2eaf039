"""tools/tune_detector.py and tools/tune_decoder.py on the tiny exported models: they run end to end
on a split, print the grid, and --write stores a setting from the grid in the right sidecar."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def models(tiny_models_dir, tmp_path) -> str:
    out = str(tmp_path / "models")
    shutil.copytree(tiny_models_dir, out)
    return out


def _sidecar(models: str, task: str) -> dict:
    with open(os.path.join(models, task, "model.json"), encoding="utf-8") as f:
        return json.load(f)


def test_tune_detector_writes_a_verified_gate_setting(models, tiny_data_dir, capsys):
    tool = _tool("tune_detector")
    before = _sidecar(models, "words")
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "1",
                      "--fa-per-hour", "1000", "--write"]) == 0
    out = capsys.readouterr().out
    assert "smoothing 5  patience 4" in out and "best:" in out
    # The sidecar's setting before tuning is one point of the grid, so the best is at least as good.
    current = float(re.search(r"current setting \(its threshold swept\): recall ([0-9.]+)", out).group(1))
    assert current <= float(re.search(r"\(recall ([0-9.]+)\)", out).group(1))
    tuned = _sidecar(models, "kws")["thresholds"]
    assert tuned["detector_tuning"]["split"] == "test"
    det = tuned["detector"]
    assert det["threshold"] in tool.THRESHOLDS and det["verify_threshold"] in tool.VERIFY_THRESHOLDS
    assert det["verify_window_s"] in tool.VERIFY_WINDOWS_S and det["smoothing_frames"] in (1, 3, 5)
    assert _sidecar(models, "words") == before  # only the keyword sidecar changes


def test_tune_decoder_writes_a_decoder_setting(models, tiny_data_dir, capsys):
    tool = _tool("tune_decoder")
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--sentences", "2", "--write"]) == 0
    out = capsys.readouterr().out
    grid = len(tool.THRESHOLDS) * len(tool.SMOOTHING_WINDOWS) * len(tool.PAUSES_S)
    assert out.count("errors per reference word") == 2 and out.count("  threshold ") == grid
    tuned = _sidecar(models, "words")["thresholds"]
    assert tuned["decoder_tuning"]["sentences"] == 3
    dec = tuned["decoder"]
    assert dec["threshold"] in tool.THRESHOLDS and dec["smoothing_windows"] in tool.SMOOTHING_WINDOWS and dec["pause_s"] in tool.PAUSES_S


def test_cached_runner_runs_each_distinct_input_once():
    import numpy as np

    calls = []
    run = _tool("tune_decoder").cached(lambda x: calls.append(1) or x.sum(keepdims=True))
    a, b = np.ones((3, 2), np.float32), np.zeros((3, 2), np.float32)
    assert run(a)[0] == 6 and run(a.copy())[0] == 6 and run(b)[0] == 0
    assert len(calls) == 2


def test_keyword_confusions_ranks_words_and_suggests_them(models, tiny_data_dir, capsys):
    tool = _tool("keyword_confusions")
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "train", "--min-rate", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if "mean peak" in line]
    assert [r[0] for r in rows][0] == "stop" and sorted(r[0] for r in rows) == ["no", "stop", "up", "yes"]
    assert all(int(r[1]) >= 7 for r in rows)  # 8 training clips per word (one "no" clip is corrupt)
    rates = [float(r[3].rstrip("%")) for r in rows[1:]]
    assert rates == sorted(rates, reverse=True)
    suggestion = next(line for line in out.splitlines() if "kws_data.confusable_words=" in line)
    assert sorted(json.loads(suggestion.split("confusable_words=")[1].split("'")[0])) == ["no", "up", "yes"]


def test_keyword_confusions_bad_data_dir_is_one_line(models, tmp_path, capsys):
    assert _tool("keyword_confusions").main(["--models", models, "--data-dir", str(tmp_path / "missing"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "missing" in err[0]
