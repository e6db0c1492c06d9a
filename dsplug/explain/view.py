"""A finished run as explanations see it.

:func:`open_run` loads a run directory with :func:`dsplug.pipeline.load_trained` (the one loader of
trained runs) and checks that it can be explained: class outputs and a spectrogram-image
backbone. :class:`RunView` only adapts the trained pipeline to what explanations need: colour
and normalised images of audio chunks, probabilities and the normalised value of silence.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsplug.artifacts import RunDir
from dsplug.errors import DataError, ExportError
from dsplug.explain.methods import predict

if TYPE_CHECKING:
    from dsplug.pipeline import TrainedRun
    from dsplug.recipe.schema import Recipe

__all__ = ["RunView", "open_run"]


@dataclasses.dataclass(frozen=True)
class RunView:
    """A trained run as explanations see it (a view of a :class:`~dsplug.pipeline.TrainedRun`).

    Attributes
    ----------
    trained : TrainedRun
        The run: its directory, resolved recipe, rebuilt pipeline with the trained weights
        (``frontend``: audio -> normalised images, ``classifier``: normalised images ->
        probabilities) and class names.
    """

    trained: TrainedRun

    @property
    def run_dir(self) -> Path:
        """The run directory."""
        return self.trained.run.path

    @property
    def recipe(self) -> Recipe:
        """The run's resolved recipe."""
        return self.trained.recipe

    @property
    def classes(self) -> list[str]:
        """Class names in output order (``data.json``)."""
        return self.trained.classes

    @property
    def samples(self) -> int:
        """Samples per chunk."""
        return self.trained.samples

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images in pixels."""
        return self.trained.pipeline.image_size

    @property
    def classifier(self) -> Any:
        """The ``tf_keras.Model``: (batch, H, W, 3) normalised images -> (batch, k) probabilities."""
        return self.trained.pipeline.classifier

    @property
    def silence(self) -> np.ndarray:
        """Normalised value of silence (colour-map row 0), shape (3,) float32: every method's reference."""
        return self.trained.pipeline.fill_value

    def images(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colour and normalised images of audio chunks.

        Parameters
        ----------
        audio : np.ndarray [shape=(n, samples), dtype=float32]
            Audio chunks at the recipe's sample rate.

        Returns
        -------
        colour : np.ndarray [shape=(n, H, W, 3), dtype=float32]
            RGB in [0, 255], as a person should look at it (low frequencies in the last row):
            the output of the front-end's ``spectrogram_image`` layer.
        normalised : np.ndarray [shape=(n, H, W, 3), dtype=float32]
            The classifier's input (the backbone's normalisation applied).
        """
        frontend = self.trained.pipeline.frontend
        batch = np.asarray(audio, dtype=np.float32).reshape(-1, self.samples)
        colour = frontend.get_layer("spectrogram_image")(batch).numpy()
        normalised = frontend(batch, training=False).numpy()
        return colour.astype(np.float32), normalised.astype(np.float32)

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Class probabilities (n, k) float32 of audio chunks (n, samples), in inference mode."""
        batch = np.asarray(audio, dtype=np.float32).reshape(-1, self.samples)
        return predict(self.trained.pipeline.end_to_end, batch)


def open_run(run: str | os.PathLike[str] | RunDir | TrainedRun | RunView) -> RunView:
    """A finished run, loaded and checked for explanations.

    Parameters
    ----------
    run : str, os.PathLike, RunDir, TrainedRun or RunView
        A directory written by ``dsplug run`` (loaded with :func:`dsplug.pipeline.load_trained`),
        or a run already loaded.

    Returns
    -------
    RunView

    Raises
    ------
    RunError
        The directory or one of its files is missing, or the weights do not fit the recipe.
    DataError
        The run is a regression run (no classes to explain).
    ExportError
        Its backbone takes raw audio (there is no spectrogram image to explain).
    """
    if isinstance(run, RunView):
        return run
    from dsplug.pipeline import TrainedRun, load_trained

    trained = run if isinstance(run, TrainedRun) else load_trained(run, command="explain")
    recipe, folder = trained.recipe, trained.run.path
    if not recipe.data.task.has_classes or not trained.classes:
        raise DataError(
            f"{folder} is a {recipe.data.task} run; explanations need class outputs "
            "(data.task: classification or multilabel)"
        )
    if trained.pipeline.input_kind != "image":
        raise ExportError(
            f"backbone {recipe.model.backbone.name!r} of {folder} takes raw audio; explanations "
            "need a spectrogram-image backbone"
        )
    return RunView(trained)
