"""The Identifier: bytes or a path in, a complete typed report out; batches, readings, threads."""

from __future__ import annotations

import hashlib
import io
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from bundle_fixture import LABELS, STONE_COLOURS, build_bundle, draw_stone, encode
from PIL import Image

from gemid import DISCLAIMER
from gemid.errors import CorruptImage, GemidInputError, UnsupportedType
from gemid.report import FileError, Readings, Report
from gemid.vision.bundle import DEFAULT_BUNDLE_DIR, sha256_file
from gemid.vision.pipeline import CHUNK, Identifier


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def identifier(bundle_dir) -> Identifier:
    return Identifier(bundle_dir)


def photo(label: str = "Ruby", ext: str = ".png", **kw) -> bytes:
    return encode(draw_stone(STONE_COLOURS[label], **kw), ext)


def test_report_has_every_field(identifier, bundle_dir):
    data = photo("Emerald", ".jpg")
    before = datetime.now(UTC)
    r = identifier.identify(data, filename="lot7/emerald.jpg", reference="  PK-2025 / 0042 ")
    assert isinstance(r, Report)
    assert uuid.UUID(r.report_id).version == 4 and r.revision == 1
    assert r.created_at.tzinfo is not None and before - timedelta(seconds=1) <= r.created_at <= datetime.now(UTC)
    assert r.file == "lot7/emerald.jpg" and r.reference == "PK-2025 / 0042"
    assert r.image.sha256 == hashlib.sha256(data).hexdigest() and r.image.format == "JPEG"
    assert (r.image.width, r.image.height, r.image.bytes) == (256, 192, len(data))
    assert r.model.name == "tiny-colour" and r.model.sha256 == sha256_file(bundle_dir / "model.onnx")
    assert r.model.variant == "fp32"
    assert r.species.decision == "identified" and r.species.top[0].label == "Emerald" and len(r.species.top) >= 5
    assert r.quality.stone is not None and r.quality.warnings == []
    assert r.disclaimer == DISCLAIMER
    again = identifier.identify(data)
    assert again.report_id != r.report_id and again.species.top == r.species.top  # deterministic answer


def test_report_json_round_trip(identifier):
    r = identifier.identify(photo("Citrine"))
    assert Report.model_validate_json(r.model_dump_json()) == r


def test_path_input_names_the_file(identifier, tmp_path):
    path = tmp_path / "amethyst.jpg"
    path.write_bytes(photo("Amethyst", ".png"))  # a PNG named .jpg
    r = identifier.identify(path)
    assert r.file == "amethyst.jpg" and r.image.format == "PNG" and r.species.top[0].label == "Amethyst"


def test_grading_and_guidance_sections_are_filled(identifier):
    caps = identifier.capabilities
    r = identifier.identify(photo("Ruby"))
    assert (r.colour is not None) == caps["colour"]
    assert (r.clarity is not None) == caps["clarity"]
    assert (r.tests is not None) == caps["tests"]
    assert caps == {"colour": True, "clarity": True, "tests": True, "reranking": True, "shape": True}, \
        "colour.py, clarity.py, guidance.py, rerank.py and the shape model are part of the project"
    assert (r.stone.shape is not None) == caps["shape"]
    assert 0 <= r.colour.hue_angle < 360 and r.colour.tone.value >= 0
    assert r.clarity.grade and r.tests.recommended


def test_a_rejected_photo_still_has_its_stone_described_but_no_tests(identifier):
    """Grades follow the stone that was found, whatever the species decision (report-schema.md): a simulant
    or an unknown material still gets its colour described; with no species there is no test to recommend."""
    r = identifier.identify(encode(draw_stone((128, 128, 128))))
    assert r.species.decision == "rejected" and r.conclusion.decision == "rejected"
    assert r.conclusion.label is None and r.conclusion.basis == "photo"
    assert r.colour is not None and r.colour.hue == "neutral grey"
    assert r.tests is None
    # its grades name no species: the photo's first choice is not an answer (an outside try read "Clarity
    # grading does not apply to Blue Lace Agate" on a photo of a fork)
    assert r.clarity is not None and r.clarity.clarity_type is None and r.clarity.type_meaning is None
    assert r.species.top[0].label not in (r.clarity.reason or "")


def test_blank_photo_is_rejected_as_too_poor(identifier):
    rng = np.random.default_rng(0)
    blank = np.clip(rng.normal(235, 1.5, (200, 260, 3)), 0, 255).astype(np.uint8)
    r = identifier.identify(encode(blank))
    assert r.species.decision == "rejected" and "too poor" in r.species.reason
    assert "no_stone" in {w.code for w in r.quality.warnings}


def test_exif_rotation_reaches_the_stone_box(identifier):
    rgb = draw_stone(STONE_COLOURS["Peridot"], size=(240, 160), centre=(60, 80), radius=40)  # stone on the left
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # viewed rotated 90° clockwise: the stone is at the top
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    r = identifier.identify(buf.getvalue())
    assert (r.image.width, r.image.height) == (160, 240)
    x, y, w, h = r.quality.stone.bbox
    assert y + h < 120 and abs((x + w / 2) - 80) < 10


