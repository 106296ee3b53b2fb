"""Import TensorFlow once, without the C++ start-up chatter it writes straight to file descriptor 2.

TensorFlow prints oneDNN/CUDA notes before its logging is configured, so TF_CPP_MIN_LOG_LEVEL cannot
silence them. During the import and device discovery, fd 2 goes to a temporary file; lines that are
not known start-up notes are written back to stderr afterwards, so real errors are never hidden.
"""

from __future__ import annotations

import os
import sys
import tempfile

_NOISE = ("I0000 ", "W0000 ", "E0000 ", "WARNING: All log messages before absl::InitializeLog()")


def import_tensorflow():
    """The ``tensorflow`` module, imported and with its devices discovered, quietly."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not line.startswith(_NOISE):
                    print(line, file=sys.stderr)
    return tf
