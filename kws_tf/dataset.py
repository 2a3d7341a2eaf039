"""Index and load a Speech Commands folder in its official layout (numpy only; no TensorFlow).

``WORD/<speaker>_nohash_<n>.wav``, ``_background_noise_/*.wav``, and optional
``validation_list.txt`` / ``testing_list.txt``. Without list files, clips are split by a stable hash
of the speaker id, as the data set's README prescribes, so a speaker never lands in two splits.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from kws_tf.audio_io import AudioError, read_audio

log = logging.getLogger(__name__)

BACKGROUND_DIR = "_background_noise_"
SPLITS = ("train", "validation", "test")
# The 30 words of Speech Commands v0.01, the default vocabulary.
V1_WORDS = (
    "bed bird cat dog down eight five four go happy house left marvin nine no "
    "off on one right seven sheila six stop three tree two up wow yes zero"
).split()
CORE_WORDS = "down go left no off on right stop up yes".split()
# The words kws_tf.train.synth renders (and so may be new word folders): lowercase, apostrophes and hyphens.
SYNTH_WORD_RE = re.compile(r"^[a-z][a-z'-]*$")
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # from the data set's README


class DataError(Exception):
    """A problem with the data folder; ``str()`` is a one-line message for the user."""


@dataclass(frozen=True)
class Clip:
    path: str  # absolute path
    word: str
    speaker: str
    split: str


@dataclass
class DatasetIndex:
    root: str
    clips: list[Clip]
    noise_files: list[str]
    missing_listed: int = 0
    split_source: str = "lists"  # or "hash"
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    fold: tuple[int, int] | None = None  # (K, N): validation = fold K of N of the non-test speakers

    def select(self, split: str, words: list[str] | None = None) -> list[Clip]:
        wanted = None if words is None else set(words)
        return [c for c in self.clips if c.split == split and (wanted is None or c.word in wanted)]

    def summary(self) -> dict:
        return {
            "root": self.root,
            "split_source": self.split_source,
            "fold": fold_text(self.fold),
            "clips": len(self.clips),
            "noise_files": len(self.noise_files),
            "missing_listed": self.missing_listed,
            "counts": self.counts,
        }


_NOHASH = re.compile(r"_nohash_.*$")


def speaker_of(filename: str) -> str:
    return _NOHASH.sub("", os.path.basename(filename))


def hash_split(filename: str, validation_percent: float = 10.0, testing_percent: float = 10.0) -> str:
    """The data set README's ``which_set``: a stable split by a hash of the speaker id."""
    hashed = hashlib.sha1(speaker_of(filename).encode("utf-8")).hexdigest()
    percent = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percent < validation_percent:
        return "validation"
    if percent < validation_percent + testing_percent:
        return "test"
    return "train"


def parse_fold(text: str) -> tuple[int, int]:
    """``"K/N"`` (fold K of N, 1 <= K <= N, N >= 2) as ``(K, N)``; ValueError with what to write otherwise."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"{text!r}: write a fold as K/N, e.g. 2/5") from None
    if n < 2 or not 1 <= k <= n:
        raise ValueError(f"{text!r}: a fold K/N needs N >= 2 and 1 <= K <= N")
    return k, n


def fold_text(fold: tuple[int, int] | None) -> str | None:
    """``(K, N)`` as ``"K/N"``, the form ``--fold`` takes (None without a fold)."""
    return f"{fold[0]}/{fold[1]}" if fold else None


def split_label(split: str, fold: tuple[int, int] | None, lists_dir: str | None = None) -> str:
    """A split's name in records and output, with its fold and list files when not the data folder's:
    ``"validation fold 2/5"``, ``"test (lists from /data/lists)"``."""
    label = f"{split} fold {fold_text(fold)}" if fold else split
    return f"{label} (lists from {os.path.abspath(lists_dir)})" if lists_dir else label


def fold_of(speaker: str, folds: int) -> int:
    """A speaker's fold (1..folds): a stable hash of the speaker id, independent of ``hash_split``."""
    return int(hashlib.sha1(f"fold:{speaker}".encode("utf-8")).hexdigest(), 16) % folds + 1


def _read_list(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip().replace("\\", "/") for line in f if line.strip()]


