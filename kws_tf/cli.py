"""What the command-line tools share: an argument parser whose usage errors exit with 1, the
wrapper that turns expected errors into one line on stderr (exit 1) and Ctrl-C into exit 130, the
``--help`` description taken from a module's docstring, and the checks of option values made before the work."""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from collections.abc import Callable


def doc_summary(doc: str) -> str:
    """The first paragraph of a module docstring as one line: an argparse ``description``."""
    return " ".join(doc.split("\n\n")[0].split())


class UsageError(Exception):
    """A bad option value found after parsing (reported like an argparse error, exit 1)."""


class UsageParser(argparse.ArgumentParser):
    """argparse that exits with 1 on usage errors (2 means "some files failed" in transcribe) and takes
    options only by their full names (a mistyped ``--mode X`` is an error, not ``--models X``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(1)


# Where the shipped models are looked for, after ./saved_models: the checkout holding this package, then the copy
# of their TFLite files and sidecars that ``pip install`` puts under the environment's data folder (setup.cfg's
# data_files: share/kws_tf/saved_models/), or the user's for ``pip install --user``. The training presets travel
# the same way (share/kws_tf/training/, kws_tf.train.presets).
CHECKOUT_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")
INSTALLED_DATA = list(dict.fromkeys(os.path.join(sysconfig.get_path("data", scheme), "share", "kws_tf")
                                    for scheme in (sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user"))))
INSTALLED_MODELS = [os.path.join(folder, "saved_models") for folder in INSTALLED_DATA]


def default_models_dir() -> str:
    """``./saved_models`` if it exists, else the checkout's ``saved_models/`` beside this package, else the copy
    installed with the package; a UsageError (one line: pass --models) where none is there."""
    for folder in ("saved_models", CHECKOUT_MODELS, *INSTALLED_MODELS):
        if os.path.isdir(folder):
            return folder
    raise UsageError(f"no saved_models/ folder here, in the checkout or installed with kws_tf ({INSTALLED_MODELS[0]}); "
                     "pass --models DIR, a folder with kws/ and words/, or reinstall kws_tf")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The options ``transcribe`` and ``live`` share: which package and precision to run, and the sidecar
    thresholds they may override (read back by ``transcriber_kwargs``)."""
    p.add_argument("--models", default=None, help="export folder with kws/ and words/, optionally verifier/ and verifier_NAME/ (default: ./saved_models, else the checkout's or the one installed with kws_tf)")
    p.add_argument("--precision", choices=("float32", "int8"), default="float32", help="which TFLite model to run")
    p.add_argument("--threshold", type=float, help="keyword detection threshold (overrides the sidecar)")
    p.add_argument("--word-threshold", type=float, help="word score threshold (overrides the sidecar)")
    p.add_argument("--verify-threshold", type=float, help="keyword probability the word model (MODELS/verifier/ if there is one, averaged with any MODELS/verifier_NAME/) must "
                   "confirm each keyword detection with; 0 turns verification off (overrides the sidecar)")


def transcriber_kwargs(args: argparse.Namespace, mode: str) -> dict:
    """``Transcriber.from_dir`` arguments from ``add_model_options``' options."""
    return {"models_dir": args.models or default_models_dir(), "precision": args.precision, "mode": mode,
            "detector_overrides": {k: v for k, v in (("threshold", args.threshold), ("verify_threshold", args.verify_threshold))
                                   if v is not None},
            "decoder_overrides": {} if args.word_threshold is None else {"threshold": args.word_threshold}}


def run_main(prog: str, parser: argparse.ArgumentParser, argv: list[str] | None, run: Callable[[argparse.Namespace], int],
             errors: tuple[type[BaseException], ...] = ()) -> int:
    """Parse ``argv`` and call ``run(args)``; returns its exit code, 0 for ``--help``, 1 for a usage
    error or one of ``errors`` (printed as ``PROG: error: ...``), 130 after Ctrl-C."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (1)
        return int(exc.code or 0)
    try:
        return run(args)
    except (UsageError, *errors) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def output_problem(path: str) -> str | None:
    """Why ``path`` cannot take a file written at the end of a run (a folder there, its folder missing, a
    file or not writable), or None: checked before the run, so a bad name never wastes one."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return "is a folder; give a file name"
    if not os.path.isdir(folder):
        return f"{folder} is {'not a folder' if os.path.exists(folder) else 'missing'}; give a file in an existing folder"
    if not os.access(folder, os.W_OK):
        return f"{folder} is not writable; give a file in a folder you can write to"
    return None


def check_thresholds(args: argparse.Namespace) -> None:
    """UsageError unless each threshold option given (``--threshold``, ``--word-threshold``,
    ``--verify-threshold``) lies between 0 and 1."""
    for name in ("threshold", "word_threshold", "verify_threshold"):
        value = getattr(args, name, None)
        if value is not None and not 0.0 <= value <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1, not {value}")


LISTS_HELP = ("folder with validation_list.txt/testing_list.txt (default: the data folder); give the folder "
              "training used, so the splits are the same")
FOLD_HELP = ("K/N: pool the training and validation speakers, deal them into N folds by speaker and use fold K as "
             "the validation split (k-fold checks on more speakers; train, tune and evaluate with the same --fold)")


def fold_arg(text: str) -> tuple[int, int]:
    """argparse type for ``--fold K/N``."""
    from kws_tf.dataset import parse_fold

    try:
        return parse_fold(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
