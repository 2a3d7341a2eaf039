"""Reading audio files as 16 kHz mono float32, whole or in blocks (numpy, soundfile, soxr; pydub
for formats libsndfile cannot read). Errors are ``AudioError`` with a one-line message."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import soxr

from kws_tf.atomic_write import atomic_path

# libsndfile reads these directly; anything else goes through pydub + ffmpeg.
SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".w64", ".rf64", ".caf"}
PYDUB_EXTENSIONS = {".m4a", ".mp4", ".aac", ".wma", ".opus", ".webm"}
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | PYDUB_EXTENSIONS


class AudioError(Exception):
    """A file that cannot be read as audio; ``str()`` is a one-line message for the user."""


def to_mono_float(data: np.ndarray) -> np.ndarray:
    """``(samples,)`` or ``(samples, channels)`` audio as ``(samples,)`` float32: the channels' mean."""
    data = np.asarray(data, dtype=np.float32)
    return data.mean(axis=1) if data.ndim == 2 else data


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """``(samples,)`` float32 from one rate to another (soxr, high quality)."""
    if from_hz == to_hz:
        return np.asarray(audio, np.float32)
    return soxr.resample(np.asarray(audio, np.float32), from_hz, to_hz).astype(np.float32)


def _read_with_pydub(path: str, target_hz: int) -> np.ndarray:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise AudioError(f"{path}: reading {os.path.splitext(path)[1]} needs ffmpeg; install it (e.g. apt install ffmpeg) or convert the file to WAV/FLAC")
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pydub import AudioSegment
    except ImportError as exc:  # pydub missing, or on Python 3.13+ its audioop stand-in (audioop-lts)
        raise AudioError(f"{path}: reading {os.path.splitext(path)[1]} needs pydub ({_first_line(exc)}); "
                         "pip install pydub (and audioop-lts on Python 3.13+), or convert the file to WAV/FLAC") from None
    try:
        seg = AudioSegment.from_file(path).set_channels(1).set_frame_rate(target_hz).set_sample_width(2)
    except Exception as exc:  # pydub raises many types, all meaning "could not decode"
        raise AudioError(f"{path}: cannot decode ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); check the file or convert it to WAV") from None
    return np.frombuffer(seg.raw_data, dtype=np.int16).astype(np.float32) / 32768.0


def _check_finite(path: str, data: np.ndarray, start_s: float, rate: int) -> None:
    """Float files can hold NaN or infinity, which would silently blank every score after them."""
    bad = ~np.isfinite(data)
    if bad.any():
        at = start_s + int(np.argmax(bad.any(axis=-1) if data.ndim == 2 else bad)) / rate
        raise AudioError(f"{path}: holds samples that are not numbers (NaN or infinity) from {at:.2f} s; "
                         "repair the file or export it again")


def _check_path(path: str) -> str:
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a folder, not an audio file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in AUDIO_EXTENSIONS:
        raise AudioError(f"{path}: unsupported file type '{ext}'; use WAV, FLAC, OGG, MP3 or M4A")
    return ext


def read_audio(path: str, target_hz: int = 16000) -> np.ndarray:
    """Whole file as ``(samples,)`` float32 mono at ``target_hz`` (downmixed, resampled)."""
    ext = _check_path(path)
    if ext in PYDUB_EXTENSIONS:
        return _read_with_pydub(path, target_hz)
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio ({_first_line(exc)}); check the file or convert it to WAV") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: file has no audio samples")
    _check_finite(path, data, 0.0, rate)
    return resample(to_mono_float(data), rate, target_hz)


def iter_audio_blocks(path: str, target_hz: int = 16000, block_s: float = 10.0) -> Iterator[np.ndarray]:
    """Yield ``(samples,)`` float32 mono blocks at ``target_hz``, reading ``block_s`` at a time so
    long files use constant memory. Formats that need ffmpeg are decoded whole."""
    ext = _check_path(path)
    if ext in PYDUB_EXTENSIONS:
        yield _read_with_pydub(path, target_hz)
        return
    try:
        f = sf.SoundFile(path)
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio ({_first_line(exc)}); check the file or convert it to WAV") from None
    with f:
        rate = f.samplerate
        resampler = None if rate == target_hz else soxr.ResampleStream(rate, target_hz, 1, dtype="float32")
        blocksize = max(1, int(block_s * rate))
        total = 0
        try:
            while True:
                data = f.read(blocksize, dtype="float32", always_2d=True)
                last = data.shape[0] < blocksize
                _check_finite(path, data, total / rate, rate)
                mono = to_mono_float(data)
                total += len(mono)
                out = mono if resampler is None else resampler.resample_chunk(mono, last=last)
                if len(out):
                    yield out.astype(np.float32)
                if last:
                    break
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError(f"{path}: audio data is corrupt after {total / rate:.1f} s ({_first_line(exc)})") from None
        if total == 0:
            raise AudioError(f"{path}: file has no audio samples")


def audio_duration_s(path: str) -> float | None:
    """Duration from the header, or None when the header does not say."""
    try:
        return float(sf.info(path).duration)
    except Exception:
        return None


def write_wav_atomic(path: str, audio: np.ndarray, rate_hz: int = 16000) -> None:
    """Write 16-bit PCM WAV through a temporary file, so a crash never leaves half a file. A failed write
    (a full disk, a folder gone or read-only) is an OSError, as for any other file, not soundfile's own error."""
    with atomic_path(path) as tmp:
        try:
            sf.write(tmp, np.clip(np.asarray(audio, np.float32), -1.0, 1.0), rate_hz, subtype="PCM_16", format="WAV")
        except sf.SoundFileError as exc:
            raise OSError(f"cannot write {path} ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
