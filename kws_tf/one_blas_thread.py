"""Imported first by the command-line tools, before numpy: one BLAS thread per process.

The runtime's matrix products are small (a log-mel block, a word window); numpy's threaded OpenBLAS
spends more time waking threads than multiplying, and with one worker process per core (transcribe
``--jobs``, evaluate) it made log-mel ~8x slower on a busy 2-core machine. A value the user has set wins.
"""

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
