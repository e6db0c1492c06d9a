"""dsplug.weights.pth: PyTorch state dicts read without PyTorch, compared with real ``torch.save`` files.

PyTorch is needed only to write the files (``torch`` is in the ``test`` extra).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from dsplug.errors import WeightsError
from dsplug.weights.pth import STORAGE_DTYPES, load_torch_state_dict

FORMATS = ["zip", "legacy"]


def _save(obj: object, path: Path, *, fmt: str) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=fmt == "zip")
    return path


def _assert_same(ours: dict[str, np.ndarray], reference: dict[str, torch.Tensor]) -> None:
    assert list(ours) == list(reference)
    for name, tensor in reference.items():
        expected = tensor.detach()
        if expected.dtype == torch.bfloat16:  # widened exactly to float32
            expected = expected.float()
        expected_np = expected.numpy()
        got = ours[name]
        assert got.dtype == expected_np.dtype, name
        assert got.shape == expected_np.shape, name
        assert got.flags.c_contiguous and got.flags.writeable, name  # a copy, not the file
        np.testing.assert_array_equal(got, expected_np, err_msg=name)


def _tensors() -> OrderedDict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, 5, generator=gen)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    state["float32"] = torch.randn(3, 4, generator=gen)
    state["float64"] = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    state["float16"] = torch.randn(7, generator=gen).half()
    state["bfloat16"] = torch.randn(2, 5, generator=gen).bfloat16()
    state["int64"] = torch.randint(-(2**40), 2**40, (3,), generator=gen)
    state["int32"] = torch.randint(-(2**30), 2**30, (2, 2), generator=gen, dtype=torch.int32)
    state["int16"] = torch.randint(-300, 300, (4,), generator=gen, dtype=torch.int16)
    state["int8"] = torch.randint(-100, 100, (4,), generator=gen, dtype=torch.int8)
    state["uint8"] = torch.randint(0, 255, (4,), generator=gen, dtype=torch.uint8)
    state["bool"] = torch.tensor([True, False, True])
    state["complex64"] = torch.randn(3, generator=gen, dtype=torch.complex64)
    state["scalar"] = torch.tensor(3.5)
    state["num_batches_tracked"] = torch.tensor(17)
    state["empty"] = torch.zeros(0, 3)
    # non-contiguous views: transposed, strided slices, offsets into a shared storage
    state["transposed"] = base[0].t()
    state["permuted_like_tf"] = base.permute(2, 0, 1)
    state["strided_slice"] = base[1:, ::2, 1::3]
    state["row_of_shared"] = base[2, 3]
    state["same_storage_again"] = base[3]
    return state


@pytest.mark.parametrize("fmt", FORMATS)
def test_tensors_of_every_dtype_and_layout(fmt: str, tmp_path: Path) -> None:
    state = _tensors()
    assert not state["permuted_like_tf"].is_contiguous()
    path = _save(state, tmp_path / f"state_{fmt}.pth", fmt=fmt)
    _assert_same(load_torch_state_dict(path), state)


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_module_state_dict(fmt: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU6(),
        torch.nn.Conv2d(8, 8, 3, groups=8, padding=1),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 5),
    )
    model.train()
    model(torch.randn(4, 3, 8, 8))  # non-trivial BatchNorm statistics
    state = model.state_dict()
    path = _save(state, tmp_path / "model.pth", fmt=fmt)
    loaded = load_torch_state_dict(path)
    _assert_same(loaded, state)
    assert loaded["1.num_batches_tracked"].dtype == np.int64
    assert loaded["0.weight"].shape == (8, 3, 3, 3)


def test_parameters_and_new_dtypes(tmp_path: Path) -> None:
    """nn.Parameter (_rebuild_parameter) and uint16 (_rebuild_tensor_v3, untyped storage)."""
    state = OrderedDict(
        weight=torch.nn.Parameter(torch.arange(6.0).reshape(2, 3)),
        counts=torch.arange(5, dtype=torch.int32).to(torch.uint16) * 1000,
        big=torch.arange(4, dtype=torch.int64).to(torch.uint32) * 1_000_000_000,
    )
    loaded = load_torch_state_dict(_save(state, tmp_path / "p.pth", fmt="zip"))
    np.testing.assert_array_equal(loaded["weight"], np.arange(6.0, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(loaded["counts"], np.arange(5, dtype=np.uint16) * 1000)
    assert loaded["counts"].dtype == np.uint16
    np.testing.assert_array_equal(loaded["big"], np.arange(4, dtype=np.uint32) * 1_000_000_000)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_storage_dtypes_match_torch() -> None:
    for name, dtype in STORAGE_DTYPES.items():
        torch_dtype = getattr(torch, name).dtype
        if torch_dtype == torch.bfloat16:
            assert dtype.itemsize == 2
            continue
        assert torch.empty(0, dtype=torch_dtype).numpy().dtype == dtype, name


def test_plain_dict_and_path_types(tmp_path: Path) -> None:
    state = {"a": torch.ones(2), "b": torch.zeros(1, 1)}
    path = _save(state, tmp_path / "plain.pt", fmt="zip")
    _assert_same(load_torch_state_dict(str(path)), state)
    _assert_same(load_torch_state_dict(path), state)  # a Path as well as a str


# --------------------------------------------------------------------------- refusals


class _Evil:
    """Unpickling this runs a shell command (what a malicious .pth would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fmt", FORMATS)
def test_code_execution_is_refused(fmt: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _save(
        OrderedDict(weight=torch.ones(2), payload=_Evil(marker)), tmp_path / "evil.pth", fmt=fmt
    )
    with pytest.raises(WeightsError, match="refused global") as info:
        load_torch_state_dict(path)
    message = str(info.value)
    assert "system" in message and str(path) in message
    assert not marker.exists(), "the payload must never run"
    # the same file really is dangerous with an unrestricted unpickler
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_plain_pickle_with_eval_is_refused(tmp_path: Path) -> None:
    class EvalPayload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (eval, ("1 + 1",))

    path = tmp_path / "eval.pth"
    path.write_bytes(pickle.dumps(EvalPayload(), protocol=2))
    with pytest.raises(WeightsError, match=r"refused global (__builtin__|builtins)\.eval"):
        load_torch_state_dict(path)


def test_model_object_instead_of_state_dict_is_refused(tmp_path: Path) -> None:
    path = _save(torch.nn.Linear(2, 2), tmp_path / "model.pth", fmt="zip")
    with pytest.raises(WeightsError, match=r"refused global torch\.nn"):
        load_torch_state_dict(path)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([torch.ones(1)], "holds a list, not a state dict"),
        ({"w": torch.ones(1), "epoch": 3}, "entry 'epoch' is a int"),
        ({"model": {"w": torch.ones(1)}}, "entry 'model' is a dict"),
    ],
)
def test_not_a_flat_state_dict(obj: object, match: str, tmp_path: Path) -> None:
    path = _save(obj, tmp_path / "other.pth", fmt="zip")
    with pytest.raises(WeightsError, match=match):
        load_torch_state_dict(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file(fmt: str, tmp_path: Path) -> None:
    path = _save(OrderedDict(w=torch.randn(64, 64)), tmp_path / "full.pth", fmt=fmt)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="cannot read PyTorch weights file") as info:
        load_torch_state_dict(cut)
    assert str(cut) in str(info.value)


