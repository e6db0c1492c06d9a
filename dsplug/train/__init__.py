"""The training methods: fine-tuning in two phases (:mod:`dsplug.train.finetune`) and the linear
probe on frozen features (:mod:`dsplug.train.probe`).

>>> from dsplug.train import Trainer  # doctest: +SKIP
>>> from dsplug.train.probe import fit_head  # doctest: +SKIP
"""

from dsplug.train.finetune import (
    OPTIMIZERS,
    Trainer,
    TrainResult,
    epoch_order,
    per_sample_loss,
    sample_weights,
    write_history,
)

__all__ = ["OPTIMIZERS", "TrainResult", "Trainer", "epoch_order", "per_sample_loss", "sample_weights", "write_history"]
