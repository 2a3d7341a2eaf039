"""Synthetic Speech Commands clips of any English word, rendered in-process by libespeak-ng from the
``espeakng-loader`` wheel (ctypes; numpy, soxr, soundfile). Training tool only: imports no TF/Keras.

    python -m kws_tf.train.synth --words yes no marvin --out data/synth --per-word 200 --seed 0
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import re
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from kws_tf.audio_io import resample, write_wav_atomic
from kws_tf.cli import UsageParser, doc_summary
from kws_tf.dataset import SYNTH_WORD_RE

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
CLIP_SAMPLES = 16000
MAX_WORD_S = 0.95
# The non-MBROLA English voices bundled with espeak-ng 1.52, by file name ("en" is British English;
# "en-gb" is not accepted by SetVoiceByName in 1.52). en-Shaw (Shavian script) is left out.
LANGUAGES = ("en", "en-029", "en-GB-scotland", "en-GB-x-gbclan", "en-GB-x-gbcwmd", "en-GB-x-rp", "en-US", "en-US-nyc")
# Human-sounding variants from espeak-ng-data/voices/!v; robots, heavy echo, whisper, croak and the
# child-pitched "zac" are left out, and so are those with "breath" noise (f2, f3, f5, Alicia, Reed,
# sandro, victor), whose output differs from run to run. "" is the language's own voice.
VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f4",
    "Alex", "Andrea", "Andy", "Annie", "AnxiousAndy", "Denis", "Diogo", "Gene", "Gene2",
    "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "Storm",
    "adam", "anika", "antonio", "aunty", "belinda", "benjamin", "boris", "david", "ed", "edward",
    "edward2", "grandma", "grandpa", "gustave", "ian", "iven", "iven2", "iven3", "iven4", "john",
    "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "linda", "marcelo", "max",
    "michel", "miguel", "mike2", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert",
    "shelby", "steph", "steph2", "steph3", "travis",
)
PITCH_RANGE = (30, 70)  # espeak pitch 0-100, relative to the variant's own range
SPEED_WPM_RANGE = (120, 200)
# Peak level in dBFS as (low, mode, high): Speech Commands peaks are 5-95 % in [-18, 0], median -5.
PEAK_DB = (-18.0, -3.0, -0.5)
# A faint noise floor: real clips are never digital silence (10th-percentile frame level ~ -70 dBFS).
NOISE_FLOOR_DB = (-85.0, -60.0)
PERTURB_RANGE = (0.92, 1.08)  # resampling factor: tempo and pitch together
SHARD_CLIPS = 50  # clips per worker process; fixed so the output does not depend on --jobs

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH = 1, 3
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SynthError(Exception):
    """Synthesis cannot run; ``str()`` is a one-line message for the user."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: espeak language voice, variant, pitch (0-100) and speed (words/min)."""

    language: str
    variant: str
    pitch: int
    speed_wpm: int

    @property
    def espeak_name(self) -> str:
        return f"{self.language}+{self.variant}" if self.variant else self.language

    @property
    def speaker_id(self) -> str:
        """E.g. ``synth-enus-m3-p50-s160``: no underscore (``_nohash_`` splits on it) and never an
        8-hex-digit id of a real speaker."""
        lang = re.sub(r"[^a-z0-9]", "", self.language.lower())
        variant = re.sub(r"[^a-z0-9]", "", self.variant.lower()) or "base"
        return f"synth-{lang}-{variant}-p{self.pitch}-s{self.speed_wpm}"


def random_voice(rng: np.random.Generator) -> Voice:
    """Draw language, variant, pitch and speed uniformly."""
    return Voice(
        language=str(rng.choice(LANGUAGES)),
        variant=str(rng.choice(VARIANTS)),
        pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
        speed_wpm=int(rng.integers(SPEED_WPM_RANGE[0], SPEED_WPM_RANGE[1] + 1)),
    )


def _library_paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError:
        raise SynthError("espeak-ng is not installed; run: pip install espeakng-loader") from None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


