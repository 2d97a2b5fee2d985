"""A tiny but real model bundle and drawn stones, so runtime tests need neither the shipped model nor photos.

The ONNX graph is a nearest-colour classifier: global average pool of the normalised crop → squared
distance to one prototype colour per label → logits = -SCALE * distance². The prototypes are "trained" by
running the drawn stone of each label through the shared segmentation + crop, exactly as inference does,
so a drawn red stone is a Ruby and a grey blob is far from everything (low energy → rejected).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

LABELS = ["Ruby", "Emerald", "Sapphire Blue", "Peridot", "Citrine", "Amethyst"]
STONE_COLOURS: dict[str, tuple[int, int, int]] = {  # RGB body colours of the drawn stones
    "Ruby": (190, 20, 45),
    "Emerald": (20, 140, 70),
    "Sapphire Blue": (25, 50, 170),
    "Peridot": (140, 190, 40),
    "Citrine": (230, 160, 30),
    "Amethyst": (130, 60, 170),
}
HEAD_NAME = "clarity_grade"
HEAD_CLASSES = ["eye_clean", "included"]
SIZE = 64  # model input side: small keeps every test in milliseconds
SCALE = 20.0  # logit scale of the distance classifier: known colours score ~0, others well below
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def draw_stone(
    colour: tuple[int, int, int] = STONE_COLOURS["Ruby"],
    *,
    size: tuple[int, int] = (256, 192),
    centre: tuple[float, float] | None = None,
    radius: float | None = None,
    background: tuple[int, int, int] = (245, 245, 245),
    blur: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """An RGB uint8 image (H, W, 3) of an octagonal faceted stone on a plain background."""
    w, h = size
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = background
    cx, cy = centre if centre is not None else (w / 2, h / 2)
    r = radius if radius is not None else 0.36 * min(w, h)
    angles = np.deg2rad(np.arange(8) * 45 + 22.5)
    outer = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1)
    table = np.stack([cx + 0.5 * r * np.cos(angles), cy + 0.5 * r * np.sin(angles)], 1)
    base = np.array(colour, np.float32)
    shades = [0.65, 0.85, 1.1, 0.75, 0.95, 1.15, 0.7, 0.9]
    for i in range(8):
        j = (i + 1) % 8
        quad = np.array([outer[i], outer[j], table[j], table[i]])
        c = np.clip(base * shades[i], 0, 255)
        cv2.fillConvexPoly(img, np.round(quad * 16).astype(np.int32), c.tolist(), cv2.LINE_AA, 4)
    cv2.fillConvexPoly(img, np.round(table * 16).astype(np.int32),
                       np.clip(base * 1.05 + 12, 0, 255).tolist(), cv2.LINE_AA, 4)
    edge = np.clip(base * 0.45, 0, 255).tolist()
    for i in range(8):
        cv2.line(img, tuple(np.round(outer[i] * 16).astype(int)), tuple(np.round(table[i] * 16).astype(int)),
                 edge, 1, cv2.LINE_AA, 4)
    cv2.polylines(img, [np.round(table * 16).astype(np.int32)], True, edge, 1, cv2.LINE_AA, 4)
    cv2.polylines(img, [np.round(outer * 16).astype(np.int32)], True, edge, 1, cv2.LINE_AA, 4)
    noisy = img.astype(np.float32) + rng.normal(0, 2.0, img.shape).astype(np.float32)
    img = np.clip(noisy, 0, 255).astype(np.uint8)
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    return img


def _prototypes(margin: float) -> np.ndarray:
    """Mean normalised colour of each label's drawn stone, as the runtime crops it."""
    from gemid.vision.crop import stone_crop
    from gemid.vision.segment import segment

    protos = []
    for label in LABELS:
        rgb = draw_stone(STONE_COLOURS[label])
        crop = stone_crop(rgb, segment(rgb), margin=margin, size=SIZE).astype(np.float32) / 255.0
        protos.append((crop.reshape(-1, 3).mean(0) - np.array(MEAN)) / np.array(STD))
    return np.array(protos, np.float32)


