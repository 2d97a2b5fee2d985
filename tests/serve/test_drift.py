"""Drift: real photos made warmer, darker or with smaller stones, identified by the real service with the
shipped model, must flag the statistic that moved (and only plausible ones); the same photos unchanged must
flag nothing. Plus the noise line of the PSI test on samples drawn from the reference itself."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.register_assert_rewrite("serve_support")

from PIL import Image  # noqa: E402
from serve_support import make_settings, signed_client, upload  # noqa: E402

from gemid.serve.app import create_app  # noqa: E402
from gemid.serve.drift import (  # noqa: E402
    DEFAULT_REFERENCE,
    IntakeSample,
    build_reference,
    compare,
    load_reference,
)
from gemid.vision.bundle import DEFAULT_BUNDLE_DIR  # noqa: E402
from gemid.vision.capture import NUMERIC  # noqa: E402

pytest_plugins = ["serve_support"]


def _sample(values: dict[str, np.ndarray], n: int) -> IntakeSample:
    return IntakeSample(created_at=[], values=values, cameras=[""] * n)


def test_psi_stays_under_its_line_for_samples_of_the_reference_and_flags_a_shift():
    rng = np.random.default_rng(0)
    train = {name: rng.lognormal(3, 0.5, 2000) for name in NUMERIC}
    reference = build_reference(train, [""] * 2000)
    flagged = 0
    for n in (30, 60, 200, 1000):
        for _ in range(20):  # fresh draws of the training distribution: nothing moved
            same = {name: rng.lognormal(3, 0.5, n) for name in NUMERIC}
            flagged += len(compare(_sample(same, n), reference)["moved"])
    assert flagged == 0
    shifted = {name: rng.lognormal(3, 0.5, 60) for name in NUMERIC}
    shifted["brightness"] *= 0.6
    result = compare(_sample(shifted, 60), reference)
    assert result["moved"] == ["brightness"]
    assert result["stats"]["brightness"]["direction"] == "darker"
    few = {name: v[:10] for name, v in shifted.items()}  # too few photos to say
    assert compare(_sample(few, 10), reference)["moved"] == []


# --- real photos through the real service --------------------------------------------------------------

def _linear(rgb: np.ndarray) -> np.ndarray:
    c = rgb.astype(np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.round(c * 255).astype(np.uint8)


def warm(rgb: np.ndarray) -> np.ndarray:
    """A tungsten-ish lamp: red up, blue down, in linear light, the luminance kept."""
    return _srgb(_linear(rgb) * np.array([1.25, 1.0, 0.45]))


def darker(rgb: np.ndarray) -> np.ndarray:
    """A stop and a half under (linear light x 0.35)."""
    return _srgb(_linear(rgb) * 0.35)


def smaller(rgb: np.ndarray) -> np.ndarray:
    """Shot from further away: the photo shrunk to 40 % inside a frame of its own size and border colour."""
    h, w = rgb.shape[:2]
    small = np.asarray(Image.fromarray(rgb).resize((int(w * 0.4), int(h * 0.4)), Image.Resampling.LANCZOS))
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    out = np.empty_like(rgb)
    out[:] = np.median(border, axis=0).astype(np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def _photos(gems68: Path, count: int) -> list[Path]:
    every = sorted(p for p in gems68.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return every[:: max(1, len(every) // count)][:count]


@pytest.fixture(scope="module")
def shipped_identifier():
    from gemid.vision.pipeline import Identifier

    return Identifier(DEFAULT_BUNDLE_DIR)


@pytest.mark.shared
@pytest.mark.parametrize(("change", "must", "must_not"), [
    (None, set(), set(NUMERIC) | {"camera"}),
    (warm, {"warmth"}, {"brightness", "stone_px"}),
    (darker, {"brightness"}, {"warmth", "tint", "stone_px"}),
    (smaller, {"stone_px"}, {"warmth", "tint"}),  # more of the (white) background: brighter too
])
def test_drift_names_the_statistic_that_moved_on_real_photos(change, must, must_not, gems68_dir: Path,
                                                            tmp_path: Path, shipped_identifier):
    data = tmp_path / "data"
    settings = make_settings(data, DEFAULT_BUNDLE_DIR)
    stored = 0
    with signed_client(create_app(settings, identifier=shipped_identifier)) as c:
        for path in _photos(gems68_dir, 36):
            if change is None:
                body, name = path.read_bytes(), path.name  # as they are, EXIF and all
            else:
                rgb = np.asarray(Image.open(path).convert("RGB"))
                buf = io.BytesIO()
                Image.fromarray(change(rgb)).save(buf, "PNG")
                body, name = buf.getvalue(), path.stem + ".png"
            r = c.post("/v1/identify?grade=false", files=[upload(name, body)])
            assert r.status_code == 200, r.text
            stored += sum("report_id" in e for e in r.json()["reports"])  # a report per stone found
        metrics = c.get("/metrics").text

    done = subprocess.run([sys.executable, "-m", "gemid.cli", "drift", "--weeks", "2", "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GEMID_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    week = report["weeks"][-1]
    assert week["photos"] == stored >= 36 and report["weeks"][0]["photos"] == 0
    moved = set(week["moved"])
    assert must <= moved and not (moved & must_not), (moved, {k: v["psi"] for k, v in week["stats"].items()})
    for name in must:  # the gauge of /metrics says the same (the last 7 days)
        assert f'gemid_drift_moved{{statistic="{name}"}} 1.0' in metrics
    table = subprocess.run([sys.executable, "-m", "gemid.cli", "drift", "--weeks", "1"], capture_output=True,
                           text=True, timeout=120, env={**os.environ, "GEMID_DATA_DIR": str(data)}).stdout
    if must:
        assert all(f"{name} moved" in table for name in must)
    else:
        assert "nothing moved" in table


def test_the_shipped_reference_covers_every_statistic():
    ref = load_reference(DEFAULT_REFERENCE)
    assert ref["source"] == "gems68/train" and ref["photos"] > 1500
    for name in NUMERIC:
        s = ref["stats"][name]
        assert s["n"] > 1000 and len(s["shares"]) == len(s["edges"]) + 1
        assert abs(sum(s["shares"]) - 1.0) < 1e-3
