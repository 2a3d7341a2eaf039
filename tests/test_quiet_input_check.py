"""tools/quiet_input_check.py on the shipped package: quiet with the decoder's level guard, and it reports
the words the word model writes over digital silence once the guard is off (exit 1)."""

from __future__ import annotations

import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(REPO, "saved_models")


def load_tool():
    spec = importlib.util.spec_from_file_location("quiet_input_check", os.path.join(REPO, "tools", "quiet_input_check.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool():
    if not os.path.exists(os.path.join(SHIPPED, "kws", "model.json")):
        pytest.skip("no shipped models in saved_models/")
    return load_tool()


def test_shipped_package_writes_nothing_over_quiet_input(tool, capsys):
    assert tool.main(["--models", SHIPPED, "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "gated (level guard on): 36 cases" in out and "no_gate (level guard on): 36 cases" in out
    assert out.strip().endswith("nothing written")


def test_without_the_level_guard_the_words_it_writes_are_listed(tool, capsys):
    assert tool.main(["--models", SHIPPED, "--seconds", "2", "--no-level-guard"]) == 1
    out = capsys.readouterr().out
    assert "\n  zeros: " in out and "words written where nobody speaks" in out


def test_bad_folders_are_one_line_errors(tool, tmp_path, capsys):
    assert tool.main(["--models", str(tmp_path / "none"), "--seconds", "2"]) == 1
    assert tool.main(["--models", SHIPPED, "--seconds", "2", "--noise-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("quiet_input_check.py: error: ") for line in err)
    assert "no .wav files" in err[1]
