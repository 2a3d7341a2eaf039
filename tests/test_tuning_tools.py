"""tools/tune_detector.py and tools/tune_decoder.py on the tiny exported models: they run end to end
on a split, print the grid, and --write stores a setting from the grid in the right sidecar."""

from __future__ import annotations

import ast
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


def test_tune_detector_writes_the_best_setting_of_a_grid_with_verification(models, tiny_data_dir, tmp_path, capsys):
    import numpy as np

    tool = _tool("tune_detector")
    before = _sidecar(models, "words")
    traces = str(tmp_path / "traces.npz")
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "1",
                      "--fa-per-hour", "1000", "--write", "--save-traces", traces, "--check-half"]) == 0
    out = capsys.readouterr().out
    assert "smoothing 5  patience 4" in out and "best:" in out and "missed keywords: keyword score under" in out
    assert "half check:" in out
    # The sidecar's setting before tuning is one point of the grid, so the best is at least as good.
    current = float(re.search(r"current setting \(its threshold swept\): recall ([0-9.]+)", out).group(1))
    assert current <= float(re.search(r"\(recall ([0-9.]+)\)", out).group(1))
    tuned = _sidecar(models, "kws")["thresholds"]
    assert tuned["detector_tuning"]["split"] == "test"
    det = tuned["detector"]
    assert det["threshold"] in tool.THRESHOLDS and det["verify_threshold"] in tool.VERIFY_THRESHOLDS
    # The grid tries every verification window and threshold (0: none) for each smoothing and patience;
    # the best may well be unverified (ties go to the earlier setting, and 0.0 comes first).
    n_verify = len(tool.VERIFY_WINDOWS_S) * len(tool.VERIFY_THRESHOLDS)
    assert out.count(f"(over {n_verify} verification settings)") == 9
    # What --write stores is the setting printed on the "best:" line, with its recall.
    best = re.search(r"^best: (\{.*\}) \(recall ([0-9.]+)\)$", out, re.MULTILINE)
    assert det == ast.literal_eval(best.group(1))
    assert round(tuned["detector_tuning"]["recall"], 3) == float(best.group(2))
    assert det["verify_window_s"] in tool.VERIFY_WINDOWS_S and det["smoothing_frames"] in (1, 3, 5)
    assert _sidecar(models, "words") == before  # only the keyword sidecar changes
    with np.load(traces) as saved:  # one keyword score per frame, one word-model score per window
        assert len(saved["times"]) == len(saved["probs"]) > 0 and len(saved["verify_times"]) == len(saved["verify_probs"]) > 0
        assert saved["spans"].shape[1] == 2 and 50 <= float(saved["duration"]) <= 70


def test_tune_detector_tunes_on_saved_traces_and_replays_held_out_ones(models, tiny_data_dir, tmp_path, capsys):
    """--traces joins saved streams end to end without running the models; --held-out replays the best
    setting on other traces. The same stream twice is the same DET curve, so the same best recall, and
    the best setting replayed on the stream it was tuned on gives that recall back."""
    tool = _tool("tune_detector")
    traces = str(tmp_path / "traces.npz")
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "1", "--seed", "3",
                      "--fa-per-hour", "1000", "--save-traces", traces]) == 0
    single = float(re.search(r"best: .* \(recall ([0-9.]+)\)", capsys.readouterr().out).group(1))
    (one, streams) = tool.load_traces([traces])
    (two, _) = tool.load_traces([traces, traces])
    assert streams[0]["seed"] == 3 and streams[0]["split"] == "test" and streams[0]["file"] == "traces.npz"
    assert len(two[0]) == 2 * len(one[0]) and len(two[2]) == 2 * len(one[2]) and abs(two[3] - 2 * one[3]) < 1e-9
    assert two[0][len(one[0])] >= one[3] and (two[2][len(one[2]):] == one[2] + one[3]).all()  # shifted, not overlaid

    assert tool.main(["--models", models, "--traces", traces, traces, "--held-out", traces, "--fa-per-hour", "1000", "--write"]) == 0
    out = capsys.readouterr().out
    assert "tuning on saved traces: traces.npz (test seed 3), traces.npz (test seed 3)" in out
    joined = float(re.search(r"best: .* \(recall ([0-9.]+)\)", out).group(1))
    assert joined == single
    held = re.search(r"held out \(.*traces.npz, (\d+) keywords in \d+ min\): recall ([0-9.]+) with (\d+) false alarms "
                     r"\(.*\); caught (\d+) of (\d+) keywords", out)
    assert int(held.group(1)) == len(one[2]) and float(held.group(2)) == single
    assert int(held.group(5)) == len(one[2]) and abs(int(held.group(4)) / len(one[2]) - single) <= 0.0005  # counts for summing streams
    assert re.search(r"held out, the sidecar's current setting as it is: recall [0-9.]+ with \d+ false alarms", out)
    tuning = _sidecar(models, "kws")["thresholds"]["detector_tuning"]
    assert tuning["seeds"] == [3, 3] and tuning["split"] == "test" and tuning["recall"] == joined

    # The sidecar now holds the best setting of these traces: replayed as it is, it scores as the best does.
    assert tool.main(["--models", models, "--traces", traces, "--held-out", traces, "--fa-per-hour", "1000"]) == 0
    out = capsys.readouterr().out
    best_held = re.search(r"held out \(.*\): (recall [0-9.]+ with \d+ false alarms)", out).group(1)
    assert f"held out, the sidecar's current setting as it is: {best_held}" in out


def test_tune_detector_save_only_stops_after_saving(models, tiny_data_dir, tmp_path, capsys):
    """--save-only writes the traces and runs no grid: nothing printed about settings, the sidecar
    untouched; the saved file then tunes like any other."""
    import numpy as np

    tool = _tool("tune_detector")
    traces = str(tmp_path / "traces.npz")
    before = _sidecar(models, "kws")
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "1",
                      "--save-traces", traces, "--save-only"]) == 0
    out = capsys.readouterr().out
    assert f"saved the score traces to {traces}" in out and "best:" not in out and "recall" not in out
    assert _sidecar(models, "kws") == before
    with np.load(traces) as saved:
        assert len(saved["times"]) == len(saved["probs"]) > 0
    assert tool.main(["--models", models, "--traces", traces, "--fa-per-hour", "1000"]) == 0
    assert "best:" in capsys.readouterr().out
    for extra in ([], ["--save-traces", traces, "--write"], ["--save-traces", traces, "--held-out", traces]):
        with pytest.raises(SystemExit) as e:  # usage and a one-line error, exit 1
            tool.main(["--models", models, "--data-dir", tiny_data_dir, "--save-only", *extra])
        assert e.value.code == 1 and "--save-only saves the traces and stops" in capsys.readouterr().err


