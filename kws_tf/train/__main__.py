"""``python -m kws_tf.train``: train the keyword spotter and/or the word classifier on a Speech
Commands folder and export them (SavedModel, TFLite float32 and int8, JSON sidecars)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN kernels: a word-model training step runs 1.8x faster with them on this 2-core x86 CPU
# (python -m kws_tf.train.benchmark_pipeline: 352 vs 195 examples/s; the GRU keyword step is the same). They print
# one start-up notice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from kws_tf.cli import FOLD_HELP, LISTS_HELP, UsageParser, fold_arg  # noqa: E402
from kws_tf.dataset import V1_WORDS, DataError, check_vocabulary, fold_text, index_speech_commands, missing_words_error  # noqa: E402
from kws_tf.config import FeatureConfig, differing_features, from_dict, to_dict  # noqa: E402
from kws_tf.sidecar import ModelDirError, load_sidecar, verifier_folders  # noqa: E402
from kws_tf.train.presets import SECTIONS, PresetError, available_presets, load_preset  # noqa: E402
from kws_tf.train.run_lock import RunDirBusy, run_dir_lock  # noqa: E402

DEFAULT_DATA_DIRS = ("data/speech_commands_v0.01", "data/speech_commands_v0.02", "../shared/speech_commands_subset")
DATA_HELP = (
    "get the data set with 'python tools/download_speech_commands.py' (writes data/speech_commands_v0.01), "
    "or pass --data-dir DIR (or set KWS_TF_DATA_DIR)"
)


def default_data_dir() -> str | None:
    """``$KWS_TF_DATA_DIR``, else the first of DEFAULT_DATA_DIRS that exists (relative to cwd)."""
    env = os.environ.get("KWS_TF_DATA_DIR")
    if env:
        return env
    return next((d for d in DEFAULT_DATA_DIRS if os.path.isdir(d)), None)


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="python -m kws_tf.train", description=__doc__)  # usage errors exit 1, as in the other commands
    p.add_argument("--data-dir", help=f"Speech Commands folder (default: $KWS_TF_DATA_DIR, else the first of {', '.join(DEFAULT_DATA_DIRS)})")
    p.add_argument("--task", choices=("kws", "words", "both"), default="both")
    p.add_argument("--keyword", default="stop", help="keyword for the keyword spotter (default: stop)")
    p.add_argument("--words", nargs="+", default=V1_WORDS, metavar="WORD", help="vocabulary of the word model (default: the 30 words of v0.01)")
    p.add_argument("--preset", default="default", help=f"training/NAME.json or a path (have: {', '.join(available_presets())})")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="override a preset value, e.g. kws.gru_units=32")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--out", help="export folder (default: saved_models/; with --fold K/N: training/runs/PRESET-foldKofN-models/)")
    p.add_argument("--run-dir", help="checkpoints, logs and plots in DIR/kws and DIR/words (default: training/runs/PRESET[-foldKofN]-TASK); rerunning resumes")
    p.add_argument("--fresh", action="store_true", help="discard an interrupted run in --run-dir instead of resuming it")
    p.add_argument("--lists-dir", help=LISTS_HELP)
    p.add_argument("--fold", type=fold_arg, metavar="K/N", help=FOLD_HELP)
    p.add_argument("--synthetic-dir", help="extra clips in the same layout (e.g. from python -m kws_tf.train.synth), used for training only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-test", action="store_true",
                   help="do not score the test split (keep it unseen while choosing between runs; "
                        "python -m kws_tf.evaluate --split test scores it later)")
    p.add_argument("--quiet", action="store_true",
                   help="one line per epoch instead of a per-step progress bar (the default when output goes to a file or pipe)")
    return p


NEXT_STEP = {  # a fresh export carries its preset's run-time settings, not tuned for it; say how to tune them
    "kws": "the gate has the preset's settings, not tuned for this model; tune them on validation speech (needs OUT/words too): "
           "python tools/tune_detector.py --models {out} --data-dir {data} --split validation --fa-per-hour 0.5 --write",
    "words": "the sentence decoder has the preset's settings, not tuned for this model; tune them on validation speech "
             "(after the gate): python tools/tune_decoder.py --models {out} --data-dir {data} --write",
}


def _kept_sidecar(out: str, folder: str) -> dict | None:
    """The sidecar of a model this run keeps in ``out`` (``kws``, ``words`` or a verifier folder); None when it
    is absent or unusable (loading the package says what is wrong)."""
    try:
        return load_sidecar(out, folder, task_in_file="words" if folder not in ("kws", "words") else None)
    except ModelDirError:
        return None


def front_end_conflict(out: str, new: list[str], ours: FeatureConfig) -> str | None:
    """Why ``out`` would not load once this run (tasks ``new``, features ``ours``: one preset, one front end)
    exported into it: the models it keeps there that run other features (e.g. the shipped models, whose
    sidecars say remove_dc true, beside a preset-trained model), as a one-line message with the ways out;
    None when they agree. Checked before training, so that no model is replaced by one that cannot load."""
    differing = []
    for folder in ("kws", "words", *verifier_folders(out)):
        sidecar = None if folder in new else _kept_sidecar(out, folder)
        try:
            theirs = from_dict(FeatureConfig, sidecar["features"]) if sidecar else None
        except (ValueError, KeyError, TypeError):
            theirs = None
        if theirs is not None and theirs != ours:
            differing.append((folder, theirs))
    if not differing:
        return None
    folders = [f"{os.path.join(out, folder)}/" for folder, _ in differing]
    theirs = differing[0][1]
    values = {name: (json.dumps(getattr(theirs, name)), json.dumps(getattr(ours, name)))  # as --set takes them
              for name in differing_features(theirs, ours)}
    sets = " ".join(f"--set features.{name}={value}" for name, (value, _) in values.items())
    only_verifiers = all(folder not in ("kws", "words") for folder, _ in differing)
    move = f", or move {' and '.join(folders)} out of it (words/ then confirms the keyword)" if only_verifiers else ""
    return (f"{' and '.join(folders)} {'runs' if len(folders) == 1 else 'run'} other features than this run "
            f"({', '.join(f'{name} {value}, this run {own}' for name, (value, own) in values.items())}), "
            f"so {out} would not load once this run exported into it: add {sets} to train with "
            f"{'its' if len(folders) == 1 else 'their'} features, or pass --out with a folder of its own{move}")


def _confirms(out: str, folder: str, keyword: str) -> bool:
    """Whether the kept verifier ``folder`` has a class for ``keyword`` (the runtime verifies with it only then)."""
    sidecar = _kept_sidecar(out, folder)
    return bool(sidecar) and keyword in sidecar.get("labels", [])


# What a resumed run must share with the interrupted one: what shapes its data and model. The number of
# epochs may change (to end a run sooner or train it longer), and so may the run-time detector/decoder
# sections, --out, --no-test and --quiet.
RESUME_ARGS = ("data_dir", "lists_dir", "fold", "synthetic_dir", "keyword", "words", "seed")
RESUME_SECTIONS = ("features", "kws_data", "word_data", "kws", "words")
RESUME_FREE_FIELDS = ("epochs", "patience")


def changed_since_interrupted(run_dir: str, record: dict) -> str | None:
    """How ``record`` (this run's config.json content) differs from the interrupted run whose backup
    ``run_dir`` holds, e.g. ``"--seed 0 -> 1"``; None when there is nothing to resume or nothing differs.
    (Keras would resume the old backup silently, under the new run's settings and config.json.)"""
    from kws_tf.train.fitting import backup_dir  # imports Keras

    try:
        if not os.path.isdir(backup_dir(run_dir)):
            return None
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, ValueError):  # no readable record of the old run: nothing to compare
        return None
    new = json.loads(json.dumps(record, default=str))  # tuples as lists, as config.json holds them
    was = old.get("args", {})
    for key in RESUME_ARGS:
        if key == "data_dir" and was.get(key) is None:  # recorded before the default folder was written down
            continue
        if was.get(key) != new["args"].get(key):
            return f"--{key.replace('_', '-')} {was.get(key)} -> {new['args'].get(key)}"
    for section in RESUME_SECTIONS:
        # A setting added since the old run was recorded had its default then.
        default = json.loads(json.dumps(to_dict(SECTIONS[section]()), default=str))
        before = {**default, **old.get("preset", {}).get(section, {})}
        after = new["preset"].get(section, {})
        for field in sorted((set(before) | set(after)) - set(RESUME_FREE_FIELDS)):
            if before.get(field) != after.get(field):
                return f"{section}.{field} {before.get(field)} -> {after.get(field)}"
    return None


def _keras_verbosity(quiet: bool) -> int:
    """Keras's per-step bar redraws itself with carriage returns: fine on a terminal, but in a log file
    it is one line of megabytes. Off a terminal, print one line per epoch."""
    return 2 if quiet or not sys.stdout.isatty() else 1


def _train_one(task: str, run_dir: str, args: argparse.Namespace, preset, index, words: list[str], synthetic) -> dict:
    """Train and export one task in ``run_dir`` (its lock held by the caller)."""
    from kws_tf.train.fitting import ResumeError
    from kws_tf.train.train_kws import train_kws  # imports TensorFlow (~2 s)
    from kws_tf.train.train_words import train_words

    record = {"args": vars(args), "preset": preset.to_dict()}
    if args.fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    elif changed := changed_since_interrupted(run_dir, record):
        raise ResumeError(f"{run_dir}: holds an interrupted run with other settings ({changed}); rerun its command to resume it, "
                          "or pass --fresh to discard it or another --run-dir")
    os.makedirs(run_dir, exist_ok=True)
    config_path = os.path.join(run_dir, "config.json")
    earlier = open(config_path, "rb").read() if os.path.isfile(config_path) else None
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    start = time.perf_counter()
    common = dict(out_dir=args.out, run_dir=run_dir, seed=args.seed, synthetic=synthetic, epochs=args.epochs, verbose=_keras_verbosity(args.quiet),
                  score_test=not args.no_test)
    try:
        if task == "kws":
            summary = train_kws(index, args.keyword, preset, **common)
        else:
            summary = train_words(index, words, args.keyword, preset, **common)
    except DataError:  # refused before training: the folder's earlier run keeps its record
        if earlier is None:
            os.remove(config_path)
        else:
            with open(config_path, "wb") as f:
                f.write(earlier)
        raise
    summary["training"]["wall_s"] = time.perf_counter() - start
    with open(os.path.join(run_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    odd = [w for w in (args.keyword, *args.words) if not w.strip() or w != w.strip() or "/" in w or w.startswith((".", "_"))]
    if odd:
        parser.error(f"{odd[0]!r} is not a word folder name; give --keyword and --words as the data set's folders name them")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    data_dir = args.data_dir = args.data_dir or default_data_dir()  # the run's config.json records the folder used
    if data_dir is None:
        print(f"error: no data folder found; {DATA_HELP}", file=sys.stderr)
        return 1
    if args.epochs is not None and args.epochs < 1:
        print(f"error: --epochs must be at least 1, not {args.epochs}", file=sys.stderr)
        return 1
    try:
        preset = load_preset(args.preset, args.set)
        index = index_speech_commands(data_dir, args.lists_dir, args.fold)
        if args.synthetic_dir and not os.path.isdir(args.synthetic_dir):
            raise DataError(f"{args.synthetic_dir}: no such folder; pass --synthetic-dir with a folder that "
                            "python -m kws_tf.train.synth wrote")
        synthetic = index_speech_commands(args.synthetic_dir) if args.synthetic_dir else None
        if synthetic is not None:  # synthetic clips only ever train
            synthetic.clips = [c.__class__(c.path, c.word, c.speaker, "train") for c in synthetic.clips]
        words = list(dict.fromkeys(args.words))
        if args.task in ("words", "both"):
            check_vocabulary(index, words, synthetic=synthetic)
            if preset.word_data.keyword_share > 0 and args.keyword not in words:
                raise PresetError(f"word_data.keyword_share={preset.word_data.keyword_share} needs the keyword '{args.keyword}' among --words; "
                                  "add it or set word_data.keyword_share=0")
            absent = [w for w in preset.word_data.confusable_words if w not in words]
            if absent:
                raise PresetError(f"word_data.confusable_words names {', '.join(absent)}, not among --words; "
                                  "add them or leave them out of word_data.confusable_words")
        if args.task in ("kws", "both") and not any(c.word == args.keyword for ix in filter(None, (index, synthetic)) for c in ix.clips):
            raise missing_words_error([args.keyword], [ix for ix in (index, synthetic) if ix], f"clips of the keyword '{args.keyword}'",
                                      "pick another --keyword or add its WORD/*.wav folder")
    except (DataError, PresetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    tasks = ["kws", "words"] if args.task == "both" else [args.task]
    name = f"{preset.name}-fold{args.fold[0]}of{args.fold[1]}" if args.fold else preset.name  # a fold's run never resumes or replaces another's
    args.out = args.out or (os.path.join("training", "runs", f"{name}-models") if args.fold else "saved_models")
    conflict = front_end_conflict(args.out, tasks, preset.features)
    if conflict:
        print(f"error: {conflict}", file=sys.stderr)
        return 1

    try:
        from kws_tf.train.fitting import ResumeError  # imports Keras, which the runtime-only install lacks
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("tensorflow", "keras"):
            raise
        print("error: training needs TensorFlow: pip install '.[train]' (or the pinned set: pip install -r requirements.txt)", file=sys.stderr)
        return 1
    for task in tasks:
        run_dir = args.run_dir and os.path.join(args.run_dir, task) or os.path.join("training", "runs", f"{name}-{task}")
        try:
            with run_dir_lock(run_dir), run_dir_lock(os.path.join(args.out, task), "export folder", "--out"):
                summary = _train_one(task, run_dir, args, preset, index, words, synthetic)
        except (DataError, ResumeError, RunDirBusy) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{task}: exported to {os.path.join(args.out, task)}; run folder {run_dir}")
        # Tune on the split it selected on; paths quoted so the command can be pasted as it is.
        data = shlex.quote(data_dir) + (f" --lists-dir {shlex.quote(args.lists_dir)}" if args.lists_dir else "")
        data += f" --fold {fold_text(args.fold)}" if args.fold else ""
        if task == "kws" and not index.select("validation", [args.keyword]):  # e.g. a keyword from synthetic speech alone
            print(f"kws: the gate cannot be tuned on this data's validation split: it has no real clips of '{args.keyword}'; record "
                  "real clips of it (WORD/*.wav in the data folder, some in its validation split) and tune then, or keep the preset's gate settings")
        else:
            print(f"{task}: {NEXT_STEP[task].format(out=shlex.quote(args.out), data=data)}")
        kept = verifier_folders(args.out)
        confirming = [folder for folder in kept if _confirms(args.out, folder, args.keyword)]
        if confirming:  # e.g. the shipped package's: a new words/ or kws/ does not replace them
            names = ", ".join(f"{os.path.join(args.out, folder)}/" for folder in confirming)
            one = len(confirming) == 1
            print(f"{task}: {names} {'is' if one else 'are'} kept and still confirm{'s' if one else ''} the keyword, so "
                  f"{os.path.join(args.out, 'words')}/ only transcribes (remove {'that folder' if one else 'those folders'} "
                  "to let it verify too, then tune the gate again)")
        lacking = [f"{os.path.join(args.out, folder)}/" for folder in kept if folder not in confirming]
        if lacking:  # e.g. the shipped "stop" verifier beside a new keyword: the runtime then verifies with none
            one = len(lacking) == 1
            print(f"{task}: warning: {', '.join(lacking)} {'has' if one else 'have'} no '{args.keyword}' class, so the "
                  f"package confirms no keyword detection; remove {'that folder' if one else 'those folders'} to let "
                  f"{os.path.join(args.out, 'words')}/ confirm the keyword, then tune the gate again")
        for split, scores in summary["metrics"].items():  # one line per split, so the test line is easy to leave unread
            print(f"{task}: {split} split (Keras): {json.dumps(scores, default=str)[:400]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
