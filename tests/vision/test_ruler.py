"""A millimetre ruler as the scale (issue 32): drawn stones on paper beside a drawn ruler, photographed by a
pinhole camera held over the desk, measured through `Identifier.identify_stones(..., ruler=True)`, the CLI and
the API; and what is not a millimetre ruler (an inch scale, stripes) refused."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from bundle_fixture import build_bundle, encode
from card_support import PPM, RULER_TRAY, matched, ruler_photo

from gemid.cli import main
from gemid.datasets.card import draw_sheet, exposed, lay_ruler, pinhole
from gemid.errors import GemidInputError
from gemid.vision import ruler
from gemid.vision.pipeline import Identifier


@pytest.fixture(scope="module")
def identifier(tmp_path_factory) -> Identifier:
    return Identifier(build_bundle(tmp_path_factory.mktemp("bundle")))


@pytest.mark.parametrize(("body", "inches", "tilt_deg"), [(0, False, 0.0), (1, True, 8.0), (2, True, 3.0)])
def test_stones_beside_a_ruler_are_measured_within_their_interval_and_the_ruler_is_no_stone(
        identifier, body, inches, tilt_deg):
    photo, truths, centres = ruler_photo(RULER_TRAY, body=body, inches=inches, tilt_deg=tilt_deg, seed=1)
    reports = identifier.identify_stones(encode(photo, ".jpg"), grade=False, ruler=True)
    # the ruler's ticks, numbers, inch scale and body are not stones
    assert len(reports) == len(RULER_TRAY) and all(r.stone.count == len(RULER_TRAY) for r in reports)
    for r, length, width in matched(reports, truths, centres):
        size = r.stone.size
        assert size.status == "measured" and "millimetre ruler" in size.method, size
        assert abs(size.length_mm - length) <= size.uncertainty_mm and abs(size.width_mm - width) <= size.uncertainty_mm
        assert size.uncertainty_mm < 0.2 * length  # a ruler's scale is close to a coin's, not a guess
    first = identifier.identify(encode(photo, ".jpg"), grade=False, ruler=True)
    assert first.stone.count == len(RULER_TRAY) and first.stone.size.status == "measured"


def photographed(sheet: np.ndarray, *, tilt_deg: float = 0.0, distance_mm: float = 150.0, side: int = 2400):
    """The sheet (PPM pixels a mm) seen from `distance_mm` above its middle, and the camera's pixels per mm there."""
    size = (side, side * 3 // 4)
    focal = side / (2.0 * np.tan(np.radians(35.0)))
    centre = (sheet.shape[1] / PPM / 2.0, sheet.shape[0] / PPM / 2.0)
    hmat = pinhole(PPM, centre, distance_mm=distance_mm, tilt_deg=tilt_deg, azimuth_deg=20.0, focal_px=focal,
                   out_size=size)
    photo = exposed(sheet, hmat, size, np.random.default_rng(0), desk=(246, 246, 242), blur=0.6, noise=0.006,
                    jpeg=92)
    return photo, focal / distance_mm


@pytest.mark.parametrize("angle", [0.0, 33.0, 90.0, 151.0])
def test_the_scale_is_the_ticks_step_at_any_angle(angle):
    sheet = draw_sheet(PPM, 240.0, 180.0)
    lay_ruler(sheet, (120.0 * PPM, 90.0 * PPM), angle, PPM)
    photo, px_per_mm = photographed(sheet)
    ref = ruler.find_ruler(photo)
    assert isinstance(ref, ruler.RulerReference), ref
    assert ref.px_per_mm == pytest.approx(px_per_mm, rel=0.005)
    assert ref.ticks >= 120  # 141 millimetre ticks drawn, a few lost at the ends at most
    # 50 mm along the ruler, from its middle, maps onto 50 mm of its plane
    a, b = ref.to_image(np.array([[-25.0, 0.0], [25.0, 0.0]]))
    assert np.linalg.norm(ref.to_mm(np.array([b]))[0] - ref.to_mm(np.array([a]))[0]) == pytest.approx(50.0, abs=0.05)
    assert np.linalg.norm(b - a) / px_per_mm == pytest.approx(50.0, rel=0.005)


def test_the_perspective_along_the_ruler_is_in_its_map_and_across_it_in_the_interval():
    sheet = draw_sheet(PPM, 240.0, 180.0)
    lay_ruler(sheet, (120.0 * PPM, 90.0 * PPM), 0.0, PPM)
    photo, _ = photographed(sheet, tilt_deg=10.0, distance_mm=130.0)
    ref = ruler.find_ruler(photo)
    assert isinstance(ref, ruler.RulerReference), ref
    assert ref.slant > 0.05  # the steps change along the ruler: the slant seen
    middle = ref.to_image(np.array([[0.0, 0.0]]))[0]
    beside = ref.to_image(np.array([[0.0, 40.0]]))[0]
    assert ref.scale_sigma_at(tuple(beside)) > 2 * ref.scale_sigma_at(tuple(middle))


def test_an_inch_scale_alone_is_not_taken_for_millimetres():
    sheet = draw_sheet(PPM, 240.0, 180.0)
    lay_ruler(sheet, (120.0 * PPM, 90.0 * PPM), 20.0, PPM, inches=True, metric=False)
    photo, _ = photographed(sheet)
    assert isinstance(ruler.find_ruler(photo), str)


def test_every_other_tick_is_not_taken_for_the_millimetre_step():
    # a new user's finding: stripes 2 mm apart beside the ruler's edge made it read at half its scale
    sheet = draw_sheet(PPM, 240.0, 180.0)
    lay_ruler(sheet, (120.0 * PPM, 90.0 * PPM), 0.0, PPM)
    for i in range(70):  # the ruler's odd millimetre ticks painted out: what is left is a 2 mm scale
        x = (120.0 - 75.0 + 5.0 + 1.0 + 2.0 * i) * PPM
        if x < (120.0 + 70.0) * PPM:
            cv2.rectangle(sheet, (int(x - 0.3 * PPM), int(77.0 * PPM)), (int(x + 0.3 * PPM), int(81.0 * PPM)),
                          (250, 250, 248), -1)
    photo, px_per_mm = photographed(sheet)
    found = ruler.find_ruler(photo)
    assert isinstance(found, str) or found.px_per_mm == pytest.approx(px_per_mm, rel=0.01)


def test_a_ruler_seen_much_slanted_is_refused(identifier):
    photo, _, _ = ruler_photo(RULER_TRAY, tilt_deg=30.0, seed=1)
    reports = identifier.identify_stones(encode(photo, ".jpg"), grade=False, ruler=True)
    assert all(r.stone.size.status == "cannot_measure" and "tilted" in r.stone.size.reason for r in reports)


def test_an_inch_ruler_is_refused_and_its_ticks_are_not_stones(identifier):
    photo, _, _ = ruler_photo(RULER_TRAY, metric=False, inches=True, seed=1)
    reports = identifier.identify_stones(encode(photo, ".jpg"), grade=False, ruler=True)
    assert len(reports) == len(RULER_TRAY)
    assert all(r.stone.size.status == "cannot_measure" and "not a millimetre scale" in r.stone.size.reason
               for r in reports)


def test_stripes_and_a_grid_are_not_a_ruler():
    sheet = draw_sheet(PPM, 240.0, 180.0)
    for i in range(60):  # equally spaced parallel lines of one length, 1.5 mm apart: a striped cloth
        x = int((60.0 + 1.5 * i) * PPM)
        cv2.line(sheet, (x, int(60 * PPM)), (x, int(70 * PPM)), (30, 30, 30), 2)
    for i in range(0, 120, 4):  # a tray's grid: lines both ways, 4 mm apart
        cv2.line(sheet, (int((40 + i) * PPM), int(100 * PPM)), (int((40 + i) * PPM), int(160 * PPM)), (60, 60, 60), 2)
    for j in range(0, 60, 4):
        cv2.line(sheet, (int(40 * PPM), int((100 + j) * PPM)), (int(160 * PPM), int((100 + j) * PPM)), (60, 60, 60), 2)
    photo, _ = photographed(sheet)
    assert isinstance(ruler.find_ruler(photo), str)


def test_a_photo_without_the_ruler_says_so_and_still_reports_its_stones(identifier):
    photo, _, _ = ruler_photo(RULER_TRAY, ruler=False, seed=2)
    reports = identifier.identify_stones(encode(photo, ".jpg"), grade=False, ruler=True)
    assert len(reports) == len(RULER_TRAY)
    assert all(r.stone.size.status == "cannot_measure" and "no millimetre ruler" in r.stone.size.reason
               for r in reports)


def test_only_the_ruler_says_no_stone_lies_beside_it(identifier):
    photo, _, _ = ruler_photo([], seed=0)
    (report,) = identifier.identify_stones(encode(photo, ".jpg"), grade=False, ruler=True)
    assert report.stone is None
    assert any("beside the ruler" in w.message for w in report.quality.warnings)


def test_a_coin_and_a_ruler_together_are_refused(identifier):
    photo, _, _ = ruler_photo(RULER_TRAY, seed=1)
    with pytest.raises(GemidInputError) as exc:
        identifier.identify_stones(encode(photo, ".jpg"), coin_mm=20.0, ruler=True)
    assert exc.value.code == "invalid_scale" and exc.value.status == 422


def test_the_cli_takes_a_ruler_and_refuses_it_with_a_coin(capsys, tmp_path):
    bundle = build_bundle(tmp_path / "bundle")
    photo, _, _ = ruler_photo(RULER_TRAY, seed=1)
    path = tmp_path / "ruler.jpg"
    path.write_bytes(encode(photo, ".jpg"))
    assert main(["identify", str(path), "--model", str(bundle), "--ruler", "--no-grade", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert len(entries) == len(RULER_TRAY)
    assert all(e["stone"]["size"]["status"] == "measured" and "ruler" in e["stone"]["size"]["method"] for e in entries)
    with pytest.raises(SystemExit) as exc:
        main(["identify", str(path), "--model", str(bundle), "--ruler", "--coin-mm", "20"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
