"""kws_tf: keyword-gated, limited-vocabulary speech recognition with Keras and TFLite.

The runtime (this package outside ``kws_tf.train``) needs only numpy, soundfile, soxr, ai-edge-litert and
tqdm (progress bars), plus pydub for M4A files; everything that imports TensorFlow lives in ``kws_tf.train``.
"""

__version__ = "0.1.0"

SAMPLE_RATE_HZ = 16000
