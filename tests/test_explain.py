"""Explanations of a trained run: shapes, a synthetic control with a known answer, figures, errors.

The synthetic control is a dataset whose label depends only on the energy in one frequency band:
class ``tone`` is white noise plus a band-limited burst at 1.8-2.2 kHz, class ``noise`` is the
same kind of noise without it. Half of the files of *both* classes carry a distractor burst at
4.5-5.5 kHz, so brightness outside the 2 kHz band says nothing about the class. A small model
trained on it must put most of its positive attribution for ``tone`` into the image rows of the
2 kHz band.
"""

from __future__ import annotations

import csv
import shutil

import librosa
import matplotlib.image
import numpy as np
import pytest
import soundfile as sf
from scipy import signal as sps

from conftest import write_recipe
from dsplug import explain
from dsplug.errors import AudioError, DataError, ExportError, RunError
from dsplug.frontend.layers import image_freq_axis
from dsplug.report.markdown import add_to_report

SR = 16000
SECONDS = 0.5
BAND = (1800.0, 2200.0)
DISTRACTOR = (4500.0, 5500.0)
PER_CLASS = 30  # per class: 5 devel, 5 test, the rest train

RECIPE = """
name: band
seed: 1
data: {{manifest: {manifest}, chunk_seconds: {seconds}}}
frontend: {{image_size: [32, 32], n_mels: 32}}
model:
  backbone: {{name: squeezenet_v1, weights: none}}
  head: {{name: mlp, units: 16, dropout: 0.0}}
train: {{batch_size: 8, optimizer: adam, lr: 0.001, phase1: {{epochs: 1}}, phase2: {{epochs: 10, finetune_layers: all, lr_factor: 1.0}}}}
evaluate: {{bootstrap: 0}}
"""


def _burst(rng: np.random.Generator, sos: np.ndarray, *, length: int) -> np.ndarray:
    """Band-limited noise with a Hann envelope, unit standard deviation."""
    burst = sps.sosfilt(sos, rng.normal(0.0, 1.0, length)) * np.hanning(length)
    return burst / np.std(burst)


def make_band_dataset(folder, *, seed: int = 0):
    """Write the synthetic wav files and a manifest with partitions; return the manifest path."""
    rng = np.random.default_rng(seed)
    band = sps.butter(6, BAND, btype="bandpass", fs=SR, output="sos")
    distractor = sps.butter(6, DISTRACTOR, btype="bandpass", fs=SR, output="sos")
    n = int(SECONDS * SR)
    rows = []
    for i in range(2 * PER_CLASS):
        label, k = ("tone" if i % 2 == 0 else "noise"), i // 2
        y = rng.normal(0.0, 1.0, n) * rng.uniform(0.02, 0.1)
        for sos, present, (shortest, longest) in ((band, label == "tone", (0.2, 0.35)), (distractor, k % 2 == 0, (0.1, 0.3))):
            if present:
                length = int(rng.uniform(shortest, longest) * SR)
                start = int(rng.integers(0, n - length))
                y[start : start + length] += _burst(rng, sos, length=length) * np.std(y) * rng.uniform(2.0, 4.0)
        path = folder / f"{i:03d}_{label}.wav"
        sf.write(path, (0.5 * y / np.max(np.abs(y))).astype(np.float32), SR)
        rows.append([path.name, label, "train" if k < PER_CLASS - 10 else ("devel" if k < PER_CLASS - 5 else "test")])
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "partition"])
        writer.writerows(rows)
    return manifest


def files_of(folder, *, partition: str, label: str) -> list:
    """The synthetic files of one partition and class, in manifest order."""
    with open(folder / "manifest.csv") as f:
        return [folder / r["path"] for r in csv.DictReader(f) if r["partition"] == partition and r["label"] == label]


def band_rows(run: explain.RunView) -> np.ndarray:
    """Image rows of the burst band, widened by one Mel band on each side (filter overlap)."""
    fe = run.recipe.frontend
    hz = image_freq_axis(height=run.image_size[0], n_mels=fe.n_mels, sample_rate=SR, fmin=fe.fmin, fmax=fe.fmax)
    spacing = (librosa.hz_to_mel(SR / 2) - librosa.hz_to_mel(fe.fmin)) / (fe.n_mels + 1)
    low, high = librosa.hz_to_mel(np.asarray(BAND))
    mel = librosa.hz_to_mel(hz)
    return (mel >= low - spacing) & (mel <= high + spacing)


@pytest.fixture(scope="module")
def band_run(tmp_path_factory):
    """A trained run directory of the synthetic control (about 20-30 s on 2 cores)."""
    from dsplug.recipe.loader import load_recipe
    from dsplug.workflows.run import run_point

    folder = tmp_path_factory.mktemp("band")
    manifest = make_band_dataset(folder)
    recipe = write_recipe(folder / "band.yaml", RECIPE.format(manifest=manifest, seconds=SECONDS))
    [point] = load_recipe(recipe)
    result = run_point(point, run_dir=folder / "run")
    return folder, result