def test_tune_detector_traces_exclude_a_model_run(models, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # usage and a one-line error, exit 1
        _tool("tune_detector").main(["--models", models, "--traces", "a.npz", "--save-traces", "b.npz"])
    assert e.value.code == 1 and "--traces tunes on saved traces" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _tool("tune_detector").main(["--models", models])
    assert e.value.code == 1 and "give --data-dir" in capsys.readouterr().err


def test_tune_detector_refuses_traces_of_other_models(models, tiny_data_dir, tmp_path, capsys):
    """Saved traces record a digest of the two TFLite files: tuning them against a package whose model
    files differ (here the keyword model's bytes changed) is a one-line error, and nothing is written."""
    tool = _tool("tune_detector")
    traces = str(tmp_path / "traces.npz")
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "1",
                      "--fa-per-hour", "1000", "--save-traces", traces]) == 0
    capsys.readouterr()
    other = str(tmp_path / "other")
    shutil.copytree(models, other)
    with open(os.path.join(other, "kws", "float32.tflite"), "ab") as f:
        f.write(b"\0")
    before = _sidecar(other, "kws")
    for args in (["--traces", traces], ["--traces", traces, "--held-out", traces]):
        with pytest.raises(SystemExit) as e:
            tool.main(["--models", other, *args, "--fa-per-hour", "1000", "--write"])
        assert "traces.npz: traces of another keyword model" in str(e.value) and "\n" not in str(e.value)
    assert _sidecar(other, "kws") == before
    assert tool.main(["--models", models, "--traces", traces, "--fa-per-hour", "1000"]) == 0  # its own package
    # A k-fold check tunes one recipe's setting on the other folds' models' traces: allowed when asked for,
    # and never written.
    assert tool.main(["--models", other, "--traces", traces, "--held-out", traces, "--any-models", "--fa-per-hour", "1000"]) == 0
    assert re.search(r"held out \(.*\): recall [0-9.]+ with \d+ false alarms", capsys.readouterr().out)
    with pytest.raises(SystemExit) as e:
        tool.main(["--models", other, "--traces", traces, "--any-models", "--fa-per-hour", "1000", "--write"])
    assert e.value.code == 1 and "--any-models" in capsys.readouterr().err
    assert _sidecar(other, "kws") == before


def test_saved_grids_pool_like_joined_traces_and_judge_a_recipe_by_kfold(models, tiny_data_dir, tmp_path, capsys):
    """--save-grid keeps the grid as counts: the saved grid picks the setting tune_detector printed, grids
    of two streams pooled pick what their traces joined pick, and tools/kfold_gate.py tunes each fold on
    the other folds' grids and reads the setting on its own, as --traces (the others) --held-out (this
    fold) replays it; its sums are the folds' sums. The tiny tree's three folds of 3 hold 1-2 speakers each."""
    from kws_tf.evaluate.gate_grid import best_at, count_at, load_grid, pool
    from kws_tf.evaluate.traces import model_recipes

    recipes = model_recipes(models)
    assert recipes["kws_recipe"]["features"] and recipes["words_recipe"]["word_data"]  # the sidecars' records
    detector, kfold = _tool("tune_detector"), _tool("kfold_gate")
    traces, grids, best = {}, {}, {}
    for k in (1, 2, 3):
        traces[k], grids[k] = str(tmp_path / f"fold{k}.npz"), str(tmp_path / f"fold{k}.json")
        assert detector.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "validation", "--fold", f"{k}/3",
                              "--minutes", "1", "--seed", "3", "--fa-per-hour", "1000", "--save-traces", traces[k],
                              "--save-grid", grids[k]]) == 0
        out = capsys.readouterr().out
        assert f"saved the grid's counts to {grids[k]}" in out
        best[k] = float(re.search(r"best: .* \(recall ([0-9.]+)\)", out).group(1))
        grid = load_grid(grids[k])
        assert grid.keywords > 0 and grid.caught.shape == grid.false_alarms.shape == (len(grid.settings), len(grid.thresholds))
        assert round(best_at(grid.rows(), 1000)[0], 3) == best[k]
        assert os.path.getsize(grids[k]) < 200_000 and not os.path.exists(grids[k] + ".partial")
        assert [{key: s[key] for key in ("kws_recipe", "words_recipe")} for s in grid.streams] == [model_recipes(models)]

    assert detector.main(["--models", models, "--traces", traces[2], traces[3], "--fa-per-hour", "1000"]) == 0
    joined = float(re.search(r"best: .* \(recall ([0-9.]+)\)", capsys.readouterr().out).group(1))
    pooled = pool([load_grid(grids[2]), load_grid(grids[3])])
    assert pooled.keywords == load_grid(grids[2]).keywords + load_grid(grids[3]).keywords
    assert round(best_at(pooled.rows(), 1000)[0], 3) == joined

    budget = "1000"
    assert kfold.main([grids[1], grids[2], grids[3], "--fa-per-hour", budget]) == 0
    out = capsys.readouterr().out
    assert "note:" not in out  # every grid records its models' recipes: all one recipe
    folds = re.findall(r"^fold (\d)/3 \(.*\): tuned on the others .*caught (\d+) of (\d+) keywords with (\d+) false alarms", out, re.M)
    assert [f[0] for f in folds] == ["1", "2", "3"]
    total = re.search(r"held out, 3 folds: recall [0-9.]+, caught (\d+) of (\d+) keywords with (\d+) false alarms", out)
    for i in range(3):
        assert int(total.group(i + 1)) == sum(int(f[i + 1]) for f in folds)
    assert detector.main(["--models", models, "--traces", traces[2], traces[3], "--held-out", traces[1], "--fa-per-hour", budget]) == 0
    held = re.search(r"held out \(.*\): recall [0-9.]+ with (\d+) false alarms .*; caught (\d+) of (\d+) keywords", capsys.readouterr().out)
    assert (folds[0][1], folds[0][2], folds[0][3]) == (held.group(2), held.group(3), held.group(1))
    setting = best_at(pooled.rows(), float(budget))[1]
    assert count_at(load_grid(grids[1]), setting) == (int(folds[0][1]), int(folds[0][3]))
    assert kfold.main([grids[1], grids[3], "--fa-per-hour", budget]) == 0  # a check with a fold left out says which
    assert "held out, 2 of 3 folds (no grid for 2): recall" in capsys.readouterr().out


