"""The printable scale card (GET /v1/scale-card.pdf, `gemid scale-card`): the reference that lets a photo give
each stone's size in millimetres (gemid.vision.scale, gemid.vision.size), in English or Urdu.

An A4 page: the card's four markers drawn as vector squares at their exact places (`gemid.vision.scale.CARD`),
so any printer at 100 % prints them to its own precision; the instructions; a 100 mm ruler to check the print
with; and a cut line. Nothing is printed inside the markers' rectangle: the stones lie there and the
segmentation must see only them on plain paper (what lies outside it is painted out before segmentation).
The words come from the page's catalogue (gemid.serve.catalogue), as the parcel manifest's do.
"""

from __future__ import annotations

from gemid.serve.catalogue import translate
from gemid.serve.manifest import MARGIN, PAGE_W, Fonts, PdfWriter, draw_modules, name_marks
from gemid.vision.scale import CARD, MARKER_IDS, MODULES, marker_image

CARD_X = (PAGE_W - CARD.width_mm) / 2  # the markers' rectangle on the page, mm
CARD_Y = 78.0
CUT = 10.0  # the cut line's distance outside the markers' rectangle, mm
RULER_MM = 100


def build_card_pdf(*, lang: str = "en", fonts: Fonts | None = None) -> bytes:
    """The scale card as PDF bytes."""
    w = PdfWriter(lang, fonts or Fonts.find())
    pdf = w.pdf
    pdf.set_title(translate("en", "card.title"))
    pdf.add_page()
    inner = PAGE_W - 2 * MARGIN
    pdf.set_text_color(0, 0, 0)
    w.line(MARGIN, MARGIN, inner, 10, translate(lang, "card.title"), 15, bold=True)
    y = MARGIN + 12
    steps = (translate(lang, "card.print"), translate(lang, "card.check", ruler=RULER_MM, span=f"{CARD.width_mm:g}"),
             translate(lang, "card.lay"), translate(lang, "card.photo"), translate(lang, "card.one"))
    for step in steps:
        w.block(MARGIN, y, inner, 5.2 if not w.rtl else 6.5, "• " + step, 9.5)
        y = pdf.get_y() + 1.2

    # the cut line, outside the markers' rectangle
    pdf.set_draw_color(150, 150, 150)
    pdf.set_dash_pattern(dash=2, gap=1.5)
    pdf.rect(CARD_X - CUT, CARD_Y - CUT, CARD.width_mm + 2 * CUT, CARD.height_mm + 2 * CUT)
    pdf.set_dash_pattern()
    # the markers, module by module (a module is MARKER_MM / 6 = 2 mm)
    for marker in MARKER_IDS:
        ox, oy = CARD.origin(marker)
        draw_modules(pdf, marker_image(marker) == 0, CARD_X + ox, CARD_Y + oy, CARD.marker_mm / MODULES)
    pdf.set_text_color(110, 110, 110)
    w.line(CARD_X - CUT, CARD_Y + CARD.height_mm + CUT + 1, CARD.width_mm + 2 * CUT, 5,
           translate(lang, "card.cut"), 7.5)

    # the ruler that checks the print's scale
    top = CARD_Y + CARD.height_mm + CUT + 14
    x0 = (PAGE_W - RULER_MM) / 2
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)
    pdf.line(x0, top, x0 + RULER_MM, top)
    for mm in range(RULER_MM + 1):
        tick = 5.0 if mm % 10 == 0 else 3.0 if mm % 5 == 0 else 1.8
        pdf.line(x0 + mm, top, x0 + mm, top + tick)
    pdf.set_text_color(0, 0, 0)
    w.font(7)
    for cm in range(0, RULER_MM // 10 + 1):
        pdf.set_xy(x0 + cm * 10 - 4, top + 5.5)
        pdf.cell(8, 3, str(cm), align="C")
    w.line(MARGIN, top + 10, inner, 5, translate(lang, "card.ruler", ruler=RULER_MM), 8.5)
    pdf.set_text_color(110, 110, 110)
    w.line(MARGIN, top + 17, inner, 5, translate(lang, "card.markers", side=f"{CARD.marker_mm:g}",
                                                 width=f"{CARD.width_mm:g}", height=f"{CARD.height_mm:g}"), 7.5)
    name_marks(pdf)
    return bytes(pdf.output())
