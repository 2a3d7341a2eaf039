"""training/kfold/keyword_share/run_fold.sh, with a stand-in for Python that fakes each step's output:
the steps it runs and the grids it leaves, and that a failed step or a stop by signal stops the steps running
beside it and names the logs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "training", "kfold", "keyword_share", "run_fold.sh")

# Stands in for `python`: logs its arguments and makes what the real step would leave (the synthetic clips' folder,
# export folders, traces, a grid). A call whose arguments hold $FAIL exits 4 once $PIDS holds $FAIL_AFTER_PIDS lines
# (at once without it; it gives up waiting after about 60 s); with $HANG set, every other training sleeps (writing its
# process id to $PIDS) until it is stopped.
FAKE_PYTHON = r"""#!/bin/bash
echo "$*" >> "$CALLS"
args=("$@"); out=; traces=; grid=
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in --out) out=${args[i+1]};; --save-traces) traces=${args[i+1]};; --save-grid) grid=${args[i+1]};; esac
done
if [ -n "$FAIL" ] && [[ "$*" == *"$FAIL"* ]]; then
  for ((try = 0; try < 1200; try++)); do
    n=0; [ -f "$PIDS" ] && n=$(wc -l < "$PIDS")
    [ "$n" -lt "${FAIL_AFTER_PIDS:-0}" ] || break
    sleep 0.05
  done
  exit 4
fi
if [[ "$*" == "-m kws_tf.train.synth "* ]]; then mkdir -p "$out"; exit 0; fi
if [ -n "$HANG" ] && [ -n "$out" ]; then echo $$ >> "$PIDS"; exec sleep 120; fi
if [ -n "$out" ]; then mkdir -p "$out/kws" "$out/words"; fi
if [ -n "$traces" ]; then echo traces > "$traces"; fi
if [ -n "$grid" ]; then echo '{"fake": true}' > "$grid"; fi
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="run_fold.sh needs bash")


def _pid_lines(tmp_path) -> int:
    """Whole lines in $PIDS so far (each hanging training writes one)."""
    try:
        return (tmp_path / "pids.txt").read_text().count("\n")
    except FileNotFoundError:
        return 0


