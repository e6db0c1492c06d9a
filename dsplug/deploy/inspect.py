"""What a .tflite flatbuffer holds: its ops, tensor types, and the classifier layers kept float32.

Both read the model as written (an interpreter without delegates), so they describe the file,
not what a delegate makes of it at run time.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from dsplug.deploy.quantize import QUANTIZED_SCOPE, in_quantized_scope


def _graph(model: str | Path | bytes) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """The ops (in execution order) and the tensors (by index) of a .tflite model, as written
    (an interpreter without delegates)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: dict[str, Any] = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    interpreter = Interpreter(**kwargs, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return interpreter._get_ops_details(), tensors  # noqa: SLF001 - the documented way to list ops


def inspect_tflite(model: str | Path | bytes) -> dict[str, Any]:
    """Ops and tensor types of a .tflite model (as written, without delegates).

    Parameters
    ----------
    model : path or bytes
        The .tflite file or its content.

    Returns
    -------
    dict
        ``ops`` (op name -> count), ``float_ops`` / ``int8_ops`` (op name -> count of ops whose
        outputs are float32 / int8), ``custom_ops`` (sorted names of custom or Flex ops: empty for
        a builtin-only model), ``weight_dtypes`` (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED ->
        dtype name of the op's filter input -> count; a float16 model's filters are the float32
        outputs of DEQUANTIZE ops), ``tensor_dtypes`` (dtype name -> count of all tensors).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    builtin = {name for name in vars(schema.BuiltinOperator) if name.isupper() and name != "CUSTOM"}
    graph_ops, tensors = _graph(model)
    ops: Counter[str] = Counter()
    float_ops: Counter[str] = Counter()
    int8_ops: Counter[str] = Counter()
    weights: dict[str, Counter[str]] = {}
    custom: set[str] = set()
    for op in graph_ops:
        name = op["op_name"]
        ops[name] += 1
        out_types = {np.dtype(tensors[i]["dtype"]).name for i in op["outputs"] if i >= 0}
        if "float32" in out_types:
            float_ops[name] += 1
        if "int8" in out_types:
            int8_ops[name] += 1
        if name not in builtin:
            custom.add(name)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op["inputs"]) > 1:
            weights.setdefault(name, Counter())[np.dtype(tensors[op["inputs"][1]]["dtype"]).name] += 1
    return {
        "ops": dict(ops),
        "float_ops": dict(float_ops),
        "int8_ops": dict(int8_ops),
        "custom_ops": sorted(custom),
        "weight_dtypes": {name: dict(count) for name, count in weights.items()},
        "tensor_dtypes": dict(Counter(np.dtype(t["dtype"]).name for t in tensors.values())),
    }


def classifier_float_layers(model: str | Path | bytes) -> list[str]:
    """The classifier layers that compute in float32 in a quantised model, in graph order.

    Read from the flatbuffer: ops inside the classifier
    (:func:`dsplug.deploy.quantize.in_quantized_scope`) whose outputs are float32, QUANTIZE and
    DEQUANTIZE excepted. Meant for ``int8`` and ``qat`` models, where it lists the ops kept
    float (in a float32 model every layer is). ``model`` is a .tflite file or its content.

    Returns
    -------
    list of str
        Layer paths inside the classifier: ``sub-model/layer`` (e.g.
        ``["efficientnet_lite0/stem_conv"]``), or ``layer`` in a flattened (QAT) classifier.
    """
    graph_ops, tensors = _graph(model)
    layers: list[str] = []
    for op in graph_ops:
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        for index in op["outputs"]:
            tensor = tensors.get(index)
            if tensor is None or np.dtype(tensor["dtype"]) != np.float32:
                continue
            parts = [part.split("/") for part in tensor["name"].split(";") if in_quantized_scope(part)]
            if not parts:
                continue
            path = parts[-1]  # a fused op's last name is its first TensorFlow op (the Conv2D)
            # without the op's own name, and without the ``quant_`` of tfmot's QuantizeWrapper
            layer = "/".join(part.removeprefix("quant_") for part in path[path.index(QUANTIZED_SCOPE) + 1:-1])
            if layer not in layers:
                layers.append(layer)
    return layers
