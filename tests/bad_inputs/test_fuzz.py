"""Property-based fuzzing of the manifest reader and the recipe loader: whatever the bytes, the
answer is a result or a :class:`~dsplug.errors.DsplugError` (one clear message), never another
exception (a traceback).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import badfiles
from dsplug.data import load_manifest
from dsplug.errors import DsplugError
from dsplug.recipe.loader import load_recipe
from dsplug.recipe.schema import Recipe

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))

#: One folder with real audio files for every example (hypothesis reruns the test function).
FOLDER = Path(tempfile.mkdtemp(prefix="dsplug-fuzz-"))
badfiles.dataset(FOLDER)
FILES = sorted(str(p.relative_to(FOLDER)) for p in (FOLDER / "a").iterdir())

# ---------------------------------------------------------------------------------- manifests
CELLS = st.one_of(
    st.sampled_from(FILES + ["a/gone.wav", "a", "", " ", "./a/../a/x_train_0.wav", "/dev/null"]),
    st.sampled_from(["x", "y", "X", "x;y", ";", "train", "devel", "test", "dev", "g1", "1.5", "inf", "nan", "-0"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
)
COLUMNS = st.lists(st.sampled_from(["path", "label", "partition", "group", "", "extra", "Path", " label "]), min_size=0, max_size=5)


def csv_field(value: str) -> str:
    return value if not any(c in value for c in ',"\n\r') else '"' + value.replace('"', '""') + '"'


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    """Manifest files: CSV-shaped text (ragged, quoted, odd headers) or arbitrary bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    header = draw(COLUMNS)
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=6), max_size=12))
    quote = draw(st.booleans())
    lines = [",".join(header)] + [",".join(csv_field(c) if quote else c for c in row) for row in rows]
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


@FUZZ
@given(
    content=manifests(),
    task=st.sampled_from(["classification", "multilabel", "regression"]),
    classes=st.one_of(st.none(), st.lists(st.sampled_from(["x", "y", "z", "X"]), max_size=4)),
    split=st.tuples(st.floats(0.01, 0.6), st.floats(0.01, 0.39)),
    check_files=st.booleans(),
    pattern=st.sampled_from([None, "^(.)", "^([a-z])_", "(?P<group>_[a-z]+_)"]),
)
def test_manifest_reader_answers_or_refuses(content, task, classes, split, check_files, pattern):
    path = FOLDER / "fuzz.csv"
    path.write_bytes(content)
    try:
        manifest = load_manifest(path, task=task, classes=classes, split=split, seed=0, check_files=check_files, group_pattern=pattern)
    except DsplugError as err:
        assert str(err), "an error must say what is wrong"
        return
    assert manifest.items and manifest.partition("train")


# -------------------------------------------------------------------------------------- recipes
SCHEMA_KEYS = sorted({name for model in [Recipe, *[f.annotation for f in Recipe.model_fields.values() if isinstance(f.annotation, type)]]
                      for name in getattr(model, "model_fields", {})})
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10), st.sampled_from(["m.csv", "mobilenet_v2", "mlp", "none", "imagenet", "../../x", "all", "auto"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(SCHEMA_KEYS + ["x", "1"]), inner, max_size=4)),
    max_leaves=20,
)
SECTIONS = st.fixed_dictionaries(
    {"data": st.one_of(st.just({"manifest": "m.csv"}), st.dictionaries(st.sampled_from(SCHEMA_KEYS), VALUES, max_size=4))},
    optional={name: VALUES for name in ("name", "seed", "frontend", "model", "train", "augment", "evaluate", "export", "version")},
)
OVERRIDES = st.lists(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["train.lr", "data.chunk_seconds", "model.head.units", "seed", "frontend.image_size", "augment.methods.0.max_size", "x.y", "name"]),
              st.sampled_from(["1", "-1", ".nan", ".inf", "[1, 2]", "[", "abc", "", "1e400", "{a: 1}"])),
    max_size=3,
)
TOKENS = list("abcdefmnt:- []{}&*!|>'\"#\n\t.,?%@`") + ["data", "manifest", ": ", "\n  ", "*a", "&a ", "!!", "1e9", ".nan"]
TEXT = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


def _recipe_answers_or_refuses(text: str | bytes, overrides: list[str]) -> None:
    path = FOLDER / "fuzz.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", errors="replace"))
    try:
        points = load_recipe(path, overrides=overrides)
    except DsplugError as err:
        assert str(err), "an error must say what is wrong"
        return
    for point in points:
        assert point.recipe.data.manifest
        assert all(math.isfinite(v) for v in (point.recipe.train.lr, point.recipe.data.chunk_seconds))


@FUZZ
@given(document=SECTIONS, overrides=OVERRIDES)
def test_recipe_loader_answers_or_refuses_structured(document, overrides):
    _recipe_answers_or_refuses(yaml.safe_dump(document, allow_unicode=True), overrides)


@FUZZ
@given(text=st.one_of(TEXT, st.binary(max_size=120)), overrides=OVERRIDES)
def test_recipe_loader_answers_or_refuses_text(text, overrides):
    _recipe_answers_or_refuses(text, overrides)
