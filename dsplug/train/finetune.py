"""Two-phase fine-tuning with the SapAugment policy, checkpoints, early stopping and resume.

Phase 1 trains the head with the backbone frozen (BatchNorm in inference mode). Phase 2
unfreezes the top ``train.phase2.finetune_layers`` backbone layers and continues at a tenth of
the learning rate. After every epoch the devel UAR (file level) is measured; the best weights
are kept (``checkpoints/best-NNNN.*``, a TensorFlow checkpoint) and restored at the end. The last state is saved
every epoch so an interrupted run resumes where it stopped.

Each training step with augmentation: per-sample losses are computed on the clean batch
(inference mode), the policy turns their ranks into strengths, the augmentations run on the
normalised images, and the gradient step is taken on the augmented batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tensorflow as tf
import tf_keras

from dsplug.artifacts import csv_text, read_json, write_atomic, writing
from dsplug.data import MEMORY_LIMIT, ChunkSource, LabelledChunks, cached_features, indexed_dataset
from dsplug.distribute import input_pipelines
from dsplug.errors import TrainError
from dsplug.evaluate import selection_score
from dsplug.pipeline import Pipeline, predict_batches
from dsplug.recipe.schema import TrainConfig
from dsplug.task import Task

logger = logging.getLogger(__name__)

Balance = Literal["none", "oversample", "class_weights"]

#: BatchNormalization momentum used when a backbone is trained from random initialisation.
RANDOM_INIT_BN_MOMENTUM = 0.9

OPTIMIZERS: dict[str, Callable[..., Any]] = {
    "adadelta": tf_keras.optimizers.Adadelta,
    "adam": tf_keras.optimizers.Adam,
    "adamw": tf_keras.optimizers.AdamW,
    "sgd": tf_keras.optimizers.SGD,
    "rmsprop": tf_keras.optimizers.RMSprop,
    "nadam": tf_keras.optimizers.Nadam,
    "adagrad": tf_keras.optimizers.Adagrad,
}


@dataclasses.dataclass
class TrainResult:
    """What training produced: the per-epoch history and where the best epoch was."""

    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    phase2_start: int


def per_sample_loss(task: Task, targets: tf.Tensor, outputs: tf.Tensor, *, label_smoothing: float) -> tf.Tensor:
    """The task's loss of each sample, shape (batch,)."""
    return Task(task).loss(label_smoothing=label_smoothing, reduction="none")(targets, outputs)


def sample_weights(targets: np.ndarray, *, balance: Balance, task: Task, counts: np.ndarray | None = None) -> np.ndarray:
    """Loss weights: 1, or inverse class frequency (in chunks) with ``balance="class_weights"``.

    Parameters
    ----------
    targets : np.ndarray [shape=(n, k)]
        One-hot targets (classification) or other targets (then all weights are 1), one row per
        chunk, or one per file with ``counts``.
    balance : {"none", "oversample", "class_weights"}
        ``data.balance`` of the recipe.
    task : Task
        Class weights apply where each item has one class (:attr:`Task.exclusive`).
    counts : np.ndarray [shape=(n,)], optional
        Chunks each row stands for (its file's chunks); default 1 each.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
        The weight of each row (of each of its chunks).
    """
    if balance != "class_weights" or not Task(task).exclusive:
        return np.ones(len(targets), np.float32)
    counts = np.ones(len(targets)) if counts is None else np.asarray(counts, np.float64)
    per_class_chunks = counts @ targets
    per_class = counts.sum() / (len(per_class_chunks) * np.maximum(per_class_chunks, 1))
    return (targets @ per_class).astype(np.float32)


