"""The printable scale card (GET /v1/scale-card.pdf): the reference a desk lays its stones on so that each
stone's size in millimetres, and from it an estimated weight, can be read from the photo (gemid.vision.scale).

Open to anyone, as the public keys are: it is the same sheet for every desk and tells nothing about reports.
The two languages' PDFs are made once per process (about a third of a second each) and served from memory.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gemid.serve.catalogue import language_of
from gemid.serve.errors import ApiError, error_responses
from gemid.serve.responses import attachment

router = APIRouter(tags=["scale card"])


@lru_cache(maxsize=2)
def _card_pdf(lang: str) -> bytes:
    from gemid.serve.scale_card import build_card_pdf

    return build_card_pdf(lang=lang)


@router.get("/v1/scale-card.pdf", response_class=Response, summary="The printable scale card",
            responses={200: {"content": {"application/pdf": {}},
                             "description": "an A4 page: four markers to lay the stones between, a ruler that "
                                            "checks the print's scale, and the instructions"},
                       **error_responses(503)})
async def scale_card(request: Request, lang: Annotated[Literal["en", "ur"] | None, Query(
        description="en or ur; default: the first of Accept-Language that is one of them, else en")] = None
                     ) -> Response:
    """Print it at 100 %, check its ruler, lay the stones inside its four markers and photograph it from above:
    every stone's report then gives `stone.size` (length and width in mm with a 95 % interval) and, once the
    stone is identified, `stone.weight` (an estimated range in carats)."""
    from gemid.serve.manifest import FontMissing

    language = language_of(lang, request.headers.get("accept-language", ""))
    try:
        body = await to_thread.run_sync(_card_pdf, language)
    except FontMissing as exc:
        raise ApiError(503, "font_missing", str(exc)) from exc
    return attachment(body, f"gemid-scale-card-{language}", "application/pdf", "pdf")
