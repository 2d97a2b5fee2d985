"""The report: one typed object, the same from the CLI (`--json`), the API, the store and the page.

This module is the one place that defines report fields (longer than 500 lines because every report field,
the input errors and the one table row have to live together, as report-schema.md asks). `vision`,
`gemmology`, `serve` and `training` import it; it imports none of them (only `gemid.errors`), so any layer
can build or read a report.

Areas fill their own section: species and quality (runtime), colour and clarity (grading),
tests (confirmatory-test guidance). A section an area could not compute is None, never invented.
`../shared/design/report-schema.md` fixes the shape the open issues add up to (conclusion, grade statuses,
stones, signatures); `schema_version` rises when a field is renamed or removed, and reports stored
under an earlier version stay readable (new fields get defaults).

Stored revisions are signed (`signature`, `previous_signature`). The signed bytes are the canonical JSON
(RFC 8785) of the revision exactly as stored and served, without `signature`; they include `image.sha256`
and `previous_signature`, so revision N+1 seals revision N and a photo cannot be swapped unnoticed. Because
verification recomputes the canonical form from the JSON received, a signed revision is served as stored,
byte for byte in meaning: a field added to this schema later is absent from it, never filled in with a
default (that would change the signed content). gemid.signing holds the rules in code.

A report's table row (CLI table and CSV, the parcel table, its CSV and History's CSV) is made here too, by
`table_row`, so the columns have one owner (`gemid.report_csv` writes them as the one CSV export).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, Field

from gemid.errors import GemidInputError
from gemid.readings import (  # noqa: F401  (re-exported: a report's readings are imported from here too)
    CONTEXT_FIELDS,
    Readings,
    no_readings,
)

Decision = Literal["identified", "uncertain", "rejected"]

DISCLAIMER = (
    "Preliminary identification from a photograph and the readings entered with it, if any. It is not a "
    "certificate: confirm the species with standard gemmological tests (refractive index, birefringence, "
    "specific gravity, optic character, spectroscope) before any sale, export or certification."
)

SCHEMA_VERSION = 1  # raise it when a field is renamed or removed; README's API section lists the changes

MAX_REFERENCE = 200  # a parcel or lot number, not an essay
MAX_FILE_NAME = 255  # the report store's column

# C0 and C1 control characters: invisible on a printed report, able to drive a terminal, and NUL cannot be
# stored by PostgreSQL at all. With them the bidirectional embeddings, overrides and isolates
# (U+202A-U+202E, U+2066-U+2069): "LOT-\u202e411-ABC" prints as "LOT-CBA-114", so what a desk reads off a
# printed report would not find it. ZWNJ and ZWJ (U+200C, U+200D) stay: Urdu and other scripts need them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` without control characters (bidirectional controls included; joiners kept)."""
    return _CONTROL.sub("", text)


def clean_reference(reference: str | None) -> str | None:
    """A parcel or lot number as a report records it: runs of whitespace become one space, control
    characters go; longer than MAX_REFERENCE is refused (GemidInputError `bad_reference`)."""
    if reference is None:
        return None
    reference = printable(" ".join(reference.split()))
    if len(reference) > MAX_REFERENCE:
        raise GemidInputError(f"the reference is {len(reference)} characters; at most {MAX_REFERENCE}",
                              code="bad_reference", status=422)
    return reference or None


def clean_file_name(name: str | None) -> str | None:
    """An uploaded photo's name as a report records it: control characters go, and a name longer than
    MAX_FILE_NAME keeps its start and its extension."""
    if name is None:
        return None
    name = printable(name).strip()
    if len(name) > MAX_FILE_NAME:
        stem, dot, ext = name.rpartition(".")
        keep = f"{dot}{ext}" if dot and 0 < len(ext) <= 10 else ""
        name = name[: MAX_FILE_NAME - len(keep) - 1] + "…" + keep
    return name or None


# every report and refusal entry records its file name through this, wherever it was made (CLI, API, worker)
FileName = Annotated[str | None, AfterValidator(clean_file_name)]


class ImageInfo(BaseModel):
    sha256: str
    width: int
    height: int
    format: str = Field(description="container format found by content, e.g. JPEG, PNG, WEBP, TIFF, HEIF")
    bytes: int


