"""The parcel manifest: a PDF made on the server (GET /v1/parcels/{reference}.pdf) that goes with a parcel of
stones, 20 stones to an A4 page (two columns of ten cards), in English or Urdu.

Each stone's card: its thumbnail cropped from the stored photo to the stone's box and numbered in the parcel's
order, the conclusion, colour (with its swatch) and clarity as their status says (graded, cannot judge, does
not apply), the next test, the photo's SHA-256 and the model version, and the report's verification code
with a QR code of its public /verify page (issue 31's signed reports). Every page repeats the header
(reference, desk, date, counts by conclusion) and the disclaimer, so a page that travels alone still says
what it is.

Why fpdf2 with HarfBuzz (uharfbuzz): Urdu is written in Nastaliq, whose letters join and stack; a PDF path
without text shaping prints isolated letters, which no desk would sign. fpdf2 shapes each run with HarfBuzz
and orders mixed Urdu and Latin with the Unicode bidirectional algorithm. Every word comes from the page's
catalogue (gemid.serve.catalogue), so paper and screen say the same thing.

Fonts are the system's (Debian's fonts-noto-core and fonts-dejavu, as the page uses; scripts/browser-deps.sh
installs them), never fetched: Noto Nastaliq Urdu for Urdu, with Noto Naskh Arabic or Noto Sans Arabic when it
is missing, and DejaVu Sans or Noto Sans for Latin text. Without any Arabic-script font an Urdu manifest is
refused with `FontMissing` (the route answers 503 naming the package); an English one falls back to the PDF's
built-in Helvetica.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gemid.report import DECISIONS, Report, table_row
from gemid.serve.catalogue import RTL, catalogues, hue_name, translate

if TYPE_CHECKING:  # fpdf2 is imported when a manifest is made, not when the service starts
    import numpy as np
    from fpdf import FPDF

PER_PAGE = 20  # stones on one A4 page: two columns of ten cards
COLUMNS, ROWS = 2, 10
PAGE_W, PAGE_H, MARGIN = 210.0, 297.0, 10.0  # A4 in mm
HEADER_H, FOOTER_H, GAP = 33.0, 16.0, 4.0
CARD_W = (PAGE_W - 2 * MARGIN - GAP) / COLUMNS
CARD_H = (PAGE_H - 2 * MARGIN - HEADER_H - FOOTER_H) / ROWS
THUMB, QR = CARD_H - 3.5, 14.0  # mm
DECISION_RGB = {"identified": (22, 120, 60), "uncertain": (176, 112, 0), "refer": (180, 30, 30),
                "rejected": (110, 110, 110)}

FONT_ROOT = Path("/usr/share/fonts/truetype")
# fonts that write every letter Urdu uses (DejaVu Sans has Arabic but not Urdu's heh goal or full stop)
ARABIC_FONTS = (("noto/NotoNastaliqUrdu-Regular.ttf", "noto/NotoNastaliqUrdu-Bold.ttf"),
                ("noto/NotoNaskhArabic-Regular.ttf", "noto/NotoNaskhArabic-Bold.ttf"),
                ("noto/NotoSansArabic-Regular.ttf", "noto/NotoSansArabic-Bold.ttf"))
LATIN_FONTS = (("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf"),
               ("noto/NotoSans-Regular.ttf", "noto/NotoSans-Bold.ttf"))


class FontMissing(RuntimeError):
    """No font on this system can write the manifest's language."""


@dataclass(frozen=True)
class Fonts:
    """The font files found: (regular, bold) for Arabic script and for Latin; None when none is installed."""

    arabic: tuple[Path, Path] | None
    latin: tuple[Path, Path] | None

    @classmethod
    def find(cls, root: Path | None = None) -> Fonts:
        root = FONT_ROOT if root is None else root
        def first(options: Sequence[tuple[str, str]]) -> tuple[Path, Path] | None:
            for regular, bold in options:
                if (root / regular).is_file():
                    return root / regular, (root / bold) if (root / bold).is_file() else root / regular
            return None

        return cls(arabic=first(ARABIC_FONTS), latin=first(LATIN_FONTS))


