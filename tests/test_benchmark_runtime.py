"""tools/benchmark_runtime.py's bad input: one line before any timing, never a traceback (the timings
themselves are measurements for the README, not tested)."""

from __future__ import annotations

import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main():
    spec = importlib.util.spec_from_file_location("benchmark_runtime", os.path.join(REPO, "tools", "benchmark_runtime.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_bad_clip_models_or_counts_are_one_line(tiny_models_dir, tmp_path, capsys):
    main = _main()
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    for argv, message in ((["--models", tiny_models_dir, "--clip", str(notes)], f"{notes}: unsupported file type '.txt'"),
                          (["--models", tiny_models_dir, "--clip", str(tmp_path / "gone.wav")], f"{tmp_path / 'gone.wav'}: no such file"),
                          (["--models", str(tmp_path)], "model.json: not found"),
                          (["--models", tiny_models_dir, "--repeats", "0"], "--repeats and --threads must be 1 or more")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 1, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and "Traceback" not in "\n".join(err), (argv, err)
