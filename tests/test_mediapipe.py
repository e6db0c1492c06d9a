"""MediaPipe Tasks' AudioClassifier (Python) loads every exported model and agrees with `dsplug predict`.

MediaPipe runs in its own venv (.tools/mediapipe, made by `python3 dev.py test`; it cannot share
.venv: mediapipe needs absl-py 2, tensorflow-model-optimization absl-py 1). Without it the test
fails and names the command; it never skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import DRUMS, ROOT, TONES
from dsplug.deploy.mediapipe import format_mediapipe_parity, mediapipe_parity, mediapipe_scores
from dsplug.errors import ExportError

pytestmark = pytest.mark.heavy

PYTHON = Path(os.environ.get("DSPLUG_MEDIAPIPE_PYTHON", ROOT / ".tools" / "mediapipe" / "bin" / "python"))
MODES = ["none", "dynamic", "float16", "int8", "qat"]
#: Every exported model: each mode, of the trained and of the pruned model.
MODELS = [f"model{pruned}{'' if mode == 'none' else '-' + mode}.tflite" for pruned in ("", "-pruned") for mode in MODES]


@pytest.fixture(scope="module")
def python() -> Path:
    if not PYTHON.is_file():
        pytest.fail(f"no MediaPipe venv at {PYTHON}: run `python3 dev.py test` (or `python3 dev.py tools`), or set DSPLUG_MEDIAPIPE_PYTHON")
    return PYTHON


def test_mediapipe_agrees_with_dsplug_predict_in_every_mode(exported_run, python):
    models = [exported_run / name for name in MODELS]
    # bundled clips: every 4th tone recording (0.1-0.6 s, one window) and every drum (up to 2.6 s, stereo ones too)
    clips = sorted((TONES / "audio").glob("*.ogg"))[::4] + sorted((DRUMS / "audio").glob("*.ogg"))
    report = mediapipe_parity(models, clips, python=python)
    print("\n" + format_mediapipe_parity(report))
    assert set(report) == set(MODELS)
    for name, row in report.items():
        assert row["top1_agreement"] >= 0.95, (name, row)
        assert row["windows"] > row["clips"]  # some clips span several windows
        # the same samples in the same interpreter: MediaPipe's scores are LiteRT's
        assert row["max_abs_diff"] < 1e-4, (name, row)


def test_mediapipe_refuses_a_model_without_metadata(exported_run, python, tmp_path):
    from dsplug.artifacts import tflite_metadata

    stripped = tmp_path / "bare.tflite"  # the flatbuffer without its metadata, as older exports were
    content = (exported_run / "model.tflite").read_bytes()
    assert tflite_metadata.has_metadata(content)
    import numpy as np
    from ai_edge_litert import schema_py_generated as tfl
    import flatbuffers

    model = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(content, 0))
    model.metadata = None
    builder = flatbuffers.Builder(len(content))
    builder.Finish(model.Pack(builder), b"TFL3")
    stripped.write_bytes(bytes(builder.Output()))
    with pytest.raises(ExportError, match="require TFLite Model Metadata"):
        mediapipe_scores([stripped], [np.zeros(16000, np.float32)], [16000], python=python)
