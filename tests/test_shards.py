"""On-disk chunk shards: reuse by content hash, atomic writes, the same chunks as in memory, file sharding, flat memory."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from conftest import ROOT, TONES
from dsplug import data
from dsplug.errors import AudioError, DataError
from dsplug.recipe.schema import DataConfig


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DSPLUG_CACHE", str(folder))
    return folder / "chunks"


def _config(**changes):
    return DataConfig.model_validate({"manifest": "x", "sample_rate": 16000, "chunk_seconds": 0.25, "hop_seconds": 0.125, **changes})


@pytest.fixture(scope="module")
def items():
    """60 real tone recordings of both speakers (0.1-0.6 s: one to several chunks each)."""
    manifest = data.load_manifest(TONES / "manifest.csv")
    return manifest.items[::10] + manifest.items[1:2]


def _by_chunk(source):
    """{(file, start): samples} of every chunk of a source."""
    audio = source.read(np.arange(len(source)))
    return {(str(source.files[f].path), round(float(s), 6)): a for f, s, a in zip(source.file_index, source.starts, audio)}


def _never_decode(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded a file that is in the cache")

    monkeypatch.setattr("dsplug.data.shards.decode_file", fail)


def test_a_second_decode_of_the_same_files_decodes_nothing(cache, items, monkeypatch):
    first = data.shard_chunks(items, config=_config())
    assert first.stats["decoded"] == len(items) and len(first.shards) > 1
    _never_decode(monkeypatch)
    again = data.shard_chunks(list(reversed(items)), config=_config())  # another order, the same files
    assert again.stats["reused"] == len(items) and again.stats["decoded"] == 0
    assert [s.path for s in again.shards] == [s.path for s in first.shards]
    assert _by_chunk(again).keys() == _by_chunk(first).keys()
    # a different subset (another split, another sweep point) copies from the shards: no decoding
    subset = data.shard_chunks(items[:25], config=_config())
    assert subset.stats["copied"] == 25 and subset.stats["decoded"] == 0
    whole = _by_chunk(first)
    for key, chunk in _by_chunk(subset).items():
        np.testing.assert_array_equal(chunk, whole[key])


def test_a_changed_setting_decodes_again(cache, items):
    base = data.shard_chunks(items, config=_config())
    for change in ({"hop_seconds": 0.25}, {"sample_rate": 8000}, {"shard_dtype": "float32"}):
        other = data.shard_chunks(items, config=_config(**change))
        assert other.stats["decoded"] == len(items), change
        assert other.stats["folder"] != base.stats["folder"]
    assert len({p.name for p in cache.iterdir()}) == 4
    # pad_mode: repeat is the model's first layer: the chunks are the same zero-padded ones
    repeat = data.shard_chunks(items, config=_config(pad_mode="repeat"))
    assert repeat.stats["folder"] == base.stats["folder"] and repeat.stats["decoded"] == 0


def test_a_changed_file_is_decoded_again(cache, tmp_path):
    import shutil

    source = sorted((TONES / "audio").glob("spk3_*.ogg"))[:3]
    copies = [shutil.copy(p, tmp_path / p.name) for p in source]
    manifest_items = [data.Item(path=__import__("pathlib").Path(c), label="T1", partition="train", group="", row=2 + i) for i, c in enumerate(copies)]
    data.shard_chunks(manifest_items, config=_config())
    shutil.copy(sorted((TONES / "audio").glob("spk5_*.ogg"))[0], copies[1])  # same path, other content
    again = data.shard_chunks(manifest_items, config=_config())
    assert again.stats["decoded"] == 1 and again.stats["copied"] == 2


def test_a_partial_shard_is_never_used(cache, items, monkeypatch):
    import dsplug.data.shards as shards_module

    calls = {"n": 0}
    real = shards_module.decode_file

    def dies_halfway(item, **kwargs):
        calls["n"] += 1
        if calls["n"] == 40:
            raise KeyboardInterrupt  # the process is stopped while writing
        return real(item, **kwargs)

    monkeypatch.setattr(shards_module, "decode_file", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        data.shard_chunks(items, config=_config(), workers=1)
    folder = next(cache.iterdir())
    assert not list(folder.rglob("*.part")) and not list((folder / "sets").glob("*.json"))
    finished = sorted((folder / "shards").glob("*.bin"))
    assert finished  # the shards finished before the stop stay, each with its description
    # a truncated shard, a shard without description and a stray temporary file are ignored
    with open(finished[0], "r+b") as handle:
        handle.truncate(finished[0].stat().st_size - 2)
    (folder / "shards" / "orphan.bin").write_bytes(b"\0" * 64)
    (folder / "shards" / ".x.part").write_bytes(b"\0" * 64)
    monkeypatch.setattr(shards_module, "decode_file", real)
    result = data.shard_chunks(items, config=_config())
    assert result.stats["decoded"] + result.stats["copied"] == len(items)
    assert result.stats["copied"] > 0 and result.stats["decoded"] > len(items) - 39
    reference = data.decode_for(items, config=_config())
    assert len(result) == len(reference)
    stored = _by_chunk(result)
    for key, chunk in _by_chunk(reference).items():
        np.testing.assert_allclose(stored[key], chunk, atol=5e-4)


def test_shards_hold_the_chunks_of_the_in_memory_path(cache, items):
    """read(), the ordered and the shuffled tf.data reader give every chunk of decode_for, once,
    within float16 precision (exactly with shard_dtype float32)."""
    config = _config()
    memory = data.decode_for(items, config=config)
    shards = data.shard_chunks(items, config=config)
    assert len(shards) == len(memory) and [f.path for f in shards.files] == [f.path for f in memory.files]
    expected = _by_chunk(memory)
    stored = _by_chunk(shards)
    assert stored.keys() == expected.keys()
    error = max(np.abs(stored[k] - expected[k]).max() for k in expected)
    assert 0 < error <= 2.0**-11  # float16: relative error 2^-11 at most, samples in [-1, 1]
    exact = data.shard_chunks(items, config=_config(shard_dtype="float32"))
    assert all(np.array_equal(v, expected[k]) for k, v in _by_chunk(exact).items())
    every = shards.read(np.arange(len(shards)))
    ordered = list(shards.dataset(batch_size=7))
    np.testing.assert_array_equal(np.concatenate([i.numpy() for i, _ in ordered]), np.arange(len(shards)))
    np.testing.assert_array_equal(np.concatenate([a.numpy() for _, a in ordered]), every)
    for epoch in (1, 2):
        batches = [(i.numpy(), a.numpy()) for i, a in shards.dataset(batch_size=8, shuffle=True, seed=3, epoch=epoch, shuffle_buffer=32)]
        index = np.concatenate([i for i, _ in batches])
        assert sorted(index) == list(range(len(shards))) and not np.array_equal(index, np.arange(len(shards)))
        np.testing.assert_array_equal(np.concatenate([a for _, a in batches]), every[index])
        again = np.concatenate([i.numpy() for i, _ in shards.dataset(batch_size=8, shuffle=True, seed=3, epoch=epoch, shuffle_buffer=32)])
        np.testing.assert_array_equal(index, again)  # seeded: every run repeats the epoch's order
    # the in-memory source has the same reader interface
    index = np.concatenate([i.numpy() for i, _ in memory.dataset(batch_size=8, shuffle=True, seed=3, epoch=1)])
    assert sorted(index) == list(range(len(memory)))
    np.testing.assert_array_equal(np.concatenate(list(shards.batches(batch_size=9))), every)


def test_two_workers_read_disjoint_shard_files(cache, items):
    """FILE auto-sharding (as MultiWorkerMirroredStrategy applies it): each worker reads its own shard files."""
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    shards = data.shard_chunks(items, config=_config())
    owner = np.searchsorted([s.offset for s in shards.shards], np.arange(len(shards)), side="right") - 1
    seen = []
    for worker in (0, 1):
        dataset = _AutoShardDataset(shards.dataset(batch_size=4, shuffle=True, seed=0, epoch=1), num_workers=2, index=worker)
        index = np.concatenate([i.numpy() for i, _ in dataset])
        files = set(owner[index])
        assert all(np.sum(owner == f) == np.sum(owner[index] == f) for f in files)  # whole shard files
        seen.append(index)
    assert not set(seen[0]) & set(seen[1])
    assert sorted(np.concatenate(seen)) == list(range(len(shards)))
    assert 0.25 < len(seen[0]) / len(shards) < 0.75


def test_worker_shards_are_the_files_file_auto_sharding_gives_each_worker(cache, items):
    """ShardSet.worker_shards names the shard files tf.data's FILE auto-sharding gives a worker in an epoch."""
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    shards = data.shard_chunks(items, config=_config())
    owner = np.searchsorted([s.offset for s in shards.shards], np.arange(len(shards)), side="right") - 1
    for epoch in (1, 2):
        named = []
        for worker in (0, 1):
            dataset = _AutoShardDataset(shards.dataset(batch_size=4, shuffle=True, seed=5, epoch=epoch), num_workers=2, index=worker)
            read = {shards.shards[i].name for i in owner[np.concatenate([i.numpy() for i, _ in dataset])]}
            share = shards.worker_shards(workers=2, index=worker, seed=5, epoch=epoch)
            assert read == {s.name for s in share}
            named.append(share)
        assert abs(len(named[0]) - len(named[1])) <= 1 and len(named[0]) + len(named[1]) == len(shards.shards)


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_combined_sources_read_both_partitions_in_order(cache, items, storage):
    """train + devel as one source (the final fit): no copy on disk, file_index past the first's files."""
    first, second = items[:20], items[20:]
    a = data.decode_for(first, config=_config(shard_dtype="float32"), storage=storage)
    b = data.decode_for(second, config=_config(shard_dtype="float32"), storage=storage)
    joined = data.combine_sources(a, b)
    assert type(joined) is type(a) and len(joined) == len(a) + len(b) and joined.files == a.files + b.files
    np.testing.assert_array_equal(joined.file_index, np.concatenate([a.file_index, b.file_index + len(a.files)]))
    np.testing.assert_array_equal(joined.read(np.arange(len(joined))), np.concatenate([a.read(np.arange(len(a))), b.read(np.arange(len(b)))]))
    every = np.concatenate([i.numpy() for i, _ in joined.dataset(batch_size=8, shuffle=True, seed=1, epoch=1)])
    assert sorted(every) == list(range(len(joined)))
    if storage == "disk":
        assert {s.path for s in joined.shards} == {s.path for s in a.shards + b.shards}
    manifest = data.load_manifest(TONES / "manifest.csv")
    labelled = data.combine(data.LabelledChunks.of(a, manifest=manifest), data.LabelledChunks.of(b, manifest=manifest))
    np.testing.assert_array_equal(labelled.file_targets, manifest.targets(first + second))
    np.testing.assert_array_equal(labelled.targets_of([0, len(joined) - 1]), labelled.targets[[0, -1]])
    assert labelled.targets.shape == (len(joined), 5) and labelled.chunks_per_file().sum() == len(joined)
    with pytest.raises(DataError, match="cannot combine chunks stored as"):
        data.combine_sources(a, data.decode_for(second, config=_config(), storage="disk" if storage == "memory" else "memory"))


