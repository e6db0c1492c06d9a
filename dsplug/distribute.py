"""Choosing a tf.distribute strategy for training, and who writes the run directory.

``train.distribute``:

* ``none``: the default strategy (one device);
* ``mirrored``: :class:`tf.distribute.MirroredStrategy` over the visible GPUs (or the logical
  devices configured by the caller);
* ``multiworker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`, cluster from
  ``TF_CONFIG``, else from SLURM's variables (:class:`SlurmClusterResolver`);
* ``auto``: mirrored when more than one GPU is visible, else none.

Only the chief writes the run directory; other workers write into a scratch folder that is
removed at the end.
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from dsplug.errors import TrainError

logger = logging.getLogger(__name__)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy for ``train.distribute`` (see the module docstring)."""
    if name == "auto":
        name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "none"
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        if not gpus and len(cpus) > 1:  # logical CPU devices (tests, CPU-only hosts)
            return tf.distribute.MirroredStrategy(devices=[d.name for d in cpus])
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if os.environ.get("TF_CONFIG"):
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        elif os.environ.get("SLURM_JOB_ID"):
            resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        else:
            raise TrainError(
                "train.distribute: multiworker needs a cluster: set TF_CONFIG on every worker or "
                "run under SLURM (srun); for one machine use mirrored"
            )
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    raise TrainError(f"train.distribute: unknown strategy {name!r}; use auto, none, mirrored or multiworker")


def input_pipelines(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """``(workers, index)``: how many processes read input under ``strategy``, and which one this is.

    One (index 0) except under ``multiworker``, where every chief and worker task reads its own
    share of the input (the chief is 0, then the workers in order), as tf.data's auto-sharding
    numbers them.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().jobs:
        return 1, 0
    spec = resolver.cluster_spec()
    jobs = [job for job in ("chief", "worker") if job in spec.jobs]
    count = sum(spec.num_tasks(job) for job in jobs)
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    index = task_id + (spec.num_tasks("chief") if task_type == "worker" and "chief" in jobs else 0)
    return count, index


def chief_from_environment() -> bool:
    """True unless ``TF_CONFIG`` or SLURM names this process a non-chief worker.

    The chief is the ``chief`` task, or worker 0 of a cluster without one, or SLURM rank 0.
    """
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task")
    if task:
        if task.get("type") == "chief":
            return True
        return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in config.get("cluster", {})
    if os.environ.get("SLURM_PROCID") is not None and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return os.environ["SLURM_PROCID"] == "0"
    return True
