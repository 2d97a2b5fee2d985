"""int8 static quantization of the exported model (ONNX Runtime, QDQ, per-channel weights).

Activation ranges are calibrated on *training* crops — the photos the model already saw, in the exact
runtime view — never on validation (that would tune the int8 model on the data it is judged on) and
never on random noise (whose activation statistics look nothing like stones'). The accuracy cost is
then measured on validation by the caller.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _reader(name: str, batches: list[np.ndarray]):
    from onnxruntime.quantization import CalibrationDataReader

    class CropReader(CalibrationDataReader):
        """Feeds preprocessed calibration batches (float32 NCHW) to the calibrator, once."""

        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {name: batch}

        def rewind(self) -> None:
            self._it = iter(batches)

    return CropReader()


def calibration_indices(labels: list[str], n: int, seed: int = 0) -> list[int]:
    """A class-balanced, seeded choice of `n` training images (round-robin over shuffled classes)."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(lab, []).append(i)
    pools = [list(rng.permutation(idx)) for _, idx in sorted(by_class.items())]
    out: list[int] = []
    while len(out) < min(n, len(labels)):
        for pool in pools:
            if pool and len(out) < n:
                out.append(int(pool.pop()))
    return sorted(out)


def quantize_int8(fp32_path: Path | str, out_path: Path | str, calib: np.ndarray, *, batch: int = 16,
                  method: str = "minmax", reduce_range: bool = True) -> dict:
    """Write a QDQ int8 model (uint8 activations, int8 per-channel weights) calibrated on `calib` (N,3,S,S).

    `reduce_range` keeps the weights in 7 bits: x86 CPUs without VNNI (AVX2 only, as on many lab PCs and
    this project's AMD EPYC VMs) multiply uint8 x int8 with an instruction that saturates 16-bit pair sums,
    and full-range weights then give wrong logits there (the README's model table gives what that cost the
    earlier full-range model, and what the 7-bit one scores on both kinds of CPU)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ValueError(f"unknown calibration method '{method}'; choose one of {', '.join(methods)}")
    if len(calib) == 0:
        raise ValueError("int8 calibration needs at least one training crop")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    batches = [np.ascontiguousarray(calib[i : i + batch], dtype=np.float32) for i in range(0, len(calib), batch)]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # shape inference + ORT's fp32 graph optimisations (BN/Conv/activation fusions) before Q/DQ insertion
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        quantize_static(
            str(pre), str(out_path), _reader(name, batches), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=methods[method],
            reduce_range=reduce_range, extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    model = onnx.load(str(out_path))
    onnx.checker.check_model(model)
    ops = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    weights = "int8 per-channel" + (" (7-bit range)" if reduce_range else "")
    return {"format": "QDQ", "activations": "uint8", "weights": weights, "calibration": method,
            "calibration_images": int(len(calib)), "quantize_linear": ops.get("QuantizeLinear", 0),
            "dequantize_linear": ops.get("DequantizeLinear", 0)}
