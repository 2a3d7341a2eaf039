"""Two training runs in one run folder (or one export folder) would overwrite each other's checkpoints
(or models): the second one stops."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kws_tf.train.run_lock import RunDirBusy, lock_path, run_dir_lock
from tests.conftest import TINY_WORDS


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_run_keeps_its_folder(tmp_path, live_pid):
    run_dir = str(tmp_path / "runs" / "kws")
    os.makedirs(tmp_path / "runs")
    with open(lock_path(run_dir), "w") as f:
        f.write(str(live_pid))
    with pytest.raises(RunDirBusy, match=rf"process {live_pid}.*--run-dir"):
        with run_dir_lock(run_dir):
            pass
    assert open(lock_path(run_dir)).read() == str(live_pid)  # the live run's lock is left alone


def test_a_killed_runs_lock_is_taken_over_and_released(tmp_path):
    run_dir = str(tmp_path / "kws")
    with open(lock_path(run_dir), "w") as f:
        f.write(str(dead_pid()))
    with run_dir_lock(run_dir) as path:
        assert open(path).read() == str(os.getpid())
    assert not os.path.exists(lock_path(run_dir))


def train_words_cli(data_dir, out, runs, capsys) -> tuple[int, list[str]]:
    """Run the tiny word training through the command line; its exit code and stderr lines."""
    from kws_tf.train.__main__ import main

    rc = main(["--data-dir", data_dir, "--preset", "tiny", "--task", "words", "--words", *TINY_WORDS,
               "--out", str(out), "--run-dir", str(runs), "--quiet"])
    return rc, capsys.readouterr().err.strip().splitlines()


def test_train_cli_refuses_a_busy_run_folder(tiny_data_dir, tmp_path, live_pid, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "words.lock").write_text(str(live_pid))
    rc, err = train_words_cli(tiny_data_dir, tmp_path / "models", runs, capsys)
    assert rc == 1 and len(err) == 1
    assert err[0].startswith("error: ") and str(runs / "words") in err[0] and "--run-dir" in err[0]
    assert not (tmp_path / "models").exists() and not (runs / "words").exists()  # nothing trained or written


def test_a_lock_being_written_counts_as_busy_until_it_is_old(tmp_path):
    run_dir = str(tmp_path / "kws")
    open(lock_path(run_dir), "w").close()  # created, process id not written yet
    with pytest.raises(RunDirBusy, match="starting"):
        with run_dir_lock(run_dir):
            pass
    os.utime(lock_path(run_dir), (1.0, 1.0))  # an empty lock from long ago: left by a crash, taken over
    with run_dir_lock(run_dir):
        pass
    assert not os.path.exists(lock_path(run_dir))


def test_train_cli_refuses_an_export_folder_in_use(tiny_data_dir, tmp_path, live_pid, capsys):
    """Two runs with their own run folders but one --out would overwrite each other's exported models."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "words.lock").write_text(str(live_pid))
    rc, err = train_words_cli(tiny_data_dir, models, tmp_path / "runs", capsys)
    assert rc == 1 and len(err) == 1
    assert err[0].startswith("error: ") and str(models / "words") in err[0] and "--out" in err[0]
    assert "export folder" in err[0] and f"process {live_pid}" in err[0]
    assert not (models / "words").exists() and not (tmp_path / "runs" / "words").exists()  # nothing written
    assert not os.path.exists(tmp_path / "runs" / "words.lock")  # the run folder's lock was released