def test_kfold_gate_tunes_each_fold_on_the_others_and_sums_the_held_out_counts(tmp_path, capsys):
    """Hand-made grids of three folds (one hour, ten keywords each; two settings, two thresholds) whose
    answer is worked out by hand: at <= 1 false alarm per hour fold 1 gets setting A at 0.5 (19 of 20 on
    the others, 2 false alarms), fold 2 A at 0.9 (the others' only point within budget), fold 3 B at 0.9
    (15 caught against A's 14); held out they catch 9 + 8 + 9 with 3 + 1 + 3 false alarms."""
    import numpy as np

    from kws_tf.config import DetectorConfig
    from kws_tf.evaluate.gate_grid import GateGrid, save_grid

    settings = [DetectorConfig(smoothing_frames=1), DetectorConfig(smoothing_frames=3)]
    folds = {1: ([[9, 6], [8, 10]], [[3, 1], [2, 0]]), 2: ([[9, 8], [9, 5]], [[2, 1], [1, 0]]),
             3: ([[10, 4], [10, 9]], [[0, 0], [5, 3]])}
    paths = []
    for k, (caught, fa) in folds.items():
        paths.append(str(tmp_path / f"fold{k}.json"))
        streams = [{"split": f"validation fold {k}/3", "seed": 21, "minutes": 60.0}]
        save_grid(paths[-1], GateGrid(settings, np.array([0.5, 0.9]), np.array(caught), np.array(fa), 10, 3600.0, streams))
    assert _tool("kfold_gate").main([*paths, "--fa-per-hour", "1"]) == 0
    out = capsys.readouterr().out
    lines = re.findall(r"^fold (\d)/3 .*tuned on the others \(recall ([0-9.]+)\) (.*); held out: recall [0-9.]+, "
                       r"caught (\d+) of 10 keywords with (\d+) false alarms", out, re.M)
    assert [(k, r, c, fa) for k, r, _, c, fa in lines] == [("1", "0.950", "9", "3"), ("2", "0.500", "8", "1"), ("3", "0.750", "9", "3")]
    assert ["'smoothing_frames': 1" in s and "'threshold': 0.5" in s for _, _, s, _, _ in lines] == [True, False, False]
    assert ["'smoothing_frames': 3" in s and "'threshold': 0.9" in s for _, _, s, _, _ in lines] == [False, False, True]
    assert "held out, 3 folds: recall 0.8667, caught 26 of 30 keywords with 7 false alarms in 3.0 h (2.33 per hour, budget 1)" in out

    # --current: a package's own setting (B at 0.9) read as it is on each fold (10 + 5 + 9 caught, 0 + 0 + 3
    # false alarms) and on all three; a setting the grids lack is a one-line error.
    from kws_tf.sidecar import save_sidecar

    pkg = str(tmp_path / "pkg")
    save_sidecar(pkg, "kws", {"thresholds": {"detector": {"threshold": 0.9, "smoothing_frames": 3}}})
    assert _tool("kfold_gate").main([*paths, "--fa-per-hour", "1", "--current", pkg]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^fold \d/3 .*as it is: caught (\d+) of 10 keywords with (\d+) false alarms", out, re.M) == \
        [("10", "0"), ("5", "0"), ("9", "3")]
    assert "setting as it is, 3 folds: " in out and "recall 0.8000, caught 24 of 30 keywords with 3 false alarms in 3.0 h" in out
    save_sidecar(pkg, "kws", {"thresholds": {"detector": {"threshold": 0.7, "smoothing_frames": 3}}})
    with pytest.raises(SystemExit) as e:
        _tool("kfold_gate").main([*paths, "--current", pkg])
    assert "no grid point at" in str(e.value) and paths[0] in str(e.value) and "\n" not in str(e.value)


def test_kfold_gate_bad_grids_are_one_line(models, tiny_data_dir, tmp_path, capsys):
    """A file that is not a grid, grids of different sweeps, and grids that would tune and hold out on the
    same speakers or mix checks (one fold given twice, a grid of no fold or of two, folds of another N or
    split, folds of two recipes) stop before any work with one line naming the files; grids without recipe
    records are named in a note; --save-grid is refused beside --save-only (that saves traces and stops)."""
    from kws_tf.evaluate.gate_grid import load_grid, pool, save_grid

    kfold = _tool("kfold_gate")
    bad = tmp_path / "not_a_grid.json"
    bad.write_text('{"format": "something else"}')
    plain = str(tmp_path / "plain.json")
    assert _tool("tune_detector").main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "1",
                                        "--fa-per-hour", "1000", "--save-grid", plain]) == 0
    capsys.readouterr()

    def saved(name: str, *splits: str, seed: int = 21, shift: float = 0.0, recipes: dict | None = None) -> str:
        grid = load_grid(plain)  # the plain test stream's counts, recorded as other streams
        grid.streams = [{"split": split, "seed": seed, "minutes": 1.0, **(recipes or {})} for split in splits]
        grid.thresholds = grid.thresholds + shift
        save_grid(str(tmp_path / name), grid)
        return str(tmp_path / name)

    def refused(*paths: str) -> str:
        with pytest.raises(SystemExit) as e:
            kfold.main(list(paths))
        assert str(e.value).startswith("error:") and "\n" not in str(e.value)
        return str(e.value)

    one, two = saved("one.json", "validation fold 1/5"), saved("two.json", "validation fold 2/5")
    assert kfold.main([one, two]) == 0  # two folds of one split: the check runs
    assert "note: " in (out := capsys.readouterr().out) and "one.json, " in out and "two.json: saved without the models' recipes" in out
    recipes = {key: load_grid(plain).streams[0][key] for key in ("kws_recipe", "words_recipe")}  # tune_detector's records
    share = recipes["words_recipe"]["word_data"]["keyword_share"]
    other = json.loads(json.dumps(recipes))
    other["words_recipe"]["word_data"]["keyword_share"] = share + 0.2
    newer = json.loads(json.dumps(recipes))
    newer["words_recipe"]["words"]["a_setting_added_later"] = 1  # a key only one record holds is no difference
    a1, a2 = saved("a1.json", "validation fold 1/5", recipes=recipes), saved("a2.json", "validation fold 2/5", recipes=newer)
    assert kfold.main([a1, a2]) == 0 and "note:" not in capsys.readouterr().out  # one recipe: checked, no note
    mixed = refused(a1, saved("b2.json", "validation fold 2/5", recipes=other))
    assert f"a1.json's word model was made with word_data.keyword_share={share!r} and " in mixed
    assert f"b2.json's with word_data.keyword_share={share + 0.2!r}: give the grids of one recipe" in mixed
    assert "not_a_grid.json" in refused(one, str(bad))
    with pytest.raises(ValueError, match=r"not_a_grid.json: not a gate grid"):  # kfold_gate prints it as above
        load_grid(str(bad))
    assert "different settings or thresholds" in refused(one, saved("other.json", "validation fold 3/5", shift=0.001))
    again = refused(one, saved("one_again.json", "validation fold 1/5", seed=22))  # tuned on and held out at once
    assert "one.json and " in again and "one_again.json are both fold 1/5" in again
    assert "plain.json holds streams of no fold (test)" in refused(one, plain)
    with pytest.raises(ValueError, match="both hold the validation fold 1/5 stream seed 21"):  # pool's own guard
        pool([load_grid(one), load_grid(one)])
    both = saved("both.json", "validation fold 1/5", "validation fold 2/5")
    assert "both.json holds streams of validation fold 1/5 and validation fold 2/5" in refused(two, both)
    assert "one.json is validation fold 1/5 and " in (of4 := refused(one, saved("of4.json", "validation fold 2/4")))
    assert "of4.json validation fold 2/4: give the folds of one k-fold split" in of4
    assert "test fold 2/5: give the folds of one k-fold split" in refused(one, saved("test2.json", "test fold 2/5"))
    with pytest.raises(SystemExit) as e:  # usage and a one-line error, exit 1
        kfold.main([one])
    assert e.value.code == 1 and "two or more folds" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _tool("tune_detector").main(["--models", models, "--data-dir", tiny_data_dir, "--save-traces", "t.npz", "--save-only",
                                     "--save-grid", plain])
    assert e.value.code == 1 and "--save-only saves the traces and stops" in capsys.readouterr().err


