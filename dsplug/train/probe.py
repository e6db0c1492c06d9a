"""Linear probe: a regularised logistic-regression head fitted on cached frozen-backbone features.

This is the paper's "Deep Spectrum + SVM" idea inside dsplug. The backbone stays frozen; the pooled
features of every training chunk (and of augmented views of it) are computed once; the head is a
multinomial logistic regression with class-balanced weights on standardised features. Its L2
regularisation ``C`` is chosen by cross-validation over the groups (speakers, characters,
sessions) of the selection data: every fold holds out whole groups, the held-out files' chunk
probabilities are averaged per file, and ``C`` with the best pooled file-level UAR wins (ties go to
the stronger regularisation). A 30-file devel set cannot mislead the choice the way one split can.

The fitted model maps raw features to logits (the standardisation is folded in), so it becomes the
weights of one ordinary Dense layer and the exported TFLite model stays builtin-only.

Examples
--------
>>> fit = select_and_fit(features=x, labels=y, files=f, groups=g, original=o, fit_rows=r,
...                      n_classes=5, cs=(0.01, 0.1, 1.0), folds=5, seed=0)  # doctest: +SKIP
>>> logits = x @ fit.coef + fit.intercept  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.data import LabelledChunks, cached_features
from dsplug.errors import TrainError
from dsplug.recipe.schema import ProbeConfig

logger = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class ProbeFit:
    """A fitted probe and how its regularisation was chosen.

    Attributes
    ----------
    coef : np.ndarray [shape=(features, classes), dtype=float32]
        Raw features -> logits (standardisation folded in).
    intercept : np.ndarray [shape=(classes,), dtype=float32]
    c : float
        The chosen inverse regularisation strength.
    scores : dict of float to float
        Cross-validated file-level UAR of every ``C`` tried (empty without selection).
    selection : str
        How ``C`` was chosen, in words (for the report).
    fit_chunks : int
        Rows (chunks and views) the final head was fitted on.
    seconds : float
        Wall time of the selection and the final fit (not the feature extraction).
    """

    coef: np.ndarray
    intercept: np.ndarray
    c: float
    scores: dict[float, float]
    selection: str
    fit_chunks: int
    seconds: float = 0.0

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Softmax probabilities (n, classes) of features (n, features)."""
        logits = np.asarray(features, np.float64) @ self.coef + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _fit_path(features: np.ndarray, labels: np.ndarray, *, cs: Sequence[float], n_classes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(coef, intercept) on raw features for every C, ascending warm starts.

    The features are standardised; with more features than rows the problem is solved in the row
    space of the standardised rows (exact for an L2 penalty, whose solution lies in that span), which
    is much faster for wide multi-depth features.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    z = (x - mean) / std
    basis = None
    if z.shape[1] > z.shape[0]:
        values, vectors = np.linalg.eigh(z @ z.T)
        keep = values > 1e-10 * values.max()
        basis = z.T @ (vectors[:, keep] / np.sqrt(values[keep]))  # orthonormal basis of the rows
        z = z @ basis
    present = np.unique(labels)
    model = LogisticRegression(class_weight="balanced", max_iter=5000, warm_start=True, solver="newton-cg")
    results = []
    for c in cs:
        model.set_params(C=float(c)).fit(z, labels)
        weights = model.coef_.T if basis is None else basis @ model.coef_.T  # (d, present)
        if len(present) == 2:  # sklearn's binary form: one column for the second class
            weights = np.concatenate([-weights / 2, weights / 2], axis=1)
            bias = np.array([-model.intercept_[0] / 2, model.intercept_[0] / 2])
        else:
            bias = model.intercept_
        coef = np.zeros((x.shape[1], n_classes))
        intercept = np.full(n_classes, -1e4)  # a class absent from this fit is never predicted
        coef[:, present] = weights / std[:, None]
        intercept[present] = bias - mean @ (weights / std[:, None])
        results.append((coef, intercept))
    return results


def _file_uar(probs: np.ndarray, *, files: np.ndarray, labels: np.ndarray) -> float:
    """UAR of files, each scored by the mean of its chunks' probabilities."""
    ids, index = np.unique(files, return_inverse=True)
    totals = np.zeros((len(ids), probs.shape[1]))
    np.add.at(totals, index, probs)
    truth = np.zeros(len(ids), dtype=np.int64)
    truth[index] = labels
    predicted = totals.argmax(axis=1)
    recalls = [np.mean(predicted[truth == k] == k) for k in np.unique(truth)]
    return float(np.mean(recalls))


def _best_c(scores: dict[float, float]) -> float:
    """The ``C`` with the best score; ties go to the stronger regularisation (the smaller ``C``)."""
    best = max(scores.values())
    return min(c for c, score in scores.items() if score >= best - 1e-9)


def _folds(files: np.ndarray, labels: np.ndarray, groups: np.ndarray, *, folds: int, seed: int) -> list[np.ndarray]:
    """Held-out files of each fold: whole groups, classes spread as evenly as the groups allow."""
    from sklearn.model_selection import StratifiedGroupKFold

    ids, first = np.unique(files, return_index=True)
    n_splits = min(folds, len(np.unique(groups[first])))
    counts = np.bincount(labels[first])
    smallest = int(counts[counts > 0].min())
    if smallest < n_splits:
        logger.info("probe: the smallest class has %d files for %d folds: some folds hold none of it", smallest, n_splits)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # scikit-learn's "least populated class" warning: said above, in words
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return [ids[held] for _, held in splitter.split(ids, labels[first], groups[first])]


def select_and_fit(
    *,
    features: np.ndarray,
    labels: np.ndarray,
    fit_rows: np.ndarray,
    n_classes: int,
    cs: Sequence[float],
    **cross_validation: Any,
) -> ProbeFit:
    """Choose ``C`` by grouped cross-validation (:func:`choose_c`), then fit the probe on ``fit_rows``.

    Parameters
    ----------
    features, labels, fit_rows, n_classes, cs
        As :func:`choose_c`.
    **cross_validation
        The rest of :func:`choose_c`'s arguments: ``files``, ``groups``, ``original`` (required),
        ``folds``, ``seed``, ``holdout``.

    Returns
    -------
    ProbeFit

    Raises
    ------
    TrainError
        Fewer than two classes in the fitting rows, or arrays of different lengths.
    """
    chosen, scores, selection = choose_c(features=features, labels=labels, fit_rows=fit_rows, n_classes=n_classes, cs=cs, **cross_validation)
    [(coef, intercept)] = _fit_path(features[fit_rows], labels[fit_rows], cs=[chosen], n_classes=n_classes)
    logger.info("probe: C=%g chosen by %s; fitted on %d rows", chosen, selection, int(fit_rows.sum()))
    return ProbeFit(
        coef=coef.astype(np.float32), intercept=intercept.astype(np.float32), c=chosen,
        scores=scores, selection=selection, fit_chunks=int(fit_rows.sum()),
    )


def choose_c(
    *,
    features: np.ndarray,
    labels: np.ndarray,
    files: np.ndarray,
    groups: np.ndarray,
    original: np.ndarray,
    fit_rows: np.ndarray,
    n_classes: int,
    cs: Sequence[float],
    folds: int = 5,
    seed: int = 0,
    holdout: np.ndarray | None = None,
) -> tuple[float, dict[float, float], str]:
    """Choose the probe's ``C`` by grouped cross-validation.

    The selection imitates what the final probe will face. With three or more groups, folds hold out
    whole groups (new speakers). With fewer, cross-validation over groups degenerates (two folds of
    unequal size, one training on the smaller group); then, if the final fit includes the
    ``holdout`` rows (devel), so that every group is seen, the folds run over files; otherwise ``C``
    is chosen on the holdout rows, fitting on the others.

    Parameters
    ----------
    features : np.ndarray [shape=(n, d)]
        Frozen-backbone features of every chunk and augmented view (train and devel).
    labels : np.ndarray [shape=(n,), dtype=int]
        Class index of each row.
    files, groups : np.ndarray [shape=(n,)]
        File and group id of each row. Folds never split a group; a file's views go with it.
    original : np.ndarray [shape=(n,), dtype=bool]
        False for augmented views: they are trained on, never scored.
    fit_rows : np.ndarray [shape=(n,), dtype=bool]
        The rows the final probe is fitted on (train, or train + devel for a final fit).
    n_classes : int
        Output classes (a class without rows gets probability 0).
    cs : sequence of float
        Candidate inverse regularisation strengths (``train.probe.c_grid``).
    folds : int
        Cross-validation folds (at most the number of groups).
    seed : int
        Seeds the fold assignment.
    holdout : np.ndarray [shape=(n,), dtype=bool], optional
        The devel rows: the held-out set when there are fewer than three groups.

    Returns
    -------
    c : float
        The chosen ``C`` (ties go to the stronger regularisation). When the best ``C`` is the
        grid's largest, the grid grows by one step of its own ratio, up to :data:`GRID_GROWTH`
        times, while the new value wins.
    scores : dict of float to float
        Cross-validated file-level UAR of every ``C`` (empty without selection).
    selection : str
        How ``C`` was chosen, in words.

    Raises
    ------
    TrainError
        Fewer than two classes in the fitting rows, or arrays of different lengths.
    """
    n = len(features)
    if not all(len(a) == n for a in (labels, files, groups, original, fit_rows)):
        raise TrainError("probe: features, labels, files, groups and masks must have one row each")
    if len(np.unique(labels[fit_rows])) < 2:
        raise TrainError("probe: the training chunks hold fewer than two classes; a classifier needs two or more")
    cs = sorted(float(c) for c in cs)
    scores: dict[float, float] = {}
    n_groups = len(np.unique(groups[original]))
    if n_groups >= 3:
        held_out = [np.isin(files, held) for held in _folds(files[original], labels[original], groups[original], folds=folds, seed=seed)]
        how = f"{min(folds, n_groups)}-fold cross-validation over {n_groups} groups"
    elif holdout is not None and holdout.any() and fit_rows[holdout].all():
        # the final fit covers every group: its error on new files of them is what folds over files measure
        held_out = [np.isin(files, held) for held in _folds(files[original], labels[original], files[original], folds=folds, seed=seed)]
        how = f"{folds}-fold cross-validation over files (only {n_groups} groups, all in the final fit)"
    elif holdout is not None and holdout.any() and (~holdout).any():
        held_out = [np.asarray(holdout, bool)]
        how = f"devel (only {n_groups} groups: too few to cross-validate)"
    else:
        held_out = []
        how = ""
    if len(cs) > 1 and held_out:

        def cross_validate(grid: list[float]) -> None:
            pooled = np.zeros((len(grid), n, n_classes), np.float32)
            for held in held_out:
                train_rows = ~held
                if len(np.unique(labels[train_rows])) < 2:
                    continue
                for i, (coef, intercept) in enumerate(_fit_path(features[train_rows], labels[train_rows], cs=grid, n_classes=n_classes)):
                    pooled[i, held] = ProbeFit(coef, intercept, 0.0, {}, "", 0).probabilities(features[held])
            scored = original & (pooled[0].sum(axis=1) > 0)
            for i, c in enumerate(grid):
                scores[c] = _file_uar(pooled[i, scored], files=files[scored], labels=labels[scored])

        cross_validate(cs)
        grown = []
        for _ in range(GRID_GROWTH):  # the best C at the grid's top: one more step beyond it, while it wins
            ranked = sorted(scores)
            if _best_c(scores) != ranked[-1]:
                break
            grown.append(float(f"{ranked[-1] ** 2 / ranked[-2]:.3g}"))
            cross_validate([grown[-1]])
        chosen, best = _best_c(scores), max(scores.values())
        beyond = f"; the grid grew to {', '.join(f'{c:g}' for c in grown)}: its best C was at the top" if grown else ""
        selection = f"{how} (file-level UAR {best:.3f}{beyond})"
    else:
        chosen = cs[len(cs) // 2] if len(cs) > 1 else cs[0]
        selection = "no selection (one C, or too few groups and no devel)"
    return chosen, scores, selection


#: Steps the C grid grows beyond its top when the best C is there (each one step of the grid's own ratio).
GRID_GROWTH = 3

#: Bytes of float64 feature copies the probe's C selection may hold (the features are copied about
#: three times while folds are fitted). Features larger than this stay in their files: ``C`` is
#: chosen on a stratified sample of whole files that fits, and the final head is fitted by
#: :func:`fit_streamed`, block by block. Smaller features take the exact in-memory path.
MEMORY_BUDGET = 2**27
#: Bytes of float32 features read per block by :func:`fit_streamed`.
BLOCK_BYTES = 2**24


def fit_streamed(
    parts: Sequence[tuple[Any, np.ndarray]], *, c: float, n_classes: int, block_bytes: int = BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the probe's logistic regression with memory that does not grow with the rows.

    The same objective as the in-memory fit (scikit-learn's class-balanced multinomial logistic
    regression with an L2 penalty on standardised features, ``C`` times the weighted log-loss plus
    half the squared weights; the binary form for two classes), minimised by L-BFGS; every
    evaluation of the loss and its gradient reads the features block by block. A first pass
    computes the standardisation. Memory: one block and the weights; time: one pass over the
    rows per L-BFGS evaluation.

    Parameters
    ----------
    parts : sequence of (source, labels)
        ``source`` is a chunk source of feature rows (:class:`~dsplug.data.ChunkSet` or
        :class:`~dsplug.data.ShardSet`: ``len()``, ``read(index)`` and ``batches(batch_size=)``
        of float32 ``(m, d)`` rows); ``labels`` are their class indices ``(len(source),)``.
    c : float
        Inverse regularisation strength.
    n_classes : int
        Output classes (a class without rows is never predicted).
    block_bytes : int
        Bytes of float32 features per block.

    Returns
    -------
    coef : np.ndarray [shape=(d, n_classes), dtype=float64]
        Raw features -> logits (standardisation folded in).
    intercept : np.ndarray [shape=(n_classes,), dtype=float64]
    """
    from scipy.optimize import minimize

    readers = [(source, np.asarray(labels, np.int64)) for source, labels in parts]
    shift = np.asarray(readers[0][0].read(np.arange(1))[0], np.float64)  # shifted sums: no cancellation
    d = len(shift)
    rows = max(1, block_bytes // (4 * d))
    all_labels = np.concatenate([labels for _, labels in readers])
    present = np.unique(all_labels)
    k = len(present)
    position = np.full(n_classes, -1)
    position[present] = np.arange(k)
    counts = np.bincount(position[all_labels], minlength=k)
    class_weight = len(all_labels) / (k * counts)  # scikit-learn's "balanced"
    total_weight = float(class_weight @ counts)
    sums, squares = np.zeros(d), np.zeros(d)
    for reader, _ in readers:
        for x in reader.batches(batch_size=rows):
            centred = x - shift
            sums += centred.sum(axis=0)
            squares += np.square(centred, dtype=np.float64).sum(axis=0)
    n = len(all_labels)
    mean = shift + sums / n
    std = np.sqrt(np.maximum(squares / n - (sums / n) ** 2, 0.0))
    std = np.where(std > 1e-8, std, 1.0)
    # two classes: scikit-learn fits one weight vector w with penalty |w|^2 / 2; with two softmax
    # columns (-w/2, w/2) that penalty is |W|^2, twice the multinomial one
    penalty = 2.0 if k == 2 else 1.0

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = theta[: d * k].reshape(d, k), theta[d * k:]
        loss, grad_w, grad_b = 0.0, np.zeros((d, k)), np.zeros(k)
        for reader, labels in readers:
            for first, x in zip(range(0, len(reader), rows), reader.batches(batch_size=rows)):
                z = (x - mean) / std
                logits = z @ weights + bias
                logits -= logits.max(axis=1, keepdims=True)
                log_norm = np.log(np.exp(logits).sum(axis=1))
                target = position[labels[first:first + len(x)]]
                w = class_weight[target]
                loss += float(w @ (log_norm - logits[np.arange(len(x)), target]))
                residual = np.exp(logits - log_norm[:, None])
                residual[np.arange(len(x)), target] -= 1.0
                residual *= w[:, None]
                grad_w += z.T @ residual
                grad_b += residual.sum(axis=0)
        value = (c * loss + 0.5 * penalty * float(np.sum(weights**2))) / total_weight
        gradient = np.concatenate([(c * grad_w + penalty * weights).ravel(), c * grad_b]) / total_weight
        return value, gradient

    result = minimize(loss_and_gradient, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                      options={"maxiter": 5000, "gtol": 1e-7, "ftol": 1e-12})
    if not result.success:
        logger.info("probe: the streamed fit stopped after %d iterations: %s", result.nit, result.message)
    weights, bias = result.x[: d * k].reshape(d, k), result.x[d * k:]
    coef = np.zeros((d, n_classes))
    intercept = np.full(n_classes, -1e4)  # a class absent from this fit is never predicted
    coef[:, present] = weights / std[:, None]
    intercept[present] = bias - mean @ (weights / std[:, None])
    return coef, intercept


def _sample_files(file_labels: np.ndarray, *, fraction: float, seed: int) -> np.ndarray:
    """Whole files for the C selection: ``fraction`` of each class's files (at least two), seeded.

    Returns a boolean mask over the files (``file_labels`` holds one class index per file).
    """
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(file_labels), bool)
    for label in np.unique(file_labels):
        ids = np.flatnonzero(file_labels == label)
        take = min(len(ids), max(2, int(round(fraction * len(ids)))))
        keep[rng.choice(ids, size=take, replace=False)] = True
    return keep


def fit_head(
    pipeline: Any,
    *,
    train: LabelledChunks,
    devel: LabelledChunks | None,
    groups: dict[str, np.ndarray],
    config: ProbeConfig,
    final_fit: bool,
    seed: int,
    batch_size: int,
    features: str | os.PathLike[str],
    progress: Any = None,
) -> ProbeFit:
    """Fit a pipeline's linear head as a probe on its frozen features, in place.

    The features are what the head's output layer (``head_logits``) sees: the backbone's (tapped,
    pooled) features of every train and devel chunk, computed once in inference mode (for chunks on
    disk through shard-aligned feature files in ``features``, removed at the end; the probe then
    holds the pooled features of every chunk in memory, not their audio). ``C`` is chosen
    by cross-validation over the groups of train + devel; the head is fitted on train, or on
    train + devel with ``final_fit``; its ``head_logits`` weights are then set.

    Parameters
    ----------
    pipeline : dsplug.pipeline.Pipeline
        Built with the ``linear`` head.
    train, devel : LabelledChunks
        Decoded chunks (in memory or on disk) with their files' one-hot targets (devel may be None).
    groups : dict of str to np.ndarray
        ``{"train": (n_files,), "devel": (n_files,)}``: the group (speaker, ...) of each file.
    config : ProbeConfig
        The recipe's ``train.probe`` section.
    final_fit : bool
        Fit the final head on train + devel.
    seed : int
        Seeds the folds.
    batch_size : int
        Chunks per forward pass.
    features : path
        Folder for the feature files of chunks on disk (removed when the head is fitted).
    progress : callable, optional
        ``progress(total=, description=)`` context yielding ``update(done)``.

    Raises
    ------
    TrainError
        The head has no ``head_logits`` layer (use the ``linear`` head).
    """
    import tf_keras

    try:
        logits = pipeline.head.get_layer("head_logits")
    except ValueError as err:
        raise TrainError("train.method: probe fits a linear head; set model.head.name: linear") from err
    if any(layer.weights for layer in pipeline.head.layers if layer is not logits):
        raise TrainError("train.method: probe needs a head whose only weights are its output layer; set model.head.name: linear")
    pooled = tf_keras.Model(pipeline.head.input, logits.input, name="probe_features")
    parts = [("train", train)] + ([("devel", devel)] if devel is not None else [])
    n_classes = int(train.file_rows.shape[1])
    try:
        readers, labels, files, row_groups, fit_rows, holdout = [], [], [], [], [], []
        offset = 0
        for name, split in parts:
            readers.append(_features(pipeline, pooled, split, batch_size=batch_size, folder=Path(features), progress=progress, description=f"features {name}"))
            labels.append(split.file_targets[split.file_index])
            files.append(split.file_index + offset)
            row_groups.append(np.asarray(groups[name])[split.file_index])
            fit_rows.append(np.full(len(split), name == "train" or final_fit))
            holdout.append(np.full(len(split), name == "devel"))
            offset += len(split.file_targets)
        start = time.perf_counter()
        columns = dict(labels=np.concatenate(labels), files=np.concatenate(files), groups=np.concatenate(row_groups),
                       fit_rows=np.concatenate(fit_rows), holdout=np.concatenate(holdout))
        [width] = readers[0].record_shape
        n = len(columns["labels"])
        if 3 * 8 * n * width <= MEMORY_BUDGET:
            fit = select_and_fit(
                features=np.concatenate([r.read(np.arange(len(r))) for r in readers]), original=np.ones(n, bool),
                n_classes=n_classes, cs=config.c_grid, folds=config.folds, seed=seed, **columns,
            )
        else:
            fit = _fit_large(readers, columns=columns, width=width, n_classes=n_classes, config=config, seed=seed)
    finally:
        shutil.rmtree(features, ignore_errors=True)
    logits.set_weights([fit.coef, fit.intercept])
    return dataclasses.replace(fit, seconds=time.perf_counter() - start)


def _fit_large(readers: list[Any], *, columns: dict[str, np.ndarray], width: int, n_classes: int, config: ProbeConfig, seed: int) -> ProbeFit:
    """The probe for features larger than :data:`MEMORY_BUDGET`: ``C`` chosen on a sample of whole files, the head streamed."""
    labels, files = columns["labels"], columns["files"]
    n = len(labels)
    budget_rows = MEMORY_BUDGET // (3 * 8 * width)
    ids, first = np.unique(files, return_index=True)
    keep_files = _sample_files(labels[first], fraction=budget_rows / n, seed=seed)
    sample = np.isin(files, ids[keep_files])
    index = np.flatnonzero(sample)
    bounds = np.cumsum([0] + [len(r) for r in readers])
    features = np.concatenate([r.read(index[(index >= lo) & (index < hi)] - lo) for r, lo, hi in zip(readers, bounds[:-1], bounds[1:])])
    chosen, scores, how = choose_c(
        features=features, original=np.ones(len(index), bool), n_classes=n_classes, cs=config.c_grid,
        folds=config.folds, seed=seed, **{key: value[sample] for key, value in columns.items()},
    )
    del features
    selection = f"{how}, on a stratified sample of {int(keep_files.sum())} of {len(ids)} files ({len(index)} of {n} rows: the features exceed the probe's memory budget)"
    parts = [(r, labels[lo:hi]) for r, lo, hi in zip(readers, bounds[:-1], bounds[1:]) if columns["fit_rows"][lo:hi].all() and hi > lo]
    logger.info("probe: C=%g chosen by %s; fitting on %d rows, streamed", chosen, selection, sum(len(r) for r, _ in parts))
    coef, intercept = fit_streamed(parts, c=chosen, n_classes=n_classes)
    return ProbeFit(coef=coef.astype(np.float32), intercept=intercept.astype(np.float32), c=chosen, scores=scores,
                    selection=selection, fit_chunks=sum(len(r) for r, _ in parts))


def _features(pipeline: Any, pooled: Any, split: LabelledChunks, *, batch_size: int, folder: Path, progress: Any, description: str) -> Any:
    """The head's input features of a partition's chunks, batch by batch, in inference mode: rows ``(n_chunks, d)``.

    In memory when they fit half of :data:`MEMORY_BUDGET` (or the chunks are in memory), else in
    shard-aligned files in ``folder``: a :class:`~dsplug.data.ChunkSet` or :class:`~dsplug.data.ShardSet`.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def extract(x: tf.Tensor) -> tf.Tensor:
        return pooled(pipeline.backbone(pipeline.frontend(x, training=False), training=False), training=False)

    context = progress(total=len(split), description=description) if progress else contextlib.nullcontext(None)
    with context as update:
        cached = cached_features(split.source, extract=lambda audio: extract(tf.constant(audio)).numpy(), folder=folder,
                                 batch_size=batch_size, progress=update, memory_limit=MEMORY_BUDGET // 2)
    return cached
