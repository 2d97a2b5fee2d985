"""The inclusion-map network: the shipped file is the one the clarity model was fitted with, it marks a
rendered inclusion and leaves the facets of a clean stone alone, and the ONNX export matches PyTorch."""

from __future__ import annotations

import json
from importlib import resources

import cv2
import numpy as np
import pytest

from gemid.datasets.synth import InclusionSpec, StoneSpec, inclusion_truth, render
from gemid.vision import clarity
from gemid.vision.inclusion_net import InclusionNet, net_inputs, shipped, shipped_path
from gemid.vision.segment import segment

SIZE = 224


def _stone(inclusions=()) -> StoneSpec:
    return StoneSpec(cut="round", lab=(60.0, 30.0, 30.0), background="white", background_lab=(93.0, 0.0, 0.0), scale=0.7,
                     facet_contrast=0.18, extinction=0.12, scintillation=0.05, noise=1.0, jpeg_quality=92, facet_seed=4,
                     inclusions=tuple(inclusions))


def _map(spec: StoneSpec) -> tuple[clarity.Analysis, np.ndarray]:
    """The analysis and the true inclusion pixels in its normalised crop."""
    rgb, _, _ = render(spec, size=SIZE, seed=2)
    a = clarity.analyse(rgb, segment(rgb))
    assert a is not None and a.inclusion_map is not None
    return a, a.to_local(inclusion_truth(spec, rgb, size=SIZE, seed=2))


def test_shipped_network_is_the_one_the_clarity_model_was_fitted_with() -> None:
    model = json.loads(resources.files("gemid.vision").joinpath("data/clarity_blobs.json").read_text("utf-8"))
    assert model["net"]["sha256"] == shipped().sha256 and model["net"]["file"] == shipped_path().name
    assert model["features"] == list(clarity.FEATURES)
    assert 0 < model["visibility_fit"]["exponent"] < 2


def test_map_marks_an_inclusion_and_not_the_facets() -> None:
    a, truth = _map(_stone([InclusionSpec("crystal", x=0.12, y=-0.1, size=0.1, contrast=0.9, seed=5)]))
    inside = truth & a.core
    assert inside.sum() > 20
    p = a.inclusion_map
    assert float(p[inside].mean()) > 0.5, float(p[inside].mean())
    far = a.core & (cv2.dilate(truth.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0)
    assert float((p[far] >= 0.7).mean()) < 0.02

    clean, truth0 = _map(_stone())
    assert not truth0.any()
    assert float((clean.inclusion_map[clean.core] >= 0.7).mean()) < 0.01


def test_map_features_come_from_the_map() -> None:
    a, _ = _map(_stone([InclusionSpec("crystal", x=0.0, y=0.1, size=0.1, contrast=0.9, seed=1)]))
    assert a.candidates
    for c in a.candidates:
        v = c.window(a.inclusion_map)[c.mask]
        assert c.features[-3] == pytest.approx(float(v.mean()), abs=1e-6)
        assert c.features[-2] == pytest.approx(float(v.max()), abs=1e-6)
    rgb, _, _ = render(_stone(), size=SIZE, seed=2)
    bare = clarity.analyse(rgb, segment(rgb), inclusion_map=False)
    assert bare is not None and bare.inclusion_map is None
    assert all(np.isnan(c.features[-3:]).all() for c in bare.candidates)


def test_net_inputs_planes() -> None:
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, 15:] = 255
    core = np.zeros((20, 30), bool)
    core[5:15, 5:25] = True
    res = np.full((20, 30), 100.0, np.float32)
    x = net_inputs(img, core, res)
    assert x.shape == (6, 20, 30) and x.dtype == np.float32
    assert x[0, 0, 0] == -0.5 and x[0, 0, 29] == 0.5 and x[3, 0, 29] == pytest.approx(0.5)
    assert x[4].max() == pytest.approx(2.0)  # the residual is clipped at 50 L* and scaled by 25
    assert x[5].sum() == core.sum()


def test_onnx_export_matches_pytorch(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from gemid.training.clarity_net import UNet, export_onnx

    torch.manual_seed(0)
    net = UNet().eval()
    path = tmp_path / "net.onnx"
    export_onnx(net, path)
    planes = np.random.default_rng(0).normal(0, 0.5, (6, 50, 77)).astype(np.float32)
    got = InclusionNet(path).predict(planes)
    padded = np.pad(planes, ((0, 0), (0, 6), (0, 3)))[None]
    with torch.no_grad():
        want = torch.sigmoid(net(torch.from_numpy(padded)))[0, 0, :50, :77].numpy()
    assert got.shape == (50, 77)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_training_learns_a_toy_map() -> None:
    torch = pytest.importorskip("torch")

    from gemid.training.clarity_net import train

    rng = np.random.default_rng(0)

    def sample() -> tuple[np.ndarray, np.ndarray]:
        t = np.zeros((96, 96), np.uint8)
        cx, cy = rng.integers(20, 76, 2)
        cv2.circle(t, (int(cx), int(cy)), 6, 1, -1)
        x = rng.normal(0, 0.1, (6, 96, 96)).astype(np.float32)
        x[4][t > 0] += 1.0
        return x, t > 0

    data = [sample() for _ in range(32)]
    losses: list[float] = []
    net = train([d[0] for d in data], [d[1] for d in data], [np.ones((96, 96), bool)] * 32, epochs=10, batch=8, lr=1e-2,
                log=lambda m: losses.append(float(m.split("loss ")[1].split()[0])))
    assert len(losses) == 10 and losses[-1] < 0.5 * losses[0], losses
    x, t = sample()
    with torch.no_grad():
        p = torch.sigmoid(net(torch.from_numpy(x)[None]))[0, 0].numpy()
    assert p[t].mean() > 0.7 and p[~t].mean() < 0.2, (p[t].mean(), p[~t].mean())
