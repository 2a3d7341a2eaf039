"""PocketSphinx as the peer recognizer: its bundled en-us model restricted by JSGF grammars to our
vocabulary, run on the same clips and sentences (numpy and the optional ``pocketsphinx`` package,
imported only when used; ``pip install pocketsphinx==5.1.1``)."""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from kws_tf.dataset import CORE_WORDS
from kws_tf.evaluate import metrics
from kws_tf.evaluate.streams import SR, Sentence, WordBank

log = logging.getLogger(__name__)

PEERS = ("pocketsphinx",)


class PeerError(Exception):
    """The peer cannot run (not installed, words missing from its dictionary); one-line message."""


class PocketSphinx:
    """PocketSphinx with two grammars: one word of ``words`` (clips, default decoder settings) and any
    sequence of ``words`` plus the keyword (sentences). The loop grammar is decoded in one pass
    (``fwdflat`` and ``bestpath`` off): with its default second passes a 10 s sentence took ~50 s
    here, in one pass ~1 s, with about the same transcripts.

    Raises:
        PeerError: pocketsphinx is not installed, or a word is not in its pronunciation dictionary.
    """

    def __init__(self, words: list[str], keyword: str) -> None:
        try:
            import pocketsphinx
            from pocketsphinx import Decoder, get_model_path
        except ImportError:
            raise PeerError("--compare pocketsphinx needs the pocketsphinx package: pip install pocketsphinx==5.1.1") from None
        self.version = getattr(pocketsphinx, "__version__", None) or _dist_version("pocketsphinx")
        model = {"hmm": get_model_path("en-us/en-us"), "dict": get_model_path("en-us/cmudict-en-us.dict"),
                 "samprate": SR, "loglevel": "FATAL"}
        self._clips = Decoder(**model)
        self._loop = Decoder(**model, fwdflat=False, bestpath=False)
        missing = [w for w in {*words, keyword} if self._clips.lookup_word(w) is None]
        if missing:
            raise PeerError(f"pocketsphinx has no pronunciation for {', '.join(sorted(missing))}")
        self.words, self.keyword = list(words), keyword
        loop = sorted({*words, keyword})
        self._clips.add_jsgf_string("word", f"#JSGF V1.0;\ngrammar word;\npublic <w> = {' | '.join(self.words)};\n")
        self._clips.activate_search("word")
        self._loop.add_jsgf_string("loop", f"#JSGF V1.0;\ngrammar loop;\npublic <s> = <w>*;\n<w> = {' | '.join(loop)};\n")
        self._loop.activate_search("loop")

    @staticmethod
    def _decode(decoder, audio: np.ndarray) -> list[str]:
        pcm = np.round(np.clip(np.asarray(audio, np.float32), -1.0, 32767 / 32768) * 32768).astype(np.int16)
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr.split() if hyp is not None and hyp.hypstr else []

    def classify(self, audio: np.ndarray) -> str:
        """The word of a one-word clip (``""`` when it recognizes nothing); ``(samples,)`` float32 16 kHz."""
        words = self._decode(self._clips, audio)
        return words[0] if words else ""

    def transcribe(self, audio: np.ndarray) -> list[str]:
        """Every vocabulary word and keyword it hears in ``(samples,)`` float32 16 kHz audio."""
        return self._decode(self._loop, audio)


def _dist_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def evaluate_pocketsphinx(bank: WordBank, labels: list[str], keyword: str, items: list[Sentence],
                          progress: bool = True, position: int = 0) -> dict:
    """PocketSphinx on the same clean clips and the first ``len(items)`` sentences.

    Its gated transcript is what follows the first keyword it hears (empty without one), so WER, gate
    recall and false gates mean the same as for our models.
    """
    from tqdm import tqdm

    peer = PocketSphinx(labels, keyword)
    idx = bank.indices(vocabulary=set(labels))
    truth = [str(w) for w in bank.words[idx]]
    predicted = []
    start = time.perf_counter()
    for i in tqdm(idx, desc="pocketsphinx words", unit="clip", file=sys.stderr, position=position, leave=False, disable=not progress, mininterval=1.0):
        predicted.append(peer.classify(bank.audio[i]))
    clip_ms = 1000.0 * (time.perf_counter() - start) / max(len(idx), 1)
    words = metrics.word_accuracy(truth, predicted, labels, [w for w in CORE_WORDS if w in labels])
    refs, hyps, hits, neg, neg_words, busy, audio_s = [], [], [], 0, 0, 0.0, 0.0
    for s in tqdm(items, desc="pocketsphinx sentences", unit="sentence", file=sys.stderr, position=position, leave=False, disable=not progress, mininterval=1.0):
        t0 = time.perf_counter()
        heard = peer.transcribe(s.mixture.audio)
        busy += time.perf_counter() - t0
        audio_s += len(s.mixture.audio) / SR
        gated = heard[heard.index(keyword) + 1:] if keyword in heard else None
        if s.has_keyword:
            refs.append(s.reference)
            hyps.append([w for w in gated or [] if w != keyword])
            hits.append(gated is not None)
        else:
            neg += gated is not None
            neg_words += len(gated or [])
    sent = metrics.word_error_rate(refs, hyps)
    sent.update({"with_keyword": len(refs), "without_keyword": len(items) - len(refs),
                 "gate_recall": float(np.mean(hits)) if hits else None,
                 "false_gate_rate": neg / (len(items) - len(refs)) if len(items) > len(refs) else None,
                 "words_without_keyword": neg_words})
    return {"name": "pocketsphinx", "version": peer.version, "words": words, "sentences": sent,
            "speed": {"clip_ms": clip_ms, "sentence_rtf": busy / audio_s if audio_s else None}}