@pytest.fixture(scope="module")
def run(band_run):
    folder, _ = band_run
    return explain.open_run(folder / "run")


@pytest.mark.heavy
def test_the_control_model_learned_the_task(band_run):
    _, result = band_run
    assert result["metrics"]["test"]["accuracy"] >= 0.9
    assert result["metrics"]["devel"]["accuracy"] >= 0.9


@pytest.mark.heavy
def test_open_run_gives_the_trained_parts(run, band_run):
    from dsplug.frontend.colormaps import colormap_table
    from dsplug import registry

    folder, _ = band_run
    assert run.classes == ["noise", "tone"]
    assert run.image_size == (32, 32) and run.samples == int(SECONDS * SR)
    # silence = colour-map row 0 after the backbone's own normalisation
    plugin = registry.load("backbones", "squeezenet_v1")()
    expected = plugin.preprocess(colormap_table("viridis")[:1].reshape(1, 1, 1, 3) * 255.0)
    np.testing.assert_allclose(run.silence, np.asarray(expected).reshape(3), atol=1e-3)
    audio, _ = sf.read(files_of(folder, partition="test", label="tone")[0], dtype="float32")
    colour, normalised = run.images(audio[None])
    assert colour.shape == (1, 32, 32, 3) and 0 <= colour.min() and colour.max() <= 255
    np.testing.assert_allclose(run.classifier(normalised).numpy(), run.probabilities(audio[None]), atol=1e-5)


@pytest.mark.heavy
@pytest.mark.parametrize("method", explain.METHODS)
def test_attributions_have_the_image_shape(run, band_run, method):
    folder, _ = band_run
    audio, _ = sf.read(files_of(folder, partition="test", label="tone")[1], dtype="float32")
    _, normalised = run.images(audio[None])
    target = run.classes.index("tone")
    attribution = explain.attribute(run.classifier, normalised[0], method=method, target=target, silence=run.silence, max_evals=300)
    assert attribution.shape == (32, 32) and attribution.dtype == np.float32
    assert np.all(np.isfinite(attribution)) and np.abs(attribution).max() > 0
    if method in ("gradients", "shap"):  # completeness / efficiency: the map sums to p(x) - p(silence)
        silence = np.broadcast_to(run.silence, normalised[0].shape)[None]
        probs = run.classifier(np.concatenate([normalised, silence])).numpy()[:, target]
        assert attribution.sum() == pytest.approx(probs[0] - probs[1], abs=0.05)


@pytest.mark.heavy
@pytest.mark.parametrize("method", explain.METHODS)
def test_synthetic_control_attribution_falls_in_the_known_band(run, band_run, method):
    """For unseen ``tone`` files most positive attribution lies in the 2 kHz band's rows."""
    folder, _ = band_run
    rows = band_rows(run)
    chance = rows.mean()  # share of the image the band covers (0.125 at 32 rows)
    assert 0.05 < chance < 0.25
    target = run.classes.index("tone")
    fractions = []
    for path in files_of(folder, partition="test", label="tone"):
        audio, _ = sf.read(path, dtype="float32")
        _, normalised = run.images(audio[None])
        attribution = explain.attribute(run.classifier, normalised[0], method=method, target=target, silence=run.silence, max_evals=300)
        fractions.append(explain.band_fraction(attribution, rows=rows))
    assert len(fractions) == 5
    assert np.mean(fractions) > 0.5, fractions
    assert min(fractions) > 2 * chance, fractions


@pytest.mark.heavy
def test_explain_audio_writes_the_figure(run, band_run, tmp_path):
    folder, _ = band_run
    out = tmp_path / "tone.png"
    tone = files_of(folder, partition="test", label="tone")[2]
    result = explain.explain_audio(run, tone, method="gradients", target=None, out=out)
    assert result["path"] == str(out) and result["predicted"] == "tone" == result["target"]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    picture = matplotlib.image.imread(out)
    assert picture.ndim == 3 and picture.shape[1] > picture.shape[0] > 100
    other = explain.explain_audio(folder / "run", tone, method="occlusion", target="noise", out=tmp_path / "n.png")
    assert other["target"] == "noise" and other["predicted"] == "tone"
    # evidence for "noise" in a tone file is not the band: the burst speaks against it
    assert other["attribution"][band_rows(run)].sum() < 0
    with pytest.raises(DataError, match="did you mean 'tone'"):
        explain.explain_audio(run, tone, method="gradients", target="tones", out=out)
    with pytest.raises(AudioError, match="out of range"):
        explain.explain_audio(run, tone, method="gradients", target=None, out=out, chunk=3)
    with pytest.raises(ExportError, match="unknown explanation method 'lime'"):
        explain.explain_audio(run, tone, method="lime", target=None, out=out)  # type: ignore[arg-type]