class Espeak:
    """libespeak-ng loaded through ctypes. The library keeps global state, so there is one per process
    (``engine()``); its output also depends on what it rendered before (libc ``rand``, glottal phase)."""

    def __init__(self) -> None:
        lib_path, data_path = _library_paths()
        try:
            self._lib = ctypes.CDLL(lib_path)
        except OSError as exc:
            raise SynthError(f"cannot load libespeak-ng from {lib_path}: {exc}") from None
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.rate_hz = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT)
        if self.rate_hz <= 0:
            raise SynthError(f"libespeak-ng failed to initialise with data at {data_path}")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept alive: the library holds only the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._variant_dir = os.path.join(data_path, "voices", "!v")

    def _collect(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def synth(self, text: str, voice: Voice, speed_wpm: int | None = None) -> np.ndarray:
        """Render ``text``; returns ``(samples,)`` float32 at ``self.rate_hz``."""
        # SetVoiceByName ignores an unknown "+variant" silently, so check its file.
        if voice.variant and not os.path.isfile(os.path.join(self._variant_dir, voice.variant)):
            raise SynthError(f"espeak-ng has no voice variant '{voice.variant}'")
        if self._lib.espeak_SetVoiceByName(voice.espeak_name.encode()) != 0:
            raise SynthError(f"espeak-ng has no voice '{voice.espeak_name}'")
        self._lib.espeak_SetParameter(_PARAM_RATE, int(speed_wpm or voice.speed_wpm), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(voice.pitch), 0)
        self._chunks.clear()
        data = text.encode("utf-8")
        if self._lib.espeak_Synth(ctypes.c_char_p(data), len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None) != 0:
            raise SynthError(f"espeak-ng failed to render '{text}'")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio.astype(np.float32) / 32768.0


_ENGINE: Espeak | None = None


def engine() -> Espeak:
    """This process's ``Espeak``, loaded on first use."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE


def trim_silence(audio: np.ndarray, rate_hz: int, floor_db: float = 40.0, pad_ms: float = 10.0) -> np.ndarray:
    """Cut leading/trailing frames more than ``floor_db`` below the loudest 5 ms frame.

    Args:
        audio: ``(samples,)`` float32.
    Returns:
        ``(trimmed,)`` float32, keeping ``pad_ms`` either side of the voiced part.
    """
    frame = max(1, rate_hz // 200)
    n = len(audio) // frame
    if n == 0:
        return audio
    energy = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1)) + 1e-10
    loud = np.nonzero(20 * np.log10(energy / energy.max()) > -floor_db)[0]
    pad = int(rate_hz * pad_ms / 1000)
    return audio[max(0, loud[0] * frame - pad) : min(len(audio), (loud[-1] + 1) * frame + pad)]


def render_word(word: str, voice: Voice, rng: np.random.Generator, perturb: bool = True) -> np.ndarray:
    """One Speech Commands-like clip: the word at a random offset in 1 s at a random level.

    Args:
        word: text to speak.
        voice: language, variant, pitch and speed.
        rng: draws the perturbation, offset, level and noise floor.
        perturb: resample by a random factor in ``PERTURB_RANGE`` (tempo and pitch together).
    Returns:
        ``(16000,)`` float32 at 16 kHz.
    """
    eng = engine()
    factor = float(rng.uniform(*PERTURB_RANGE)) if perturb else 1.0
    speed = voice.speed_wpm
    for _ in range(3):  # too long for 0.95 s: render faster rather than crop the word
        raw = trim_silence(eng.synth(word, voice, speed), eng.rate_hz)
        seconds = len(raw) / (eng.rate_hz * factor)
        if seconds <= MAX_WORD_S or speed >= 450:
            break
        speed = min(450, int(np.ceil(speed * seconds / (0.9 * MAX_WORD_S))))
        log.debug("'%s' by %s lasts %.2f s; re-rendering at %d wpm", word, voice.speaker_id, seconds, speed)
    audio = resample(raw, int(round(eng.rate_hz * factor)), SAMPLE_RATE_HZ)
    limit = int(MAX_WORD_S * SAMPLE_RATE_HZ)
    if len(audio) > limit:
        fade = np.linspace(1.0, 0.0, 320, dtype=np.float32)
        audio = audio[:limit].copy()
        audio[-len(fade) :] *= fade
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak <= 0.0:
        raise SynthError(f"espeak-ng rendered silence for '{word}' with voice {voice.espeak_name}")
    audio *= 10 ** (rng.triangular(*PEAK_DB) / 20) / peak
    clip = rng.standard_normal(CLIP_SAMPLES).astype(np.float32) * np.float32(10 ** (rng.uniform(*NOISE_FLOOR_DB) / 20))
    offset = int(rng.integers(0, CLIP_SAMPLES - len(audio) + 1))
    clip[offset : offset + len(audio)] += audio
    return np.clip(clip, -1.0, 1.0)


def _clip_rng(seed: int, word: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(word.encode("utf-8")), index])


def _render_shard(word: str, start: int, stop: int, seed: int, perturb: bool) -> list[tuple[int, str, np.ndarray]]:
    """Runs in a fresh process, so the library starts from the same state every time."""
    out = []
    for index in range(start, stop):
        rng = _clip_rng(seed, word, index)
        voice = random_voice(rng)
        pcm = np.round(render_word(word, voice, rng, perturb) * 32767).astype(np.int16)
        out.append((index, voice.speaker_id, pcm))
    return out


def _write_clip(word_dir: str, speaker: str, index: int, pcm: np.ndarray) -> bool:
    """Write one clip; False when the same audio is already there. Never overwrites: a different
    file under the same name makes the clip take the next free number."""
    path = os.path.join(word_dir, f"{speaker}_nohash_{index}.wav")
    if os.path.exists(path):
        try:
            if np.array_equal(sf.read(path, dtype="int16")[0], pcm):
                return False
        except Exception:  # unreadable: leave it alone and pick another name
            pass
        number = 0
        while os.path.exists(path := os.path.join(word_dir, f"{speaker}_nohash_{number}.wav")):
            number += 1
    write_wav_atomic(path, pcm.astype(np.float32) / 32768.0, SAMPLE_RATE_HZ)
    return True


def synthesize_words(words: list[str], out_dir: str, per_word: int = 200, seed: int = 0, jobs: int = 1, perturb: bool = True, progress: bool = True) -> dict[str, int]:
    """Write ``per_word`` clips per word as ``out_dir/WORD/<speaker>_nohash_<n>.wav`` (16 kHz int16, 1 s).

    Clip ``n`` of a word depends only on ``(seed, word, n)``: rerunning skips clips already written,
    and a larger ``per_word`` adds clips. Each shard of ``SHARD_CLIPS`` clips renders in a fresh
    process, so results are bit-identical for any ``jobs``.

    Returns:
        Number of new files per word.
    """
    if sys.version_info < (3, 11):  # ProcessPoolExecutor(max_tasks_per_child=...) below is 3.11's
        raise SynthError(f"synthesis needs Python 3.11 or newer (a fresh worker per shard); this is {sys.version.split()[0]}")
    if not words:
        raise SynthError("no words given")
    bad = [w for w in words if not SYNTH_WORD_RE.match(w)]
    if bad:
        raise SynthError(f"not a lowercase English word: {', '.join(map(repr, bad))}")
    if per_word < 1:
        raise SynthError(f"--per-word must be at least 1, got {per_word}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise SynthError(f"{out_dir}: exists and is not a folder")
    engine()  # fail here, once, with a clear message if the library cannot load
    try:
        for word in words:
            os.makedirs(os.path.join(out_dir, word), exist_ok=True)
    except OSError as exc:
        raise SynthError(f"cannot create folders in {out_dir}: {exc.strerror}") from None
    shards = [(w, s, min(s + SHARD_CLIPS, per_word)) for w in dict.fromkeys(words) for s in range(0, per_word, SHARD_CLIPS)]
    written = dict.fromkeys(words, 0)
    bar = _progress(sum(b - a for _, a, b in shards)) if progress else None
    # forkserver: workers fork from a clean server, never from a parent that already used espeak
    # (or imported TensorFlow), and max_tasks_per_child=1 gives every shard a fresh library.
    ctx = multiprocessing.get_context("forkserver")
    try:
        with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = [(w, pool.submit(_render_shard, w, a, b, seed, perturb)) for w, a, b in shards]
            for word, future in futures:
                for index, speaker, pcm in future.result():
                    try:
                        written[word] += _write_clip(os.path.join(out_dir, word), speaker, index, pcm)
                    except OSError as exc:  # e.g. the disk filled up: the clips written so far stay, whole
                        pool.shutdown(wait=False, cancel_futures=True)  # no more shards rendered for nothing
                        raise SynthError(f"{exc.strerror or exc}; free space in {out_dir} (or pick another --out) and run "
                                         "the command again: it keeps the clips already written") from None
                    if bar is not None:
                        bar.update(1)
    finally:  # the bar's line ends before any error line
        if bar is not None:
            bar.close()
    log.info("wrote %d clips to %s", sum(written.values()), out_dir)
    return written


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="synthesizing", unit="clip", file=sys.stderr, leave=False)


def main(argv: list[str] | None = None) -> int:
    parser = UsageParser(prog="python -m kws_tf.train.synth", description=doc_summary(__doc__))
    parser.add_argument("--words", nargs="*", required=True, help="lowercase words, one folder each")
    parser.add_argument("--out", required=True, help="output folder (Speech Commands layout)")
    parser.add_argument("--per-word", type=int, default=200, help="clips per word (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="voice, pitch, speed and level draws (default: 0)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--no-perturb", action="store_true", help="no random resampling of tempo/pitch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        written = synthesize_words(args.words, args.out, args.per_word, args.seed, args.jobs, not args.no_perturb)
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    skipped = len(written) * args.per_word - sum(written.values())
    print(f"wrote {sum(written.values())} clips for {len(written)} words to {args.out}" + (f" ({skipped} already there)" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
