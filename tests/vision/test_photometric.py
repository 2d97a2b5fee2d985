"""The photometric front end (issue 29): a photo and its colour-cast copy give the model the same crop colours,
and a photo with nothing to correct passes through bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from gemid.datasets.synth import StoneSpec, render
from gemid.vision import conditions as capture
from gemid.vision.colorimetry import rgb8_to_lab
from gemid.vision.crop import stone_crop
from gemid.vision.photometric import light_for, normalise
from gemid.vision.segment import segment


def _views(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(raw crop, crop after the front end), as the classifier's view cuts them."""
    seg = segment(img)
    crop = stone_crop(img, seg, margin=0.12, size=224)
    return crop, normalise(crop, light_for(img, seg))


def _stone(background_l: float) -> np.ndarray:
    spec = StoneSpec(cut="round", lab=(52.0, -34.0, 4.0), background="white", background_lab=(background_l, 0.0, 0.0),
                     scale=0.6, highlights=2, noise=1.5, jpeg_quality=90, facet_seed=3)
    return render(spec, size=320, seed=0)[0]


@pytest.mark.parametrize("background_l", [93.0, 55.0])
@pytest.mark.parametrize(("condition", "max_l", "max_ab"), [("warm_lamp", 1.0, 1.0), ("cool_shade", 6.0, 2.0),
                                                            ("under_1ev", 1.0, 1.0)])
def test_cast_copy_gives_the_same_crop_colours(background_l: float, condition: str, max_l: float,
                                                max_ab: float) -> None:
    rgb = _stone(background_l)
    raw0, fe0 = _views(rgb)
    raw1, fe1 = _views(capture.apply(condition, rgb, segment(rgb), np.random.default_rng(0)))
    lab0, lab1 = rgb8_to_lab(fe0).reshape(-1, 3), rgb8_to_lab(fe1).reshape(-1, 3)
    d = np.abs(lab0.mean(axis=0) - lab1.mean(axis=0))
    assert d[0] <= max_l and d[1:].max() <= max_ab, d
    # and the raw crops did differ: the front end did the work
    raw = np.median(np.linalg.norm(rgb8_to_lab(raw0).reshape(-1, 3) - rgb8_to_lab(raw1).reshape(-1, 3), axis=1))
    fe = np.median(np.linalg.norm(lab0 - lab1, axis=1))
    assert raw > 5.0 and fe < 0.6 * raw, (raw, fe)


def test_nothing_to_correct_passes_through() -> None:
    rgb = _stone(93.0)
    crop = stone_crop(rgb, segment(rgb), margin=0.12, size=224)
    assert normalise(crop, None) is crop
    assert normalise(crop, np.eye(3)) is crop
    out = normalise(crop, np.eye(3) * 2.0)  # one stop up: brighter, never darker
    assert out.mean() > crop.mean() and (out.astype(int) >= crop.astype(int)).all()


def test_lamp_gains_are_issue_27s() -> None:
    np.testing.assert_allclose(capture.lamp_gains(capture.WARM_K), (1.0, 0.571, 0.259), atol=1e-3)
    np.testing.assert_allclose(capture.lamp_gains(capture.COOL_K), (0.828, 0.842, 1.0), atol=1e-3)


def test_capture_conditions_keep_the_stone() -> None:
    rgb = _stone(93.0)
    seg = segment(rgb)
    rng = np.random.default_rng(0)
    small = capture.apply("small_jpeg", rgb, seg, rng)
    side = max(segment(small).bbox[2:])
    assert abs(side - capture.STONE_PX) <= 0.1 * capture.STONE_PX
    framed = capture.apply("small_in_frame", rgb, seg, rng)
    assert framed.shape[0] == framed.shape[1] == round(capture.FRAME_FACTOR * max(seg.bbox[2:]))
    desk = capture.apply("grey_desk", rgb, seg, rng)
    assert abs(int(np.median(desk[0])) - capture.MID_GREY) <= 2
    for name in capture.CONDITIONS:
        out = capture.apply(name, rgb, seg, np.random.default_rng(1))
        assert out.dtype == np.uint8 and out.ndim == 3 and segment(out).found, name