@dataclass(frozen=True)
class Card:
    """One stone of the manifest: its report, its thumbnail (JPEG bytes, None when the photo is lost) and its
    verification code and link (None for a report stored before codes existed)."""

    report: Report
    thumbnail: bytes | None
    code: str | None
    url: str | None


def thumbnail(rgb: np.ndarray, report: Report, side: int = 240) -> bytes:
    """The stone's box (with a little margin) from the decoded photo `rgb` (the report's pixel orientation, as
    the display preview has it; scaled when the preview is smaller than the photo), as a small JPEG."""
    import cv2

    img = rgb
    h, w = img.shape[:2]
    sx, sy = w / max(1, report.image.width), h / max(1, report.image.height)
    if report.stone is not None:
        x, y, bw, bh = report.stone.bbox
        pad = 0.08 * max(bw, bh)
        x0, y0 = max(0, int((x - pad) * sx)), max(0, int((y - pad) * sy))
        x1, y1 = min(w, math.ceil((x + bw + pad) * sx)), min(h, math.ceil((y + bh + pad) * sy))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            img = img[y0:y1, x0:x1]
    scale = min(1.0, side / max(img.shape[:2]))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


# --- words ------------------------------------------------------------------------------------------------


def _nice(label: str | None) -> str:
    return (label or "").replace("_", " ")


def _pct(p: float | None) -> str:
    """A probability as the page writes it (js/format.js pct)."""
    if p is None:
        return ""
    v = p * 100
    if v >= 10:
        return f"{round(v)}%"
    if v >= 0.1:
        return f"{v:.1f}%"
    return "<0.1%" if v > 0 else "0%"


def conclusion_text(lang: str, r: Report) -> str:
    """The conclusion in one line, as the page's conclusionText words it ("Identified: Ruby (97%)"), and what a
    laboratory later settled, which stands over it (an outside try found a confirmed red spinel still
    "Identified: Ruby" here and in the CSV)."""
    k = r.confirmation
    said = _conclusion_words(lang, r)
    if k is None:
        return said
    name = table_row(r)["confirmed"]  # the row's one wording of it
    return f"{translate(lang, 'answer.confirmed', label=_nice(name), method=k.method)} · {said}"


def _conclusion_words(lang: str, r: Report) -> str:
    c = r.conclusion
    if c is None:  # stored before conclusions existed: the photo's decision and best label
        top = r.species.top
        decision, label, prob, fits = r.species.decision, top[0].label if top else None, (
            top[0].probability if top else None), []
    else:
        decision, label, prob, fits = c.decision, c.label, c.probability, c.fits
    answer = f"{_nice(label)} ({_pct(prob)})" if label and prob is not None else _nice(label)
    if decision == "refer":
        if fits:
            names = [_nice(f) for f in fits]
            joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + translate(lang, "words.or") + names[-1]
            return translate(lang, "conclusion.refer.fits", fits=joined)
        return translate(lang, "conclusion.refer")
    if decision == "rejected":
        return translate(lang, "conclusion.rejected")
    return translate(lang, f"conclusion.{decision}", answer=answer)


def _grade_words(lang: str, status: str) -> str:
    return translate(lang, "grade.not_applicable" if status == "not_applicable" else "grade.cannot_judge")


def colour_words(lang: str, r: Report) -> str:
    c = r.colour
    if c is None:
        return "—"
    if c.status != "graded" or c.tone is None or c.saturation is None:
        return _grade_words(lang, c.status)
    return translate(lang, "colour.brief", hue=hue_name(lang, c.hue or ""), tone=c.tone.value,
                     saturation=c.saturation.value)


def clarity_words(lang: str, r: Report) -> str:
    c = r.clarity
    if c is None:
        return "—"
    if c.status != "graded" or c.grade is None:
        return _grade_words(lang, c.status)
    return c.grade