class ModelInfo(BaseModel):
    name: str
    version: str
    sha256: str = Field(description="sha256 of the ONNX file that produced the answer")
    variant: Literal["fp32", "int8"] = "fp32"


class Candidate(BaseModel):
    label: str
    probability: float = Field(ge=0.0, le=1.0)


class SpeciesResult(BaseModel):
    decision: Decision
    reason: str = Field(description="why this decision, in plain words")
    top: list[Candidate] = Field(description="most probable first; at least 10 entries")
    open_set_score: float | None = Field(None, description="open-set familiarity score (the energy, combined with "
                                         "the feature distance when the bundle fits one); higher means more familiar")


class QualityWarning(BaseModel):
    code: Literal[
        "no_stone", "stone_too_small", "several_stones", "blurry", "overexposed", "underexposed",
        "low_resolution", "no_background",
    ]
    message: str


class StoneRegion(BaseModel):
    """Where the stone is, in original-image pixel coordinates (after EXIF rotation)."""

    bbox: tuple[int, int, int, int] = Field(description="x, y, width, height")
    outline: list[tuple[int, int]] = Field(default_factory=list, description="simplified contour polygon")
    area_fraction: float = Field(description="stone area / image area")
    n_stones: int


class Quality(BaseModel):
    warnings: list[QualityWarning] = Field(default_factory=list)
    sharpness: float | None = Field(None, description="variance of the Laplacian inside the stone")
    stone: StoneRegion | None = None


# --- colour (grading) ---------------------------------------------------------------------------------


class ScaleValue(BaseModel):
    value: int
    name: str


class ColourBand(BaseModel):
    band: Literal["colourless", "near colourless", "faint", "very light", "light"]
    letters: str = Field(description="D-Z letters this band spans, e.g. 'G-J'")
    caveat: str


GradeStatus = Literal["graded", "cannot_judge", "not_applicable"]
GRADE_STATUS_HELP = ("graded: the grade below; cannot_judge: this photo cannot show it (see reason); "
                     "not_applicable: the material is not graded this way (clarity of an opaque stone)")


class ColourGrade(BaseModel):
    """Only a `graded` colour carries a hue, tone and saturation; otherwise `reason` says why not."""

    status: GradeStatus = Field("graded", description=GRADE_STATUS_HELP)
    reason: str | None = Field(None, description="why the colour was not graded, in plain words")
    lab: tuple[float, float, float] | None = Field(None, description="CIELAB (D65) body colour")
    hex: str | None = Field(None, description="sRGB swatch of the body colour")
    hue: str | None = Field(None, description="hue name with modifier, e.g. 'slightly bluish green'")
    hue_angle: float | None = Field(None, description="CIELAB hue angle h_ab in degrees")
    tone: ScaleValue | None = Field(None, description="0 colourless .. 10 black (GIA; 2-8 used)")
    saturation: ScaleValue | None = Field(None, description="1 greyish/brownish .. 6 vivid (GIA)")
    description: str = ""
    white_balance: Literal["background", "card", "none"] = "none"
    confidence: float = Field(0.0, ge=0.0, le=1.0)
    d_to_z: ColourBand | None = None
    source: Literal["measured", "learned"] = "measured"


# --- clarity (grading) --------------------------------------------------------------------------------


class Inclusion(BaseModel):
    bbox: tuple[int, int, int, int] = Field(description="x, y, width, height in original-image pixels")
    kind: str = Field(description="crystal, feather, needles, cloud, or unknown")
    severity: float = Field(ge=0.0, le=1.0)


class ClarityGrade(BaseModel):
    """Only a `graded` clarity carries a grade, `eye_clean` and inclusions; otherwise `reason` says why not."""

    status: GradeStatus = Field("graded", description=GRADE_STATUS_HELP)
    reason: str | None = Field(None, description="why the clarity was not graded, in plain words")
    grade: Literal["VVS", "VS", "SI1", "SI2", "I1", "I2", "I3"] | None = None
    eye_clean: bool | None = None
    severity: float | None = Field(None, ge=0.0, le=1.0, description="0 clean .. 1 heavily included")
    clarity_type: Literal["I", "II", "III"] | None = Field(None, description="GIA clarity type of the species")
    type_meaning: str | None = Field(None, description="what the grade means for this species")
    inclusions: list[Inclusion] = Field(default_factory=list)
    confidence: float = Field(0.0, ge=0.0, le=1.0)
    source: Literal["measured", "learned"] = "measured"


