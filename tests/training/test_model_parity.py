"""Our EfficientNet-Lite equals the reference implementation (efficientnet-lite-pytorch) on the same weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
reference = pytest.importorskip("efficientnet_lite_pytorch")

from gemid.training.model import CONFIGS, _weights_path, convert_reference_state_dict, create_model  # noqa: E402


def _reference(name: str, image_size: int | None = None):
    """The reference model; it freezes 'SAME' padding for `image_size` (default: the backbone's own)."""
    extra = {"image_size": image_size} if image_size else {}
    return reference.EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=_weights_path(CONFIGS[name]),
                                                  **extra).eval()


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_logits_equal_reference(name):
    """ImageNet logits of both implementations on the same input agree to 1e-4 at the native input size."""
    torch.manual_seed(0)
    torch.set_num_threads(2)
    size = CONFIGS[name].input_size
    ours, ref = create_model(name).eval(), _reference(name)
    x = torch.rand(2, 3, size, size) * 2 - 1  # the normalised range of mean = std = 0.5
    with torch.inference_mode():
        a, b = ours(x), ref(x)
    assert a.shape == b.shape == (2, 1000)
    assert (a - b).abs().max().item() <= 1e-4
    assert torch.equal(a.argmax(1), b.argmax(1))


@pytest.mark.parametrize("size", [97, 100])
def test_other_input_sizes_pad_like_reference(size):
    """'SAME' padding depends on the size (odd sizes pad differently): ours computes it per input, and must
    match the reference built for that size — training at 64/256 px or exporting at any size stays exact."""
    torch.manual_seed(1)
    ours, ref = create_model("efficientnet_lite0").eval(), _reference("efficientnet_lite0", size)
    x = torch.rand(1, 3, size, size) * 2 - 1
    with torch.inference_mode():
        assert (ours(x) - ref(x)).abs().max().item() <= 1e-4


def test_state_dict_names_map_one_to_one():
    """Every reference tensor has exactly one counterpart in our model (nothing silently left at init)."""
    ref_sd = _reference("efficientnet_lite0").state_dict()
    ours = create_model("efficientnet_lite0", pretrained=False).state_dict()
    mapped = convert_reference_state_dict(ref_sd)
    assert set(mapped) == set(ours)
    assert all(mapped[k].shape == ours[k].shape for k in ours)


def test_features_head_and_all_agree():
    """forward == forward_head(forward_features) == forward_all['logits'] (eval mode), extra heads present."""
    torch.manual_seed(2)
    m = create_model("efficientnet_lite0", num_classes=5, extra_heads={"clarity_grade": 3}).eval()
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        logits = m(x)
        all_ = m.forward_all(x)
        staged = m.forward_head(m.forward_from(m.forward_until(x, 7), 7))
    assert logits.shape == (3, 5) and all_["clarity_grade"].shape == (3, 3)
    assert torch.allclose(logits, all_["logits"], atol=1e-6)
    assert torch.allclose(logits, staged, atol=1e-6)
