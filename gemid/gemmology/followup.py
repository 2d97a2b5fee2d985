"""What a conclusion asks of the desk next: the test that tells its answer from a look-alike it names, the
readings to take again, and what only a laboratory can add. Guidance (`gemid.gemmology.guidance.recommend`)
turns these into the report's list of tests, so a reason never names a test the list lacks."""

from __future__ import annotations

import numpy as np

from gemid.gemmology.instruments import TESTS, mixture_distribution, unreadable
from gemid.gemmology.likelihood import (
    contradictions,
    describe,
    eye_against,
    only_tests,
    tests_done,
    tests_left,
    well_inside,
)
from gemid.gemmology.rerank import display_name
from gemid.gemmology.table import PropertyTable, default_table
from gemid.messages import join_names
from gemid.report import Conclusion, Readings, Reranking

# a test whose outcomes for two materials overlap less than this tells them apart at the desk (a glass that reads
# like a quartz on the refractometer's one edge is SR in the polariscope); above it, on every test left, only a
# laboratory can (a synthetic quartz)
DESK_APART = 0.5
NEXT_TEST = "take the next recommended test"  # what an unsettled conclusion asks (`no_test_left` rewords it)


def desk_test_key(label: str, name: str, readings: Readings | None, table: PropertyTable, *,
                  done: bool = False) -> str | None:
    """The test not yet taken (`done`: of those taken) that best tells `label` from `name` (a look-alike, or
    another species the readings fit), or None when none does (their outcomes overlap by DESK_APART or more on
    each)."""
    rows = table.rows_for(label)
    theirs = table.rows_for(name)  # a model label, or a look-alike's row by its name
    if not rows or not theirs:
        return None
    tests = [t for t in (tests_done(readings) if done else tests_left(readings)) if not unreadable(rows, t)]
    if done and readings is not None:
        # a reading well inside the look-alike's range cannot come out of it on a second try (an outside try was
        # told to repeat the refractometer for amber against plastic at RI 1.540, well inside plastic's 1.46-1.70)
        tests = [t for t in tests if not well_inside(theirs, readings, t)]
    overlaps = {t: float(np.minimum(mixture_distribution(rows, t), mixture_distribution(theirs, t)).sum())
                for t in sorted(tests)}
    best = min(overlaps, key=lambda t: (overlaps[t], -TESTS[t].practicality), default=None)
    return best if best is not None and overlaps[best] < DESK_APART else None


def desk_test(label: str, name: str, readings: Readings | None, table: PropertyTable, *,
              done: bool = False) -> str | None:
    """The instrument of `desk_test_key`'s test (what the reason names), or None."""
    key = desk_test_key(label, name, readings, table, done=done)
    return TESTS[key].instrument if key is not None else None


def exclusion_tests(conclusion: Conclusion, readings: Readings | None,
                    table: PropertyTable | None = None) -> dict[str, list[str]]:
    """The tests not yet taken that the conclusion's reason says can exclude a look-alike it names, or another
    species its `fits` names (test key -> the names): the guidance recommends each of them, so a reason that
    says "the UV lamp can" never stands above an empty list of tests (an outside try found that on an emerald
    with RI and SG)."""
    if readings is None or conclusion.label is None or conclusion.decision not in ("identified", "uncertain"):
        return {}
    table = table or default_table()
    found: dict[str, list[str]] = {}
    for name in [*conclusion.cannot_exclude, *(f for f in conclusion.fits if f != conclusion.label)]:
        key = desk_test_key(conclusion.label, name, readings, table)
        if key is not None:
            found.setdefault(key, []).append(name)
    return found


def repeat_tests(conclusion: Conclusion, reranking: Reranking | None,
                 table: PropertyTable | None = None) -> dict[str, str]:
    """The tests already taken that the conclusion's reason asks to repeat (test key -> why): a reading that
    contradicts another, one judged by eye that fits none of the candidates, one that lies near a look-alike's
    values. Guidance lists them after the new tests, so "repeat it" never stands above a list without it (an
    outside try found seven such cases)."""
    if reranking is None or conclusion.label is None or conclusion.decision not in ("identified", "uncertain"):
        return {}
    table = table or default_table()
    readings = reranking.readings
    found: dict[str, str] = {}
    clash = contradictions(readings)
    if clash:
        found["optic_character"] = (f"{join_names(clash, 'and')}; turn the stone through several positions (a doubly "
                                    "refractive stone seen down its optic axis stays dark)")
    elif reranking.fits_none:
        for t in tests_done(readings):
            if TESTS[t].sigma is None:
                found[t] = "it fits none of the photo's candidates; refer the stone if it stands"
    rows = table.rows_for(conclusion.label)
    for t in eye_against(rows, readings):
        found.setdefault(t, f"{conclusion.label} cannot give this reading "
                            f"({describe(rows[0], only_tests(readings, [t]))})")
    for name in conclusion.cannot_exclude:
        if desk_test_key(conclusion.label, name, readings, table) is not None:
            continue
        key = desk_test_key(conclusion.label, name, readings, table, done=True)
        if key is not None and key not in found:
            found[key] = (f"it tells {conclusion.label} from {display_name(name)}, but "
                          + ("a reading judged by eye does not exclude it alone" if TESTS[key].sigma is None
                             else "this reading lies within the instrument's error of both"))
    return found


def no_test_left(conclusion: Conclusion) -> Conclusion:
    """The conclusion when guidance recommends no test: an unsettled one cannot ask for "the next recommended
    test" (an outside try read that above an empty list)."""
    if NEXT_TEST not in conclusion.reason:
        return conclusion
    return conclusion.model_copy(update={"reason": conclusion.reason.replace(
        NEXT_TEST, "no standard test left separates them; check the readings, or refer the stone to a laboratory")})


LAB_METHODS = ("a gemmological laboratory settles it: magnification (inclusions, growth features), "
               "spectroscopy (UV-Vis, FTIR, Raman) and, for synthetics, trace-element analysis")


def lab_note(conclusion: Conclusion, recommended: int, readings: Readings | None = None,
             table: PropertyTable | None = None) -> str | None:
    """What a laboratory would add, when standard tests cannot finish the job: the look-alikes no test left
    to the desk (after `readings`) separates from the answer."""
    if conclusion.decision == "refer":
        if conclusion.fits:
            # the readings did settle what it is not, and named what fits (an outside gemmologist read "cannot
            # settle" under textbook cubic zirconia readings): the laboratory confirms, it does not start over
            return (f"The readings fit {join_names(conclusion.fits)}, which the photo model does not know or did not "
                    f"favour: {LAB_METHODS}.")
        return f"Standard tests cannot settle this stone: {LAB_METHODS}."
    table = table or default_table()
    lab = [n for n in conclusion.cannot_exclude if conclusion.label is None
           or not any(desk_test(conclusion.label, n, readings, table, done=d) for d in (False, True))]
    if lab and conclusion.basis == "photo+readings":
        # the instruments gemid models, named: a desk may have others (a solvent drop tells copal from amber)
        return (f"No refractometer, balance, polariscope, dichroscope or UV reading separates {conclusion.label} "
                f"from {join_names(lab)}: {LAB_METHODS}.")
    if recommended == 0 and conclusion.basis == "photo+readings" and conclusion.decision != "identified":
        return f"No cheap test is left that separates the remaining candidates: {LAB_METHODS}."
    return None
