"""The readings a technician enters: what each instrument showed, and how it was taken.

Their own module because the rules that refuse impossible readings before a photo is analysed (an edge past the
refractometer's limit, a high edge below the low one, a birefringence that disagrees with its two edges) grew
past what `gemid.report` could hold; `gemid.report` re-exports them with the report they belong to.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gemid.errors import GemidInputError

CONTEXT_FIELDS = ("ri_spot", "weight_ct", "ri_limit")  # Readings fields that describe how, not what, was read
EDGES_AGREE = 0.005  # birefringence beside two RI edges: how far it may differ from their difference
REFRACTOMETER_LIMIT = 1.81  # contact liquid of a standard refractometer: no edge above this ("OTL")
# an edge read this far past the limit is its last graduation read generously; beyond it the refractometer
# shows no edge, so a number there was not read on it (an outside try entered 1.85 and 2.417, diamond's)
OVER_LIMIT_SLACK = 0.01
STORED = "stored"  # validation context of a report read back from a store: rules added since do not apply


class Readings(BaseModel):
    """Confirmatory-test readings. Strict: in JSON a number is a JSON number and a switch true or false
    (`"birefringence": false` is refused, not stored as 0.0), and a word field takes only its listed words.
    Text forms parse their fields first (`model_validate_strings`); the CLI passes parsed values. A field it does
    not know is refused, not ignored: `{"RI": 1.76}` must not come back as "no readings were given"."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN is "not a finite number", not "over 3"

    ri: float | None = Field(None, strict=True, ge=1.3, le=3.0, description="refractive index (single or low reading)")
    ri_high: float | None = Field(None, strict=True, ge=1.3, le=3.0, description="high RI reading for a DR stone")
    ri_otl: bool | None = Field(
        None, strict=True, description="the refractometer shows no edge below its limit (about 1.81): over the limit (OTL)"
    )
    birefringence: float | None = Field(None, strict=True, ge=0.0, le=0.3, description=(
        "highest minus lowest RI, read by turning the stone on the refractometer"))
    sg: float | None = Field(None, strict=True, ge=0.5, le=8.0, description="specific gravity")
    optic: Literal["SR", "DR", "AGG", "ADR"] | None = Field(None, description=(
        "polariscope reaction: singly or doubly refractive, aggregate, anomalous double refraction"))
    optic_sign: Literal["uniaxial+", "uniaxial-", "biaxial+", "biaxial-"] | None = Field(None, description=(
        "interference figure in the conoscope"))
    pleochroism: Literal["none", "weak", "moderate", "strong"] | None = Field(None, description=(
        "colours seen in the dichroscope"))
    uv_lw: Literal["inert", "weak", "moderate", "strong"] | None = Field(None, description=(
        "long-wave UV fluorescence (365 nm)"))
    uv_sw: Literal["inert", "weak", "moderate", "strong"] | None = Field(None, description=(
        "short-wave UV fluorescence (254 nm)"))
    # how the readings were taken: they set each reading's tolerance, and are not readings themselves
    ri_spot: bool | None = Field(None, strict=True, description=(
        "the RI is a spot (distant-vision) reading on a curved surface: a cabochon or an aggregate"))
    weight_ct: float | None = Field(None, strict=True, gt=0.0, le=10_000.0, description=(
        "the stone's weight in carats: a small stone's SG is less precise (without it, a small stone is assumed)"))
    ri_limit: float | None = Field(None, strict=True, ge=1.70, le=1.90, description=(
        "the refractometer's limit: 1.81 with standard contact liquid (the default), 1.79 with some others"))

    @field_validator("ri_high")
    @classmethod
    def _high_after_low(cls, v: float | None, info: ValidationInfo) -> float | None:
        """The high RI edge goes with the low one, and above it: refused before a photo is analysed."""
        if v is not None and (low := info.data.get("ri")) is None:
            raise PydanticCustomError("ri_high_alone", "a high RI reading needs the low RI reading as well")
        if v is not None and v < low:
            raise PydanticCustomError("ri_high_below", "the high RI reading {high} is below the low one {low}: "
                                      "swap them", {"high": v, "low": low})
        return v

    @field_validator("ri_otl")
    @classmethod
    def _otl_or_edge(cls, v: bool | None, info: ValidationInfo) -> bool | None:
        """Over the limit means no edge below it: beside an RI edge the re-ranking would silently keep the edge."""
        if v and (low := info.data.get("ri")) is not None:
            raise PydanticCustomError("ri_otl_with_ri", "over the limit means no edge below the refractometer's "
                                      "limit, yet an RI of {low} was read: give the edge you read (a doubly "
                                      "refractive stone's other edge may lie over it) or OTL, not both", {"low": low})
        return v

    @field_validator("birefringence")
    @classmethod
    def _agrees_with_edges(cls, v: float | None, info: ValidationInfo) -> float | None:
        """Beside two RI edges, a birefringence off their difference by over EDGES_AGREE is a typing slip."""
        low, high = info.data.get("ri"), info.data.get("ri_high")
        if v is None or low is None or high is None:
            return v
        if abs((high - low) - v) > EDGES_AGREE:
            raise PydanticCustomError("birefringence_edges", "the birefringence {biref} disagrees with the two RI "
                                      "edges {low}/{high} ({diff}): correct one, or leave the birefringence out",
                                      {"biref": v, "low": low, "high": high, "diff": f"{high - low:.3f}"})
        return v

    @model_validator(mode="after")
    def _on_the_scale(self, info: ValidationInfo) -> Readings:
        """An RI edge lies on the refractometer's scale, up to its limit. Not on a report read back from a store
        (`STORED`): the rule refuses new input, it never makes a stored report unreadable."""
        if info.context and info.context.get(STORED):
            return self
        limit = REFRACTOMETER_LIMIT if self.ri_limit is None else self.ri_limit
        for edge in (self.ri, self.ri_high):
            if edge is not None and edge > limit + OVER_LIMIT_SLACK:
                raise PydanticCustomError(
                    "ri_over_limit", "an RI of {ri} lies beyond the refractometer's limit {limit}, where it shows no "
                    "edge: a stone that shows none below the limit is entered as over the limit (OTL); give the "
                    "refractometer's limit if its contact liquid's is higher", {"ri": f"{edge:.3f}", "limit": f"{limit:.2f}"})
        return self

    def is_empty(self) -> bool:
        """No reading at all: the CONTEXT_FIELDS only say how readings were taken."""
        return all(v is None for k, v in self.model_dump().items() if k not in CONTEXT_FIELDS)


def no_readings() -> GemidInputError:
    """The one refusal of readings that hold no reading (API and Python alike), naming what counts."""
    fields = ", ".join(f for f in Readings.model_fields if f not in CONTEXT_FIELDS)
    return GemidInputError(f"no readings were given (any of: {fields}; {', '.join(CONTEXT_FIELDS)} only say "
                           "how they were taken)", code="no_readings", status=422)