def size_words(lang: str, r: Report) -> str:
    """The stone's cut shape, its size on the scale card and its weight ("oval · 8.16 × 6.02 mm · ≈ 1.51 ct"); ""
    when none is known."""
    st = r.stone
    parts = []
    if st is not None and st.shape is not None:
        parts.append(translate(lang, f"shape.{st.shape.label}"))
    if st is not None and st.size is not None and st.size.status == "measured":
        parts.append(translate(lang, "size.brief", length=f"{st.size.length_mm:.2f}", width=f"{st.size.width_mm:.2f}"))
    if st is not None and st.weight is not None:
        ct = f"{st.weight.carats:.2f}"
        parts.append(translate(lang, "weight.scale", ct=ct) if st.weight.basis == "scale"
                     else translate(lang, "weight.estimate", ct=ct))
    return " · ".join(parts)


def next_test_words(lang: str, r: Report) -> str:
    t = r.tests
    if t is None:
        return "—"
    if t.colour_decides:
        return t.colour_decides  # a sentence of the service's, English as the API's messages are
    if not t.recommended:
        return "—"
    test = t.recommended[0].test
    return translate(lang, f"test.{test}") if f"test.{test}" in catalogues()["en"] else _nice(test)


def counts_line(lang: str, reports: Sequence[Report]) -> str:
    """"20 stones in 5 photos: 12 Identified · 5 Uncertain · 3 Refer to a lab" from the page's words."""
    counts = Counter(r.decision for r in reports)
    n, photos = len(reports), len({r.image.sha256 for r in reports})
    head = translate(lang, f"stones.counts.{'one' if n == 1 else 'many'}", n=n) + translate(
        lang, f"stones.inphotos.{'one' if photos == 1 else 'many'}", n=photos)
    parts = [f"{counts[d]} {translate(lang, f'decision.{d}')}" for d in DECISIONS if counts.get(d)]
    return f"{head}: {' · '.join(parts)}"


# --- the document -----------------------------------------------------------------------------------------


def _ascii_safe(text: str) -> str:
    """Text for the PDF's built-in Helvetica (Latin-1 only), when no font file is installed."""
    for a, b in (("\u2068", ""), ("\u2069", ""), ("—", "-"), ("…", "...")):
        text = text.replace(a, b)
    return text.encode("latin-1", "replace").decode("latin-1")


