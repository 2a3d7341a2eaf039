"""Two training runs in one run folder (or one export folder) would overwrite each other's checkpoints
(or models): the second one stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from kws_tf.train.run_lock import RunDirBusy, lock_path, run_dir_lock
from tests.conftest import TINY_WORDS


HOLD = ("import sys, time\n"
        "from kws_tf.train.run_lock import run_dir_lock\n"
        "with run_dir_lock(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n")


@pytest.fixture
def holder():
    """Start a process that holds the lock of a folder, as a live training run does (a ``Popen``)."""
    procs = []

    def hold(run_dir) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_run_keeps_its_folder(tmp_path, holder):
    run_dir = str(tmp_path / "runs" / "kws")
    pid = holder(run_dir).pid
    with pytest.raises(RunDirBusy, match=rf"process {pid}.*--run-dir"):
        with run_dir_lock(run_dir):
            pass
    assert open(lock_path(run_dir)).read() == str(pid)  # the live run's lock is left alone


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
               "--out", str(out), "--run-dir", str(runs)])
    return rc, capsys.readouterr().err.strip().splitlines()


def test_train_cli_refuses_a_busy_run_folder(tiny_data_dir, tmp_path, holder, capsys):
    runs = tmp_path / "runs"
    holder(runs / "words")
    rc, err = train_words_cli(tiny_data_dir, tmp_path / "models", runs, capsys)
    assert rc == 1 and len(err) == 1
    assert err[0].startswith("error: ") and str(runs / "words") in err[0] and "--run-dir" in err[0]
    assert not (tmp_path / "models").exists() and not (runs / "words").exists()  # nothing trained or written


RACE = ("import sys, time\n"
        "from kws_tf.train.run_lock import RunDirBusy, run_dir_lock\n"
        "while time.time() < float(sys.argv[2]): pass\n"
        "try:\n"
        "    with run_dir_lock(sys.argv[1]):\n"
        "        print('took', flush=True)\n"
        "        time.sleep(3)\n"
        "except RunDirBusy:\n"
        "    print('refused', flush=True)\n")


def test_runs_that_find_one_leftover_lock_at_once_take_it_once(tmp_path):
    """Runs started together on a killed run's leftover lock file: exactly one takes the folder."""
    run_dir = str(tmp_path / "kws")
    with open(lock_path(run_dir), "w") as f:
        f.write(str(dead_pid()))
    start = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", RACE, run_dir, str(start)], stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    said = sorted(proc.communicate(timeout=60)[0].strip() for proc in procs)
    assert said == ["refused"] * 5 + ["took"]


def test_a_process_id_in_the_file_does_not_hold_the_folder(tmp_path, holder):
    """Process ids are reused (after a reboot, say): a leftover file naming a live process that holds no lock
    is taken over."""
    run_dir = str(tmp_path / "kws")
    other = holder(tmp_path / "elsewhere").pid  # a live process, busy with another folder
    with open(lock_path(run_dir), "w") as f:
        f.write(str(other))
    with run_dir_lock(run_dir) as path:
        assert open(path).read() == str(os.getpid())


def test_a_killed_holders_lock_is_free_at_once(tmp_path, holder):
    """Killed while holding the lock (no cleanup ran): the next run takes the folder straight away."""
    run_dir = str(tmp_path / "kws")
    proc = holder(run_dir)
    proc.kill()
    proc.wait()
    assert os.path.exists(lock_path(run_dir))  # left on disk by the killed run
    with run_dir_lock(run_dir) as path:
        assert open(path).read() == str(os.getpid())
    assert not os.path.exists(lock_path(run_dir))


def test_train_cli_refuses_an_export_folder_in_use(tiny_data_dir, tmp_path, holder, capsys):
    """Two runs with their own run folders but one --out would overwrite each other's exported models."""
    models = tmp_path / "models"
    live_pid = holder(models / "words").pid
    rc, err = train_words_cli(tiny_data_dir, models, tmp_path / "runs", capsys)
    assert rc == 1 and len(err) == 1
    assert err[0].startswith("error: ") and str(models / "words") in err[0] and "--out" in err[0]
    assert "export folder" in err[0] and f"process {live_pid}" in err[0]
    assert not (models / "words").exists() and not (tmp_path / "runs" / "words").exists()  # nothing written
    assert not os.path.exists(tmp_path / "runs" / "words.lock")  # the run folder's lock was released
    assert not (tmp_path / "runs").exists()  # and the folder it made for it, left empty, went with it


def test_the_folders_a_lock_made_go_when_nothing_was_put_in_them(tmp_path):
    """A run that fails before it writes anything leaves no empty --out folder; one that wrote keeps it, and
    folders that were there before are never removed."""
    with run_dir_lock(tmp_path / "new" / "models" / "kws"):
        assert (tmp_path / "new" / "models").is_dir()
    assert not (tmp_path / "new").exists() and tmp_path.is_dir()
    with run_dir_lock(tmp_path / "kept" / "models" / "kws"):
        (tmp_path / "kept" / "models" / "kws").mkdir()
    assert (tmp_path / "kept" / "models" / "kws").is_dir()
    assert not os.path.exists(lock_path(tmp_path / "kept" / "models" / "kws"))


def test_a_lock_whose_folder_went_makes_it_again(tmp_path, monkeypatch):
    """A run that failed beside this one may remove the folder both locks are in just before this one opens
    its lock file there."""
    real_open, calls = os.open, []

    def open_after_rmdir(path, *args):
        if not calls:
            os.rmdir(os.path.dirname(path))
        calls.append(path)
        return real_open(path, *args)

    monkeypatch.setattr(os, "open", open_after_rmdir)
    with run_dir_lock(tmp_path / "models" / "words") as path:
        assert os.path.isfile(path) and len(calls) == 2
