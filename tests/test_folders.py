"""Folders as data: class folders read as a manifest, `dsplug manifest`, group patterns, nothing dropped silently."""

from __future__ import annotations

import csv
import shutil

import pytest
from typer.testing import CliRunner

from conftest import TONES, write_recipe
from dsplug.cli import app
from dsplug.data import load_manifest, manifest_for, scan_folder, write_folder_manifest
from dsplug.errors import DataError, RecipeError
from dsplug.recipe.loader import load_recipe

runner = CliRunner()


def _tones_folder(root, *, per_class=6, partitions=False):
    """Real tone recordings sorted into class folders (two speakers; nested folders for spk5)."""
    with open(TONES / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    taken = {}
    for row in rows:
        key = (row["label"], row["group"])
        if taken.get(key, 0) >= per_class // 2:
            continue
        taken[key] = taken.get(key, 0) + 1
        part = ("train" if row["group"] == "spk3" else row["partition"]) if partitions else ""
        nested = "session2" if row["group"] == "spk5" and not partitions else ""
        target = root / part / row["label"] / nested / (TONES / row["path"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(TONES / row["path"], target)
    return root


def test_folder_of_class_folders_lists_files_and_groups(tmp_path):
    root = _tones_folder(tmp_path / "tones")
    folder = scan_folder(root, group_pattern=r"^(spk\d+)_")
    assert not folder.partitioned and folder.columns == ["path", "label", "group"]
    assert sorted({r.label for r in folder.rows}) == ["T1", "T2", "T3", "T4", "T5_neutral"]
    assert {r.group for r in folder.rows} == {"spk3", "spk5"}
    nested = [r for r in folder.rows if r.group == "spk5"]
    assert nested and all(r.path.parent.name == "session2" and r.label == r.path.parent.parent.name for r in nested)
    assert folder.warnings == []


def test_unknown_extensions_and_stray_files_are_listed_not_dropped_silently(tmp_path):
    root = _tones_folder(tmp_path / "tones")
    (root / "T1" / "notes.txt").write_text("recorded in 2020")
    (root / "T2" / "take.xyz").write_bytes(b"\0")
    (root / "T2" / "README").write_text("x")
    shutil.copy(next((root / "T1").glob("*.ogg")), root / "stray.ogg")
    (root / ".DS_Store").write_bytes(b"\0")  # hidden: ignored
    (root / "empty").mkdir()
    folder = scan_folder(root)
    text = " | ".join(folder.warnings)
    assert "1 file(s) outside a class folder are not used: stray.ogg" in text
    assert "3 file(s) with an extension that is not an audio format are not used" in text
    assert ".txt (1)" in text and ".xyz (1)" in text and "(no extension) (1)" in text and "T1/notes.txt" in text
    assert "class folder(s) without audio files, not classes: empty" in text
    assert ".DS_Store" not in text
    manifest = load_manifest(root, split=(0.2, 0.2))
    assert all(message in manifest.warnings for message in folder.warnings)  # -> data.json


def test_partition_folders_give_the_partitions(tmp_path):
    root = _tones_folder(tmp_path / "tones", partitions=True)
    manifest = load_manifest(root)
    assert manifest.split_from == "column"
    assert {i.partition for i in manifest.items} == {"train", "devel", "test"}
    assert all(i.path.parts[-3] == i.partition for i in manifest.items)
    (root / "dogs").mkdir()
    with pytest.raises(DataError, match="top-level folders devel, test, train are partition names but dogs"):
        scan_folder(root)


def test_group_pattern_errors_name_the_file_and_the_pattern(tmp_path):
    root = _tones_folder(tmp_path / "tones")
    with pytest.raises(DataError, match=r"data.group_pattern '\^\(speaker\\d\)_' does not match the file name 'spk\d_\d+_T1.ogg'"):
        scan_folder(root, group_pattern=r"^(speaker\d)_")
    with pytest.raises(DataError, match="has 2 groups; it needs exactly one"):
        scan_folder(root, group_pattern=r"^(spk)(\d+)_")
    named = scan_folder(root, group_pattern=r"^(?P<group>spk\d+)_(?P<take>\d+)")
    assert {r.group for r in named.rows} == {"spk3", "spk5"}
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(next((root / "T1").glob("*.ogg")), flat)
    with pytest.raises(DataError, match="holds no audio file in a class folder.*1 file.s. outside a class folder"):
        scan_folder(flat)  # files only, no class folders
    with pytest.raises(DataError, match="does not exist"):
        load_manifest(tmp_path / "absent")


def test_group_pattern_on_a_csv_without_group_column(tmp_path):
    files = [p for spk in ("spk3", "spk5") for p in sorted((TONES / "audio").glob(f"{spk}_*_T[12].ogg"))[:20]]
    rows = [[str(p), p.stem.split("_")[-1], "train" if "spk3" in p.name else ("devel", "test")[i % 2]] for i, p in enumerate(files)]
    path = tmp_path / "m.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "partition"], *rows])
    manifest = load_manifest(path, group_pattern=r"^(spk\d+)_")
    assert {i.group for i in manifest.items} == {"spk3", "spk5"}
    with open(tmp_path / "g.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "partition", "group"], *[[*r, "a"] for r in rows]])
    with pytest.raises(DataError, match="has a group column and the recipe sets data.group_pattern"):
        load_manifest(tmp_path / "g.csv", group_pattern=r"^(spk\d+)_")


def test_cli_manifest_writes_the_equivalent_csv(tmp_path):
    root = _tones_folder(tmp_path / "tones")
    (root / "T1" / "notes.txt").write_text("x")
    out = tmp_path / "lists" / "tones.csv"
    result = runner.invoke(app, ["manifest", str(root), "-o", str(out), "--group-pattern", r"^(spk\d+)_"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 30 files, 5 classes (T1, T2, T3, T4, T5_neutral)" in result.output
    assert "groups from the file names" in result.output and "warning: 1 file(s) with an extension" in result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "path,label,group" and lines[1].startswith("../tones/T1/")  # relative to the CSV
    kept = runner.invoke(app, ["manifest", str(root), "-o", str(out)])
    assert kept.exit_code == 2 and "exists; pass --force" in kept.output and out.read_text().splitlines() == lines
    bad = runner.invoke(app, ["manifest", str(root), "-o", str(out), "--group-pattern", "((", "--force"])
    assert bad.exit_code == 2 and "not a valid regular expression" in bad.output


def test_recipe_naming_a_folder_loads_as_its_written_csv(tmp_path):
    """A folder and the CSV `dsplug manifest` writes from it give the same manifest (files, labels,
    groups, seeded partitions, line numbers)."""
    root = _tones_folder(tmp_path / "tones", per_class=10)
    (root / "T3" / "cover.jpg").write_bytes(b"\xff")
    csv_path = tmp_path / "tones.csv"
    write_folder_manifest(root, out=csv_path, group_pattern=r"^spk\d+_\d\d(\d\d)")
    recipe = "data:\n  manifest: {m}\n  group_pattern: '^spk\\d+_\\d\\d(\\d\\d)'\nmodel: {{backbone: {{name: mobilenet_v2, weights: none}}}}\n"
    [folder_point] = load_recipe(write_recipe(tmp_path / "folder.yaml", recipe.format(m="tones")))
    [csv_point] = load_recipe(write_recipe(tmp_path / "csv.yaml", recipe.format(m="tones.csv").replace("  group_pattern: '^spk\\d+_\\d\\d(\\d\\d)'\n", "")))
    from_folder = manifest_for(folder_point.recipe.data, seed=3)
    from_csv = manifest_for(csv_point.recipe.data, seed=3)
    assert from_folder.source == root and from_csv.source == csv_path
    assert from_folder.items == from_csv.items
    assert from_folder.classes == from_csv.classes and from_folder.split_from == from_csv.split_from == "seeded split"
    assert any("cover.jpg" in w for w in from_folder.warnings)
    ok = runner.invoke(app, ["validate", str(tmp_path / "folder.yaml")])
    assert ok.exit_code == 0 and "valid" in ok.output and f"{len(from_csv.items)} files, 5 classes" in ok.output
    with pytest.raises(RecipeError, match="group_pattern"):
        load_recipe(tmp_path / "folder.yaml", overrides=["data.group_pattern=(a)(b)"])


@pytest.mark.heavy
def test_a_folder_of_class_folders_trains_end_to_end_from_shards(tmp_path):
    """No CSV written by hand: a folder of class folders, split by speaker-session groups, decoded into
    shards on disk, trained (phase 1 on cached features on disk, final fit on train + devel), evaluated
    on test and exported."""
    import json

    root = _tones_folder(tmp_path / "tones", per_class=10)
    recipe = write_recipe(tmp_path / "folder.yaml", f"""
        name: folder
        seed: 1
        data: {{manifest: tones, group_pattern: '^spk\\d+_\\d\\d(\\d\\d)', chunk_seconds: 0.5, hop_seconds: 0.25,
                storage: disk, cache_dir: {tmp_path / 'cache'}}}
        frontend: {{image_size: [32, 32], n_mels: 32}}
        model: {{backbone: {{name: mobilenet_v2, weights: none}}, head: {{name: mlp, units: 16}}}}
        train: {{batch_size: 8, optimizer: adam, lr: 0.01, final_fit: true, phase1: {{epochs: 2}}, phase2: {{epochs: 1, finetune_layers: 10}}}}
        augment: {{policy: none}}
        evaluate: {{bootstrap: 0}}
        """)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "chunks: " in result.output and "data.storage: disk" in result.output
    summary = json.loads((out / "data.json").read_text())
    assert summary["manifest"] == str(root) and summary["split_from"] == "seeded split" and summary["storage"]["storage"] == "disk"
    assert set(json.loads((out / "metrics.json").read_text())) == {"test"}
    assert (out / "model.tflite").is_file() and not (out / "checkpoints" / "features").exists()
    assert len(list((tmp_path / "cache").rglob("shards/*.bin"))) > 3
    history = list(csv.DictReader(open(out / "history.csv")))
    assert [int(h["phase"]) for h in history] == [1, 1, 2]
