"""What failed validation, in one line a person can act on.

pydantic's `ValidationError` (the CLI's flags, the service's settings, readings sent in a form) and FastAPI's
`RequestValidationError` (a request's query, path and JSON body) both list their problems through
`.errors()`. `validation_message` turns that list into `field: problem; field: problem`, and each caller
only says how a field is named to its reader: `ri_high` for an API client, `--ri-high` on the command line,
`GEMID_MAX_BYTES` for a setting. This module imports neither FastAPI nor the service, so the CLI can use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

Location = tuple[Any, ...]

# what the API's `since` and `until` take: an ISO date, or a date-time with an optional zone (blank: no bound)
ISO_WHEN = r"^\s*(\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?)?)?\s*$"
# a pattern a value did not match, in words (pydantic would quote the regular expression itself)
PATTERN_WORDS = {ISO_WHEN: "an ISO date, YYYY-MM-DD, or a date-time, YYYY-MM-DDTHH:MM with an optional zone"}


_DECIMAL_COMMA = re.compile(r"^\s*([+-]?\d+),(\d+)\s*$")


def decimal_point(text: str) -> str:
    """A number typed with a decimal comma ("1,762") as Python reads it ("1.762"), the way the page's readings
    form takes it; anything else unchanged (for number fields only: a reference may hold a comma)."""
    m = _DECIMAL_COMMA.match(text)
    return f"{m.group(1)}.{m.group(2)}" if m else text


class HasErrors(Protocol):
    """pydantic's ValidationError and FastAPI's RequestValidationError alike."""

    def errors(self) -> Sequence[Mapping[str, Any]]: ...


def dotted(loc: Location, *, skip: Collection[str] = (), empty: str = "input") -> str:
    """`readings.ri`: the location's parts joined by dots, without those in `skip`; `empty` if none are left."""
    return ".".join(str(p) for p in loc if p not in skip) or empty


# a number out of its range in the reader's words (an outside try read "Input should be greater than or equal to
# 0.5" for an SG): pydantic's error type -> its bound in the error's context, and the words
BOUND_WORDS = {"greater_than_equal": ("ge", "must be {} or more"), "less_than_equal": ("le", "must be {} or less"),
               "greater_than": ("gt", "must be more than {}"), "less_than": ("lt", "must be less than {}")}


def validation_message(exc: HasErrors, *, field: Callable[[Location], str] = dotted, limit: int | None = 10,
                       show_input: bool = False) -> str:
    """One `field: problem` per error (at most `limit`), joined by "; "; "" when there is none.

    `field` names a location for the reader; `show_input` adds the value that was refused (`NAME='abc'`),
    for settings a person typed, never for request bodies. A body that is not JSON at all says so, since
    its error has no field to name."""
    parts = []
    for err in list(exc.errors())[:limit]:
        if err.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})")
            continue
        value = err.get("input")
        shown = f"={value!r}" if show_input and isinstance(value, (str, int, float)) else ""
        msg = err.get("msg", "invalid")
        if err.get("type") == "string_pattern_mismatch":  # the expected form in words, not a regular expression
            words = PATTERN_WORDS.get(str(err.get("ctx", {}).get("pattern")))
            msg = f"{value!r} is not in the expected form" + (f": {words}" if words else "")
        elif err.get("type") in BOUND_WORDS:  # "must be 8 or less", not "Input should be less than or equal to 8"
            key, words = BOUND_WORDS[err["type"]]
            msg = words.format(err.get("ctx", {}).get(key))
        elif err.get("type") in ("model_attributes_type", "dict_type") and tuple(err.get("loc", ()))[-1:] == ("body",):
            msg = "the body must be a JSON object (Content-Type: application/json)"
        parts.append(f"{field(tuple(err.get('loc', ())))}{shown}: {msg}")
    return "; ".join(parts)


def join_names(names: Sequence[str], word: str = "or") -> str:
    """Names in a sentence: "A", "A or B", "A, B or C" (`word`: "and" where all are meant)."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + f" {word} " + names[-1]


def percent(p: float) -> str:
    """A probability in words: '<1%' and '>99%' rather than a '0%' or '100%' that nothing can say of a stone
    (an outside try read "Zircon 100%" above a list of look-alikes the photo cannot exclude)."""
    return "<1%" if p < 0.005 else ">99%" if p >= 0.995 else f"{p:.0%}"


def size_text(n: int) -> str:
    """A size as the limits are set and the README states them: binary units (20 MiB = 20 * 2**20 bytes), so
    a message never says "21.0 MB" about a 20 MiB limit."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n // scale} {unit}" if n % scale == 0 else f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