def epoch_order(targets: np.ndarray, *, seed: int, balance: Balance, task: Task, epoch: int) -> np.ndarray:
    """Chunk indices of one epoch: a seeded shuffle, oversampled with ``balance="oversample"``.

    Parameters
    ----------
    targets : np.ndarray [shape=(n, k)]
        Training targets.
    seed, epoch : int
        The order depends on both (every epoch differs, every run repeats).
    balance : {"none", "oversample", "class_weights"}
        With ``oversample`` every class is drawn as often as the largest one.
    task : Task
        Oversampling applies where each item has one class (:attr:`Task.exclusive`).
    """
    rng = np.random.default_rng([seed, epoch])
    n = len(targets)
    if balance == "oversample" and Task(task).exclusive:
        labels = targets.argmax(axis=1)
        largest = np.bincount(labels).max()
        parts = [rng.choice(np.flatnonzero(labels == c), largest, replace=True) for c in np.unique(labels)]
        index = np.concatenate(parts)
        return index[rng.permutation(len(index))]
    return rng.permutation(n)


class Trainer:
    """Runs both phases on a built :class:`~dsplug.pipeline.Pipeline`.

    The trainer gets its own configuration and ready objects; the orchestration
    (:mod:`dsplug.workflows.run`) loads the plugins and builds the policy from the recipe.

    Parameters
    ----------
    config : TrainConfig
        The recipe's ``train`` section.
    pipeline : Pipeline
        The model parts.
    task : Task or its name
        What the outputs mean (the loss, the devel score and class balancing follow from it).
    checkpoints : path
        Folder for ``state.json``, the last and the best weights (resume reads it), and, while
        phase 1 runs on chunks on disk, its cached features (``features/``).
    augmentations : sequence of dsplug.plugin.Augmentation
        Image augmentations in the order they run (empty: none).
    policy : SapAugmentPolicy, optional
        Turns per-sample loss ranks into augmentation strengths; required with augmentations.
    seed : int
        Seeds the epoch order and the augmentations.
    balance : {"none", "oversample", "class_weights"}
        Class balancing of the training chunks.
    pretrained : bool
        The backbone starts from pretrained weights (phase 2 then keeps BatchNorm frozen).
    progress : callable, optional
        ``progress(total, description)`` returning a context manager that yields an
        ``update(done)`` function (the CLI draws a bar with it).
    strategy : tf.distribute.Strategy, optional
        Data parallelism (the pipeline must have been built in its scope). Each step's global
        batch is ``batch_size x replicas``; every replica ranks its own samples for SapAugment;
        losses are weighted so the replicas' sums add up to the global batch's weighted mean.
    """

    def __init__(
        self,
        *,
        config: TrainConfig,
        pipeline: Pipeline,
        task: Task | str,
        checkpoints: str | Path,
        augmentations: Sequence[Any] = (),
        policy: Any = None,
        seed: int = 0,
        balance: Balance = "none",
        pretrained: bool = True,
        progress: Any = None,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        if augmentations and pipeline.input_kind != "image":
            raise TrainError(
                f"augment.methods: image augmentations ({', '.join(a.name or type(a).__name__ for a in augmentations)}) "
                "do not apply to a raw-audio backbone; set augment.policy: none"
            )
        if augmentations and policy is None:
            raise TrainError("augmentations need a policy that sets their strengths (augment.policy: sapaugment)")
        self.config = config
        self.pipeline = pipeline
        self.task = Task(task)
        self.seed = seed
        self.balance = balance
        self.pretrained = pretrained
        self.augmentations = list(augmentations)
        self.policy = policy if self.augmentations else None
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self.global_batch = config.batch_size * self.replicas
        self.ckpt_dir = Path(checkpoints)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress

    # ------------------------------------------------------------------ set-up
    def _lr(self, lr: float) -> float:
        """The learning rate used: ``lr x replicas`` with ``train.scale_lr`` (linear scaling rule)."""
        return lr * self.replicas if self.config.scale_lr and self.replicas > 1 else lr

    def _optimizer(self, lr: float) -> tf_keras.optimizers.Optimizer:
        with self.strategy.scope():
            optimizer = OPTIMIZERS[self.config.optimizer](learning_rate=self._lr(lr))
            if self.config.mixed_precision:
                optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
        return optimizer

    def _phases(self) -> list[dict[str, Any]]:
        t = self.config
        lr2 = t.phase2.lr if t.phase2.lr is not None else t.lr * t.phase2.lr_factor
        return [
            {"phase": 1, "epochs": t.phase1.epochs, "lr": t.phase1.lr or t.lr},
            {"phase": 2, "epochs": t.phase2.epochs, "lr": lr2},
        ]

    def _set_trainable(self, phase: int) -> int:
        from dsplug.backbones.base import unfreeze_top

        backbone = self.pipeline.backbone
        if phase == 1:
            backbone.trainable = False
            return 0
        layers = self.config.phase2.finetune_layers
        pretrained = self.pretrained
        amount: int | float = 1.0 if layers == "all" else int(layers) if layers >= 1 or layers == 0 else float(layers)
        count = unfreeze_top(backbone, layers=amount, freeze_batchnorm=pretrained)
        if not pretrained:
            # Random init: BatchNormalization statistics must be learnt from scratch. Keras'
            # momenta (0.99-0.999) would leave the inference-time moving averages near their
            # initial values after the few hundred steps of a small dataset.
            for layer in backbone.submodules:
                if isinstance(layer, tf_keras.layers.BatchNormalization):
                    layer.momentum = min(layer.momentum, RANDOM_INIT_BN_MOMENTUM)
        logger.info("phase 2: %d backbone layers trainable", count)
        return count

    # ------------------------------------------------------------------ steps
    def _distributed(self, replica_step: Callable[..., tf.Tensor]) -> Callable[..., tf.Tensor]:
        """Run ``replica_step`` on every replica and sum the replicas' losses."""
        strategy = self.strategy

        def step(*args: tf.Tensor) -> tf.Tensor:
            losses = strategy.run(replica_step, args=args)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

        return tf.function(step, reduce_retracing=True, jit_compile=self.config.xla or None)

    @staticmethod
    def _scaled(optimizer: tf_keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
        """The loss to differentiate (scaled under mixed precision); call inside the tape."""
        if isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
            return optimizer.get_scaled_loss(loss)
        return loss

    def _apply(self, optimizer: tf_keras.optimizers.Optimizer, tape: tf.GradientTape, scaled: tf.Tensor, variables: list[tf.Variable]) -> None:
        grads = tape.gradient(scaled, variables)
        if isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
            grads = optimizer.get_unscaled_gradients(grads)
        optimizer.apply_gradients(zip(grads, variables))

    def _train_step(self, optimizer: tf_keras.optimizers.Optimizer) -> Callable[..., tf.Tensor]:
        pipeline, policy, augs = self.pipeline, self.policy, self.augmentations
        task, smoothing = self.task, self.config.label_smoothing
        fill = tf.constant(pipeline.fill_value)
        model = pipeline.classifier

        def replica_step(audio: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
            images = tf.cast(pipeline.frontend(audio, training=False), tf.float32)
            if policy is not None:  # ranks the samples of this replica's batch
                clean = per_sample_loss(task, targets, model(images, training=False), label_smoothing=smoothing)
                images, targets = policy.apply(images, targets, clean, augmentations=augs, fill_value=fill, seed=seed)
            return self._gradient_step(optimizer, model=model, inputs=images, targets=targets, weights=weights)

        return self._distributed(replica_step)

    def _feature_step(self, optimizer: tf_keras.optimizers.Optimizer) -> Callable[..., tf.Tensor]:
        head = self.pipeline.head

        def replica_step(features: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
            return self._gradient_step(optimizer, model=head, inputs=features, targets=targets, weights=weights)

        return self._distributed(replica_step)

    def _gradient_step(
        self, optimizer: tf_keras.optimizers.Optimizer, *, model: tf_keras.Model, inputs: tf.Tensor, targets: tf.Tensor,
        weights: tf.Tensor,
    ) -> tf.Tensor:
        """One optimiser step of ``model`` on a replica's batch; returns the weighted loss (a scalar)."""
        with tf.GradientTape() as tape:
            outputs = tf.cast(model(inputs, training=True), tf.float32)
            losses = per_sample_loss(self.task, targets, outputs, label_smoothing=self.config.label_smoothing)
            loss = tf.reduce_sum(losses * weights)
            scaled = self._scaled(optimizer, loss)
        self._apply(optimizer, tape, scaled, model.trainable_variables)
        return loss

    def extractor(self) -> Callable[[np.ndarray], np.ndarray]:
        """Frozen-backbone features of audio chunks (inference mode): float32 ``(b, samples)`` ->
        ``(b, h, w, channels)``."""
        backbone, frontend = self.pipeline.backbone, self.pipeline.frontend
        extract = tf.function(lambda x: backbone(frontend(x, training=False), training=False), reduce_retracing=True)
        return lambda audio: extract(tf.constant(audio)).numpy()

    def features(self, source: ChunkSource) -> ChunkSource:
        """Phase 1's cache: frozen-backbone features of every chunk of ``source``, computed once.

        In memory for chunks in memory; for chunks on disk, shard-aligned feature files in
        ``checkpoints/features`` (a resumed run computes only the shards it has not finished;
        the folder is removed when phase 1 ends), read into memory if they fit
        :data:`~dsplug.data.MEMORY_LIMIT` and one process trains. See :func:`dsplug.data.cached_features`.
        """
        context = self.progress(total=len(source), description="phase 1 features") if self.progress else contextlib.nullcontext(None)
        with context as update:
            # several workers each read their share of the feature files; one process may keep small ones in memory
            limit = 0 if input_pipelines(self.strategy)[0] > 1 else MEMORY_LIMIT
            return cached_features(source, extract=self.extractor(), folder=self.ckpt_dir / "features", batch_size=self.config.batch_size,
                                   progress=update, memory_limit=limit)

    def _caches_features(self, train: LabelledChunks, *, epochs: int) -> bool:
        """Phase 1 trains on cached features: no augmentation, ``train.cache_features``, and
        every chunk is read at least once (a phase capped by ``train.steps_per_epoch`` that reads
        fewer would spend longer on the cache than on training)."""
        if self.policy is not None or not self.config.cache_features:
            return False
        cap = self.config.steps_per_epoch
        if cap is not None and epochs * cap * self.global_batch < len(train):
            logger.info(
                "phase 1 reads %d of %d chunks (%d epoch(s) of train.steps_per_epoch %d): features are computed "
                "in every step, not cached", epochs * cap * self.global_batch, len(train), epochs, cap,
            )
            return False
        return True

    # ------------------------------------------------------------------ state
    def _save_state(self, state: dict[str, Any], checkpoint: tf.train.Checkpoint) -> None:
        """Write the weights under a new prefix, then ``state.json`` pointing at it (atomically).

        ``state.json`` is the commit point: a process killed at any moment leaves the previous
        state and its checkpoint intact. Older prefixes are removed afterwards.
        """
        prefix = f"last-{len(state['history']):04d}-{state['phase']}"
        self._write(checkpoint, prefix)
        state["checkpoint"] = prefix
        write_atomic(self.ckpt_dir / "state.json", json.dumps(state, indent=1))
        best = state.get("best_checkpoint")
        for old in [*self.ckpt_dir.glob("last-*"), *self.ckpt_dir.glob("best-*")]:
            if not old.name.startswith((prefix + ".", f"{best}.")):
                old.unlink(missing_ok=True)

    def _load_state(self, recipe_hash: str) -> dict[str, Any] | None:
        path = self.ckpt_dir / "state.json"
        if not path.is_file():
            return None
        fix = f"delete {self.ckpt_dir} to train from the start"
        state = read_json(path, error=TrainError, fix=fix)
        keys = ("recipe_hash", "phase", "epoch_in_phase", "history", "best_score", "best_epoch", "done")
        if not isinstance(state, dict) or any(key not in state for key in keys):
            raise TrainError(f"{path} is not a dsplug training state (damaged?); {fix}")
        if state.get("recipe_hash") != recipe_hash:
            raise TrainError(
                f"{self.ckpt_dir} holds checkpoints of a different recipe; use another --out "
                "directory or delete the old run"
            )
        prefix = state.get("checkpoint")
        if state["history"] and not (prefix and (self.ckpt_dir / f"{prefix}.index").is_file()):
            raise TrainError(f"{path} names the checkpoint {prefix!r}, which is missing; {fix}")
        return state

    def _restore(self, state: dict[str, Any], *, model_only: bool, checkpoint: tf.train.Checkpoint) -> None:
        """Load the last saved weights (and the optimizer's state within a phase)."""
        target = tf.train.Checkpoint(model=self.pipeline.classifier) if model_only else checkpoint
        self._read(target, state["checkpoint"])

    def _read(self, target: tf.train.Checkpoint, prefix: str) -> None:
        try:
            target.read(str(self.ckpt_dir / prefix)).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError, IndexError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise TrainError(
                f"the checkpoint {self.ckpt_dir / prefix} is damaged or does not fit this "
                f"model ({type(err).__name__}); delete {self.ckpt_dir} to train from the start"
            ) from err

    def _save_best(self, state: dict[str, Any], epoch: int) -> None:
        """Save the best weights under a new prefix; ``state.json``, written next, is the commit point."""
        prefix = f"best-{epoch:04d}"
        self._write(tf.train.Checkpoint(model=self.pipeline.classifier), prefix)
        state["best_checkpoint"] = prefix

    def _write(self, checkpoint: tf.train.Checkpoint, prefix: str) -> None:
        """Write ``checkpoint`` under ``prefix``; on any error its files and ``_temp`` folder are removed."""
        with writing(self.ckpt_dir / prefix, leftovers=lambda: self.ckpt_dir.glob(f"{prefix}[._]*")):
            checkpoint.write(str(self.ckpt_dir / prefix))

    def _reseed(self, epoch: int) -> None:
        """Seed every random layer (Dropout, stochastic depth) from the run's seed and ``epoch``.

        Keras' layers draw from a generator whose state lives in the process: a resumed run would
        draw other dropout masks than the run left alone. Each epoch therefore starts every such
        layer's generator from ``(seed, epoch, layer)``, so an epoch's masks depend on nothing
        that a kill loses. (With several replicas the layers keep Keras' own generators.)
        """
        if self.replicas > 1:
            return
        layers = [layer for layer in self.pipeline.classifier.submodules if getattr(layer, "_random_generator", None) is not None]
        for number, layer in enumerate(layers):
            generator = layer._random_generator
            if generator._rng_type == generator.RNG_LEGACY_STATEFUL:  # process-state draws: use a resettable generator
                generator._rng_type, generator._built = generator.RNG_STATEFUL, False
            generator._maybe_init()  # falls back to the legacy draws where a generator cannot work
            if generator._generator is not None:
                generator._generator.reset_from_seed(int(np.random.SeedSequence([self.seed, epoch, number]).generate_state(1)[0]))

    # ------------------------------------------------------------------ fit
    def fit(self, train: LabelledChunks, devel: LabelledChunks | None, *, recipe_hash: str) -> TrainResult:
        """Train both phases; select the best epoch on ``devel`` (last epoch without devel).

        The state after every epoch (history, best score, early-stopping counter, weights and
        optimizer) is saved, so a run killed at any point and started again continues exactly
        where the last completed epoch left it.

        Raises
        ------
        TrainError
            The saved state belongs to another recipe, or it or its checkpoint is damaged.
        """
        config = self.config
        weights = sample_weights(train.file_rows, balance=self.balance, task=self.task, counts=train.chunks_per_file())
        saved = self._load_state(recipe_hash)
        resume = bool(saved and saved["history"])  # restore the saved weights once, then train on
        state = saved or {
            "recipe_hash": recipe_hash, "phase": 1, "epoch_in_phase": 0, "history": [],
            "best_score": -np.inf, "best_epoch": 0, "done": False, "stale": 0,
        }
        if state["done"]:
            logger.info("training already finished in %s; reusing it", self.ckpt_dir)
        history: list[dict[str, Any]] = state["history"]
        phase2_start = sum(1 for h in history if h["phase"] == 1)
        for spec in self._phases():
            phase, epochs = spec["phase"], spec["epochs"]
            if state["done"] or phase < state["phase"] or epochs == 0:
                continue
            self._set_trainable(phase)
            optimizer = self._optimizer(spec["lr"])
            checkpoint = tf.train.Checkpoint(model=self.pipeline.classifier, optimizer=optimizer)
            if resume:
                # within a phase: weights and optimizer; at a phase's start: the weights only
                self._restore(state, model_only=state["epoch_in_phase"] == 0, checkpoint=checkpoint)
                logger.info("resuming phase %d after epoch %d", phase, state["epoch_in_phase"])
                resume = False
            cached = phase == 1 and state["epoch_in_phase"] < epochs and self._caches_features(train, epochs=epochs)
            step = self._feature_step(optimizer) if cached else self._train_step(optimizer)
            inputs = self.features(train.source) if cached else train.source
            for epoch in range(state["epoch_in_phase"] + 1, epochs + 1):
                if config.early_stopping and devel is not None and state.get("stale", 0) >= config.early_stopping:
                    break
                global_epoch = len(history) + 1
                start = time.perf_counter()
                self._reseed(global_epoch)
                loss = self._epoch(step, inputs, train, weights, global_epoch, f"phase {phase} epoch {epoch}/{epochs}")
                row: dict[str, Any] = {"epoch": global_epoch, "phase": phase, "lr": self._lr(spec["lr"]), "loss": loss}
                if devel is not None:
                    outputs = predict_batches(self.pipeline.end_to_end, devel.source, batch_size=config.batch_size)
                    row["devel_loss"] = float(np.mean(per_sample_loss(self.task, devel.targets, outputs, label_smoothing=0.0)))
                    row["devel_score"] = selection_score(self.task, devel, outputs)
                row["seconds"] = time.perf_counter() - start
                history.append(row)
                score = row.get("devel_score", global_epoch)  # without devel: the last epoch
                if score > state["best_score"]:
                    state.update(best_score=score, best_epoch=global_epoch, stale=0)
                    self._save_best(state, global_epoch)
                else:
                    state["stale"] = state.get("stale", 0) + 1
                logger.info("epoch %d (phase %d): %s", global_epoch, phase, _fmt(row))
                state.update(phase=phase, epoch_in_phase=epoch, history=history)
                self._save_state(state, checkpoint)
            if config.early_stopping and devel is not None and state.get("stale", 0) >= config.early_stopping:
                logger.info("early stopping: no devel gain for %d epochs", state["stale"])
            if phase == 1:
                phase2_start = len(history)
            state.update(phase=phase + 1, epoch_in_phase=0, stale=0)
            self._save_state(state, checkpoint)
            shutil.rmtree(self.ckpt_dir / "features", ignore_errors=True)  # phase 1's cache is not read again
        state["done"] = True
        self._save_state(state, tf.train.Checkpoint(model=self.pipeline.classifier))
        if state.get("best_checkpoint"):
            self._read(tf.train.Checkpoint(model=self.pipeline.classifier), state["best_checkpoint"])
        return TrainResult(history, int(state["best_epoch"]), float(state["best_score"]), phase2_start)

    def _epoch(self, step: Callable[..., tf.Tensor], inputs: ChunkSource, train: LabelledChunks, weights: np.ndarray, epoch: int, label: str) -> float:
        steps = self.steps(len(self._order(train, epoch=epoch)) if self._oversamples else len(inputs))
        workers, index = input_pipelines(self.strategy)
        if workers > 1 and not inputs.in_memory:
            share = inputs.worker_shards(workers=workers, index=index, seed=self.seed, epoch=epoch)
            names = ", ".join(s.name for s in share[:20]) + (f", ... (+{len(share) - 20})" if len(share) > 20 else "")
            logger.info(
                "worker %d of %d, epoch %d: reads %d of %d shard files (%d chunks): %s; %d steps",
                index, workers, epoch, len(share), len(inputs.shards), sum(s.records for s in share), names, steps,
            )
        batches = self.strategy.experimental_distribute_dataset(self.batches(inputs, train, weights, epoch=epoch))
        losses = []
        context = self.progress(total=steps, description=label) if self.progress else contextlib.nullcontext(lambda done: None)
        with context as update:
            for number, (x, y, w) in zip(range(1, steps + 1), batches):  # range first: no batch read past the last step
                seed = tf.constant([self.seed, epoch * 100003 + number], dtype=tf.int32)
                losses.append(float(step(x, y, w, seed)))
                update(number)
        return float(np.mean(losses))

    @property
    def _oversamples(self) -> bool:
        return self.balance == "oversample" and self.task.exclusive

    def _order(self, train: LabelledChunks, *, epoch: int) -> np.ndarray:
        return epoch_order(train.targets, seed=self.seed, balance=self.balance, task=self.task, epoch=epoch)

    def steps(self, chunks: int) -> int:
        """Global steps of an epoch over ``chunks`` chunks: one per global batch, at most
        ``train.steps_per_epoch``. Every worker takes this many (their shares of the shard files
        may differ by one file; a worker whose share ends first reads it again from its start)."""
        steps = -(-chunks // self.global_batch)
        return min(steps, self.config.steps_per_epoch) if self.config.steps_per_epoch else steps

    def batches(self, inputs: ChunkSource, train: LabelledChunks, weights: np.ndarray, *, epoch: int) -> tf.data.Dataset:
        """One epoch of global batches ``(inputs, targets, loss shares)``, seeded, read in the background.

        The chunks come from ``inputs.dataset`` (in memory: a permutation; on disk: shard files
        interleaved through a shuffle buffer), or, with ``balance: oversample``, in the oversampled
        order of :func:`epoch_order` (read chunk by chunk). A chunk's target and loss weight are its
        file's, gathered per batch; each batch's loss weights are normalised to sum to 1, so the
        replicas' loss sums add up to the global batch's weighted mean. With several workers, chunks
        in memory are shared by batches (DATA sharding), chunks on disk by shard file (FILE
        sharding: every worker reads only its files), repeated so that every worker can take
        :meth:`steps` steps.

        Parameters
        ----------
        inputs : ChunkSource
            Audio chunks ``(n, samples)`` or their cached features ``(n, h, w, channels)``, in
            the chunk order of ``train``.
        train : LabelledChunks
            The chunks' files and targets.
        weights : np.ndarray [shape=(n_files,), dtype=float32]
            Loss weight of each file's chunks (:func:`sample_weights`).
        epoch : int
            Seeds the order (with ``seed``), so every epoch differs and every run repeats.

        Returns
        -------
        tf.data.Dataset
            Elements ``(inputs float32 [b, ...], targets float32 [b, k], shares float32 [b])``.
        """
        size = self.global_batch
        workers, _ = input_pipelines(self.strategy)
        if self._oversamples:
            dataset = indexed_dataset(inputs, self._order(train, epoch=epoch), batch_size=size)
        elif workers > 1 and not inputs.in_memory and len(inputs.shards) < workers:  # too few files to share by file
            dataset = indexed_dataset(inputs, np.random.default_rng([self.seed, epoch]).permutation(len(inputs)), batch_size=size)
        else:
            dataset = inputs.dataset(batch_size=size, shuffle=True, seed=self.seed, epoch=epoch)
            if workers > 1 and not inputs.in_memory:
                dataset = dataset.repeat()
        rows = tf.constant(train.file_rows, tf.float32)
        file_of = tf.constant(train.file_index, tf.int64)
        per_file = tf.constant(weights, tf.float32)

        def label(index: tf.Tensor, records: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            files = tf.gather(file_of, index)
            loss_weights = tf.gather(per_file, files)
            return records, tf.gather(rows, files), loss_weights / tf.reduce_sum(loss_weights)

        return dataset.map(label, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _fmt(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k not in ("epoch", "phase"))


def write_history(path: str | Path, history: list[dict[str, Any]]) -> None:
    """Write the per-epoch history as CSV, atomically (a crash mid-write keeps the previous file)."""
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    write_atomic(path, csv_text(history, columns=keys))
