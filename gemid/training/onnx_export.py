"""PyTorch → ONNX for the EfficientNet-Lite models: a clean fp32 graph with dynamic batch.

'SAME' padding is computed from the input's size in Python, which the TorchScript exporter would trace
into a chain of Shape/Gather/Div/Concat nodes per convolution. The spatial size is fixed at export
(the bundle's input size), so each convolution's padding is frozen to constants first; asymmetric pads
then appear as plain `Pad` nodes, which `onnx_passes.fold_pads` moves into the Conv that follows.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17
INPUT_NAME = "input"
LOGITS_NAME = "logits"


def _static_padding(model: Any, size: int) -> Any:
    """A copy of `model` whose 'SAME' convolutions use padding fixed for a size×size input."""
    import copy

    import torch
    import torch.nn.functional as F
    from torch import nn

    from gemid.training.model import SameConv2d

    class FixedPadConv(nn.Module):
        def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int]):
            super().__init__()
            self.conv = conv
            self.pads = pads  # left, right, top, bottom (F.pad order)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            left, right, top, bottom = self.pads
            if left == right and top == bottom:
                return F.conv2d(x, self.conv.weight, self.conv.bias, self.conv.stride, (top, left), 1,
                                self.conv.groups)
            x = F.pad(x, [left, right, top, bottom])
            return F.conv2d(x, self.conv.weight, self.conv.bias, self.conv.stride, 0, 1, self.conv.groups)

    frozen = copy.deepcopy(model).eval()
    sizes: dict[str, tuple[int, int]] = {}
    hooks = []
    for name, mod in frozen.named_modules():
        if isinstance(mod, SameConv2d):
            hooks.append(mod.register_forward_pre_hook(
                lambda m, inp, name=name: sizes.__setitem__(name, tuple(inp[0].shape[-2:]))))
    with torch.inference_mode():
        frozen(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    for name, (ih, iw) in sizes.items():
        conv = frozen.get_submodule(name)
        k, s = conv.kernel_size[0], conv.stride[0]
        ph = max((-(-ih // s) - 1) * s + k - ih, 0)
        pw = max((-(-iw // s) - 1) * s + k - iw, 0)
        parent_name, _, attr = name.rpartition(".")
        parent = frozen.get_submodule(parent_name) if parent_name else frozen
        setattr(parent, attr, FixedPadConv(conv, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)))
    return frozen


def _outputs_module(model: Any) -> Any:
    """forward(x) -> (logits, *extra heads in the model's order), for named ONNX outputs."""
    from torch import nn

    class AllOutputs(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner.forward_all(x)
            return tuple(out[k] for k in [LOGITS_NAME, *self.inner.extra_heads.keys()])

    return AllOutputs(model).eval()


def export_onnx(model: Any, path: Path | str, size: int) -> dict[str, Any]:
    """Write `path` (fp32, opset 17, dynamic batch); returns what the passes did (for the log)."""
    import onnx
    import torch

    from gemid.training import onnx_passes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    heads = list(model.extra_heads.keys())
    outputs = [LOGITS_NAME, *heads]
    wrapped = _outputs_module(_static_padding(model, size))
    dummy = torch.zeros(2, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and tracer chatter
        torch.onnx.export(
            wrapped, (dummy,), str(path), dynamo=False, opset_version=OPSET, do_constant_folding=True,
            input_names=[INPUT_NAME], output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *outputs]},
        )
    graph = onnx.load(str(path))
    before = onnx_passes.op_counts(graph)
    folded = onnx_passes.fold_pads(graph)
    identities = onnx_passes.remove_identities(graph)
    onnx_passes.assert_no_pad(graph)
    graph.producer_name = "gemid"
    graph.doc_string = f"gemid species model; input {INPUT_NAME} float32 [batch,3,{size},{size}], outputs {outputs}"
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
    return {"opset": OPSET, "outputs": outputs, "pads_folded": folded, "identities_removed": identities,
            "nodes_before": sum(before.values()), "nodes": len(graph.graph.node),
            "ops": dict(sorted(onnx_passes.op_counts(graph).items()))}


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