# --- confirmatory tests (guidance) --------------------------------------------------------------------


class ExpectedValue(BaseModel):
    label: str
    expected: str = Field(description="what this candidate should read on this test, e.g. '1.762-1.770'")


class TestRecommendation(BaseModel):
    test: str = Field(description="e.g. refractive_index, birefringence, specific_gravity, optic_character")
    instrument: str
    separation: float = Field(ge=0.0, le=1.0, description="expected probability mass resolved by this test")
    why: str
    expected: list[ExpectedValue]


class Reranking(BaseModel):
    readings: Readings
    photo_only: list[Candidate]
    combined: list[Candidate]
    fits_none: bool = Field(description="readings fit no candidate: simulant, synthetic, treated or unknown")
    flag: str | None = None


class Confirmation(BaseModel):
    """The settled answer, from confirmatory tests or a laboratory: what field accuracy is measured against and
    what turns desk photos into training data."""

    label: str = Field(min_length=1, max_length=100, description=(
        "the species: a label of the property table, or 'other' with `other_name`"))
    other_name: str | None = Field(None, max_length=100, description="the material's name when label is 'other'")
    method: str = Field(min_length=1, max_length=200, description="how it was settled, e.g. 'Raman', 'standard tests'")
    lab_reference: str | None = Field(None, max_length=100, description="the laboratory's report number")
    confirmed_by: str | None = Field(None, max_length=100, description="who confirmed it")
    confirmed_at: datetime | None = None


class IssuedBy(BaseModel):
    """Who made a revision, and at which desk: set by the service from the account that sent the request (the
    photo-only report and each revision after it); null from the command line, which has no accounts."""

    name: str = Field(max_length=100, description="the account (a person or an API key) that made this revision")
    desk: str | None = Field(None, max_length=100, description="its desk; null for an account without one")


ConclusionDecision = Literal["identified", "uncertain", "refer", "rejected"]
DECISIONS: tuple[str, ...] = get_args(ConclusionDecision)  # in the order every summary counts them


class Conclusion(BaseModel):
    """One answer from all the evidence: what History, the parcel table, the CSV, the printed report and the
    CLI table show. `species` stays the photo-only result ("from the photo")."""

    decision: ConclusionDecision = Field(description=(
        "identified; uncertain; refer (send it to a laboratory: the reason says why); rejected (not a gem, "
        "or no stone found)"))
    label: str | None = Field(None, description="the answer (null when rejected)")
    probability: float | None = Field(None, ge=0.0, le=1.0)
    basis: Literal["photo", "photo+readings"]
    reason: str = Field(description="why this decision, in plain words")
    fits: list[str] = Field(default_factory=list, description=(
        "what the readings fit when they point away from the photo's answer, e.g. ['Spinel', 'Glass']"))
    cannot_exclude: list[str] = Field(default_factory=list, description=(
        "look-alikes the evidence cannot rule out (a synthetic of the same species, a glass of the same RI)"))


class TestsResult(BaseModel):
    recommended: list[TestRecommendation] = Field(default_factory=list, description=(
        "the tests to do next, best first; never one already done (see `done`)"))
    done: list[str] = Field(default_factory=list, description="tests whose readings were entered")
    lab_note: str | None = Field(None, description=(
        "when no cheap test is left, or only a laboratory can settle the question: which method would"))
    colour_decides: str | None = Field(None, description="set when only colour varieties of one mineral remain")
    reranking: Reranking | None = None


# --- many stones in one photo --------------------------------------------------------------------------

SHAPES = ("round", "oval", "cushion", "emerald_cut", "square", "pear", "marquise", "heart", "trillion",
          "cabochon", "tumbled_or_rough")


