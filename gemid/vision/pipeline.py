"""Photo bytes in, typed report out: decode → segment → quality → species → colour → clarity → tests.

`Identifier` is built once (it loads and verifies the model bundle) and then shared: it holds no
per-call state, and ONNX Runtime sessions are safe to call from many threads (the service's worker
processes each hold one; `GEMID_ANALYSIS=threads` shares one between threads). Colour, clarity, test
guidance and re-ranking live in their own modules; a grade that could not be made says so
(`status="cannot_judge"` with the reason) rather than leaving its section empty, which means "not asked".
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gemid.errors import GemidInputError, ModelError
from gemid.gemmology.conclusion import conclude
from gemid.gemmology.followup import exclusion_tests, lab_note, no_test_left, repeat_tests
from gemid.gemmology.guidance import recommend
from gemid.gemmology.likelihood import tests_done, tests_left
from gemid.gemmology.rerank import rerank
from gemid.gemmology.weight import estimate_weight
from gemid.report import (
    ClarityGrade,
    ColourGrade,
    Conclusion,
    FileError,
    ImageInfo,
    ModelInfo,
    Quality,
    Readings,
    Report,
    SpeciesResult,
    Stone,
    TestsResult,
    clean_reference,
    no_readings,
)
from gemid.vision.bundle import DEFAULT_BUNDLE_DIR, Bundle, load_bundle
from gemid.vision.capture import Capture, capture_stats
from gemid.vision.clarity import grade_clarity
from gemid.vision.clarity_types import retype, species_words
from gemid.vision.classify import MIN_TOP_K, Prediction, SpeciesClassifier
from gemid.vision.colour import grade_colour
from gemid.vision.crop import square_box
from gemid.vision.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, DecodedImage, decode, finer
from gemid.vision.learned import apply_heads
from gemid.vision.quality import assess, too_poor_to_judge
from gemid.vision.reference import locate_stones
from gemid.vision.segment import Segmentation
from gemid.vision.shape import SHAPE_DIR, ShapeModel
from gemid.vision.stone_area import locate
from gemid.vision.stones import describe, in_photo_pixels, isolated, isolated_fine

log = logging.getLogger(__name__)

UNMEASURED = "it could not be measured on this photo"
NO_STONE_AREA = "the stone's area could not be measured on this photo (a reference card or glare in the way?)"
CHUNK = 8  # photos decoded and held at once by identify_many: bounds memory (8 × 40 MP ≈ 1 GB worst case)

Source = bytes | bytearray | memoryview | Path | str


@dataclass
class _Prepared:
    """One photo after the pixel stages, waiting for the (batched) classifier."""

    file: str | None
    image: DecodedImage
    seg: Segmentation
    quality: Quality
    crop: np.ndarray
    poor: str | None
    stone: Stone | None = None  # which stone of the photo (gemid.vision.stones); None when none was found


class Identifier:
    """Preliminary identification of gemstone photos with one model bundle."""

    def __init__(
        self,
        bundle_dir: Path | str = DEFAULT_BUNDLE_DIR,
        *,
        variant: str = "fp32",
        threads: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        top_k: int = MIN_TOP_K,
        load_model: bool = True,
        shape_dir: Path | str | None = SHAPE_DIR,
    ) -> None:
        """load_model=False: the bundle (verified), labels, decisions and re-ranking without an ONNX session,
        for a process that never identifies a photo itself (the service's server, when workers analyse).
        shape_dir: the cut-shape model (None: reports carry no shape; one that does not load is logged and
        leaves the shape out rather than the photo's report)."""
        self.bundle: Bundle = load_bundle(bundle_dir)
        self.classifier = SpeciesClassifier(self.bundle, variant=variant, threads=threads, session=load_model)
        self.shapes: ShapeModel | None = None
        if load_model and shape_dir is not None:
            try:
                self.shapes = ShapeModel.load(shape_dir, threads=threads)
            except ModelError as exc:
                log.warning("no cut shapes in reports: %s", exc)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.top_k = max(MIN_TOP_K, top_k)
        # attributes, not globals: a deployment (or a test) may switch a grader off
        self._grade_colour: Callable[..., Any] | None = grade_colour
        self._grade_clarity: Callable[..., Any] | None = grade_clarity
        self._recommend: Callable[..., Any] | None = recommend
        self._rerank: Callable[..., Any] | None = rerank

    # --- public API -------------------------------------------------------------------------------------

    @property
    def model_info(self) -> ModelInfo:
        return self.classifier.model_info

    @property
    def capabilities(self) -> dict[str, bool]:
        """Which optional sections this installation can fill."""
        return {"colour": self._grade_colour is not None, "clarity": self._grade_clarity is not None,
                "tests": self._recommend is not None, "reranking": self._rerank is not None,
                "shape": self.shapes is not None}

    def identify(
        self,
        data: Source,
        *,
        filename: str | None = None,
        reference: str | None = None,
        readings: Readings | None = None,
        grade: bool = True,
        coin_mm: float | None = None, ruler: bool = False,
    ) -> Report:
        """One photo → Report. Bad input raises a GemidInputError (typed, with a clear message).

        grade=False skips colour and clarity (their sections stay None): a quick species screen of a
        parcel, several times faster; the species, quality and test guidance are the same. coin_mm / ruler: a
        coin of that diameter (`gemid.vision.coin`) or a millimetre ruler (`gemid.vision.ruler`) lies beside
        the stone(s) as the scale: the photo is split as `identify_stones` splits it, the reference left out,
        and its first stone reported."""
        if coin_mm is not None or ruler:
            return self.identify_stones(data, filename=filename, reference=reference, readings=readings,
                                        grade=grade, coin_mm=coin_mm, ruler=ruler)[0]
        return self._one(data, filename, reference, readings, grade)[1]

    def identify_captured(
        self,
        data: Source,
        *,
        filename: str | None = None,
        reference: str | None = None,
        readings: Readings | None = None,
        grade: bool = True,
    ) -> tuple[Report, Capture]:
        """`identify`, with the photo's capture statistics (gemid.vision.capture) beside the report: what the
        drift reference is made of (`gemid drift-reference`), from the pixels already decoded."""
        prep, report = self._one(data, filename, reference, readings, grade)
        return report, _capture(prep, report)

    def _one(self, data: Source, filename: str | None, reference: str | None, readings: Readings | None,
             grade: bool) -> tuple[_Prepared, Report]:
        """The photo's first stone through every stage: its prepared pixels and its report."""
        filename, reference, readings = _inputs(data, filename, reference, readings)
        prep = self._prepare(filename, data)
        (pred,) = self.classifier.predict([prep.crop])
        return prep, self._finish(prep, pred, reference, readings, grade)

    def identify_many(
        self,
        items: Sequence[tuple[str | None, Source]],
        *,
        reference: str | None = None,
        readings: Readings | None = None,
        grade: bool = True,
    ) -> list[Report | FileError]:
        """Several photos, classified in batches. A bad file yields a FileError; the others still run."""
        reference = clean_reference(reference)
        readings = _clean_readings(readings)
        out: list[Report | FileError] = []
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            results: list[Report | FileError | _Prepared] = []
            for name, data in chunk:
                try:
                    results.append(self._prepare(name, data))
                except GemidInputError as exc:
                    results.append(FileError.from_exception(name, exc))
                except Exception as exc:  # one odd photo must not sink the parcel
                    log.exception("unexpected failure preparing %s", name)
                    results.append(FileError.from_exception(name, exc))
            prepared = [r for r in results if isinstance(r, _Prepared)]
            preds = iter(self.classifier.predict([p.crop for p in prepared]))
            for r in results:
                if not isinstance(r, _Prepared):
                    out.append(r)
                    continue
                pred = next(preds)
                try:
                    out.append(self._finish(r, pred, reference, readings, grade))
                except Exception as exc:
                    log.exception("unexpected failure reporting %s", r.file)
                    out.append(FileError.from_exception(r.file, exc))
        return out

    def identify_stones_many(
        self,
        items: Sequence[tuple[str | None, Source]],
        *,
        reference: str | None = None,
        readings: Readings | None = None,
        grade: bool = True,
        coin_mm: float | None = None, ruler: bool = False,
    ) -> list[list[Report] | FileError]:
        """`identify_stones` for several photos, their stones classified in batches: per photo, its reports
        (one per stone, in reading order) or the FileError that refused it; the other photos still run. What
        `gemid identify` prints: a tray photo gives a row per stone, as the service does."""
        reference = clean_reference(reference)
        readings = _clean_readings(readings)
        out: list[list[Report] | FileError] = []
        for start in range(0, len(items), CHUNK):
            results: list[list[_Prepared] | FileError] = []
            for name, data in items[start : start + CHUNK]:
                try:
                    image = decode(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, working=True)
                    results.append(self._prepare_stones(name, image, first_only=False, coin_mm=coin_mm, ruler=ruler,
                                                        one_stone=readings is not None))
                except GemidInputError as exc:
                    results.append(FileError.from_exception(name, exc))
                except Exception as exc:  # one odd photo must not sink the parcel
                    log.exception("unexpected failure preparing %s", name)
                    results.append(FileError.from_exception(name, exc))
            preds = iter(self.classifier.predict([p.crop for r in results if isinstance(r, list) for p in r]))
            for r in results:
                if not isinstance(r, list):
                    out.append(r)
                    continue
                pairs = [(p, next(preds)) for p in r]
                try:
                    out.append([self._finish(p, pred, reference, readings, grade) for p, pred in pairs])
                except Exception as exc:
                    log.exception("unexpected failure reporting %s", r[0].file if r else None)
                    out.append(FileError.from_exception(r[0].file if r else None, exc))
        return out

    def identify_stones(
        self,
        data: Source,
        *,
        filename: str | None = None,
        reference: str | None = None,
        readings: Readings | None = None,
        grade: bool = True,
        coin_mm: float | None = None, ruler: bool = False,
    ) -> list[Report]:
        """Every stone in a tray or parcel photo → one Report each, in reading order (rows, then columns),
        each from its own crop; all share `image.sha256`. A single-stone photo gives one report, exactly as
        `identify` does; a photo without a stone gives its one rejected report. coin_mm: the diameter of a coin
        laid beside the stones, their scale; ruler: a millimetre ruler lies beside them, their scale (neither
        is reported as a stone)."""
        return self.identify_stones_captured(data, filename=filename, reference=reference, readings=readings,
                                             grade=grade, coin_mm=coin_mm, ruler=ruler)[0]

    def identify_stones_captured(
        self,
        data: Source,
        *,
        filename: str | None = None,
        reference: str | None = None,
        readings: Readings | None = None,
        grade: bool = True,
        coin_mm: float | None = None, ruler: bool = False,
    ) -> tuple[list[Report], list[Capture]]:
        """`identify_stones`, with each stone's capture statistics beside its report (the service records them
        for drift, outside the reports)."""
        filename, reference, readings = _inputs(data, filename, reference, readings)
        image = decode(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, working=True)
        preps = self._prepare_stones(filename, image, first_only=False, coin_mm=coin_mm, ruler=ruler,
                                     one_stone=readings is not None)
        preds = self.classifier.predict([p.crop for p in preps])
        reports = [self._finish(p, pred, reference, readings, grade) for p, pred in zip(preps, preds, strict=True)]
        return reports, [_capture(p, r) for p, r in zip(preps, reports, strict=True)]

    def add_readings(self, report: Report, readings: Readings) -> Report:
        """A new revision of `report` re-ranked with the technician's readings; `report` is not modified."""
        readings = _clean_readings(readings)
        if readings is None:
            raise no_readings()
        if self._rerank is None:
            raise RuntimeError("re-ranking with readings is not available in this installation")
        new = report.model_copy(deep=True)
        tests, conclusion = self._evidence(new.species, readings)
        clarity = retype(new.clarity, species_words(conclusion, new.species)) if new.clarity else None
        stone = _weighed(new.stone, new.species, tests, conclusion, readings)
        return new.model_copy(update={"revision": report.revision + 1, "tests": tests, "conclusion": conclusion,
                                      "clarity": clarity, "stone": stone, "created_at": datetime.now(UTC)})

    # --- stages -----------------------------------------------------------------------------------------

    def _prepare(self, name: str | None, data: Source) -> _Prepared:
        # the working image (gemid.vision.decode): decoded at the size the stages need, shared by all of them
        image = decode(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, working=True)
        return self._prepare_stones(name, image, first_only=True)[0]

    def _prepare_stones(self, name: str | None, image: DecodedImage, *, first_only: bool,
                        coin_mm: float | None = None, ruler: bool = False,
                        one_stone: bool = False) -> list[_Prepared]:
        """The pixel stages for each stone of the photo: its own segmentation, quality and crop, the other stones
        painted out (one stone: the photo as it is).

        `identify` (first_only) keeps the photo whole, as the shipped model was trained and measured: before
        the single-stone rules of `gemid.vision.stones` (satellites, frame-filling stones) the splitting called
        23 of 411 gems68 validation photos multi-stone, most of them one pale faceted stone whose facet
        reflections segment as separate pieces, and reporting "the first stone" cost top-1 there (now 0 of the
        1,003 single-stone photos split; `python -m bench.bench_trays --singles`). `one_stone`: readings came with
        the photo, and they describe one stone, so a photo of several is refused rather than each given them."""
        found = locate_stones(image, first_only=first_only, coin_mm=coin_mm, ruler=ruler, max_bytes=self.max_bytes,
                              max_pixels=self.max_pixels)  # the stones, and their sizes on a scale reference
        image, stones, painted, view, sizes = found.image, found.stones, found.painted, found.view, found.sizes
        if one_stone and len(stones) > 1:
            raise readings_for_one_stone(len(stones))
        margin = self.bundle.input.crop.margin
        out = []
        for i in range(1 if first_only else len(stones)):
            seg = stones[i]
            quality = assess(image.rgb, seg, margin, scale=image.scale, reference=found.reference,
                             tray=not first_only and len(stones) > 1)
            near = isolated(image.rgb, painted, i, margin)  # once: the shape, the crop and the front end use it
            fine = (isolated_fine(view.rgb, view.k, painted, i, margin, (image.rgb.shape[1], image.rgb.shape[0]))
                    if view is not None and view.k > 1.0 else None)  # the reference's full-resolution neighbourhood
            stone = describe(stones, i, fine or near, count=seg.n_stones if first_only else None,
                             shapes=self.shapes, fine=fine is not None, card=view is not None)
            quality, stone = in_photo_pixels(image, quality, stone)
            if stone is not None and sizes is not None:
                stone = stone.model_copy(update={"size": sizes[i]})
            crop = self._model_crop(image, near, whole=first_only or len(painted) == 1, fine=fine)
            out.append(_Prepared(file=name, image=image, seg=seg, quality=quality,
                                 crop=self.classifier.front_end(crop, *near),
                                 poor=too_poor_to_judge(quality), stone=stone))
        return out

    def _model_crop(self, image: DecodedImage, near: tuple[np.ndarray, Segmentation], *, whole: bool,
                    fine: tuple[np.ndarray, Segmentation] | None = None) -> np.ndarray:
        """The model's crop of a stone from `near`, its neighbourhood in the working image (`isolated`). A stone
        too small in a reduced working image for the model's input side (a small stone in a big photo) is cut
        from the photo decoded again just fine enough, so the model sees what it would have seen in the whole
        photo rather than an enlarged working image; on the scale card, from `fine`, its neighbourhood in the
        card's photo at full resolution."""
        margin = self.bundle.input.crop.margin
        if fine is not None and self.bundle.input.crop.policy != "full_image":
            return self.classifier.crop(*fine)
        rgb, seg = near
        need = self.bundle.input.size
        if not (whole and image.data is not None and seg.found and self.bundle.input.crop.policy != "full_image"):
            return self.classifier.crop(rgb, seg)
        side = square_box(seg.bbox, margin, (rgb.shape[1], rgb.shape[0]))[2] / image.scale  # in photo pixels
        step = 1
        while step < 8 and side / (2 * step) >= need:
            step *= 2
        if side * image.scale >= need or step * image.scale >= 1.0:
            return self.classifier.crop(rgb, seg)
        fine = finer(image, step, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        k = fine.scale / image.scale
        x, y, w, h = seg.bbox
        return self.classifier.crop(fine.rgb, replace(seg, bbox=(int(x * k), int(y * k), math.ceil(w * k), math.ceil(h * k))))

    def _finish(self, prep: _Prepared, pred: Prediction, reference: str | None,
                readings: Readings | None, grade: bool = True) -> Report:
        species = self.classifier.result(pred, prep.quality, top_k=self.top_k, poor_photo=prep.poor)
        tests, conclusion = self._evidence(species, readings)
        # grades describe the stone found, whatever the species decision (a simulant, an unknown species);
        # species-dependent words (the clarity type) follow the conclusion, not the photo alone
        judged = grade and prep.seg.found
        label = species_words(conclusion, species)
        colour = clarity = None
        if judged:
            # where the stone is, at grading resolution (<= 384 px), found once for both graders; clarity
            # cuts the stone out of the working image, and its boxes come back in the photo's own pixels
            rgb, seg = prep.image.rgb, prep.seg
            area = self._call("stone area", locate, rgb, seg, photo_scale=prep.image.scale)
            if area is not None:
                colour = self._call("colour", self._grade_colour, rgb, seg, area=area)
                clarity = self._call("clarity", self._grade_clarity, rgb, seg, label, area=area)
            # a head trained on graded photos outranks the measurement (gemid.vision.learned)
            colour, clarity = apply_heads(colour, clarity, pred.heads, self.bundle.heads)
            why = UNMEASURED if area is not None else NO_STONE_AREA
            if colour is None and self._grade_colour is not None:
                colour = ColourGrade(status="cannot_judge", reason=why)
            if clarity is None and self._grade_clarity is not None:
                clarity = ClarityGrade(status="cannot_judge", reason=why)

        img = prep.image
        return Report(
            report_id=str(uuid.uuid4()),
            created_at=datetime.now(UTC),
            reference=reference,
            file=prep.file,
            image=ImageInfo(sha256=img.sha256, width=img.width, height=img.height, format=img.format,
                            bytes=img.bytes),
            model=self.classifier.model_info,
            species=species,
            quality=prep.quality,
            colour=colour,
            clarity=clarity,
            tests=tests,
            conclusion=conclusion,
            stone=_weighed(prep.stone, species, tests, conclusion, readings),
        )

    def _evidence(self, species: SpeciesResult, readings: Readings | None) -> tuple[TestsResult | None, Conclusion]:
        """The re-ranking with the readings, the conclusion from all the evidence, and the tests still to do
        (guidance recomputed on the combined ranking, without the tests already done)."""
        reranking = None
        if readings is not None and self._rerank is not None:
            reranking = self._call("reranking", self._rerank, list(species.top), readings,
                                   model_labels=self.bundle.labels)
        conclusion = conclude(species, reranking)
        tests: TestsResult | None = None
        if species.decision != "rejected" or reranking is not None:
            done = tests_done(readings if reranking is not None else None)
            candidates = list(reranking.combined) if reranking is not None else list(species.top)
            left = tests_left(readings if reranking is not None else None)
            tests = self._call("tests", self._recommend, candidates, available=left,
                               readings=readings if reranking is not None else None,
                               exclude=exclusion_tests(conclusion, readings if reranking is not None else None),
                               repeat=repeat_tests(conclusion, reranking))
            tests = tests.model_copy(deep=True) if tests is not None else TestsResult()
            if conclusion.decision == "refer":  # the candidates' tests would only "confirm" what the readings refuted
                tests.recommended = []
                tests.colour_decides = None
            elif not tests.recommended:
                conclusion = no_test_left(conclusion)
            tests.done = done
            tests.reranking = reranking
            tests.lab_note = lab_note(conclusion, len(tests.recommended), readings)
        return tests, conclusion

    @staticmethod
    def _call(section: str, fn: Callable[..., Any] | None, *args: Any, **kwargs: Any) -> Any:
        """Run an optional grader; a failure leaves its section empty (logged) rather than losing the report."""
        if fn is None:
            return None
        try:
            return fn(*args, **kwargs)
        except GemidInputError:
            raise
        except Exception:
            log.exception("%s could not be computed", section)
            return None


def _weighed(stone: Stone | None, species: SpeciesResult, tests: TestsResult | None, conclusion: Conclusion,
             readings: Readings | None) -> Stone | None:
    """The stone with its weight: the scale reading, or the estimate from its size and what it is concluded to
    be (the re-ranked candidates when readings were entered); it follows every new revision's conclusion."""
    if stone is None:
        return None
    reranked = tests.reranking.combined if tests is not None and tests.reranking is not None else None
    weight = estimate_weight(stone, conclusion, reranked or species.top, readings)
    return stone.model_copy(update={"weight": weight})


def _capture(prep: _Prepared, report: Report) -> Capture:
    """The capture statistics of one prepared stone and its report's photo-only confidence."""
    top = report.species.top
    return capture_stats(prep.image.rgb, background_lab=prep.seg.background_lab, area_fraction=prep.seg.area_fraction,
                         found=prep.seg.found, sharpness=prep.quality.sharpness,
                         confidence=top[0].probability if top else None, camera=prep.image.camera,
                         photo_size=(prep.image.width, prep.image.height))


def readings_for_one_stone(stones: int) -> GemidInputError:
    """The refusal of readings sent with a photo of several stones: they are one stone's, and given to every
    stone of a tray they would re-rank the others on a stranger's readings."""
    return GemidInputError(f"the photo holds {stones} stones, and readings describe one stone: identify the photo "
                           "without readings, then enter each stone's readings on its own report, or photograph "
                           "the stone alone", code="readings_several_stones", status=422)


def _inputs(data: Source, filename: str | None, reference: str | None,
            readings: Readings | None) -> tuple[str | None, str | None, Readings | None]:
    """What identify and identify_stones take from their caller: the file's name (from its path when not
    given), the cleaned reference, and readings that hold a reading (else None)."""
    if filename is None and isinstance(data, (Path, str)):
        filename = Path(data).name
    return filename, clean_reference(reference), _clean_readings(readings)


def _clean_readings(readings: Readings | None) -> Readings | None:
    return None if readings is None or readings.is_empty() else readings