def test_bad_input_raises_typed_errors(identifier):
    with pytest.raises(UnsupportedType):
        identifier.identify(b"%PDF-1.4 not a photo")
    with pytest.raises(CorruptImage):
        identifier.identify(photo(ext=".jpg")[:1500])
    with pytest.raises(GemidInputError, match="reference"):
        identifier.identify(photo(), reference="x" * 201)


def test_limits_are_configurable(bundle_dir):
    small = Identifier(bundle_dir, max_bytes=10_000, max_pixels=100_000)
    with pytest.raises(GemidInputError) as e:
        small.identify(photo())
    assert e.value.code == "too_large"
    tiny = encode(draw_stone(size=(400, 300)), ".jpg", IMWRITE_JPEG_QUALITY=30)
    assert len(tiny) < 10_000
    with pytest.raises(GemidInputError) as e:
        small.identify(tiny)
    assert e.value.code == "too_many_pixels"


def test_identify_many_keeps_order_and_isolates_bad_files(identifier):
    labels = [*LABELS, "Ruby", "Emerald"]
    items: list[tuple[str, bytes]] = [(f"{i}-{lab}.png", photo(lab, seed=i)) for i, lab in enumerate(labels)]
    items.insert(3, ("notes.txt", b"parcel 42\n"))
    items.insert(CHUNK, ("empty.jpg", b""))  # the first photo of the second batch
    items.append(("cut.jpg", photo(ext=".jpg")[:1000]))
    assert len(items) > CHUNK
    out = identifier.identify_many(items, reference="P-1")
    assert [o.file for o in out] == [name for name, _ in items]
    errors = {o.file: o.error.code for o in out if isinstance(o, FileError)}
    assert errors == {"notes.txt": "unsupported_type", "empty.jpg": "empty_file", "cut.jpg": "corrupt_image"}
    reports = [o for o in out if isinstance(o, Report)]
    assert [r.species.top[0].label for r in reports] == labels
    assert all(r.reference == "P-1" for r in reports)
    # batched classification gives the same answer as one at a time
    single = identifier.identify(items[0][1])
    assert reports[0].species.top == single.species.top


def test_identify_many_reads_paths(identifier, tmp_path):
    (tmp_path / "a.png").write_bytes(photo("Ruby"))
    out = identifier.identify_many([("a.png", tmp_path / "a.png"), ("b.png", tmp_path / "missing.png")])
    assert isinstance(out[0], Report) and isinstance(out[1], FileError) and out[1].error.code == "not_found"


def test_readings_with_the_photo_fill_the_reranking(identifier):
    r = identifier.identify(photo("Ruby"), readings=Readings(ri=1.765, sg=4.0, optic="DR"))
    assert r.revision == 1 and r.tests is not None and r.tests.reranking is not None
    rr = r.tests.reranking
    assert rr.readings.ri == 1.765 and rr.combined[0].label == "Ruby" and not rr.fits_none
    # what these readings leave (synthetic corundum reads like ruby on every desk instrument) only a laboratory
    # separates: no test is offered to "rule out" what the readings already did, and the lab note says so
    assert r.tests.recommended == [] and "Synthetic corundum" in (r.tests.lab_note or "")
    partial = identifier.identify(photo("Ruby"), readings=Readings(sg=4.0))  # lead glass of that SG is still open
    assert "refractive_index" in {t.test for t in partial.tests.recommended}  # guidance kept beside the re-ranking
    assert identifier.identify(photo("Ruby"), readings=Readings()).tests.reranking is None  # empty: photo only


def test_add_readings_makes_a_new_revision_and_keeps_the_original(identifier):
    original = identifier.identify(photo("Emerald"))
    frozen = original.model_dump()
    new = identifier.add_readings(original, Readings(ri=1.55, sg=2.65, optic="DR"))  # quartz-like: fits no candidate
    assert original.model_dump() == frozen
    assert new.report_id == original.report_id and new.revision == 2
    assert new.species == original.species and new.image == original.image
    assert new.tests.reranking is not None and new.tests.reranking.photo_only[0].label == "Emerald"
    # guidance moves on: the tests just done are not recommended again
    assert new.tests.done == ["refractive_index", "specific_gravity", "optic_character"]
    done = {"refractive_index", "specific_gravity", "optic_character"}
    assert original.tests.recommended[0].test in done and not done & {t.test for t in new.tests.recommended}
    assert new.conclusion.basis == "photo+readings" and original.conclusion.basis == "photo"
    third = identifier.add_readings(new, Readings(ri=1.58))
    assert third.revision == 3
    with pytest.raises(GemidInputError) as e:
        identifier.add_readings(original, Readings())
    assert e.value.code == "no_readings"