def run_fold(tmp_path, stop_when_pids: int | None = None, script_path: str = SCRIPT, **env):
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = {**os.environ, "PY": str(fake), "GRIDS": str(tmp_path / "grids"), "CALLS": str(tmp_path / "calls.txt"),
           "PIDS": str(tmp_path / "pids.txt"), "SYNTH": str(tmp_path / "synth"), **env}
    script = subprocess.Popen(["bash", script_path, "3", str(tmp_path / "work")], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if stop_when_pids is not None:  # stop the script once that many trainings hang (a generous deadline: a loaded machine)
        deadline = time.monotonic() + 60
        while _pid_lines(tmp_path) < stop_when_pids and time.monotonic() < deadline and script.poll() is None:
            time.sleep(0.05)
        script.terminate()
    out, err = script.communicate(timeout=60)
    done = subprocess.CompletedProcess(script.args, script.returncode, out, err)
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    return done, calls


def test_a_fold_trains_three_models_saves_four_traces_and_writes_two_grids(tmp_path):
    done, calls = run_fold(tmp_path)
    assert done.returncode == 0, done.stderr
    # first the model card's synthetic clips (the command writes only what the folder lacks)
    with open(os.path.join(ROOT, "saved_models", "MODEL_CARD.md"), encoding="utf-8") as f:
        card = f.read().replace("\\\n", " ")
    words = card.split("python -m kws_tf.train.synth --words ")[1].split(" --out")[0].split()
    assert len(words) == 30 and calls[0] == f"-m kws_tf.train.synth --words {' '.join(words)} --out {tmp_path / 'synth'} --per-word 200 --seed 0"
    trainings = [c for c in calls if c.startswith("-m kws_tf.train ")]
    assert len(trainings) == 3 and all("--fold 3/5" in c and "--no-test" in c for c in trainings)
    assert sum("keyword_share=0.2" in c for c in trainings) == 1
    traces = [c for c in calls if "--save-traces" in c]
    assert sorted(c.split("--seed ")[1].split()[0] for c in traces) == ["21", "21", "22", "22"]
    assert all("--split validation --fold 3/5 --minutes 240" in c for c in traces)
    for recipe in ("D", "KS"):
        grid = tmp_path / "grids" / f"fold3_{recipe}.json"
        assert json.loads(grid.read_text()) == {"fake": True}
        # the package of each recipe: the fold's keyword model beside that recipe's word model
        assert (tmp_path / "work" / "f3" / f"P{recipe}" / "kws").is_dir()
    assert "fold 3: grids written" in done.stdout


def test_a_keyword_recipe_fold_trains_two_models_saves_two_traces_and_writes_one_grid(tmp_path):
    """training/kfold/kws_vc/run_fold.sh: the VC keyword model and a keyword-share verifier, one package of the
    two, its traces on the fold's streams 21 and 22, its grid (the baseline is keyword_share/'s KS grid)."""
    done, calls = run_fold(tmp_path, script_path=os.path.join(ROOT, "training", "kfold", "kws_vc", "run_fold.sh"))
    assert done.returncode == 0, done.stderr
    assert calls[0].startswith("-m kws_tf.train.synth --words ") and calls[0].endswith("--per-word 200 --seed 0")
    trainings = [c for c in calls if c.startswith("-m kws_tf.train ")]
    assert len(trainings) == 2 and all("--fold 3/5" in c and "--no-test" in c and "--preset default" in c for c in trainings)
    kws = [c for c in trainings if "--task kws" in c]
    assert len(kws) == 1 and "--seed 0 --set kws_data.freq_warp=0.1 --set kws_data.confusable_prob=0.6" in kws[0]
    assert any("--task words --seed 1 --set word_data.keyword_share=0.2" in c for c in trainings)
    traces = [c for c in calls if "--save-traces" in c]
    assert sorted(c.split("--seed ")[1].split()[0] for c in traces) == ["21", "22"]
    assert all("--split validation --fold 3/5 --minutes 240" in c for c in traces)
    assert json.loads((tmp_path / "grids" / "fold3_VC.json").read_text()) == {"fake": True}
    assert (tmp_path / "work" / "f3" / "PVC" / "kws").is_dir() and (tmp_path / "work" / "f3" / "PVC" / "words").is_dir()
    assert "fold 3: grid written" in done.stdout


def test_the_wider_keyword_model_fold_passes_its_recipe_and_names_its_grid(tmp_path):
    """training/kfold/kws_gru80/run_fold.sh: the shared keyword-recipe fold with 80 GRU units (rule 13)."""
    done, calls = run_fold(tmp_path, script_path=os.path.join(ROOT, "training", "kfold", "kws_gru80", "run_fold.sh"))
    assert done.returncode == 0, done.stderr
    kws = [c for c in calls if c.startswith("-m kws_tf.train ") and "--task kws" in c]
    assert len(kws) == 1 and "--seed 0 --set kws.gru_units=80 --out " in kws[0] and "freq_warp" not in kws[0]
    assert sum(c.startswith("-m kws_tf.train ") and "--task words --seed 1 --set word_data.keyword_share=0.2" in c for c in calls) == 1
    assert json.loads((tmp_path / "grids" / "fold3_G80.json").read_text()) == {"fake": True}
    assert (tmp_path / "work" / "f3" / "PG80" / "kws").is_dir() and "fold 3: grid written" in done.stdout


def test_a_rerun_keeps_the_steps_an_earlier_run_finished(tmp_path):
    """A fold stopped part-way (say at the end of a session) is run again with the same command: the finished
    training and trace are kept, the rest is run (a stopped training resumes from its run folder)."""
    work = tmp_path / "work" / "f3"
    for done_file in ("run_VC/kws/summary.json", "VC/kws/model.json", "PVC_3_s21.npz"):
        (work / done_file).parent.mkdir(parents=True, exist_ok=True)
        (work / done_file).write_text("{}")
    (work / "KS" / "words").mkdir(parents=True)
    (work / "KS" / "words" / "model.json").write_text("{}")  # exported, but its run never wrote summary.json
    done, calls = run_fold(tmp_path, script_path=os.path.join(ROOT, "training", "kfold", "kws_vc", "run_fold.sh"))
    assert done.returncode == 0, done.stderr
    trainings = [c for c in calls if c.startswith("-m kws_tf.train ")]
    assert len(trainings) == 1 and "--task words" in trainings[0]
    traces = [c for c in calls if "--save-traces" in c]
    assert len(traces) == 1 and "--seed 22" in traces[0]
    assert f"fold 3: kept from an earlier run: {work / 'run_VC/kws/summary.json'} {work / 'VC/kws/model.json'}" in done.stdout
    assert f"fold 3: kept from an earlier run: {work / 'PVC_3_s21.npz'}" in done.stdout
    assert json.loads((tmp_path / "grids" / "fold3_VC.json").read_text()) == {"fake": True}


def test_no_training_starts_without_the_synthetic_clips(tmp_path):
    done, calls = run_fold(tmp_path, FAIL="kws_tf.train.synth")
    assert done.returncode == 4 and "fold 3: stopped (exit 4)" in done.stderr
    assert len(calls) == 1 and not (tmp_path / "work" / "f3" / "kws.log").exists()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
@pytest.mark.parametrize("how", ["a training fails", "the script is stopped"])
def test_the_trainings_left_are_stopped_and_the_logs_named(tmp_path, how):
    if how == "a training fails":
        # the failing training exits once the two beside it hang
        done, calls = run_fold(tmp_path, FAIL="keyword_share=0.2", HANG="1", FAIL_AFTER_PIDS="2")
        code, hanging = 4, 2
    else:
        done, calls = run_fold(tmp_path, stop_when_pids=3, HANG="1")
        code, hanging = 143, 3
    assert done.returncode == code
    assert f"fold 3: stopped (exit {code}); the logs are in {tmp_path / 'work' / 'f3'}" in done.stderr
    assert not any("--save-traces" in c for c in calls) and not (tmp_path / "grids" / "fold3_D.json").exists()
    pids = [int(p) for p in (tmp_path / "pids.txt").read_text().split()]
    assert len(pids) == hanging

    def running(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"  # a stopped child not yet reaped counts as gone
        except FileNotFoundError:
            return False

    deadline = time.time() + 10
    while any(running(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(running(p) for p in pids)


@pytest.mark.parametrize("statuses, code", [("0 0 0", 0), ("0 3 0", 3)])
def test_wait_all_sees_steps_that_ended_before_it_waited(statuses, code):
    """training/kfold/wait_all.sh: steps that have all ended before the script waits for them still give
    their statuses (bash's `wait -n` returned 127 for them, so a fold whose last two steps ended together
    stopped as failed), and a failed one stops the script with its status."""
    script = ('source training/kfold/wait_all.sh; P=(); for s in $STATUSES; do (exit $s) & P+=($!); done; '
              'sleep 0.3; wait_all "${P[@]}"; echo all done')
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env={**os.environ, "STATUSES": statuses},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == code and ("all done" in done.stdout) == (code == 0)