def index_speech_commands(data_dir: str, lists_dir: str | None = None, fold: tuple[int, int] | None = None) -> DatasetIndex:
    """Index every ``WORD/*.wav`` under ``data_dir``.

    Args:
        data_dir: folder in the official layout.
        lists_dir: where ``validation_list.txt``/``testing_list.txt`` are (default: ``data_dir``).
            Listed files that are not on disk are skipped and counted in ``missing_listed``.
        fold: ``(K, N)`` for k-fold checks on more speakers: the training and validation speakers are
            pooled and dealt into N folds by speaker; fold K becomes the validation split and the other
            folds the training split. The test split stays as it is.

    Raises:
        DataError: no such folder, or no word folders with WAV files in it, or a ``lists_dir`` without list files.
    """
    root = os.path.abspath(os.path.expanduser(data_dir))
    if os.path.isfile(root):
        raise DataError(f"{data_dir}: is a file; pass --data-dir with a Speech Commands folder (see README, 'Data')")
    if not os.path.isdir(root):
        raise DataError(f"{data_dir}: no such folder; pass --data-dir with a Speech Commands folder (see README, 'Data')")
    files: dict[str, str] = {}  # relative path -> word
    for word in sorted(os.listdir(root)):
        folder = os.path.join(root, word)
        if word.startswith((".", "_")) or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.lower().endswith(".wav") and not name.startswith("."):  # not macOS's ._NAME.wav resource forks
                files[f"{word}/{name}"] = word
    if not files:
        raise DataError(f"{data_dir}: no WORD/*.wav clips found; expected the Speech Commands layout (see README, 'Data')")

    lists_root = os.path.abspath(os.path.expanduser(lists_dir)) if lists_dir else root
    list_paths = {s: os.path.join(lists_root, f"{s}_list.txt") for s in ("validation", "testing")}
    if lists_dir and not any(os.path.isfile(p) for p in list_paths.values()):  # named on purpose: never fall back silently
        raise DataError(f"{lists_dir}: no validation_list.txt or testing_list.txt there; pass --lists-dir with the folder "
                        "that holds them (or leave it out to use the data folder's)")
    assigned: dict[str, str] = {}
    missing = 0
    split_source = "hash"
    if any(os.path.exists(p) for p in list_paths.values()):
        split_source = "lists"
        for name, split in (("validation", "validation"), ("testing", "test")):
            if os.path.exists(list_paths[name]):
                for rel in _read_list(list_paths[name]):
                    if rel in files:
                        assigned[rel] = split
                    else:
                        missing += 1
    if missing:
        log.info("%d files named in the list files are not on disk; skipped", missing)

    clips = []
    counts: dict[str, dict[str, int]] = {}
    for rel, word in files.items():
        split = assigned.get(rel, "train") if split_source == "lists" else hash_split(rel)
        if fold and split != "test":
            split = "validation" if fold_of(speaker_of(rel), fold[1]) == fold[0] else "train"
        clips.append(Clip(os.path.join(root, rel), word, speaker_of(rel), split))
        counts.setdefault(word, dict.fromkeys(SPLITS, 0))[split] += 1
    noise_dir = os.path.join(root, BACKGROUND_DIR)
    noise = sorted(os.path.join(noise_dir, n) for n in os.listdir(noise_dir) if n.lower().endswith(".wav")) if os.path.isdir(noise_dir) else []
    return DatasetIndex(root, clips, noise, missing, split_source, counts, fold)


def check_vocabulary(index: DatasetIndex, words: list[str], split: str = "train", synthetic: DatasetIndex | None = None) -> None:
    """Raise DataError naming the vocabulary words that have no clips in ``split`` of ``index`` or of
    ``synthetic`` (the --synthetic-dir folder), with :func:`missing_words_error`'s hints."""
    indexes = [index] + ([synthetic] if synthetic else [])
    have = {c.word for ix in indexes for c in ix.clips if c.split == split}
    lacking = [w for w in words if w not in have]
    if lacking:
        raise missing_words_error(lacking, indexes, f"{split} clips for {', '.join(lacking)}",
                                  "remove it from --words or add its WORD/*.wav folder" if len(lacking) == 1 else
                                  "remove them from --words or add their WORD/*.wav folders")