class PdfWriter:
    """fpdf2 with the manifest's fonts and a right-to-left aware text line (the scale card writes with it too)."""

    def __init__(self, lang: str, fonts: Fonts) -> None:
        from fpdf import FPDF

        self.lang, self.rtl = lang, lang in RTL
        if self.rtl and fonts.arabic is None:
            raise FontMissing("no font that writes Urdu is installed: install Debian's fonts-noto-core "
                              "(Noto Nastaliq Urdu; scripts/browser-deps.sh), or ask for ?lang=en")
        pdf = FPDF(orientation="portrait", unit="mm", format="A4")
        pdf.set_auto_page_break(False)
        pdf.set_margins(MARGIN, MARGIN, MARGIN)
        pdf.set_creator("gemid")
        pdf.c_margin = 0.4  # a cell's inner padding (mm); `fit` keeps text within the rest
        self.core = fonts.latin is None and fonts.arabic is None
        families = []
        for family, files in (("latin", fonts.latin), ("arabic", fonts.arabic)):
            if files is not None:
                pdf.add_font(family, "", str(files[0]))
                pdf.add_font(family, "B", str(files[1]))
                families.append(family)
        if not self.core:
            main = "arabic" if self.rtl or fonts.latin is None else "latin"
            self.main = main
            pdf.set_fallback_fonts([f for f in families if f != main], exact_match=False)
            # shaping on for every line: Urdu needs it, and a reference written in Urdu can appear in English
            pdf.set_text_shaping(True, direction="rtl" if self.rtl else "ltr")
        else:
            self.main = "helvetica"
        self.nastaliq = fonts.arabic is not None and "Nastaliq" in fonts.arabic[0].name
        self.pdf = pdf

    def font(self, size: float, bold: bool = False) -> None:
        # Nastaliq reads smaller than Latin at one point size: Urdu text one step larger
        grow = 1.18 if self.rtl and self.nastaliq else 1.0
        self.pdf.set_font(self.main, "B" if bold else "", size * grow)

    def fit(self, text: str, width: float, size: float, bold: bool = False, smallest: float = 5.0) -> str:
        """The font size (down to `smallest`) at which `text` fits `width`, then an ellipsis if it still does
        not: a card's line never runs into its neighbour. A text's width grows in proportion to the font size,
        so one measure picks the size (each measure shapes the text: most of the manifest's time)."""
        text = _ascii_safe(text) if self.core else text
        width -= 2 * self.pdf.c_margin
        self.font(size, bold)
        wide = self.pdf.get_string_width(text)
        if wide <= width:
            return text
        size = max(smallest, math.floor(size * width / wide * 4) / 4)
        self.font(size, bold)
        wide = self.pdf.get_string_width(text)
        dots = "..." if self.core else "…"
        keep = len(text)
        while wide > width and keep > 1:
            keep = min(keep - 1, int(keep * width / wide))
            cut = text[:keep].rstrip() + dots
            wide = self.pdf.get_string_width(cut)
            text = cut if wide <= width or keep <= 1 else text
        return text

    def line(self, x: float, y: float, width: float, height: float, text: str, size: float,
             bold: bool = False, smallest: float = 5.0) -> None:
        """One line of text in the box, aligned to the language's start (right in Urdu)."""
        text = self.fit(text, width, size, bold, smallest)
        self.pdf.set_xy(x, y)
        self.pdf.cell(width, height, text, align="R" if self.rtl else "L")

    def block(self, x: float, y: float, width: float, height: float, text: str, size: float) -> None:
        self.font(size)
        self.pdf.set_xy(x, y)
        self.pdf.multi_cell(width, height, _ascii_safe(text) if self.core else text, align="R" if self.rtl else "L")


def _qr(pdf: FPDF, url: str, x: float, y: float, side: float) -> None:
    """The QR code of `url` drawn as filled squares (one run of dark modules a rectangle): sharp at any zoom,
    no image to embed."""
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=1)
    qr.add_data(url)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    draw_modules(pdf, matrix, x, y, side / len(matrix), bleed=1.01)


def draw_modules(pdf: FPDF, dark: Sequence[Sequence[bool]], x: float, y: float, module: float,
                 bleed: float = 1.0) -> None:
    """A grid of square modules (a QR code, a scale card's marker) drawn black where `dark`, one rectangle per
    run of dark modules in a row; `bleed` stretches each row's height so that rows meet without a hairline."""
    pdf.set_fill_color(0, 0, 0)
    for row, cells in enumerate(dark):
        col = 0
        while col < len(cells):
            if cells[col]:
                start = col
                while col < len(cells) and cells[col]:
                    col += 1
                pdf.rect(x + start * module, y + row * module, (col - start) * module, module * bleed, style="F")
            col += 1


