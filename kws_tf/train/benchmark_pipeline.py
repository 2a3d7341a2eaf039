"""Input pipeline vs training step: examples/s that each tf.data pipeline delivers, and examples/s
that a training step of each model consumes, on the same data (the pipeline must not be the bottleneck).

    python -m kws_tf.train.benchmark_pipeline --data-dir ../shared/speech_commands_subset [--preset default] [--batches 20]
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as python -m kws_tf.train

import numpy as np  # noqa: E402

from kws_tf.cli import doc_summary, UsageParser  # noqa: E402
from kws_tf.dataset import V1_WORDS, index_speech_commands, load_clips, load_noise, speech_extent  # noqa: E402


def rate(batches, batch_size: int, n: int) -> float:
    it = iter(batches)
    for _ in range(3):  # warm-up: AUTOTUNE, tracing
        next(it)
    start = time.perf_counter()
    for _ in range(n):
        next(it)
    return n * batch_size / (time.perf_counter() - start)


def step_rate(model, x, y, batch_size: int, n: int) -> float:
    model.train_on_batch(x, y)  # compile + warm-up
    start = time.perf_counter()
    for _ in range(n):
        model.train_on_batch(x, y)
    return n * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(prog="python -m kws_tf.train.benchmark_pipeline", description=doc_summary(__doc__))
    p.add_argument("--data-dir", required=True)
    p.add_argument("--preset", default="default")
    p.add_argument("--batches", type=int, default=20)
    args = p.parse_args(argv)

    import keras

    from kws_tf.train.augment import NoiseBank
    from kws_tf.train.kws_data import kws_dataset
    from kws_tf.train.models import build_kws_model, build_word_model
    from kws_tf.train.presets import load_preset
    from kws_tf.train.word_data import word_train_dataset

    preset = load_preset(args.preset)
    feats = preset.features
    index = index_speech_commands(args.data_dir)
    train = load_clips(index.select("train", V1_WORDS), 16000, progress=False)
    noise, _ = load_noise(index.noise_files)
    labels = np.array([V1_WORDS.index(c.word) for c in train.clips], np.int32)
    results = {}

    wt = preset.words
    ds = word_train_dataset(train.audio, labels, np.zeros(len(labels), bool), n_words=len(V1_WORDS), noise=NoiseBank(noise, 16000),
                            features=feats, word=preset.word_data, batch_size=wt.batch_size, seed=0)
    x, y = next(iter(ds))
    model = build_word_model(input_frames=x.shape[1], n_mels=feats.n_mels, n_classes=len(V1_WORDS) + 1, widths=tuple(wt.widths))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    results["words"] = {"batch_size": wt.batch_size, "pipeline_examples_per_s": rate(ds, wt.batch_size, args.batches),
                        "train_step_examples_per_s": step_rate(model, x, y, wt.batch_size, args.batches)}

    kt, kc = preset.kws, preset.kws_data
    is_kw = np.array([c.word == "stop" for c in train.clips])
    ends = np.array([speech_extent(a)[1] for a in train.audio[is_kw]], np.float32)
    ds = kws_dataset(train.audio[is_kw], ends, train.audio[~is_kw], noise=NoiseBank(noise, kc.clip_samples(feats)), features=feats, kws=kc,
                     batch_size=kt.batch_size, seed=0)
    x, y = next(iter(ds))
    model = build_kws_model(input_frames=x.shape[1], n_mels=feats.n_mels, conv_filters=kt.conv_filters, gru_units=kt.gru_units)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    results["kws"] = {"batch_size": kt.batch_size, "pipeline_examples_per_s": rate(ds, kt.batch_size, args.batches),
                      "train_step_examples_per_s": step_rate(model, x, y, kt.batch_size, max(5, args.batches // 2))}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