class StoneShape(BaseModel):
    label: Literal[SHAPES] = Field(description=(  # type: ignore[valid-type]
        "cut shape: round, oval, cushion, emerald_cut (step cut, octagon), square (princess), pear, marquise, "
        "heart, trillion, cabochon (any outline), tumbled_or_rough"))
    probability: float = Field(ge=0.0, le=1.0)
    others: dict[str, float] = Field(default_factory=dict, description=(
        "the other shapes at least 5 % probable, most probable first: the shape is read from a photo taken from "
        "above (90.6 % top-1 on held-out gems68 photos), and a weight estimate spans those at least 15 % probable"))


class StoneSize(BaseModel):
    """The stone's face-up length and width on a scale reference in the photo (gemid.vision.size). Absent when
    the photo holds no reference; `cannot_measure` says why a stone on one was not measured."""

    status: Literal["measured", "cannot_measure"]
    length_mm: float | None = Field(None, description="longest side of the outline's minimum-area rectangle")
    width_mm: float | None = Field(None, description="its shorter side")
    uncertainty_mm: float | None = Field(None, description="95 % interval, plus or minus, on each of the two")
    method: str = Field(description="the reference and how the outline was measured")
    reason: str | None = Field(None, description="why it was not measured, in plain words")


class StoneWeight(BaseModel):
    """The stone's weight: the desk's scale reading (`weight_ct`) when entered, otherwise an estimate from its
    measured size, its shape and the specific gravity of what it is (gemid.gemmology.weight)."""

    basis: Literal["scale", "estimate"] = Field(description="scale: the reading entered; estimate: from the photo")
    carats: float = Field(description="the reading, or the estimate's middle")
    low: float | None = Field(None, description="the estimate's range (None for a reading)")
    high: float | None = None
    method: str = Field(description="what it rests on, in plain words")


class Stone(BaseModel):
    """Which stone of the photo this report is about. Every stone found gets its own report; all share
    `image.sha256`. A single-stone photo has index 1 and count 1."""

    index: int = Field(ge=1, description="1-based, in reading order (rows top to bottom, then left to right)")
    count: int = Field(ge=1, description="stones found in the photo")
    bbox: tuple[int, int, int, int] = Field(description="x, y, width, height in the photo's pixels")
    outline: list[tuple[int, int]] = Field(default_factory=list, description="simplified contour, photo pixels")
    shape: StoneShape | None = None
    size: StoneSize | None = Field(None, description="length and width in mm; absent without a scale reference")
    weight: StoneWeight | None = Field(None, description="the scale reading, or an estimate from the size")


# --- the signature -------------------------------------------------------------------------------------


class Signature(BaseModel):
    """The service's signature of one stored revision (see gemid.signing for the exact rules)."""

    algorithm: Literal["Ed25519"] = "Ed25519"
    key_id: str = Field(description="names the public key (GET /v1/keys): first 16 hex of SHA-256 of its raw bytes")
    value: str = Field(description="base64 of the 64-byte Ed25519 signature")


# --- the report ---------------------------------------------------------------------------------------


class Report(BaseModel):
    schema_version: int = Field(SCHEMA_VERSION, description="the report schema this report follows")
    report_id: str
    revision: int = Field(1, description="1 for the photo-only report; +1 for each set of readings added")
    created_at: datetime
    reference: str | None = Field(None, description="parcel or lot number given with the photo")
    file: FileName = Field(None, description="the uploaded file name, without control characters")
    image: ImageInfo
    model: ModelInfo
    species: SpeciesResult
    quality: Quality
    colour: ColourGrade | None = Field(None, description=(
        "null when the photo was rejected, no stone was found, or grading was not asked for (grade=false)"))
    clarity: ClarityGrade | None = Field(None, description=(
        "null when the photo was rejected, no stone was found, or grading was not asked for (grade=false)"))
    tests: TestsResult | None = None
    conclusion: Conclusion | None = Field(None, description=(
        "one answer from the photo and the readings; null only in reports stored before it existed"))
    stone: Stone | None = Field(None, description=(
        "which stone of the photo this report is about (index of count); null when no stone was found"))
    confirmation: Confirmation | None = Field(None, description=(
        "what a laboratory settled the stone to be, recorded after the report (a later revision)"))
    issued_by: IssuedBy | None = Field(None, description=(
        "the account and desk that made this revision (null without accounts: the command line, older reports)"))
    disclaimer: str = DISCLAIMER
    previous_signature: str | None = Field(None, description=(
        "the previous revision's `signature.value` (null for revision 1): revisions form a chain"))
    signature: Signature | None = Field(None, description=(
        "the service's Ed25519 signature of this revision; null in a report that was not stored (CLI) or was "
        "stored before signing existed"))

    @property
    def decision(self) -> str:
        """What the report concludes: the conclusion's decision, the photo's in a report stored before
        conclusions existed. History, the parcel, the CSV, the manifest and the CLI count by it."""
        return self.conclusion.decision if self.conclusion else self.species.decision


