"""Small ONNX graph rewrites applied after export: fold padding into convolutions, drop Identity nodes.

TensorFlow 'SAME' padding is asymmetric on stride-2 convolutions over even sizes, so the exported graph
has `Pad → Conv` pairs. ONNX `Conv` takes asymmetric `pads` itself, so a constant zero Pad on the spatial
axes is folded into the Conv that reads it: one node fewer per block, no extra tensor copy, and no
stray Pad for the int8 quantizer to wrap in Q/DQ pairs.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper


class GraphPassError(RuntimeError):
    """A rewrite could not be applied safely; the graph is left as it was."""


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Tensor name → value for initializers and Constant-node outputs."""
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            if name:
                out.setdefault(name, []).append(node)
    return out


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _set_ints(node: onnx.NodeProto, name: str, values: list[int]) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(onnx.helper.make_attribute(name, [int(v) for v in values]))


_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                     "Bernoulli"}


def fold_constants(model: onnx.ModelProto) -> int:
    """Evaluate nodes whose inputs are all constants and store their results as initializers.

    The TorchScript exporter spells a constant padding list as Constant → ConstantOfShape → Concat →
    Reshape → Slice → Transpose → Cast; folding turns it into one constant `pads` tensor so the Pad can
    be folded into its Conv. Evaluated with ONNX's reference implementation (exact, numpy).
    """
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    consts = _constants(graph)
    graph_outputs = {o.name for o in graph.output}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    folded = 0
    for node in list(graph.node):
        if node.op_type in _NONDETERMINISTIC or node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "Constant" or any(o in graph_outputs for o in node.output):
            continue
        inputs = [i for i in node.input if i]
        if not inputs or any(i not in consts for i in inputs):
            continue
        single = onnx.helper.make_model(
            onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_empty_tensor_value_info(o)
                                                        for o in node.output]),
            opset_imports=[onnx.helper.make_opsetid("", opset)])
        feeds = {i: consts[i] for i in inputs}
        try:
            values = ReferenceEvaluator(single).run(None, feeds)
        except Exception:  # an op the reference cannot run: leave it to ONNX Runtime
            continue
        for name, value in zip(node.output, values, strict=True):
            arr = np.asarray(value)
            consts[name] = arr
            graph.initializer.append(numpy_helper.from_array(arr, name))
        graph.node.remove(node)
        folded += 1
    prune(model)
    return folded


def _foldable_pads(pad: onnx.NodeProto, consts: dict[str, np.ndarray]) -> list[int] | None:
    """The Pad's spatial pads as Conv `pads` ([h_begin, w_begin, h_end, w_end]), or None if not foldable."""
    mode = _attr(pad, "mode", b"constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        return None
    if len(pad.input) > 3 and pad.input[3]:  # explicit axes (opset 18+): not produced by our export
        return None
    if len(pad.input) < 2 or pad.input[1] not in consts:
        return None
    if len(pad.input) > 2 and pad.input[2]:
        value = consts.get(pad.input[2])
        if value is None or np.any(value != 0):
            return None
    pads = [int(v) for v in consts[pad.input[1]].reshape(-1)]
    if len(pads) != 8 or any(p < 0 for p in pads):
        return None
    n0, c0, h0, w0, n1, c1, h1, w1 = pads
    if n0 or c0 or n1 or c1:
        return None
    return [h0, w0, h1, w1]


def fold_pads(model: onnx.ModelProto) -> int:
    """Fold every constant-zero spatial Pad feeding only a Conv into that Conv's `pads`. Returns the count."""
    fold_constants(model)
    graph = model.graph
    consts = _constants(graph)
    consumers = _consumers(graph)
    graph_outputs = {o.name for o in graph.output}
    folded = 0
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        spatial = _foldable_pads(pad, consts)
        users = consumers.get(pad.output[0], [])
        if spatial is None or pad.output[0] in graph_outputs or len(users) != 1:
            continue
        conv = users[0]
        if conv.op_type != "Conv" or conv.input[0] != pad.output[0]:
            continue
        auto_pad = _attr(conv, "auto_pad", b"NOTSET")
        if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) != "NOTSET":
            continue
        old = list(_attr(conv, "pads", [0, 0, 0, 0]))
        if len(old) != 4:
            continue
        _set_ints(conv, "pads", [a + b for a, b in zip(old, spatial, strict=True)])
        conv.input[0] = pad.input[0]
        graph.node.remove(pad)
        folded += 1
    prune(model)
    return folded


def remove_identities(model: onnx.ModelProto) -> int:
    """Bypass Identity nodes (the legacy exporter leaves them around shared weights and dropout)."""
    graph = model.graph
    graph_outputs = {o.name for o in graph.output}
    removed = 0
    for node in [n for n in graph.node if n.op_type == "Identity"]:
        src, dst = node.input[0], node.output[0]
        if dst in graph_outputs:
            continue
        for other in graph.node:
            for i, name in enumerate(other.input):
                if name == dst:
                    other.input[i] = src
        graph.node.remove(node)
        removed += 1
    prune(model)
    return removed


def prune(model: onnx.ModelProto) -> None:
    """Drop nodes and initializers nothing depends on (walking back from the graph outputs)."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep_ids = {id(n) for n in keep}
    for node in [n for n in graph.node if id(n) not in keep_ids]:
        graph.node.remove(node)
    for init in [i for i in graph.initializer if i.name not in needed]:
        graph.initializer.remove(init)


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def assert_no_pad(model: onnx.ModelProto) -> None:
    n = op_counts(model).get("Pad", 0)
    if n:
        raise GraphPassError(f"{n} Pad node(s) remain after folding; the export would ship stray padding")
