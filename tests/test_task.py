"""The task owner: each task's activation, loss, targets, aggregation, decision and metadata, asked
of :class:`dsplug.task.Task`; and the code that follows a task asks it instead of comparing names."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from dsplug.task import Task

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["dog", "cat", "bird"]


def test_a_task_is_its_name_in_recipes_json_and_plugin_declarations():
    assert Task("multilabel") is Task.MULTILABEL
    assert Task.REGRESSION == "regression" and "classification" in (Task.CLASSIFICATION,)
    assert json.loads(json.dumps({"task": Task.MULTILABEL})) == {"task": "multilabel"}
    assert f"{Task.REGRESSION!r}" == "'regression'"  # messages read "data.task is 'regression'"
    with pytest.raises(ValueError, match="unknown task 'tagging': use one of classification, multilabel, regression"):
        Task("tagging")


@pytest.mark.parametrize(("task", "activation", "exclusive", "has_classes", "metric"), [
    (Task.CLASSIFICATION, "softmax", True, True, "uar"),
    (Task.MULTILABEL, "sigmoid", False, True, "map"),
    (Task.REGRESSION, "linear", False, False, "neg_mse"),
])
def test_what_each_task_means(task, activation, exclusive, has_classes, metric):
    assert (task.activation, task.exclusive, task.has_classes, task.selection_metric) == (activation, exclusive, has_classes, metric)
    assert task.output_meaning == ("probabilities" if has_classes else "values")
    assert task.aggregation("vote") == ("vote" if exclusive else "mean")
    assert task.aggregation("mean") == "mean"


def test_targets_and_training_rows_from_manifest_cells():
    assert Task.CLASSIFICATION.targets(["cat", "bird", "cat"], classes=CLASSES).tolist() == [1, 2, 1]
    rows = Task.CLASSIFICATION.target_rows(np.array([1, 2]), n_classes=3)
    assert rows.tolist() == [[0, 1, 0], [0, 0, 1]] and rows.dtype == np.float32
    hot = Task.MULTILABEL.targets(["dog; bird", "cat"], classes=CLASSES)
    assert hot.tolist() == [[1, 0, 1], [0, 1, 0]]
    assert Task.MULTILABEL.target_rows(hot, n_classes=3).tolist() == hot.tolist()
    values = Task.REGRESSION.targets(["0.5", "-2"], classes=[])
    assert values.tolist() == [0.5, -2.0] and Task.REGRESSION.target_rows(values, n_classes=0).shape == (2, 1)
    assert Task.MULTILABEL.labels_of(" dog ;; bird ") == ["dog", "bird"]
    assert Task.CLASSIFICATION.labels_of("dog;bird") == ["dog;bird"]  # one class name, however spelt


def test_decisions_and_output_columns():
    row = np.array([0.2, 0.7, 0.6])
    assert Task.CLASSIFICATION.decide(row, classes=CLASSES) == "cat"
    assert Task.MULTILABEL.decide(row, classes=CLASSES) == "cat;bird"
    assert Task.MULTILABEL.decide(np.array([0.1, 0.5, 0.2]), classes=CLASSES) == ""  # 0.5 is not above the threshold
    assert Task.REGRESSION.decide(np.array([1.25]), classes=[]) == "1.25"
    assert Task.MULTILABEL.output_columns(CLASSES, k=3) == ["prob_dog", "prob_cat", "prob_bird"]
    assert Task.REGRESSION.output_columns([], k=1) == ["value"]
    assert Task.REGRESSION.output_columns([], k=2) == ["value_0", "value_1"]


def test_each_loss_is_the_task_s_own():
    targets = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    outputs = np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)
    ce = Task.CLASSIFICATION.loss(reduction="none")(targets, outputs).numpy()
    np.testing.assert_allclose(ce, -np.log([0.8, 0.6]), rtol=1e-5)
    bce = Task.MULTILABEL.loss(reduction="none")(targets, outputs).numpy()
    np.testing.assert_allclose(bce, [-(np.log(0.8) + np.log(0.8)) / 2, -(np.log(0.6) + np.log(0.6)) / 2], rtol=1e-5)
    mse = Task.REGRESSION.loss(reduction="none")(targets, outputs).numpy()
    np.testing.assert_allclose(mse, [0.04, 0.16], rtol=1e-5)
    smoothed = Task.CLASSIFICATION.loss(label_smoothing=0.2, reduction="none")(targets, outputs).numpy()
    assert (smoothed > ce).all()


def test_a_recipe_and_a_model_card_hold_the_task_and_write_its_name():
    from dsplug.artifacts import ModelMetadata
    from dsplug.recipe.schema import DataConfig

    config = DataConfig(manifest="m.csv", task="multilabel")
    assert config.task is Task.MULTILABEL and config.model_dump(mode="json")["task"] == "multilabel"
    meta = ModelMetadata.for_model(
        name="m", task="regression", classes=[], sample_rate=16000, chunk_seconds=1.0, hop_seconds=None,
        pad_mode="zero", backbone="b", recipe_hash="h",
    )
    assert meta.task is Task.REGRESSION and meta.output.meaning == "values" and " rates 1 s chunks" in meta.description
    assert json.loads(meta.to_json())["task"] == "regression"
    assert ModelMetadata.model_validate_json(meta.to_json()).task is Task.REGRESSION


TASK_NAMES = {t.value for t in Task}


def _name_comparisons(path: Path) -> list[int]:
    """Lines comparing something with a task's name (``x == "regression"``, ``x in ("multilabel", ...)``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            names = [n.value for n in operands if isinstance(n, ast.Constant)]
            names += [e.value for n in operands if isinstance(n, (ast.Tuple, ast.Set, ast.List)) for e in n.elts if isinstance(e, ast.Constant)]
            if TASK_NAMES & {n for n in names if isinstance(n, str)}:
                lines.append(node.lineno)
    return lines


def test_no_module_compares_task_names():
    """The rest of dsplug asks the task (``task.exclusive``, ``task.loss()``, ...), never its name."""
    found = {str(p.relative_to(ROOT)): lines for p in sorted((ROOT / "dsplug").rglob("*.py")) if p.name != "task.py" and (lines := _name_comparisons(p))}
    assert not found, f"ask dsplug.task.Task instead of comparing task names: {found}"
