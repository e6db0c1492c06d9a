"""Explainability: which regions of the spectrogram image drove a trained model's prediction.

A finished run directory (``dsplug run``) is loaded with :func:`dsplug.pipeline.load_trained`: the
rebuilt pipeline with the trained weights, whose ``frontend`` maps an audio chunk to a
normalised image and whose ``classifier`` maps that image to probabilities. Attributions are
computed with respect to the classifier's input, the normalised image of one chunk, and summed
over the three colour channels into one ``(H, W)`` map aligned with the colour image a person
looks at (the front-end's ``spectrogram_image`` output, before the backbone's normalisation).

Three methods, all measured against the same reference, *silence* (every pixel the colour of
colour-map row 0, the image of an all-zero chunk, in the classifier's normalised units:
``Pipeline.fill_value``):

* ``gradients`` -- integrated gradients (Sundararajan et al. 2017) along the straight path from
  the silence image to the image; needs nothing beyond TensorFlow. The map sums (about) to
  ``p(image) - p(silence)`` for the explained class (completeness).
* ``occlusion`` -- a patch of silence slid over the image (Zeiler & Fergus 2014); a pixel's value
  is the mean drop of the class probability over the patches covering it.
* ``shap`` -- Owen values (hierarchical Shapley values) from the ``shap`` package's partition
  explainer with an image masker that fills hidden pixels with silence.

Positive values are evidence *for* the explained class, negative values evidence against it.

Modules: :mod:`~dsplug.explain.methods` (the attribution methods), :mod:`~dsplug.explain.view`
(a loaded run as explanations see it), :mod:`~dsplug.explain.figures` (the PNGs) and
:mod:`~dsplug.explain.examples` (one audio file; devel examples per class). The
``report.md`` section of :func:`explain_examples` is added with
:func:`dsplug.report.markdown.add_to_report`.

Examples
--------
>>> from dsplug import explain
>>> result = explain.explain_audio("runs/demo", "a.wav", method="occlusion", target=None,
...                                out="a-explained.png")  # doctest: +SKIP
>>> result["predicted"], result["path"]  # doctest: +SKIP
('T3', 'a-explained.png')
>>> examples = explain.explain_examples("runs/demo", n=2, method="gradients",
...                                     out="runs/demo/explanations.png")  # doctest: +SKIP
>>> print(examples.markdown)  # doctest: +SKIP
"""

from __future__ import annotations

from dsplug.explain.examples import SECTION, Example, ExamplesResult, explain_audio, explain_examples
from dsplug.explain.figures import plot_explanation
from dsplug.explain.methods import (
    METHODS,
    Method,
    attribute,
    band_fraction,
    integrated_gradients,
    occlusion_map,
    shap_map,
)
from dsplug.explain.view import RunView, open_run

__all__ = [
    "METHODS",
    "SECTION",
    "Example",
    "ExamplesResult",
    "Method",
    "RunView",
    "attribute",
    "band_fraction",
    "explain_audio",
    "explain_examples",
    "integrated_gradients",
    "occlusion_map",
    "open_run",
    "plot_explanation",
    "shap_map",
]