def missing_words_error(lacking: list[str], indexes: list[DatasetIndex], what: str, remedy: str) -> DataError:
    """A one-line DataError for words without clips: ``"FOLDERS: no WHAT; did you mean ...? REMEDY, or
    synthesize ..."``. It names every folder searched (the data folder, then --synthetic-dir's), suggests
    close matches among their word folders (compared lowercased, so ``Go`` finds ``go``), and gives the
    synthesis command only for the words kws_tf.train.synth renders (lowercase words, not phrases)."""
    folders = {c.word.lower(): c.word for ix in indexes for c in ix.clips}
    hints = []
    for word in lacking:
        close = [folders[m] for m in difflib.get_close_matches(word.lower(), list(folders), n=1)]
        if close and close[0] != word:
            hints.append(f"'{close[0]}' for '{word}'")
    message = f"{' and '.join(ix.root for ix in indexes)}: no {what}; "
    message += f"did you mean {', '.join(hints)}? Else {remedy}" if hints else remedy
    renderable = [w for w in lacking if SYNTH_WORD_RE.match(w)]
    if renderable:
        command = f"python -m kws_tf.train.synth --words {' '.join(renderable)} --out "
        message += (f", or synthesize {' '.join(renderable)} into the synthetic folder: {command}{shlex.quote(indexes[1].root)}"
                    if len(indexes) > 1 else f", or synthesize {' '.join(renderable)}: {command}DIR, then add --synthetic-dir DIR")
    return DataError(message)


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Centre-pad with zeros or centre-crop ``(samples,)`` to exactly ``n`` samples."""
    if len(audio) >= n:
        start = (len(audio) - n) // 2
        return audio[start : start + n]
    pad = n - len(audio)
    return np.pad(audio, (pad // 2, pad - pad // 2))


@dataclass
class LoadedClips:
    audio: np.ndarray  # (n, samples) int16
    clips: list[Clip]  # the clips that loaded, in order
    failed: list[str]  # one-line messages for clips that could not be read


def load_clips(clips: list[Clip], n_samples: int, sample_rate_hz: int = 16000, progress: bool = True, desc: str = "loading clips") -> LoadedClips:
    """Decode clips into one int16 array, padded/cropped to ``n_samples``; unreadable files are
    skipped and reported in ``failed``, never raised."""

    def load(clip: Clip) -> np.ndarray | str:
        try:
            audio = read_audio(clip.path, sample_rate_hz)
        except AudioError as exc:
            return str(exc)
        return np.round(np.clip(fit_length(audio, n_samples), -1.0, 32767 / 32768) * 32768).astype(np.int16)

    bar = _progress(len(clips), desc) if progress and len(clips) > 200 else None
    audio = np.empty((len(clips), n_samples), np.int16)  # filled in place: one copy of the audio, even for the full data set
    ok_clips, failed = [], []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for clip, result in zip(clips, pool.map(load, clips)):
            if isinstance(result, str):
                failed.append(result)
            else:
                audio[len(ok_clips)] = result
                ok_clips.append(clip)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return LoadedClips(audio[:len(ok_clips)], ok_clips, failed)


def load_noise(paths: list[str], sample_rate_hz: int = 16000) -> tuple[list[np.ndarray], list[str]]:
    """Background noise files as float32 arrays; unreadable ones are returned as messages."""
    noise, failed = [], []
    for path in paths:
        try:
            noise.append(read_audio(path, sample_rate_hz))
        except AudioError as exc:
            failed.append(str(exc))
    return noise, failed


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # a hand-made install without tqdm (declared in setup.cfg): no bar, the loading goes on
        return None
    return tqdm(total=total, desc=desc, unit="clip", leave=False)


def speech_extent(audio: np.ndarray, sample_rate_hz: int = 16000, floor_db: float = -25.0) -> tuple[float, float]:
    """Start and end (s) of the loud part of a word clip: 10 ms frames within ``floor_db`` of the
    loudest one. Works on ``(samples,)`` int16 or float; a silent clip gives its full extent."""
    x = np.asarray(audio, np.float32)
    hop = sample_rate_hz // 100
    n = len(x) // hop
    if n == 0:
        return 0.0, len(x) / sample_rate_hz
    energy = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy >= energy.max() + floor_db)
    return loud[0] * hop / sample_rate_hz, (loud[-1] + 1) * hop / sample_rate_hz


def speech_extents(clips, sample_rate_hz: int = 16000) -> np.ndarray:
    """``speech_extent`` of each clip: ``(n, 2)`` float64, start and end (s)."""
    return np.array([speech_extent(a, sample_rate_hz) for a in clips], float).reshape(-1, 2)