def test_readings_change_the_ranking_as_the_table_says(identifier):
    """Ruby vs Amethyst from the photo; a quartz RI/SG turns it around."""
    r = identifier.identify(encode(draw_stone((160, 40, 110))))  # between ruby and amethyst
    photo_top = [c.label for c in r.species.top[:2]]
    assert set(photo_top) == {"Ruby", "Amethyst"}
    new = identifier.add_readings(r, Readings(ri=1.544, ri_high=1.553, sg=2.65, optic="DR"))
    assert new.tests.reranking.combined[0].label == "Amethyst"
    new = identifier.add_readings(r, Readings(ri=1.762, ri_high=1.770, sg=4.0, optic="DR"))
    assert new.tests.reranking.combined[0].label == "Ruby"


def test_concurrent_calls_match_sequential(identifier):
    jobs = [photo(lab, seed=i) for i, lab in enumerate([*LABELS, "Ruby", "Emerald"])]
    sequential = [identifier.identify(d).species for d in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda d: identifier.identify(d).species, jobs))
    assert parallel == sequential


def test_a_failing_grader_says_it_could_not_judge_and_keeps_the_report(bundle_dir, caplog):
    ident = Identifier(bundle_dir)

    def broken(*_args, **_kwargs):
        raise ValueError("grader bug")

    ident._grade_colour = broken  # fault injection: a bug in one grader must not lose the report
    r = ident.identify(photo("Ruby"))
    assert r.species.decision == "identified" and r.tests is not None
    # not None (that means "not asked for", --no-grade): a grade that could not be made says so
    assert r.colour.status == "cannot_judge" and "could not be measured" in r.colour.reason
    assert r.colour.hue is None and r.clarity.status == "graded"
    assert "colour could not be computed" in caplog.text


def test_large_photos_are_graded_in_original_coordinates_and_match_the_graders(identifier):
    import cv2

    from gemid.datasets.synth import random_spec, render
    from gemid.vision.clarity import grade_clarity
    from gemid.vision.colour import grade_colour
    from gemid.vision.segment import segment
    from gemid.vision.stone_area import WORK_SIDE, locate

    spec = random_spec(np.random.default_rng(5), cut="oval", background="white")
    small, _, _ = render(spec, size=256, seed=5)
    big = cv2.resize(small, (2048, 2048), interpolation=cv2.INTER_CUBIC)  # a phone-sized photo of the same stone
    seg = segment(big)
    area = locate(big, seg)
    assert max(area.small.shape[:2]) == WORK_SIDE and area.scale == pytest.approx(WORK_SIDE / 2048)
    assert locate(small, segment(small)).scale == 1.0  # small photos are graded as they are

    # the shared stone area changes nothing: the graders alone give the same grades
    shared, alone = grade_clarity(big, seg, "Emerald", area=area), grade_clarity(big, seg, "Emerald")
    assert shared == alone
    assert grade_colour(big, seg, area=area) == grade_colour(big, seg)

    x, y, w, h = seg.bbox
    assert len(shared.inclusions) >= 3  # this stone is heavily included
    for inc in shared.inclusions:  # boxes land inside the stone's box of the ORIGINAL photo
        bx, by, bw, bh = inc.bbox
        assert x - 8 <= bx and y - 8 <= by and bx + bw <= x + w + 8 and by + bh <= y + h + 8

    # through the pipeline: a 2048 px photo of a stone the tiny model knows, with dark spots drawn on it;
    # every spot must be inside an inclusion box in the photo's own pixels
    photo_rgb = draw_stone(STONE_COLOURS["Ruby"], size=(2048, 1536), seed=1)
    rng = np.random.default_rng(0)
    spots = []
    for _ in range(8):
        a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.25 * 1536)
        spots.append((int(1024 + r * np.cos(a)), int(768 + r * np.sin(a))))
        cv2.circle(photo_rgb, spots[-1], int(rng.integers(8, 20)), (20, 5, 8), -1, cv2.LINE_AA)
    report = identifier.identify(encode(photo_rgb, ".png"))
    assert report.species.decision != "rejected" and report.clarity is not None
    boxes = [inc.bbox for inc in report.clarity.inclusions]
    for sx, sy in spots:
        assert any(bx <= sx <= bx + bw and by <= sy <= by + bh for bx, by, bw, bh in boxes), (sx, sy, boxes)


def test_missing_model_is_a_model_error(tmp_path):
    from gemid.errors import ModelError

    with pytest.raises(ModelError, match="bundle.json missing"):
        Identifier(tmp_path)


@pytest.mark.skipif(not (DEFAULT_BUNDLE_DIR / "bundle.json").is_file(),
                    reason=f"the trained bundle is not at {DEFAULT_BUNDLE_DIR} yet (gemid export writes it there)")
def test_shipped_bundle_end_to_end():
    synth = pytest.importorskip("gemid.datasets.synth")
    ident = Identifier()
    rgb, _m, _t = synth.render(synth.StoneSpec(lab=(45.0, 40.0, 15.0)), size=256, seed=3)
    r = ident.identify(encode(rgb, ".jpg"), filename="rendered.jpg")
    assert r.model.name == ident.bundle.name and len(r.species.top) >= 5
    assert r.species.decision in ("identified", "uncertain", "rejected") and r.species.reason
    if r.species.decision != "rejected":
        assert r.colour is not None and r.tests is not None
    assert "torch" not in sys.modules or "gemid.training" in " ".join(sys.modules)
