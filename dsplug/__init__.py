"""dsplug: plugin-based on-device audio recognition by transfer learning."""

from __future__ import annotations

import os

# Models are built with tf_keras (Keras 2): tensorflow-model-optimization only supports it.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ start-up noise (CUDA probing, oneDNN notes)

from dsplug.version import __version__

__all__ = ["__version__"]
