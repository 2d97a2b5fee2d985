"""The page's message catalogues (gemid/serve/static/js/messages.js), read on the server for the documents it
makes (the parcel manifest PDF, gemid.serve.manifest), so a heading or a label has one home and says the same
words on the page and on paper, in English and in Urdu.

messages.js stays the one file: the page imports it as an ES module with no build step, and the catalogue's
own test (tests/serve/test_web.py) already reads it the same way, one `'key': 'text',` a line inside each
language's block. A key the server asks for that the catalogue lacks is a KeyError at start of the first
document, and tests/serve/test_manifest.py asks for every one.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

MESSAGES_JS = Path(__file__).parent / "static" / "js" / "messages.js"
LANGS = ("en", "ur")
RTL = frozenset({"ur"})

_BLOCK = re.compile(r"^  (en|ur): \{$", re.M)
_PAIR = re.compile(r"^    '([^']+)': '((?:[^'\\]|\\.)*)',$", re.M)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")


def _unescape(text: str) -> str:
    """A JavaScript single-quoted string's escapes (\\', \\\\, \\n, \\u2068) as the page's strings read them."""
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code.startswith("u") and len(code) == 5:
            return chr(int(code[1:], 16))
        return {"n": "\n", "t": "\t"}.get(code, code)

    return _ESCAPE.sub(one, text)


@lru_cache(maxsize=1)
def catalogues() -> dict[str, dict[str, str]]:
    """{"en": {key: text}, "ur": {...}} from messages.js (read once per process)."""
    text = MESSAGES_JS.read_text(encoding="utf-8")
    blocks = _BLOCK.split(text)
    langs = blocks[1::2]
    if langs != list(LANGS):
        raise RuntimeError(f"{MESSAGES_JS} should hold the en and ur catalogues in that order, found {langs}")
    return {lang: {k: _unescape(v) for k, v in _PAIR.findall(body)}
            for lang, body in zip(langs, blocks[2::2], strict=True)}


def translate(lang: str, key: str, **values: object) -> str:
    """The catalogue's text for `key`, `{name}` filled from `values` (as js/i18n.js `t` does, English where a
    language lacks the key). Right to left, each value is isolated (U+2068 ... U+2069), so a reference or a
    figure keeps its own order inside an Urdu sentence, as on the page."""
    table = catalogues()
    text = table.get(lang, {}).get(key, table["en"][key])
    opening, closing = ("\u2068", "\u2069") if lang in RTL else ("", "")
    return re.sub(r"\{(\w+)\}", lambda m: "" if values.get(m.group(1)) is None
                  else f"{opening}{values[m.group(1)]}{closing}", text)


def hue_name(lang: str, hue: str) -> str:
    """A GIA hue name ("slightly bluish green") in `lang` (the catalogue's `hue.` keys); as written when the
    catalogue lacks it, as the page's `hueName` does."""
    table = catalogues()
    return table.get(lang, {}).get(f"hue.{hue}") or table["en"].get(f"hue.{hue}") or hue


def language_of(lang: str | None, accept: str) -> str:
    """?lang=, else the first of the caller's Accept-Language that the catalogue has (as the page picks)."""
    if lang:
        return lang
    for part in accept.split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in LANGS:
            return code
    return "en"