def test_pair_traces_joins_one_packages_keyword_scores_with_anothers_verifier(models, tiny_data_dir, tmp_path, capsys):
    """tools/pair_traces.py: keyword scores of one saved trace, word-model scores of another of the same
    stream; the pair is tuned against the package holding those two models and refused against others."""
    import numpy as np

    detector, pair_tool = _tool("tune_detector"), _tool("pair_traces")
    other = str(tmp_path / "other")  # another word model: the same weights, other bytes
    shutil.copytree(models, other)
    with open(os.path.join(other, "words", "float32.tflite"), "ab") as f:
        f.write(b"\0" * 8)
    saved = {}
    for name, pkg, seed in (("a", models, "3"), ("b", other, "3"), ("c", other, "4")):
        saved[name] = str(tmp_path / f"{name}.traces")  # named as given, no ".npz" added
        assert detector.main(["--models", pkg, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "1",
                              "--seed", seed, "--save-traces", saved[name], "--save-only"]) == 0
    assert not [f for f in os.listdir(tmp_path) if f.endswith((".npz", ".partial"))]
    from kws_tf.evaluate.traces import read_traces, save_traces

    (t, pr, spans, duration, vt, vp), b_stream = read_traces(saved["b"])
    marked = str(tmp_path / "b_marked.npz")  # b's word-model scores halved and its keyword scores zeroed, to tell them apart
    b_stream["words_recipe"] = {**b_stream["words_recipe"], "marked": True}  # and its word model's recipe marked
    save_traces(marked, (t, 0 * pr, spans, duration, vt, vp / 2), b_stream)
    pair = str(tmp_path / "pair.npz")
    capsys.readouterr()
    assert pair_tool.main([saved["a"], marked, "--out", pair]) == 0
    assert "wrote" in capsys.readouterr().out
    (pt, ppr, pspans, pduration, pvt, pvp), stream = read_traces(pair)
    (at, apr, aspans, aduration, _, _), a_stream = read_traces(saved["a"])
    assert np.array_equal(pt, at) and np.array_equal(ppr, apr) and apr.max() > 0  # a's keyword scores
    assert np.array_equal(pvt, vt) and np.allclose(pvp, vp / 2) and vp.max() > 0  # b's word-model scores
    assert np.array_equal(pspans, aspans) and np.array_equal(pspans, spans) and pduration == aduration == duration
    assert stream["kws_digest"] == a_stream["kws_digest"] and stream["words_digest"] == b_stream["words_digest"]
    assert a_stream["words_digest"] != b_stream["words_digest"] and "models_digest" not in stream
    assert stream["kws_recipe"] == a_stream["kws_recipe"] and stream["words_recipe"] == b_stream["words_recipe"]

    assert detector.main(["--models", other, "--traces", pair, "--fa-per-hour", "1000"]) == 0  # other: a's kws bytes, b's words
    with pytest.raises(SystemExit) as e:
        detector.main(["--models", models, "--traces", pair, "--fa-per-hour", "1000", "--write"])
    assert "pair.npz: traces of another word model" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SystemExit) as e:  # seed 4 is another stream
        pair_tool.main([saved["a"], saved["c"], "--out", str(tmp_path / "bad.npz")])
    assert "not the same stream" in str(e.value) and "\n" not in str(e.value)
    assert not os.path.exists(tmp_path / "bad.npz")
    for out in (saved["a"], str(tmp_path / "pair")):  # an input, a name without .npz: usage errors, exit 1
        with pytest.raises(SystemExit) as e:
            pair_tool.main([saved["a"], marked, "--out", out])
        assert e.value.code == 1
    assert np.array_equal(read_traces(saved["a"])[0][1], apr)  # the input is untouched