def test_storage_record_shorter_than_its_tensor(tmp_path: Path) -> None:
    path = _save(OrderedDict(w=torch.randn(10)), tmp_path / "w.pth", fmt="zip")
    forged = tmp_path / "forged.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(forged, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if "/data/" in item.filename:
                data = data[:12]  # 3 of 10 float32 elements
            dst.writestr(item, data)
    with pytest.raises(WeightsError, match="fewer than its 10 elements"):
        load_torch_state_dict(forged)


def test_tensor_reaching_past_its_storage(tmp_path: Path) -> None:
    """A forged pickle whose shape/stride would read outside the storage bytes."""
    path = _save(OrderedDict(w=torch.arange(6.0)), tmp_path / "w.pth", fmt="zip")
    forged = tmp_path / "forged.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(forged, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("data.pkl"):
                stride_one = b"K\x01\x85"  # BININT1 1, TUPLE1: the stride (1,)
                assert data.count(stride_one) == 1
                data = data.replace(stride_one, b"K\x04\x85")  # stride (4,): 6 x 4 > 6
            dst.writestr(item, data)
    with pytest.raises(WeightsError, match="reaches past its storage"):
        load_torch_state_dict(forged)


def test_fields_cannot_be_overwritten_after_validation(tmp_path: Path) -> None:
    """A BUILD opcode setting a negative offset on a rebuilt tensor (an out-of-bounds read)."""
    path = _save(OrderedDict(w=torch.arange(6.0)), tmp_path / "w.pth", fmt="zip")
    forged = tmp_path / "forged.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(forged, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("data.pkl"):
                end = b"Rq\rs."  # REDUCE (the tensor), BINPUT 13, SETITEM, STOP
                assert data.endswith(end)
                # EMPTY_DICT, 'offset', BININT -5, SETITEM, BUILD
                build = b"}X\x06\x00\x00\x00offsetJ\xfb\xff\xff\xffsb"
                data = data[: -len(end)] + b"Rq\r" + build + b"s."
            dst.writestr(item, data)
    with pytest.raises(WeightsError, match="refused to set the state of a Tensor"):
        load_torch_state_dict(forged)


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="does not exist") as info:
        load_torch_state_dict(missing)
    assert str(missing) in str(info.value)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match=str(garbage)):
        load_torch_state_dict(garbage)
    not_torch = tmp_path / "numbers.pth"
    buffer = io.BytesIO()
    pickle.dump(12345, buffer, protocol=2)
    not_torch.write_bytes(buffer.getvalue())
    with pytest.raises(WeightsError, match="wrong magic number"):
        load_torch_state_dict(not_torch)


def test_resolve_weights_names_the_file_to_load(tmp_path):
    from dsplug.plugin import Backbone, TorchWeights
    from dsplug.weights import resolve_weights

    source = TorchWeights(
        file_name="absent-0000.pth", sha256="0" * 64, distribution="no-such-weights-package",
        version="0.0.0", path_in_distribution="absent/absent-0000.pth",
    )

    class B(Backbone):
        """A backbone declaring a PyTorch source."""

        weight_sources = {"imagenet": source}

    backbone = B()
    backbone.name = "b"
    shape = (32, 32, 3)
    assert resolve_weights(backbone, None, input_shape=shape) is None
    own = tmp_path / "mine.h5"
    own.write_bytes(b"x")
    resolved = resolve_weights(backbone, str(own), input_shape=shape)
    assert (resolved.path, resolved.source) == (own, None)
    with pytest.raises(WeightsError, match=r"backbone 'b' has no 'nope\.pth' weights .* is not a file; pass 'imagenet', none"):
        resolve_weights(backbone, "nope.pth", input_shape=shape)
    with pytest.raises(WeightsError, match="absent-0000.pth"):
        resolve_weights(backbone, "imagenet", input_shape=shape, weights_dir=tmp_path)