class ErrorInfo(BaseModel):
    code: str = Field(description="machine-readable, e.g. not_an_image, too_large, empty_file")
    message: str


class FileError(BaseModel):
    """A photo that gave no report: its entry in the CLI's JSON, the API's `reports` list and the CSV."""

    file: FileName
    error: ErrorInfo

    @classmethod
    def refusal(cls, file: str | None, code: str, message: str) -> FileError:
        """The one way a refusal entry is built (CLI, API, parcel workers, analysis workers)."""
        return cls(file=file, error=ErrorInfo(code=code, message=message))

    @classmethod
    def from_exception(cls, file: str | None, exc: BaseException) -> FileError:
        """A refusal for what went wrong: an input error says what it is; anything else is `internal_error`
        and names only the exception's type (no internals reach the technician)."""
        if isinstance(exc, GemidInputError):
            return cls.refusal(file, exc.code, exc.message)
        return cls.refusal(file, "internal_error", f"this photo could not be analysed ({type(exc).__name__})")


# --- a report as one table row: CLI table, CSV, parcel export -------------------------------------------

# `decision`, `answer`, `probability`: the conclusion (photo and readings); `top1`...: the photo's; `stone`:
# "index/count" in its photo; `readings`: those entered ("RI 1.762; SG 4.00"); `confirmed`: a laboratory's answer
ROW_FIELDS = ["file", "report_id", "decision", "top1", "p1", "top2", "p2", "colour", "clarity", "warnings",
              "error", "reference", "next_test", "colour_hex", "answer", "probability", "basis",
              "photo_decision", "cannot_exclude", "revision", "stone", "shape", "top3", "p3", "readings",
              "image_sha256", "created_at", "size_status", "length_mm", "width_mm", "size_uncertainty_mm",
              "weight_ct", "weight_low_ct", "weight_high_ct", "weight_basis", "size_reason", "confirmed",
              "confirmed_method"]


def _not_graded(status: str, reason: str | None) -> str:
    words = "does not apply" if status == "not_applicable" else "cannot judge from this photo"
    return f"{words}: {reason}" if reason else words


def colour_text(r: Report) -> str:
    """The colour grade in words; what stopped it when it could not be graded; "" when not asked for."""
    c = r.colour
    if c is None:
        return ""
    if c.status != "graded" or c.tone is None or c.saturation is None:
        return _not_graded(c.status, c.reason)
    return f"{c.hue}, tone {c.tone.value} ({c.tone.name}), saturation {c.saturation.value} ({c.saturation.name})"


def clarity_text(r: Report) -> str:
    """The clarity grade, or what stopped it; "" when not asked for."""
    c = r.clarity
    if c is None:
        return ""
    if c.status != "graded" or c.grade is None:
        return _not_graded(c.status, c.reason)
    return c.grade


def next_test(r: Report) -> str:
    """What to do next: the best separating test, or the sentence saying colour alone decides."""
    t = r.tests
    if t is None:
        return ""
    if t.colour_decides:
        return t.colour_decides
    return t.recommended[0].test.replace("_", " ") if t.recommended else ""


READING_PLACES = {"ri": 3, "ri_high": 3, "birefringence": 3, "sg": 2, "weight_ct": 2, "ri_limit": 2}
READING_WORDS = {"ri": "RI", "ri_high": "RI high", "ri_otl": "RI over the limit", "birefringence": "DR",
                 "sg": "SG", "optic": "optic", "optic_sign": "sign", "pleochroism": "pleochroism",
                 "uv_lw": "UV LW", "uv_sw": "UV SW", "ri_spot": "spot RI", "weight_ct": "ct", "ri_limit": "RI limit"}