def build_pdf(reference: str, cards: Sequence[Card], *, lang: str = "en", desk: str | None = None,
              printed_at: datetime, verify_base: str | None = None, fonts: Fonts | None = None) -> bytes:
    """The manifest of `cards` (the parcel's stones in its order) as PDF bytes; `verify_base` is the start of
    the public verification link (".../verify/"), printed once in the header."""
    w = PdfWriter(lang, fonts or Fonts.find())

    def isolate(value: str) -> str:  # as catalogue.translate isolates a value right to left
        return f"\u2068{value}\u2069" if w.rtl else value

    pdf = w.pdf
    reports = [c.report for c in cards]
    model = reports[0].model if reports else None
    model_text = f"{model.name} {model.version}" if model else "?"
    pages = max(1, math.ceil(len(cards) / PER_PAGE))
    date = printed_at.strftime("%Y-%m-%d %H:%M UTC")
    head = translate(lang, "parcel.dochead", reference=reference, date=date, model=model_text)
    counts = translate(lang, "pdf.desk", desk=desk or "—") + " · " + counts_line(lang, reports)
    disclaimer = translate(lang, "disclaimer.title") + (
        reports[0].disclaimer if lang == "en" and reports else translate(lang, "disclaimer"))
    pdf.set_title(f"{translate('en', 'pdf.title')} {reference}")
    for page in range(pages):
        pdf.add_page()
        inner = PAGE_W - 2 * MARGIN
        pdf.set_text_color(0, 0, 0)
        w.line(MARGIN, MARGIN, inner, 9, f"{translate(lang, 'pdf.title')} {isolate(reference)}", 13, bold=True)
        w.line(MARGIN, MARGIN + 9, inner, 6, head, 8)
        w.line(MARGIN, MARGIN + 15, inner, 6, counts, 8)
        pdf.set_text_color(70, 70, 70)
        if verify_base:
            w.line(MARGIN, MARGIN + 21, inner, 6, translate(lang, "pdf.verify", url=verify_base + "…"), 7)
        pdf.set_draw_color(150, 150, 150)
        pdf.line(MARGIN, MARGIN + HEADER_H - 2, PAGE_W - MARGIN, MARGIN + HEADER_H - 2)
        for slot, card in enumerate(cards[page * PER_PAGE:(page + 1) * PER_PAGE]):
            column, row = slot // ROWS, slot % ROWS  # down the first column, then the second
            if w.rtl:
                column = COLUMNS - 1 - column  # the first column on the right
            x = MARGIN + column * (CARD_W + GAP)
            y = MARGIN + HEADER_H + row * CARD_H
            _card(w, card, page * PER_PAGE + slot + 1, x, y)
        top = PAGE_H - MARGIN - FOOTER_H
        pdf.set_draw_color(150, 150, 150)
        pdf.line(MARGIN, top + 1, PAGE_W - MARGIN, top + 1)
        pdf.set_text_color(40, 40, 40)
        w.block(MARGIN, top + 1.5, inner, 3.6 if not w.rtl else 4.6, disclaimer, 6.5)
        w.line(MARGIN, PAGE_H - MARGIN - 4, inner, 4, translate(lang, "pdf.page", n=page + 1, total=pages), 6.5)
    name_marks(pdf)
    return bytes(pdf.output())


def name_marks(pdf: FPDF) -> None:
    """Give each glyph that stands for no character of its own a zero-width space (U+200B) in the PDF's
    character map. Nastaliq draws a letter's dots and marks as glyphs of their own in the letter's cluster;
    fpdf2 maps only the cluster's first glyph to its text and leaves the rest unmapped, which text extraction,
    search and copying turn into stray control characters inside Urdu words. U+200B is invisible, and
    transparent to Arabic joining, so copied Urdu reads and joins as written."""
    for font in pdf.fonts.values():
        subset = getattr(font, "subset", None)
        if subset is None:
            continue
        for glyph, _code in subset.items():
            if glyph is not None and glyph.glyph_id and isinstance(glyph.unicode, tuple) and not glyph.unicode:
                glyph.unicode = (0x200B,)


