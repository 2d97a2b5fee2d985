"""PyTorch → ONNX for the EfficientNet-Lite models: a clean fp32 graph with dynamic batch.

PyTorch's current exporter (`torch.onnx.export(..., dynamo=True)`: torch.export, then onnxscript's
optimiser). The spatial size is fixed at export (the bundle's input size), so the 'SAME' padding that the
model computes from the input's size in Python becomes constants, and the optimiser folds the asymmetric
zero pads of the stride-2 convolutions into the Conv nodes themselves: no Pad, Identity, Constant or
shape arithmetic is left (checked below, so an exporter change that brings them back fails the export
instead of shipping a slower graph, or a Pad that the int8 quantizer would wrap in Q/DQ pairs).
Opset 18 is the exporter's own; asking for 17 makes it down-convert, which it cannot do for Pad.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 18
INPUT_NAME = "input"
LOGITS_NAME = "logits"
MAX_BATCH = 4096
STACK_TRACE = "pkg.torch.onnx.stack_trace"  # node metadata the exporter adds
# ops the optimised graph of an EfficientNet-Lite must not contain
UNWANTED_OPS = frozenset({"Pad", "Identity", "Constant", "Shape", "Gather", "ConstantOfShape", "Concat", "Reshape"})


class GraphError(RuntimeError):
    """The exported graph is not the clean one the runtime and the int8 quantizer expect."""


def op_counts(model: Any) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def assert_clean(model: Any) -> None:
    """No op of UNWANTED_OPS in the graph (GraphError naming them otherwise)."""
    bad = {op: n for op, n in op_counts(model).items() if op in UNWANTED_OPS}
    if bad:
        raise GraphError(f"the exported graph still has {bad}: the exporter did not fold them; not shipped")


def drop_stack_traces(model: Any) -> None:
    """Remove the exporter's per-node Python stack traces: they name the checkout's absolute paths and source
    line numbers, so the same weights exported from another folder, or after an unrelated edit, gave other
    bytes (the shape embedder is checked to export byte for byte as shipped)."""
    for node in model.graph.node:
        keep = [p for p in node.metadata_props if p.key != STACK_TRACE]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)


def _outputs_module(model: Any, outputs: list[str]) -> Any:
    """forward(x) -> `model.forward_all(x)`'s `outputs`, in that order, for named ONNX outputs."""
    from torch import nn

    class AllOutputs(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner.forward_all(x)
            return tuple(out[k] for k in outputs)

    return AllOutputs(model).eval()


def export_onnx(model: Any, path: Path | str, size: int, *, outputs: list[str] | None = None,
                what: str = "gemid species model") -> dict[str, Any]:
    """Write `path` (fp32, opset 18, dynamic batch); returns what the graph holds (for the log). `outputs`:
    the keys of `model.forward_all` to export (default: the species logits and every extra head)."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs = outputs or [LOGITS_NAME, *model.extra_heads.keys()]
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    # the exporter reports its steps on stdout, logs that torchvision's ops are not registered and warns about
    # torch internals: none of it is the user's concern (a real failure raises)
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                _outputs_module(model, outputs), (torch.zeros(2, 3, size, size),), dynamo=True, opset_version=OPSET,
                input_names=[INPUT_NAME], output_names=outputs, dynamic_shapes=({0: batch},), optimize=True,
                verbose=False,
            )
        finally:
            log.setLevel(level)
    graph = program.model_proto
    assert_clean(graph)
    drop_stack_traces(graph)
    graph.producer_name = "gemid"
    graph.doc_string = f"{what}; input {INPUT_NAME} float32 [batch,3,{size},{size}], outputs {outputs}"
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
    return {"opset": OPSET, "outputs": outputs, "nodes": len(graph.graph.node),
            "ops": dict(sorted(op_counts(graph).items()))}


def ort_session(path: Path | str, threads: int = 2) -> Any:
    import onnxruntime as ort

    from gemid.vision.classify import session_options

    # as the runtime configures it: idle threads must not spin and steal the CPU from whatever runs next
    # (PyTorch in the same process, for parity checks and benchmarks)
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def ort_outputs(session: Any, x: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    """Every output of the session over `x` (N, 3, S, S) float32, in batches."""
    names = [o.name for o in session.get_outputs()]
    inp = session.get_inputs()[0].name
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(0, len(x), batch):
        for n, v in zip(names, session.run(names, {inp: np.ascontiguousarray(x[i : i + batch])}), strict=True):
            parts[n].append(v)
    return {n: np.concatenate(v) if v else np.zeros((0,)) for n, v in parts.items()}


def torch_outputs(model: Any, x: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    import torch

    parts: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out = model.forward_all(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])))
            for k, v in out.items():
                parts.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}