def _most_confident_devel(run_dir, label: str, n: int) -> list[str]:
    with open(run_dir / "predictions_devel.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == label == r["predicted"]]
    rows.sort(key=lambda r: -float(r[f"prob_{label}"]))
    return [r["file"] for r in rows[:n]]


@pytest.mark.heavy
def test_explain_examples_writes_figure_and_markdown(run, band_run, tmp_path):
    folder, _ = band_run
    run_dir = tmp_path / "run"
    shutil.copytree(folder / "run", run_dir)
    result = explain.explain_examples(run_dir, n=2, method="occlusion", out=run_dir / "explanations.png")
    correct = [e for e in result.examples if e.correct]
    assert len(correct) == 4  # devel accuracy is 1.0: two correct files per class, no wrong ones
    for label in ("noise", "tone"):
        assert [e.path for e in correct if e.label == label] == _most_confident_devel(run_dir, label, 2)
    for e in result.examples:
        assert e.attribution.shape == e.image.shape[:2] == (32, 32)
    assert matplotlib.image.imread(result.figure).ndim == 3
    assert result.markdown_path.read_text() == result.markdown
    assert "![explanations](explanations.png)" in result.markdown
    assert result.markdown.count("| yes |") == 4

    # without predictions_devel.csv the devel predictions are recomputed from the manifest
    (run_dir / "predictions_devel.csv").unlink()
    (run_dir / "metrics.json").unlink()
    again = explain.explain_examples(run_dir, n=2, method="occlusion", out=tmp_path / "elsewhere" / "ex.png")
    assert [e.path for e in again.examples] == [e.path for e in result.examples]
    np.testing.assert_allclose([e.confidence for e in again.examples], [e.confidence for e in result.examples], atol=1e-4)
    assert str((tmp_path / "elsewhere" / "ex.png").resolve()) in again.markdown


def test_bad_run_directory_is_an_error(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        explain.open_run(tmp_path / "nowhere")
    (tmp_path / "recipe.yaml").write_text("data: {manifest: m.csv}\n")
    with pytest.raises(RunError, match="missing data.json, model.keras"):
        explain.open_run(tmp_path)
    with pytest.raises(RunError, match="missing"):
        explain.explain_audio(tmp_path, tmp_path / "a.wav", method="gradients", target=None, out=tmp_path / "a.png")


def test_add_to_report_replaces_an_earlier_explanations_section(tmp_path):
    (tmp_path / "report.md").write_text("# run\n\n## Results\n\n- UAR 0.9\n\n## Export\n\nsmall\n")
    first = "## Explanations (devel)\n\n![explanations](explanations.png)\n| a | b |\n"
    add_to_report(tmp_path, markdown=first)
    add_to_report(tmp_path, markdown=first.replace("| a | b |", "| c | d |"))
    text = (tmp_path / "report.md").read_text()
    assert text.count("## Explanations (devel)") == 1 and "| c | d |" in text and "| a | b |" not in text
    assert text.startswith("# run\n\n## Results\n\n- UAR 0.9\n\n## Export\n\nsmall\n\n## Explanations")


def test_added_sections_reach_the_html_report(tmp_path):
    """`dsplug explain --examples` added its section to report.md only: report.html, the page
    people open, never showed the explanations."""
    from dsplug.report.markdown import to_html

    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.wav").write_bytes(b"")
    (tmp_path / "report.md").write_text("# dsplug run: band\n\n## Results\n\n- UAR 0.9\n")
    (tmp_path / "report.html").write_text(to_html("# dsplug run: band\n", base=tmp_path, title="dsplug run: band"))
    add_to_report(tmp_path, markdown="## Explanations (devel)\n\n| file |\n|---|\n| [a.wav](clips/a.wav) |\n")
    page = (tmp_path / "report.html").read_text()
    assert "<title>dsplug run: band</title>" in page and "<h2>Explanations (devel)</h2>" in page
    assert '<audio controls preload="none" src="clips/a.wav"></audio>' in page  # the clip plays in place


def test_explanation_rows_link_their_clips(tmp_path):
    from dsplug.explain.examples import Example, _markdown

    class Run:
        run_dir = tmp_path / "run"
        recipe = None

    clip = tmp_path / "data" / "neko_drown.ogg"
    example = Example(path=str(clip), label="breath", predicted="breath", confidence=0.9, correct=True, chunk=0,
                      start=0.0, image=np.zeros((2, 2, 3)), attribution=np.zeros((2, 2)))
    text = _markdown(Run.run_dir / "explanations.png", run=Run(), examples=[example], n=1, method="gradients", trained_on=False)
    assert "| [neko_drown.ogg](../data/neko_drown.ogg) | breath | breath | 0.900 | yes | 0.00 |" in text
    assert "trained on" not in text
    text = _markdown(Run.run_dir / "explanations.png", run=Run(), examples=[example], n=1, method="gradients", trained_on=True)
    assert "train.final_fit" in text  # devel was part of the final fit: few mistakes to show there