def test_bad_files_are_skipped_and_remembered(cache, items, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    bad = data.Item(path=corrupt, label="T1", partition="train", group="", row=99)
    listed = [*items[:5], bad, *items[5:10]]
    with pytest.raises(AudioError, match="corrupt.wav.*manifest line 99.*on_bad_file: skip"):
        data.shard_chunks(listed, config=_config())
    skipped = data.shard_chunks(listed, config=_config(on_bad_file="skip"))
    assert [i.path for i, _ in skipped.skipped] == [corrupt] and len(skipped.files) == 10
    again = data.shard_chunks(listed, config=_config(on_bad_file="skip"))
    assert again.stats["reused"] == 11 and [i.path for i, _ in again.skipped] == [corrupt]
    with pytest.raises(AudioError, match="corrupt.wav"):
        data.shard_chunks(listed, config=_config())  # remembered, still an error


def test_storage_choice_is_automatic_and_logged(cache, items, caplog, tmp_path):
    import logging

    caplog.set_level(logging.INFO, logger="dsplug.data.source")
    small = data.choose_storage(items, config=_config())
    assert small.storage == "memory" and 0 < small.decoded_bytes < 2**23 and "in memory" in caplog.text
    assert data.choose_storage(items, config=_config(), limit=1000).storage == "disk"
    assert data.choose_storage(items, config=_config(storage="disk")).storage == "disk"
    assert isinstance(data.decode_for(items, config=_config(), storage="memory"), data.ChunkSet)
    assert isinstance(data.decode_for(items, config=_config(), storage="disk"), data.ShardSet)
    assert data.cache_root() == cache
    memory = data.decode_for(items, config=_config())
    assert small.decoded_bytes == memory.audio.nbytes
    elsewhere = data.decode_for(items, config=_config(cache_dir=str(tmp_path / "elsewhere")), storage="disk")
    assert elsewhere.stats["folder"].startswith(str(tmp_path / "elsewhere")) and elsewhere.stats["decoded"] == len(items)


def test_phase1_features_go_to_shard_aligned_files(cache, items, tmp_path):
    shards = data.shard_chunks(items, config=_config(shard_dtype="float32"))
    memory = data.decode_for(items, config=_config())
    calls = []

    def extract(audio):  # a stand-in for backbone(frontend(audio)): (b, 4, 2) per batch
        calls.append(len(audio))
        rms = np.sqrt(np.mean(audio**2, axis=1))
        return np.stack([rms, audio.max(axis=1)], axis=-1)[:, None, :].repeat(4, axis=1)

    features = data.cached_features(shards, extract=extract, folder=tmp_path / "features", batch_size=5, memory_limit=0)
    assert features.record_shape == (4, 2) and len(features) == len(shards) and max(calls) <= 5
    assert [f.name for f in (tmp_path / "features").glob("*.bin")] and len(features.shards) == len(shards.shards)
    np.testing.assert_allclose(features.read(np.arange(len(shards))), extract(shards.read(np.arange(len(shards)))), rtol=1e-6)
    batched = np.concatenate([a.numpy() for _, a in features.dataset(batch_size=6)])
    np.testing.assert_allclose(batched, features.read(np.arange(len(features))))
    calls.clear()
    small = data.cached_features(shards, extract=extract, folder=tmp_path / "features", batch_size=5)
    assert calls == [1]  # computed once: a later call only probes the shape
    # features within the memory limit are read into memory once written: the same values
    assert isinstance(small, data.ChunkSet) and small.audio.shape == (len(shards), 4, 2)
    np.testing.assert_array_equal(small.audio, features.read(np.arange(len(shards))))
    np.testing.assert_array_equal(small.file_index, shards.file_index)
    in_memory = data.cached_features(memory, extract=extract, folder=tmp_path / "unused", batch_size=5)
    assert isinstance(in_memory, data.ChunkSet) and in_memory.audio.shape == (len(memory), 4, 2)


def _scale():
    spec = importlib.util.spec_from_file_location("scale", ROOT / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.heavy
def test_memory_stays_flat_while_writing_shards(tmp_path_factory):
    """Peak RSS of the shard writer does not grow with the hours of audio (0.25 h vs 1.5 h of distinct
    real audio, 1 s chunks with 50 % overlap), while the in-memory path grows by the decoded size."""
    scale = _scale()
    folder = tmp_path_factory.mktemp("scale")
    small = scale.build_manifest(folder / "small", hours=0.25)
    large = scale.build_manifest(folder / "large", hours=1.5)
    disk_small = scale.measure_decode(small, cache=folder / "cache-small")
    disk_large = scale.measure_decode(large, cache=folder / "cache-large")
    assert disk_large["decoded"] == 180 and disk_large["audio_hours"] == pytest.approx(1.5, rel=0.01)
    decoded_mb = disk_large["chunks"] * 16000 * 4 / 2**20  # 650 MB as float32
    assert disk_large["peak_mb"] - disk_small["peak_mb"] < 40, (disk_small, disk_large)
    memory_large = scale.measure_decode(large, cache=folder / "unused", storage="memory")
    assert memory_large["peak_mb"] - disk_large["peak_mb"] > 0.8 * decoded_mb  # the measurement sees growth
    assert os.path.getsize(next((folder / "cache-large").rglob("*.bin"))) > 0


def test_float16_storage_is_negligible_for_the_front_end(cache, items):
    """The images the model sees from float16-stored chunks equal those of float32 chunks to a small
    fraction of one colour step (0-255), also for quiet chunks (the front-end peak-normalises)."""
    from dsplug.pipeline import build_frontend
    from dsplug.recipe.spec import PipelineSpec
    from dsplug.workflows.run import default_recipe

    recipe = default_recipe()
    recipe.frontend.image_size = [224, 224]
    layer = build_frontend(PipelineSpec.of(recipe))
    config = _config(chunk_seconds=1.0, hop_seconds=0.5)
    exact = data.decode_for(items, config=config).audio
    stored = data.decode_for(items, config=config, storage="disk")
    by_key = _by_chunk(stored)
    memory = data.decode_for(items, config=config)
    half = np.stack([by_key[(str(memory.files[f].path), round(float(s), 6))] for f, s in zip(memory.file_index, memory.starts)])
    for gain in (1.0, 0.01):  # as recorded, and 40 dB quieter
        quiet = (exact * gain).astype(np.float16).astype(np.float32) if gain != 1.0 else half
        difference = np.abs(layer(quiet).numpy() - layer(exact * gain).numpy())
        assert difference.mean() < 0.05 and np.percentile(difference, 99) < 1.0, (gain, difference.mean())