def reading_value(key: str, value: object) -> str:
    """A reading as the instrument gives it: RI and birefringence to three places, SG, weight and the
    refractometer's limit to two ("RI 1.770", not "1.77"; an outside try read its 1.770 and 4.00 back shortened)."""
    places = READING_PLACES.get(key)
    return f"{value:.{places}f}" if places is not None and isinstance(value, float) else str(value)


def readings_text(r: Report) -> str:
    """The readings entered for this revision, in a desk's shorthand ("RI 1.762; SG 4.0; optic DR")."""
    rr = r.tests.reranking if r.tests else None
    if rr is None:
        return ""
    parts = []
    for key, value in rr.readings.model_dump().items():
        if value is None or value is False:
            continue
        parts.append(READING_WORDS[key] if value is True else f"{READING_WORDS[key]} {reading_value(key, value)}")
    return "; ".join(parts)


def table_row(r: Report | FileError) -> dict[str, str]:
    """One report (or refusal) as a row of ROW_FIELDS; a refusal keeps its row so nothing is dropped."""
    if isinstance(r, FileError):
        return {"file": r.file or "", "error": f"{r.error.code}: {r.error.message}"}
    top, c, k = r.species.top, r.conclusion, r.confirmation
    return {
        "file": r.file or "", "report_id": r.report_id, "decision": r.decision,
        "top1": top[0].label if top else "", "p1": f"{top[0].probability:.4f}" if top else "",
        "top2": top[1].label if len(top) > 1 else "", "p2": f"{top[1].probability:.4f}" if len(top) > 1 else "",
        "colour": colour_text(r), "clarity": clarity_text(r),
        "warnings": "; ".join(w.code for w in r.quality.warnings), "error": "",
        "reference": r.reference or "", "next_test": next_test(r),
        "colour_hex": (r.colour.hex or "") if r.colour else "",
        "answer": (c.label or "") if c else "", "probability": f"{c.probability:.4f}" if c and c.probability else "",
        "basis": c.basis if c else "photo", "photo_decision": r.species.decision,
        "cannot_exclude": "; ".join(c.cannot_exclude) if c else "", "revision": str(r.revision),
        "stone": f"{r.stone.index} of {r.stone.count}" if r.stone else "",  # "1/4" opens as a date in a spreadsheet
        "shape": r.stone.shape.label.replace("_", " ") if r.stone and r.stone.shape else "",
        "top3": top[2].label if len(top) > 2 else "", "p3": f"{top[2].probability:.4f}" if len(top) > 2 else "",
        "readings": readings_text(r), "image_sha256": r.image.sha256,
        "created_at": r.created_at.isoformat(timespec="seconds"),
        **size_fields(r),
        "confirmed": ((k.other_name or k.label) if k.label == "other" else k.label) if k else "",
        "confirmed_method": k.method if k else "",
    }


def _two_places(v: float | None) -> str:
    """A size in mm or a weight in carats for a CSV cell: two decimals, "" when absent."""
    return "" if v is None else f"{v:.2f}"


def size_fields(r: Report) -> dict[str, str]:
    """The stone's size and weight columns: empty without a scale reference (or a weight), `size_status`
    cannot_measure with no figures when the stone on the card could not be measured."""
    size, weight = (r.stone.size, r.stone.weight) if r.stone else (None, None)
    return {
        "size_status": size.status if size else "",
        "length_mm": _two_places(size.length_mm if size else None),
        "width_mm": _two_places(size.width_mm if size else None),
        "size_uncertainty_mm": _two_places(size.uncertainty_mm if size else None),
        "weight_ct": _two_places(weight.carats if weight else None),
        "weight_low_ct": _two_places(weight.low if weight else None),
        "weight_high_ct": _two_places(weight.high if weight else None),
        "weight_basis": weight.basis if weight else "",
        "size_reason": (size.reason or "") if size else "",  # why a stone beside a reference has no size
    }