def test_a_package_with_its_own_verifier_verifies_with_it(models, tiny_data_dir, tmp_path, capsys):
    """verifier/ (a copy of a word model's export folder) confirms the keyword in place of words/, which
    only transcribes; saved traces follow the verifier, so a package whose word model changed but whose
    verifier is the old word model tunes on the old package's traces, and the same change without a
    verifier is refused."""
    import numpy as np

    from kws_tf.evaluate.traces import read_traces
    from kws_tf.runtime import Transcriber
    from kws_tf.sidecar import ModelDirError

    detector = _tool("tune_detector")

    def traces(pkg: str, name: str, precision: str = "float32") -> tuple:
        path = str(tmp_path / f"{name}.npz")
        assert detector.main(["--models", pkg, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "1",
                              "--precision", precision, "--save-traces", path, "--save-only"]) == 0
        return path, read_traces(path)[0]

    plain_path, plain = traces(models, "plain")
    changed = str(tmp_path / "changed")  # another word model: the same weights, other bytes
    shutil.copytree(models, changed)
    with open(os.path.join(changed, "words", "float32.tflite"), "ab") as f:
        f.write(b"\0" * 8)
    verified = str(tmp_path / "verified")
    shutil.copytree(changed, verified)
    shutil.copytree(os.path.join(models, "words"), os.path.join(verified, "verifier"))
    assert Transcriber.from_dir(verified).has_verifier and not Transcriber.from_dir(models).has_verifier
    assert detector.main(["--models", verified, "--traces", plain_path, "--fa-per-hour", "1000"]) == 0
    with pytest.raises(SystemExit) as e:
        detector.main(["--models", changed, "--traces", plain_path, "--fa-per-hour", "1000"])
    assert "traces of another word model" in str(e.value)

    # A verifier that scores differently (the int8 word model listed as its float32 file): the float32
    # package's verification scores are the int8 model's, its keyword scores stay the float32 ones.
    sidecar = _sidecar(verified, "verifier")
    sidecar["model_files"]["float32"] = sidecar["model_files"]["int8"]
    with open(os.path.join(verified, "verifier", "model.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
    _, int8 = traces(models, "int8", "int8")
    _, mixed = traces(verified, "mixed")
    assert np.array_equal(mixed[1], plain[1]) and np.allclose(mixed[5], int8[5])
    assert not np.allclose(mixed[5], plain[5])

    sidecar["features"]["n_mels"] += 1
    with open(os.path.join(verified, "verifier", "model.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
    with pytest.raises(ModelDirError) as e:
        Transcriber.from_dir(verified)
    assert "verifier" in str(e.value) and "features" in str(e.value) and "\n" not in str(e.value)

    # A verifier/ folder without its sidecar (say, only the .tflite files copied) is an error, not ignored.
    os.remove(os.path.join(verified, "verifier", "model.json"))
    with pytest.raises(ModelDirError) as e:
        Transcriber.from_dir(verified)
    msg = str(e.value)
    assert os.path.join(verified, "verifier") in msg and "model.json" in msg and "cp -r" in msg and "\n" not in msg


def test_a_package_with_two_verifiers_confirms_with_their_mean(models, tiny_data_dir, tmp_path):
    """verifier/ and verifier_<name>/ beside it: the gate's keyword probability is the mean of the two
    verifiers' (traced exactly as averaging each one's own traces), saved traces name both (a trace
    of one of them alone is refused), the evaluation counts both files' bytes, and verifiers whose
    labels differ, or a verifier_<name>/ without its sidecar, fail with one line."""
    import numpy as np

    from kws_tf.evaluate.suite import model_sizes
    from kws_tf.evaluate.traces import model_digests, read_traces
    from kws_tf.runtime import Transcriber
    from kws_tf.sidecar import ModelDirError, load_verifiers

    detector = _tool("tune_detector")

    def package(name: str, *verifiers: tuple[str, str]) -> str:
        """A copy of ``models`` with the word model as each verifier folder, at the listed precision's file."""
        out = str(tmp_path / name)
        shutil.copytree(models, out)
        for folder, precision in verifiers:
            shutil.copytree(os.path.join(models, "words"), os.path.join(out, folder))
            sidecar = _sidecar(out, folder)
            sidecar["model_files"]["float32"] = sidecar["model_files"][precision]
            with open(os.path.join(out, folder, "model.json"), "w", encoding="utf-8") as f:
                json.dump(sidecar, f)
        return out

    def verify_probs(pkg: str) -> tuple:
        path = str(tmp_path / f"{os.path.basename(pkg)}.npz")
        assert detector.main(["--models", pkg, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "1",
                              "--save-traces", path, "--save-only"]) == 0
        return path, read_traces(path)[0]

    a, b = package("a", ("verifier", "float32")), package("b", ("verifier", "int8"))
    both = package("both", ("verifier", "float32"), ("verifier_int8", "int8"))
    assert [folder for folder, _ in load_verifiers(both)] == ["verifier", "verifier_int8"]
    (_, ta), (_, tb), (both_path, tboth) = verify_probs(a), verify_probs(b), verify_probs(both)
    assert not np.allclose(ta[5], tb[5])  # two verifiers that disagree
    np.testing.assert_allclose(tboth[5], (ta[5].astype(np.float64) + tb[5]) / 2, atol=1e-6)
    assert np.array_equal(tboth[1], ta[1])  # the keyword model's scores are its own
    assert len({model_digests(p, "float32")["words_digest"] for p in (a, b, both)}) == 3
    with pytest.raises(SystemExit) as e:  # a setting tuned on one verifier's traces is not the pair's
        detector.main(["--models", both, "--traces", str(tmp_path / "a.npz"), "--fa-per-hour", "1000"])
    assert "traces of another word model" in str(e.value)
    assert detector.main(["--models", both, "--traces", both_path, "--fa-per-hour", "1000"]) == 0
    words = os.path.join(models, "words")
    assert model_sizes(both, "float32")["verifier"] == os.path.getsize(os.path.join(words, "float32.tflite")) + \
        os.path.getsize(os.path.join(words, "int8.tflite"))
    assert "verifier" not in model_sizes(models, "float32")

    sidecar = _sidecar(both, "verifier_int8")
    sidecar["labels"] = sidecar["labels"][::-1]
    with open(os.path.join(both, "verifier_int8", "model.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
    with pytest.raises(ModelDirError) as e:
        Transcriber.from_dir(both)
    msg = str(e.value)
    assert os.path.join(both, "verifier_int8", "model.json") in msg and "labels differ from verifier/'s" in msg and "\n" not in msg
    os.remove(os.path.join(both, "verifier_int8", "model.json"))
    with pytest.raises(ModelDirError) as e:
        Transcriber.from_dir(both)
    msg = str(e.value)
    assert os.path.join(both, "verifier_int8") in msg and "model.json" in msg and "cp -r" in msg and "\n" not in msg


def test_traces_of_a_fold_are_another_stream(models, tiny_data_dir, tmp_path, capsys):
    """--fold K/N: the stream is built from fold K's speakers, its saved record says so, and it does not
    pair with the same seed's stream of the plain validation split."""
    from kws_tf.dataset import fold_of, index_speech_commands
    from kws_tf.evaluate.traces import read_traces

    plain = index_speech_commands(tiny_data_dir)
    k = fold_of(plain.select("train")[0].speaker, 2)  # a fold with speakers in it
    folded = index_speech_commands(tiny_data_dir, fold=(k, 2))
    assert {c.speaker for c in folded.select("validation")} != {c.speaker for c in plain.select("validation")}
    detector, pair_tool = _tool("tune_detector"), _tool("pair_traces")
    saved = {}
    for name, extra in (("fold", ["--fold", f"{k}/2"]), ("plain", [])):
        saved[name] = str(tmp_path / f"{name}.npz")
        assert detector.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "validation", "--minutes", "1",
                              "--seed", "3", "--save-traces", saved[name], "--save-only", *extra]) == 0
    assert read_traces(saved["fold"])[1]["split"] == f"validation fold {k}/2"
    assert read_traces(saved["plain"])[1]["split"] == "validation"
    with pytest.raises(SystemExit) as e:
        pair_tool.main([saved["fold"], saved["plain"], "--out", str(tmp_path / "pair.npz")])
    assert "not the same stream" in str(e.value)
    assert detector.main(["--models", models, "--traces", saved["fold"], "--fa-per-hour", "1000"]) == 0
    assert f"fold.npz (validation fold {k}/2 seed 3)" in capsys.readouterr().out


def test_tune_detector_bad_traces_file_is_one_line(models, tmp_path):
    bad = tmp_path / "not_traces.npz"
    bad.write_bytes(b"not a numpy file")
    with pytest.raises(SystemExit) as e:
        _tool("tune_detector").main(["--models", models, "--traces", str(bad)])
    assert str(e.value).startswith("error:") and "not_traces.npz" in str(e.value) and "\n" not in str(e.value)
    cut = _cut_traces(tmp_path)  # a cut-off download or copy: a zip file without its end
    with pytest.raises(SystemExit) as e:
        _tool("tune_detector").main(["--models", models, "--traces", cut])
    assert str(e.value).startswith(f"error: {cut}: not a traces file from --save-traces") and "\n" not in str(e.value)


def _cut_traces(tmp_path) -> str:
    """The first 100 bytes of a saved traces file."""
    import numpy as np

    from kws_tf.evaluate.traces import save_traces

    whole, cut = str(tmp_path / "whole.npz"), str(tmp_path / "cut.npz")
    save_traces(whole, (np.arange(50) * 0.04, np.zeros(50, np.float32), np.zeros((0, 2)), 2.0, np.zeros(0), np.zeros(0, np.float32)),
                {"split": "test", "seed": 1, "minutes": 0.1, "precision": "float32"})
    with open(whole, "rb") as f, open(cut, "wb") as out:
        out.write(f.read()[:100])
    return cut


def _usage_error(main, argv: list[str], capsys) -> str:
    """The one-line message of an argparse usage error (exit 1, as in every command) from ``main(argv)``."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1 and err[0].startswith("usage:") and ": error: " in err[-1], err  # usage, then the one line
    return err[-1]


def test_tune_detector_bad_options_and_output_paths_fail_before_any_work(tmp_path, capsys):
    """Stream length, false-alarm budget, split and the files written at the end are checked right after
    parsing (the models and data named here do not exist: nothing else is looked at first); a budget of 0
    (no false alarm at all) is a budget and passes."""
    main = _tool("tune_detector").main
    base = ["--models", str(tmp_path / "no_models"), "--data-dir", str(tmp_path / "no_data")]
    afile = tmp_path / "afile"
    afile.write_text("the user's file")
    for value in ("0", "-1", "nan"):
        assert f"--minutes {value}: give the stream's length in minutes, a number above 0" in \
            _usage_error(main, [*base, "--minutes", value], capsys)
    for value in ("-1", "nan", "inf"):
        assert f"--fa-per-hour {value}: give the false-alarm budget per hour, a number of 0 or more" in \
            _usage_error(main, [*base, "--fa-per-hour", value], capsys)
    assert "argument --split: invalid choice: 'bogus'" in _usage_error(main, [*base, "--split", "bogus"], capsys)
    assert f"--save-traces {tmp_path}: is a folder; give a file name" in _usage_error(main, [*base, "--save-traces", str(tmp_path)], capsys)
    assert f"--save-grid {afile}/x.json: {afile} is not a folder; give a file in an existing folder" in \
        _usage_error(main, [*base, "--save-grid", f"{afile}/x.json"], capsys)
    assert f"{tmp_path / 'missing'} is missing; give a file in an existing folder" in \
        _usage_error(main, [*base, "--save-grid", str(tmp_path / "missing" / "x.json")], capsys)
    traces = str(tmp_path / "t.npz")
    assert f"--save-grid {traces}: is one of the input traces; write it to a new file" in \
        _usage_error(main, ["--models", "m", "--traces", traces, "--save-grid", traces], capsys)
    assert afile.read_text() == "the user's file"
    with pytest.raises(SystemExit) as e:  # past the checks: the missing models are the next thing found
        main([*base, "--fa-per-hour", "0"])
    assert str(e.value).startswith("error: ") and "no_models" in str(e.value)


def test_tune_detector_bad_data_dir_or_too_short_stream_is_one_line(models, tiny_data_dir, tmp_path, capsys):
    main = _tool("tune_detector").main
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.wav").write_bytes(b"")
    saved = str(tmp_path / "t.npz")
    for data, said in ((str(tmp_path / "missing"), "no such folder; pass --data-dir"), (str(flat), "no WORD/*.wav clips found")):
        with pytest.raises(SystemExit) as e:
            main(["--models", models, "--data-dir", data, "--save-traces", saved])
        assert str(e.value).startswith(f"error: {data}: ") and said in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SystemExit) as e:  # above 0, yet shorter than one window of the keyword model
        main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "0.001", "--save-traces", saved])
    assert str(e.value) == ("error: --minutes 0.001: a stream this short gives the keyword model no window to score; "
                            "give more minutes")
    assert not os.path.exists(saved)


def test_pair_traces_bad_input_or_out_is_one_line(tmp_path, capsys):
    pair = _tool("pair_traces").main
    cut = _cut_traces(tmp_path)
    with pytest.raises(SystemExit) as e:
        pair([cut, str(tmp_path / "whole.npz"), "--out", str(tmp_path / "p.npz")])
    assert str(e.value).startswith(f"error: {cut}: not a traces file from --save-traces") and "\n" not in str(e.value)
    from kws_tf.evaluate.traces import TraceError, read_traces

    with pytest.raises(TraceError) as e:  # the library raises; the tools print "error: " and the message
        read_traces(cut)
    assert str(e.value).startswith(f"{cut}: not a traces file from --save-traces")
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert f"--out {afile}/p.npz: {afile} is not a folder; give a file in an existing folder" in \
        _usage_error(pair, [cut, cut + "2", "--out", f"{afile}/p.npz"], capsys)  # before the inputs are read
    (tmp_path / "d.npz").mkdir()
    assert f"--out {tmp_path}/d.npz: is a folder; give a file name" in \
        _usage_error(pair, [cut, cut + "2", "--out", f"{tmp_path}/d.npz"], capsys)


def test_tune_decoder_writes_a_decoder_setting(models, tiny_data_dir, capsys):
    tool = _tool("tune_decoder")
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--sentences", "2", "--write"]) == 0
    out = capsys.readouterr().out
    grid = len(tool.THRESHOLDS) * len(tool.SMOOTHING_WINDOWS) * len(tool.PAUSES_S) * len(tool.MAX_WORDS_S) * len(tool.MIN_WINDOWS)
    assert out.count("errors per reference word") == 2 and out.count("  threshold ") == grid
    assert re.search(r"the gate opened on \d of 2 sentences with the keyword", out)
    tuned = _sidecar(models, "words")["thresholds"]
    assert tuned["decoder_tuning"]["sentences"] == 3
    dec = tuned["decoder"]
    assert dec["threshold"] in tool.THRESHOLDS and dec["smoothing_windows"] in tool.SMOOTHING_WINDOWS and dec["pause_s"] in tool.PAUSES_S
    assert dec["max_word_s"] in tool.MAX_WORDS_S and dec["min_windows"] in tool.MIN_WINDOWS


def test_tune_decoder_bad_models_data_or_options_are_one_line(models, tiny_data_dir, tmp_path, capsys):
    """A missing or half package, an unloadable model file, a missing or flat data folder: one line, exit 1,
    the models checked before any clip is read; a bad --precision or --sentences is a usage error."""
    main = _tool("tune_decoder").main
    half = str(tmp_path / "half")  # kws/ without words/
    shutil.copytree(os.path.join(models, "kws"), os.path.join(half, "kws"))
    broken = str(tmp_path / "broken")
    shutil.copytree(models, broken)
    with open(os.path.join(broken, "words", "float32.tflite"), "wb") as f:
        f.write(b"not a model")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.wav").write_bytes(b"")
    missing = str(tmp_path / "missing")
    for pkg, data, said in ((missing, tiny_data_dir, f"{missing}/kws/model.json: not found; point --models at"),
                            (half, tiny_data_dir, f"{half}/words/model.json: not found"),
                            (broken, missing, f"{broken}/words/float32.tflite: cannot load TFLite model"),
                            (models, missing, f"{missing}: no such folder; pass --data-dir"),
                            (models, str(flat), f"{flat}: no WORD/*.wav clips found")):
        with pytest.raises(SystemExit) as e:
            main(["--models", pkg, "--data-dir", data, "--split", "test", "--sentences", "1"])
        assert str(e.value).startswith(f"error: {said}") and "\n" not in str(e.value)
    base = ["--models", models, "--data-dir", tiny_data_dir]
    assert "argument --precision: invalid choice: 'int4'" in _usage_error(main, [*base, "--precision", "int4"], capsys)
    assert "argument --split: invalid choice: 'bogus'" in _usage_error(main, [*base, "--split", "bogus"], capsys)
    for value in ("0", "-3"):
        assert f"--sentences {value}: give the number of sentences with the keyword, 1 or more" in \
            _usage_error(main, [*base, "--sentences", value], capsys)


def test_kfold_gate_bad_budget_or_current_fails_before_reading_grids(tmp_path, capsys):
    """The grids named here do not exist: the options are checked first. A negative or non-finite budget is
    a usage error; --current without a package names --current, not --models."""
    main = _tool("kfold_gate").main
    grids = [str(tmp_path / "fold1.json"), str(tmp_path / "fold2.json")]
    for value in ("-1", "nan"):
        assert f"--fa-per-hour {value}: give the false-alarm budget per hour, a number of 0 or more" in \
            _usage_error(main, [*grids, "--fa-per-hour", value], capsys)
    missing = str(tmp_path / "missing")
    with pytest.raises(SystemExit) as e:
        main([*grids, "--current", missing])
    assert str(e.value) == (f"error: --current {missing}: no {missing}/kws/model.json; point --current at a folder that "
                            "'python -m kws_tf.train' exported (e.g. saved_models/)")


def test_a_bad_gate_setting_in_the_sidecar_is_one_line_in_every_tool(models, tiny_data_dir, tmp_path, capsys):
    """A hand-edited gate setting of the wrong type is named with its sidecar before any work, as the runtime
    names it, not a traceback from inside the tool."""
    sidecar = _sidecar(models, "kws")
    sidecar["thresholds"]["detector"]["smoothing_frames"] = "five"
    with open(os.path.join(models, "kws", "model.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
    want = f"{os.path.join(models, 'kws', 'model.json')}: smoothing_frames is 'five', not a whole number"
    grids = [str(tmp_path / "fold1.json"), str(tmp_path / "fold2.json")]
    for tool, argv in (("tune_detector", ["--models", models, "--data-dir", tiny_data_dir, "--minutes", "1"]),
                       ("kfold_gate", [*grids, "--current", models])):
        with pytest.raises(SystemExit) as e:
            _tool(tool).main(argv)
        assert str(e.value).startswith(f"error: {want}") and "\n" not in str(e.value), tool
    traces = str(tmp_path / "none.npz")
    assert _tool("false_alarm_words").main(["--models", models, "--data-dir", tiny_data_dir, "--traces", traces]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {want}")


def _small_decoder_tool():
    """tools/tune_decoder.py with a one-point grid, for tests of what it reads and records."""
    tool = _tool("tune_decoder")
    tool.THRESHOLDS, tool.SMOOTHING_WINDOWS, tool.PAUSES_S, tool.MAX_WORDS_S, tool.MIN_WINDOWS = (0.4,), (3,), (1.5,), (0.0,), (1,)
    return tool


def test_tune_decoder_pools_seeds_and_scores_the_current_setting(models, tiny_data_dir, capsys):
    """--seed A B pools both seeds' sentences (and records the seeds); --current scores only the sidecar's setting
    on the same sentences, leaves the sidecar as it was and cannot be combined with --write."""
    tool = _small_decoder_tool()
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--sentences", "2",
                      "--seed", "1", "2", "--write"]) == 0
    out = capsys.readouterr().out
    assert "test split: 6 sentences (seeds 1 2;" in out and out.count("  threshold ") == 1
    tuning = _sidecar(models, "words")["thresholds"]["decoder_tuning"]
    assert tuning["sentences"] == 6 and tuning["seed"] == [1, 2]

    before = _sidecar(models, "words")
    tool = _tool("tune_decoder")  # the whole grid, of which --current scores one setting
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--sentences", "2",
                      "--seed", "1", "2", "--current"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("  threshold ")]
    assert len(rows) == 1 and rows[0].startswith("  threshold 0.4  smoothing 3  pause 1.5 s  max word 0.0 s  min windows 1: ")
    assert "best:" not in out and _sidecar(models, "words") == before
    with pytest.raises(SystemExit) as e:
        tool.main(["--models", models, "--data-dir", tiny_data_dir, "--current", "--write"])
    assert e.value.code == 1


def test_tune_decoder_on_a_fold_records_the_fold(models, tiny_data_dir, capsys):
    from kws_tf.dataset import fold_of, index_speech_commands

    k = fold_of(index_speech_commands(tiny_data_dir).select("train")[0].speaker, 2)  # a fold with speakers in it
    assert _small_decoder_tool().main(["--models", models, "--data-dir", tiny_data_dir, "--split", "validation", "--fold", f"{k}/2",
                                       "--sentences", "2", "--write"]) == 0
    assert f"validation fold {k}/2 split: 3 sentences" in capsys.readouterr().out
    assert _sidecar(models, "words")["thresholds"]["decoder_tuning"]["split"] == f"validation fold {k}/2"


def test_lists_from_another_folder_give_the_training_splits(models, tiny_data_dir, lists_elsewhere, capsys):
    """--lists-dir: a data folder whose list files live elsewhere gives the same splits as with them in
    place (without the option it falls back to the hash split), and the tuning record names the lists."""
    from kws_tf.evaluate.streams import split_bank

    data, lists = lists_elsewhere
    want = split_bank(tiny_data_dir, "test")
    got = split_bank(data, "test", lists_dir=lists)
    assert len(want.words) > 0 and sorted(map(str, got.words)) == sorted(map(str, want.words))
    assert len(split_bank(data, "test").words) != len(want.words)  # the hash split: other clips

    tool = _small_decoder_tool()
    assert tool.main(["--models", models, "--data-dir", data, "--lists-dir", lists, "--split", "test",
                      "--sentences", "4", "--write"]) == 0
    assert f"test (lists from {os.path.abspath(lists)}) split" in capsys.readouterr().out
    assert _sidecar(models, "words")["thresholds"]["decoder_tuning"]["split"] == f"test (lists from {os.path.abspath(lists)})"


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
    assert _tool("keyword_confusions").main(["--models", models, "--data-dir", str(tmp_path / "missing"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "missing" in err[0]


def test_explain_misses_names_the_part_of_the_gate_that_missed():
    import numpy as np

    from kws_tf.config import DetectorConfig

    tool = _tool("tune_detector")
    t = np.round(np.arange(0.0, 60.0, 0.04), 2)
    spans = np.array([[10.0, 10.5], [11.0, 11.4], [30.0, 30.5], [50.0, 50.5]])
    pr = np.zeros(len(t), np.float32)
    pr[(t >= 10.5) & (t < 12.0)] = 0.9  # keywords 1 and 2: one long run of high keyword scores
    pr[(t >= 30.5) & (t < 31.0)] = 0.9  # keyword 3: high keyword score, the word model says no
    vt = np.round(np.arange(0.0, 60.0, 0.1), 2)
    vp = np.zeros(len(vt), np.float32)
    vp[((vt >= 10.4) & (vt <= 12.2)) | ((vt >= 50.3) & (vt <= 50.8))] = 0.9  # keyword 4: only the word model hears it
    cfg = DetectorConfig(threshold=0.5, smoothing_frames=1, patience_frames=1, refractory_s=2.0,
                         verify_threshold=0.5, verify_window_s=0.3)
    why = tool.explain_misses(t, pr, spans, cfg, (vt, vp))
    # Keyword 1 fires; keyword 2 falls in its refractory period (same run of frames above the threshold).
    assert why == {"missed": 3, "keyword model": 1, "verification": 1, "gate busy": 1, "verifiable": 2}
    # Without verification, keyword 3 is found and only the keyword model's miss is left (plus the busy gate).
    plain = tool.explain_misses(t, pr, spans, DetectorConfig(threshold=0.5, smoothing_frames=1, patience_frames=1,
                                                                   refractory_s=2.0, verify_threshold=0.0), None)
    assert plain == {"missed": 2, "keyword model": 1, "verification": 0, "gate busy": 1, "verifiable": None}


def test_half_check_replays_the_first_halfs_setting_on_the_second():
    import numpy as np

    from kws_tf.config import DetectorConfig

    tool = _tool("tune_detector")
    t = np.round(np.arange(0.0, 200.0, 0.04), 2)
    spans = np.array([[20.0, 20.5], [60.0, 60.5], [120.0, 120.5], [160.0, 160.5]])
    pr = np.zeros(len(t), np.float32)
    vt = np.round(np.arange(0.0, 200.0, 0.1), 2)
    vp = np.zeros(len(vt), np.float32)
    for end in [*spans[:, 1], 140.0]:  # the peak at 140 s is no keyword: a false alarm only the second half has
        pr[(t >= end) & (t < end + 0.5)] = 0.9
        vp[(vt >= end - 0.2) & (vt <= end + 0.5)] = 0.9
    check = tool.half_check(t, pr, spans, 200.0, (vt, vp), DetectorConfig(refractory_s=2.0), 1000.0, [(0.5, 0.5)])
    assert check["keywords"] == (2, 2)
    recall, cfg = check["tuned"]
    assert recall == 1.0 and cfg.verify_threshold == 0.5
    assert check["held_out"]["recall"] == 1.0 and check["held_out"]["false_alarms"] == 1
    assert abs(check["held_out"]["fa_per_hour"] - 36.0) < 1e-9  # one in 100 s


def test_grid_builds_the_verifier_lookup_once_per_window_with_the_same_points(monkeypatch):
    """The grid shares one word-model lookup per verification window among its settings: every setting's
    DET points are those that det_points gives when it builds its own lookup."""
    import numpy as np

    from kws_tf.config import DetectorConfig
    from kws_tf.evaluate import metrics

    tool = _tool("tune_detector")
    rng = np.random.default_rng(0)
    t = np.round(np.arange(0.0, 300.0, 0.04), 2)
    spans = np.array([[s, s + 0.5] for s in range(10, 290, 20)], float)
    pr = np.clip(rng.normal(0.2, 0.25, len(t)), 0, 1).astype(np.float32)
    vt = np.round(np.arange(0.0, 300.0, 0.1), 2)
    vp = rng.uniform(0, 1, len(vt)).astype(np.float32)
    for _, end in spans[::2]:  # half the keywords heard by both models
        pr[(t >= end) & (t < end + 0.4)] = 0.9
        vp[(vt >= end - 0.2) & (vt <= end + 0.3)] = 0.95
    choices = [(0.3, 0.0), (0.3, 0.5), (0.5, 0.3), (0.5, 0.8)]
    built = []
    real = metrics.verifier_lookup

    def counting(times, cfg, verify):  # lookups that verify (with verification off there is none to build)
        built.extend([cfg.verify_window_s] if cfg.verify_threshold > 0 else [])
        return real(times, cfg, verify)

    with monkeypatch.context() as patch:
        patch.setattr(metrics, "verifier_lookup", counting)
        rows = tool.grid(t, pr, spans, 300.0, (vt, vp), DetectorConfig(refractory_s=2.0), choices)
    assert sorted(built) == [0.3, 0.5]  # once per window, not once per setting (36 settings here)
    assert len(rows) == 9 * len(choices)
    for cfg, points in rows:
        assert points == metrics.det_points(t, pr, spans, 300.0, cfg, tool.THRESHOLDS, verify=(vt, vp))
    assert any(p["recall"] not in (0.0, 1.0) for _, points in rows for p in points)  # the trace is not trivial


def test_false_alarm_words_names_the_word_before_each_false_alarm(models, tiny_data_dir, tmp_path, capsys):
    """The tool replays the package's gate on saved traces: as many false alarms as the replay counts, each
    named by a word of the stream (never the keyword's own span: those are hits), and suggests the words
    with enough of them; a stream rebuilt from other data, or a file that is not traces, is refused in one line."""
    import numpy as np

    from conftest import write_tree
    from kws_tf.config import DetectorConfig, from_dict
    from kws_tf.evaluate import metrics
    from kws_tf.evaluate.traces import read_traces

    traces = str(tmp_path / "traces.npz")
    assert _tool("tune_detector").main(["--models", models, "--data-dir", tiny_data_dir, "--split", "test", "--minutes", "3",
                                        "--save-traces", traces, "--save-only"]) == 0
    (t, pr, spans, duration, _, _), _ = read_traces(traces)
    sidecar = _sidecar(models, "kws")  # a gate this loose fires often on the tiny model's scores: hits and false alarms
    sidecar.setdefault("thresholds", {})["detector"] = {"threshold": float(np.quantile(pr, 0.8)), "smoothing_frames": 1,
                                                        "patience_frames": 1, "refractory_s": 0.5, "verify_threshold": 0.0}
    with open(os.path.join(models, "kws", "model.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
    cfg = from_dict(DetectorConfig, sidecar["thresholds"]["detector"])
    found = metrics.detections(t, pr, cfg, cfg.threshold)
    expected = metrics.det_point(found, spans, duration, cfg.threshold)["false_alarms"]
    hits = int(metrics.match_detections(found, spans)[0].sum())
    assert expected > 0 and hits > 0
    capsys.readouterr()
    tool = _tool("false_alarm_words")
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--traces", traces, "--min-alarms", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{hits} of {len(spans)} keywords caught ({hits / len(spans):.1%}), {expected} false alarms in 0.1 h of stream" in out
    rows = [line.split() for line in out.splitlines() if re.fullmatch(r"  \S+ +\d+", line)]
    assert sum(int(n) for _, n in rows) == expected and {w for w, _ in rows} <= {"stop", "yes", "no", "up", "left", "(none)"}
    suggested = next(line for line in out.splitlines() if line.startswith("words with >= 1 false alarms:"))
    assert all(w in suggested for w, _ in rows if w != "(none)")
    # With verification on, the verifier's confirm shares start with the keyword's own (the trade's other side).
    sidecar["thresholds"]["detector"]["verify_threshold"] = 0.5
    with open(os.path.join(models, "kws", "model.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f)
    (_, _, _, _, vt, vp), stream = read_traces(traces)
    words = tool.stream_words(tool.split_bank(tiny_data_dir, "test"), "stop", 3.0, int(stream["seed"]))
    n, k = tool.verifier_hits(words, (vt, vp), from_dict(DetectorConfig, sidecar["thresholds"]["detector"]))["stop"]
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--traces", traces]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = lines[next(i for i, line in enumerate(lines) if line.startswith("words the verifier confirms as 'stop'")) + 1]
    assert first.split()[:4] == ["stop", str(k), "of", str(n)] and first.endswith("(the keyword itself)") and n == len(spans)
    other = write_tree(str(tmp_path / "other"), speakers=3, per_speaker=1)
    assert tool.main(["--models", models, "--data-dir", other, "--traces", traces]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not hold the traces' keywords" in err[0] and traces in err[0]
    cut = _cut_traces(tmp_path)  # not a traces file: one line and exit 1, like the tool's other errors
    assert tool.main(["--models", models, "--data-dir", tiny_data_dir, "--traces", cut]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {cut}: not a traces file from --save-traces")


def test_false_alarm_words_word_before_takes_the_last_word_started():
    tool = _tool("false_alarm_words")
    words = [("yes", 1.0, 1.4), ("stop", 3.0, 3.5), ("up", 6.0, 6.3)]
    assert tool.word_before(words, [0.5, 1.0, 2.9, 3.9, 6.35, 9.0]) == ["", "yes", "yes", "stop", "up", "up"]


def test_a_package_at_another_sample_rate_is_one_line_in_the_tools_that_build_audio(models, tiny_data_dir, capsys):
    """The tuning tools build their streams, sentences and clips at 16 kHz (as `kws_tf.evaluate` does): a package
    trained at another rate is refused in one line before the work, not tuned on audio at the wrong rate."""
    for task in ("kws", "words"):
        sidecar = _sidecar(models, task)
        sidecar["features"].update(sample_rate_hz=8000, fmax_hz=3800.0)
        with open(os.path.join(models, task, "model.json"), "w", encoding="utf-8") as f:
            json.dump(sidecar, f)
    want = f"error: {models}: its models take 8000 Hz audio, and the evaluation builds its clips and streams at 16000 Hz"
    for tool in ("tune_detector", "tune_decoder"):
        argv = ["--models", models, "--data-dir", tiny_data_dir, *(["--minutes", "1"] if tool == "tune_detector" else [])]
        with pytest.raises(SystemExit) as e:
            _tool(tool).main(argv)
        assert str(e.value).startswith(want) and "\n" not in str(e.value), tool
    assert _tool("keyword_confusions").main(["--models", models, "--data-dir", tiny_data_dir, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(want)