def _card(w: PdfWriter, card: Card, number: int, x: float, y: float) -> None:
    pdf, lang, r = w.pdf, w.lang, card.report
    h = CARD_H - 1.5

    def at(offset: float, width: float) -> float:
        """x of a box `offset` mm from the card's start edge (the left, or the right in Urdu)."""
        return x + CARD_W - offset - width if w.rtl else x + offset

    decision = r.decision
    pdf.set_draw_color(200, 200, 200)
    pdf.set_line_width(0.2)
    pdf.rect(x, y, CARD_W, h)
    pdf.set_fill_color(*DECISION_RGB.get(decision, (110, 110, 110)))
    pdf.rect(at(0, 1.2), y, 1.2, h, style="F")  # the decision's colour along the card's start edge
    tx, ty = at(2.2, THUMB), y + (h - THUMB) / 2
    if card.thumbnail is not None:
        _fitted_image(pdf, card.thumbnail, tx, ty, THUMB)
    else:
        pdf.set_fill_color(235, 235, 235)
        pdf.rect(tx, ty, THUMB, THUMB, style="F")
    # the stone's number on its thumbnail
    cx, cy = tx + (THUMB - 2.9 if w.rtl else 2.9), ty + 2.9
    pdf.set_fill_color(20, 20, 20)
    pdf.circle(cx, cy, 2.6, style="F")
    pdf.set_text_color(255, 255, 255)
    pdf.set_font(w.main if not w.core else "helvetica", "B", 7)
    pdf.set_xy(cx - 2.6, cy - 2.0)
    pdf.cell(5.2, 4.0, str(number), align="C")
    qx = at(CARD_W - 1.2 - QR, QR)
    if card.url:
        _qr(pdf, card.url, qx, y + 1.2, QR)
    text_x = at(2.2 + THUMB + 1.8, 0)
    width = CARD_W - (2.2 + THUMB + 1.8) - (QR + 2.4)
    text_x = text_x - width if w.rtl else text_x
    pdf.set_text_color(0, 0, 0)
    lh = 3.3 if not w.rtl else 3.6
    w.line(text_x, y + 0.6, width, lh + 0.4, conclusion_text(lang, r), 7.2, bold=True)
    colour = colour_words(lang, r)
    hexcode = r.colour.hex if r.colour and r.colour.status == "graded" and r.colour.hex else None
    label = translate(lang, "stones.col.colour") + ": "
    if hexcode:
        sw = 2.4
        pdf.set_fill_color(*(int(hexcode.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)))
        pdf.set_draw_color(120, 120, 120)
        pdf.rect(at(2.2 + THUMB + 1.8, sw), y + 0.6 + lh + 0.4 + (lh - sw) / 2 + 0.2, sw, sw, style="DF")
        w.line(text_x + (0 if w.rtl else sw + 1), y + 0.6 + lh + 0.4, width - sw - 1, lh, label + colour, 6.5)
    else:
        w.line(text_x, y + 0.6 + lh + 0.4, width, lh, label + colour, 6.5)
    size = size_words(lang, r)
    w.line(text_x, y + 0.6 + 2 * lh + 0.4, width, lh,
           f"{translate(lang, 'stones.col.clarity')}: {clarity_words(lang, r)}" + (f" · {size}" if size else ""), 6.5)
    w.line(text_x, y + 0.6 + 3 * lh + 0.4, width, lh,
           f"{translate(lang, 'stones.col.next')}: {next_test_words(lang, r)}", 6.5)
    pdf.set_text_color(80, 80, 80)
    where = (r.file or translate(lang, "stones.photo")) + (
        " · " + translate(lang, "stones.where", stone=f"{r.stone.index}/{r.stone.count}")
        if r.stone and r.stone.count > 1 else "")
    small = 2.7 if not w.rtl else 3.0
    base = y + 0.6 + 4 * lh + 0.5
    ids = translate(lang, "pdf.photo", sha=r.image.sha256[:12], model=r.model.version)
    w.line(text_x, base, width, small, ids, 5.2, smallest=4.5)
    # the code first: a long file name is what an ellipsis may cut, never the code
    code = translate(lang, "pdf.code", code=card.code) if card.code else translate(lang, "pdf.unsigned")
    w.line(text_x, base + small, width, small, f"{code} · {where}", 5.4, smallest=4.5)


def _fitted_image(pdf: FPDF, jpeg: bytes, x: float, y: float, side: float) -> None:
    """The thumbnail inside a `side` mm square, its proportions kept, centred."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        pw, ph = im.size
    scale = side / max(pw, ph)
    iw, ih = pw * scale, ph * scale
    pdf.image(io.BytesIO(jpeg), x + (side - iw) / 2, y + (side - ih) / 2, iw, ih)
