"""Training of the inclusion-map network (`gemid.vision.inclusion_net`) on rendered stones.

Plain PyTorch: a four-level U-Net (3x3 conv-BN-ReLU pairs, max-pool down, nearest up, skip connections),
trained with pixel-wise weighted cross-entropy inside the stone's core on random 96-px crops (flips and
quarter turns; half the crops centred near an inclusion), one-cycle AdamW. Exported to ONNX (opset 17,
dynamic height and width) for the runtime.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gemid.vision.inclusion_net import CHANNELS, INPUT_NAME, OUTPUT_NAME

WIDTHS = (12, 24, 32, 48)
PATCH = 96
POS_WEIGHT = 4.0

__all__ = ["UNet", "export_onnx", "train"]


def _block(ci: int, co: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True),
                         nn.Conv2d(co, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Per-pixel inclusion logit; sides must be multiples of 2 ** (len(widths) - 1)."""

    def __init__(self, widths: Sequence[int] = WIDTHS, channels: int = CHANNELS) -> None:
        super().__init__()
        self.enc = nn.ModuleList()
        c = channels
        for co in widths:
            self.enc.append(_block(c, co))
            c = co
        self.dec = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in range(len(widths) - 2, -1, -1))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, e in enumerate(self.enc):
            x = e(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for d, s in zip(self.dec, reversed(skips[:-1]), strict=True):
            x = d(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), s], 1))
        return self.head(x)


def _patch(x: np.ndarray, y: np.ndarray, m: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    h, w = y.shape
    if h < PATCH or w < PATCH:
        ph, pw = max(0, PATCH - h), max(0, PATCH - w)
        x, y, m = np.pad(x, ((0, 0), (0, ph), (0, pw))), np.pad(y, ((0, ph), (0, pw))), np.pad(m, ((0, ph), (0, pw)))
        h, w = y.shape
    if y.any() and rng.random() < 0.5:  # half the patches hold an inclusion: they are rare pixels
        ys, xs = np.nonzero(y)
        k = rng.integers(len(ys))
        y0 = int(np.clip(ys[k] - rng.integers(PATCH), 0, h - PATCH))
        x0 = int(np.clip(xs[k] - rng.integers(PATCH), 0, w - PATCH))
    else:
        y0, x0 = int(rng.integers(0, h - PATCH + 1)), int(rng.integers(0, w - PATCH + 1))
    x, y, m = x[:, y0:y0 + PATCH, x0:x0 + PATCH], y[y0:y0 + PATCH, x0:x0 + PATCH], m[y0:y0 + PATCH, x0:x0 + PATCH]
    k = int(rng.integers(4))
    x, y, m = np.rot90(x, k, (1, 2)), np.rot90(y, k), np.rot90(m, k)
    if rng.random() < 0.5:
        x, y, m = x[:, :, ::-1], y[:, ::-1], m[:, ::-1]
    return tuple(np.ascontiguousarray(a, np.float32) for a in (x, y, m))


def train(planes: Sequence[np.ndarray], truth: Sequence[np.ndarray], core: Sequence[np.ndarray], *,
          epochs: int = 12, batch: int = 16, lr: float = 3e-3, seed: int = 0,
          log: Callable[[str], None] = print) -> UNet:
    """Fit the network: `planes` from `net_inputs`, `truth` the inclusion pixels, `core` where the loss counts."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = UNet()
    opt = torch.optim.AdamW(net.parameters(), lr, weight_decay=1e-4)
    per_epoch = len(planes) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * per_epoch)
    pos = torch.tensor(POS_WEIGHT)
    t0 = time.perf_counter()
    for ep in range(epochs):
        order = rng.permutation(len(planes))
        net.train()
        total = 0.0
        for b in range(per_epoch):
            items = [_patch(planes[i], truth[i], core[i], rng) for i in order[b * batch:(b + 1) * batch]]
            x, y, m = (torch.from_numpy(np.stack([t[j] for t in items])) for j in range(3))
            y, m = y[:, None], m[:, None]
            loss = (F.binary_cross_entropy_with_logits(net(x), y, pos_weight=pos, reduction="none") * m).sum() / m.sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        log(f"  inclusion net epoch {ep + 1}/{epochs}: loss {total / max(1, per_epoch):.4f} ({time.perf_counter() - t0:.0f} s)")
    return net.eval()


def export_onnx(net: UNet, path: Path | str) -> None:
    """ONNX (opset 17), dynamic batch, height and width."""
    import onnx

    path = Path(path)
    dummy = torch.zeros(1, CHANNELS, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (dummy,), str(path), dynamo=False, opset_version=17, do_constant_folding=True,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                                        OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}})
    graph = onnx.load(str(path))
    graph.producer_name = "gemid"
    graph.doc_string = f"gemid inclusion map; input {INPUT_NAME} float32 [batch,{CHANNELS},H,W] (H, W multiples of 8), output {OUTPUT_NAME}"
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