def _graph(protos: np.ndarray):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = len(protos)
    head_w = np.array([[0.5, -0.5], [0.2, -0.2], [-0.3, 0.3]], np.float32)
    inits = [
        numpy_helper.from_array((2.0 * SCALE * protos.T).astype(np.float32), "w_cross"),  # (3, C)
        numpy_helper.from_array((SCALE * (protos**2).sum(1)).astype(np.float32), "b_proto"),  # (C,)
        numpy_helper.from_array(np.array([SCALE], np.float32), "scale"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([-1, 3], np.int64), "shape_n3"),
        numpy_helper.from_array(head_w, "w_head"),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "shape_n3"], ["m"]),
        helper.make_node("MatMul", ["m", "w_cross"], ["cross"]),  # 2*S*m·p
        helper.make_node("Mul", ["m", "m"], ["m2"]),
        helper.make_node("ReduceSum", ["m2", "axis1"], ["m2sum"], keepdims=1),
        helper.make_node("Mul", ["m2sum", "scale"], ["m2s"]),  # S*|m|²
        helper.make_node("Sub", ["cross", "m2s"], ["t"]),
        helper.make_node("Sub", ["t", "b_proto"], ["logits"]),  # -S*|m-p|²
        helper.make_node("MatMul", ["m", "w_head"], [HEAD_NAME]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_colour_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", c]),
         helper.make_tensor_value_info(HEAD_NAME, TensorProto.FLOAT, ["batch", len(HEAD_CLASSES)])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="gemid-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_bundle(
    dest: Path,
    *,
    energy_threshold: float = -1.0,
    identified_min_prob: float = 0.5,
    identified_min_margin: float = 0.0,
    temperature: float = 1.0,
    margin: float = 0.12,
    int8: bool = True,
    name: str = "tiny-colour",
    labels: list[str] | None = None,
) -> Path:
    """Write model.onnx (+ a dynamically quantised model.int8.onnx) and bundle.json into `dest`. `labels`
    renames the model's outputs (a permutation of LABELS makes a bundle that confuses those stones)."""
    import onnx

    from gemid.vision.bundle import sha256_file

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    onnx.save(_graph(_prototypes(margin)), dest / "model.onnx")
    files = {"fp32": {"path": "model.onnx", "sha256": sha256_file(dest / "model.onnx")}}
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(dest / "model.onnx", dest / "model.int8.onnx", weight_type=QuantType.QInt8,
                         reduce_range=True)  # 7-bit weights: exact on AVX2-only CPUs too (see training.quantize)
        files["int8"] = {"path": "model.int8.onnx", "sha256": sha256_file(dest / "model.int8.onnx")}
    meta = {
        "name": name,
        "version": "0.0.1-test",
        "created_at": "2025-01-01T00:00:00Z",
        "labels": labels or LABELS,
        "input": {"size": SIZE, "mean": list(MEAN), "std": list(STD), "colour": "RGB", "layout": "NCHW",
                  "crop": {"policy": "stone_square", "margin": margin}},
        "temperature": temperature,
        "abstain": {"energy_threshold": energy_threshold, "identified_min_prob": identified_min_prob,
                    "identified_min_margin": identified_min_margin},
        "metrics": {"val_top1": 1.0, "val_top5": 1.0, "ece": 0.0},
        "training": {"note": "nearest-colour test fixture, not a trained model"},
        "files": files,
        "heads": {HEAD_NAME: HEAD_CLASSES},
    }
    (dest / "bundle.json").write_text(json.dumps(meta, indent=2))
    (dest / "MODEL_CARD.md").write_text("# tiny test model\n\nDrawn stones only; for the tests.\n")
    return dest


TRAY_SIZE = (640, 420)
# six drawn stones apart on one tray, and their labels; in reading order they are
# Emerald, Peridot, Amethyst / Citrine, Sapphire Blue, Ruby
TRAY_CENTRES = [(480, 300), (100, 100), (300, 290), (250, 100), (120, 300), (400, 110)]
TRAY_LABELS = ["Ruby", "Emerald", "Sapphire Blue", "Peridot", "Citrine", "Amethyst"]
TRAY_READING_ORDER = ["Emerald", "Peridot", "Amethyst", "Citrine", "Sapphire Blue", "Ruby"]


def draw_tray(centres: list[tuple[float, float]] = TRAY_CENTRES, labels: list[str] = TRAY_LABELS,
              radius: float = 40, background: tuple[int, int, int] = (245, 245, 245)) -> np.ndarray:
    """Drawn stones composed on one plain canvas (each drawn alone, its non-background pixels pasted)."""
    canvas = None
    for k, (centre, label) in enumerate(zip(centres, labels, strict=True)):
        img = draw_stone(STONE_COLOURS[label], size=TRAY_SIZE, centre=centre, radius=radius, seed=k,
                         background=background)
        if canvas is None:
            canvas = img.copy()
            continue
        stone = np.abs(img.astype(int) - np.array(background)).max(2) > 14
        canvas[stone] = img[stone]
    assert canvas is not None
    return canvas


def encode(rgb: np.ndarray, ext: str = ".png", **params: int) -> bytes:
    """PNG/JPEG bytes of an RGB array (OpenCV writes BGR)."""
    flags = [v for kv in params.items() for v in (getattr(cv2, kv[0]), kv[1])]
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), flags)
    assert ok
    return buf.tobytes()


def with_broken_exif(jpeg: bytes) -> bytes:
    """`jpeg` with an EXIF block whose first IFD offset points past its end: damaged, as on edited photos."""
    import struct

    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 14) + b"Exif\0\0" + b"II*\0\xff\xff\xff\x7f"
    return jpeg[:2] + app1 + jpeg[2:]
