"""Which standard test separates the photo's candidates, and why, in plain words.

Each test's outcome is simulated from every candidate's property range blurred by the instrument's error
(`gemmology.instruments`), and tests are ranked by the expected information gain about which candidate the
stone is. Colour varieties of one mineral (blue vs purple sapphire) read the same on every test, so they are
scored as one hypothesis and, when they are all that remains, `colour_decides` says so. A little probability
is always kept for the look-alikes and simulants of the candidates (spinel for ruby, glass for anything):
even a confident photo gets the test that would expose an imitation. Readings already taken weigh those
look-alikes as they weighed the candidates: glass that a birefringence has ruled out asks for no polariscope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from gemid.errors import GemidInputError
from gemid.gemmology.instruments import TESTS, expected_for, mixture_distribution, unreadable
from gemid.gemmology.likelihood import Observed, likelihood, measured_fit, mixture_likelihood
from gemid.gemmology.rerank import display_name
from gemid.gemmology.table import Material, PropertyTable, default_table
from gemid.messages import join_names
from gemid.report import Candidate, ExpectedValue, Readings, TestRecommendation, TestsResult

MIN_PROBABILITY = 0.02  # candidates below this do not drive the recommendation
COVERED_MASS = 0.95  # consider the top candidates covering this share of the photo's probability
MAX_CONSIDERED = 8
LOOKALIKE_MASS = 0.05  # prior kept for look-alikes and simulants of the considered candidates
MIN_SEPARATION = 0.05  # a test resolving less of the uncertainty than this is not worth recommending
APART = 0.2  # two hypotheses whose outcome distributions overlap less than this are "separated"
RULED_OUT = 0.05  # a look-alike is "ruled out" when under 5% of its readings could pass for a candidate
COLOUR_CLASS_SHARE = 0.90  # one mineral holding this share of the mass ...
COLOUR_RUNNER_UP = 0.10  # ... with a second variety holding at least this share of it


class UnknownTest(GemidInputError):
    code, status = "unknown_test", 400


@dataclass
class _Hypothesis:
    """One thing the tests can tell apart: a mineral (all its colour varieties) or a look-alike."""

    key: str
    labels: list[str]
    weights: dict[str, float]  # label -> probability within the considered set
    rows: dict[str, tuple[Material, ...]]
    lookalike: bool = False
    name: str = ""

    @property
    def prior(self) -> float:
        return sum(self.weights.values())

    @cached_property
    def outcomes(self) -> np.ndarray:
        """Every test's outcome distribution end to end (`_spans` says where each test's is)."""
        return sum(w * _outcomes(self.rows[lab]) for lab, w in self.weights.items()) / self.prior

    def distribution(self, test: str) -> np.ndarray:
        return self.outcomes[_spans()[test]]


@lru_cache(maxsize=4096)
def _outcomes(rows: tuple[Material, ...]) -> np.ndarray:
    """`mixture_distribution` of every test, end to end: one array per candidate, so the tests are scored
    in one pass instead of one small numpy call chain each (read-only: it is cached)."""
    out = np.concatenate([mixture_distribution(rows, test) for test in TESTS])
    out.flags.writeable = False
    return out


@lru_cache(maxsize=1)
def _spans() -> dict[str, slice]:
    """Where each test's outcomes lie in `_outcomes` (the outcome axes are fixed per test, so any row will do)."""
    row = (default_table().materials[0],)
    spans: dict[str, slice] = {}
    start = 0
    for test in TESTS:
        n = len(mixture_distribution(row, test))
        spans[test] = slice(start, start + n)
        start += n
    return spans


def considered_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The top candidates covering ~95% of the mass, skipping those under 2% (the first is always kept)."""
    ranked = sorted(candidates, key=lambda c: -c.probability)
    total = sum(c.probability for c in ranked) or 1.0
    chosen: list[Candidate] = []
    mass = 0.0
    for c in ranked:
        if chosen and (c.probability < MIN_PROBABILITY or mass >= COVERED_MASS * total):
            break
        chosen.append(c)
        mass += c.probability
        if len(chosen) >= MAX_CONSIDERED:
            break
    return chosen


def _class_key(rows: tuple[Material, ...]) -> str:
    first = rows[0]
    return f"{first.mineral}|{first.optic[0]}"


def _lookalike_odds(considered: list[Candidate], lookalikes: list[Material], obs: Observed | None,
                    table: PropertyTable, total: float) -> dict[str, float]:
    """How much more (or less) likely the readings already taken make each look-alike than the candidates:
    its likelihood over the candidates' average (their probabilities, re-ranked, already hold the readings).
    A look-alike whose measured readings rule it out gets 0; without readings every look-alike keeps 1."""
    if obs is None:
        return {}
    ref = sum(c.probability / total * mixture_likelihood(rows, obs)
              for c in considered if (rows := table.rows_for(c.label)))
    return {m.name: (likelihood(m, obs) / ref if ref > 0 and measured_fit(m, obs) else 0.0) for m in lookalikes}


def _hypotheses(considered: list[Candidate], table: PropertyTable, obs: Observed | None = None) -> list[_Hypothesis]:
    total = sum(c.probability for c in considered) or 1.0
    by_key: dict[str, _Hypothesis] = {}
    for c in considered:
        rows = table.rows_for(c.label)
        if not rows:
            continue  # no properties known: cannot simulate its readings
        key = _class_key(rows)
        h = by_key.setdefault(key, _Hypothesis(key=key, labels=[], weights={}, rows={}, name=rows[0].mineral))
        h.labels.append(c.label)
        h.weights[c.label] = (1.0 - LOOKALIKE_MASS) * max(c.probability, 1e-6) / total
        h.rows[c.label] = rows
    hyps = list(by_key.values())
    if not hyps:
        return hyps
    candidate_rows = {m.name for h in hyps for rows in h.rows.values() for m in rows}
    labels = {c.label: c.probability / total for c in considered}
    pulls: dict[str, float] = {}
    for m in table.lookalikes():
        if m.name in candidate_rows:
            continue
        pull = sum(p for lab, p in labels.items() if lab in m.lookalike_of)
        if "*" in m.lookalike_of:
            pull += 0.5
        if pull > 0:
            pulls[m.name] = pull
    norm = sum(pulls.values())
    odds = _lookalike_odds(considered, [m for m in table.lookalikes() if m.name in pulls], obs, table, total)
    for m in table.lookalikes():
        if m.name in pulls and odds.get(m.name, 1.0) > 0:
            w = LOOKALIKE_MASS * pulls[m.name] / norm * odds.get(m.name, 1.0)
            hyps.append(_Hypothesis(key=m.name, labels=[m.name], weights={m.name: w}, rows={m.name: (m,)},
                                    lookalike=True, name=m.name))
    if not any(h.lookalike for h in hyps):  # nothing imitates them: give the candidates all the mass
        for h in hyps:
            h.weights = {k: v / (1.0 - LOOKALIKE_MASS) for k, v in h.weights.items()}
    return hyps


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _outcome_terms(prior: np.ndarray, dists: np.ndarray) -> np.ndarray:
    """Each outcome's share of the mutual information between hypothesis and outcome (bits), given the
    hypotheses' `prior` and their outcome distributions `dists` (one row each)."""
    prior = prior / prior.sum()
    p_out = prior @ dists
    # log2(d / p_out) only where d > 0 (ratio 1 elsewhere, so those terms are 0 * 0): nothing is divided by
    # zero or logged at zero, so no error-state juggling (which cost more than the arithmetic on these sizes)
    ratio = np.divide(dists, np.where(p_out > 0, p_out, 1.0), out=np.ones_like(dists), where=dists > 0)
    return (prior[:, None] * (dists * np.log2(ratio))).sum(axis=0)


def information_gain(prior: np.ndarray, dists: np.ndarray) -> float:
    """Mutual information (bits) between the hypothesis and the test's outcome."""
    return float(max(0.0, _outcome_terms(prior, dists).sum()))


def _gains(prior: np.ndarray, outcomes: np.ndarray) -> dict[str, float]:
    """`information_gain` of every test at once, from the hypotheses' `outcomes` rows: one numpy pass
    instead of one per test."""
    terms = _outcome_terms(prior, outcomes)
    return {test: max(0.0, float(terms[span].sum())) for test, span in _spans().items()}


def _overlaps(hyps: list[_Hypothesis], test: str) -> dict[tuple[str, str], float]:
    """The probability two hypotheses' outcomes share (how often a reading could pass for either), for every
    pair of them at once: the same sums as pair by pair, a fraction of the calls."""
    d = np.stack([h.distribution(test) for h in hyps])
    pair = np.minimum(d[:, None, :], d[None, :, :]).sum(axis=-1).tolist()
    keys = [h.key for h in hyps]
    return {(a, b): pair[i][j] for i, a in enumerate(keys) for j, b in enumerate(keys)}


def _join(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _hyp_name(h: _Hypothesis) -> str:
    if h.lookalike:
        return display_name(h.name)
    if len(h.labels) == 1:
        return h.labels[0]
    return f"{h.name} ({'/'.join(h.labels)})"


def _hyp_values(h: _Hypothesis, test: str) -> str:
    texts = [expected_for(h.rows[lab], test) for lab in h.labels]
    if len(set(texts)) == 1:
        return f"{'/'.join(h.labels)} {texts[0]}"
    return ", ".join(f"{lab} {t}" for lab, t in zip(h.labels, texts, strict=True))


def _groups(hyps: list[_Hypothesis], overlap: dict[tuple[str, str], float]) -> list[list[_Hypothesis]]:
    """Connected groups of hypotheses whose outcomes overlap (a test cannot tell members of a group apart)."""
    parent = list(range(len(hyps)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, a in enumerate(hyps):
        for j in range(i + 1, len(hyps)):
            if overlap[a.key, hyps[j].key] >= APART:
                parent[root(j)] = root(i)
    groups: dict[int, list[_Hypothesis]] = {}
    for i, h in enumerate(hyps):
        groups.setdefault(root(i), []).append(h)
    return list(groups.values())


def _clause(cands: list[_Hypothesis], overlap: dict[tuple[str, str], float],
            lookalikes: Sequence[_Hypothesis] = ()) -> str:
    if len(cands) == 1:
        # "confirms" only when no look-alike reads the same on it (an outside gemmologist: "SR or ADR — confirms
        # Diamond", which cubic zirconia and YAG read too)
        same = [h for h in lookalikes if overlap[h.key, cands[0].key] >= APART]
        if same:
            return (f"consistent with {_hyp_name(cands[0])}, as with "
                    f"{join_names([_hyp_name(h) for h in same[:3]], 'and')}")
        return f"confirms {_hyp_name(cands[0])}"
    groups = _groups(cands, overlap)
    if len(groups) == 1:
        return "only shifts the odds: their values overlap"
    if all(len(g) == 1 for g in groups):
        if len(cands) == 2:
            return f"separates {_hyp_name(cands[0])} from {_hyp_name(cands[1])}"
        return "separates them all"
    parts = [
        _hyp_name(g[0]) if len(g) == 1 else f"{_join([_hyp_name(h) for h in g])} (which overlap)" for g in groups
    ]
    return "separates " + " from ".join(parts)


def _why(test: str, hyps: list[_Hypothesis], separation: float) -> str:
    spec = TESTS[test]
    cands = [h for h in hyps if not h.lookalike]
    overlap = _overlaps(hyps, test)
    values = ", ".join(_hyp_values(h, test) for h in cands)
    # a look-alike this test cannot read (opaque, over the limit) is not ruled out by it, only unread
    ruled_out = [
        h for h in sorted((h for h in hyps if h.lookalike), key=lambda h: -h.prior)
        if all(overlap[h.key, c.key] < RULED_OUT for c in cands)
        and "not measurable" not in expected_for(h.rows[h.labels[0]], test)
    ][:3]
    lookalikes = sorted((h for h in hyps if h.lookalike), key=lambda h: -h.prior)
    text = f"{spec.action}: {values} — {_clause(cands, overlap, lookalikes)}."
    if ruled_out:
        outs = ", ".join(f"{_hyp_name(h)} {expected_for(h.rows[h.labels[0]], test)}" for h in ruled_out)
        text += f" Also rules out {outs}."
    return text + f" Expected to resolve {separation:.0%} of the remaining uncertainty ({spec.precision})."


def _colour_decides(considered: list[Candidate], table: PropertyTable) -> str | None:
    mass: dict[str, dict[str, float]] = {}
    for c in considered:
        rows = table.rows_for(c.label)
        if rows:
            mass.setdefault(_class_key(rows), {})[c.label] = c.probability
    total = sum(sum(v.values()) for v in mass.values())
    if not total:
        return None
    key, labels = max(mass.items(), key=lambda kv: sum(kv[1].values()))
    class_mass = sum(labels.values())
    if len(labels) < 2 or class_mass < COLOUR_CLASS_SHARE * total:
        return None
    ranked = sorted(labels.items(), key=lambda kv: -kv[1])
    if ranked[1][1] < COLOUR_RUNNER_UP * class_mass:
        return None
    names = [lab for lab, p in ranked if p >= COLOUR_RUNNER_UP * class_mass]
    mineral = key.split("|")[0]
    return (
        f"{_join(names)} are colour varieties of {mineral}: refractive index, birefringence, specific gravity "
        f"and optic character read the same for them, so colour decides between them (judge it against a "
        f"neutral white background in daylight-equivalent light). Standard tests can still confirm {mineral} "
        f"and rule out imitations."
    )


def _check_tests(available: Iterable[str] | None) -> list[str]:
    if available is None:
        return list(TESTS)
    wanted = set(available)
    unknown = sorted(wanted - set(TESTS))
    if unknown:
        raise UnknownTest(f"unknown test(s) {unknown}; known: {', '.join(TESTS)}")
    return [t for t in TESTS if t in wanted]


def recommend(
    candidates: Sequence[Candidate],
    *,
    available: set[str] | None = None,
    max_tests: int = 3,
    table: PropertyTable | None = None,
    readings: Readings | None = None,
    exclude: Mapping[str, Sequence[str]] | None = None,
    repeat: Mapping[str, str] | None = None,
) -> TestsResult:
    """Rank the available tests by how well they separate the candidates; explain each in plain words.
    `readings`, those already taken (the candidates then re-ranked with them), weigh the look-alikes.
    `exclude` (test -> look-alikes, `followup.exclusion_tests`) are tests the conclusion says can exclude a
    look-alike it names: each is recommended after the others even when, the look-alike being improbable, it
    would resolve too little of the uncertainty to make the list. `repeat` (test -> why,
    `followup.repeat_tests`) are tests already taken that the conclusion asks to repeat: listed last, as
    "Repeat ..."."""
    if max_tests < 1:
        raise GemidInputError("max_tests must be at least 1", code="bad_request")
    tests = _check_tests(available)
    table = table or default_table()
    considered = considered_candidates(candidates)
    if considered:
        tests = [t for t in tests if not unreadable(table.rows_for(considered[0].label), t)]
    hyps = _hypotheses(considered, table, Observed.from_readings(readings) if readings is not None else None)
    colour = _colour_decides(considered, table)
    if not hyps or not tests:
        return TestsResult(colour_decides=colour)
    prior = np.array([h.prior for h in hyps])
    h_prior = _entropy(prior / prior.sum())
    own = [i for i, h in enumerate(hyps) if not h.lookalike]
    h_own = _entropy(prior[own] / prior[own].sum())
    outcomes = np.stack([h.outcomes for h in hyps])
    gains = _gains(prior, outcomes)
    own_gains = _gains(prior[own], outcomes[own]) if len(own) > 1 else {}
    scored: list[tuple[float, int, float, float, str]] = []
    for order, test in enumerate(tests):
        gain, own_gain = gains[test], own_gains.get(test, 0.0)
        scored.append((gain * TESTS[test].practicality, order, gain, own_gain, test))
    scored.sort(key=lambda s: (-s[0], s[1]))
    recommended: list[TestRecommendation] = []
    wanted = {t: list(names) for t, names in (exclude or {}).items() if t in tests and names}
    later: list[tuple[str, float]] = []
    for _, _, gain, own_gain, test in scored:
        separation = min(1.0, gain / h_prior) if h_prior > 0 else 0.0
        if (separation < MIN_SEPARATION or len(recommended) >= max_tests
                # it would only split imitations while the real candidates all read the same
                or (len(own) > 1 and own_gain < MIN_SEPARATION * h_own)):
            if test in wanted:
                later.append((test, separation))
            continue
        recommended.append(TestRecommendation(
            test=test, instrument=TESTS[test].instrument, separation=round(separation, 4),
            why=_why(test, hyps, separation), expected=_expected(test, considered, hyps),
        ))
    for test, separation in later:
        recommended.append(TestRecommendation(
            test=test, instrument=TESTS[test].instrument, separation=round(separation, 4),
            why=_why_exclusion(test, considered[0].label, wanted[test], table),
            expected=_expected(test, considered, hyps)))
    for test, why in (repeat or {}).items():
        if test in TESTS and all(r.test != test for r in recommended):
            recommended.append(TestRecommendation(
                test=test, instrument=TESTS[test].instrument, separation=0.0,
                why=f"Repeat: {TESTS[test].action[0].lower()}{TESTS[test].action[1:]} again: {why}.",
                expected=_expected(test, considered, hyps)))
    return TestsResult(recommended=recommended, colour_decides=colour)


def _expected(test: str, considered: Sequence[Candidate], hyps: list[_Hypothesis]) -> list[ExpectedValue]:
    return [ExpectedValue(label=lab, expected=expected_for(h.rows[lab], test))
            for c in considered for h in hyps if not h.lookalike for lab in h.labels if lab == c.label]


def _why_exclusion(test: str, label: str, names: Sequence[str], table: PropertyTable) -> str:
    """Why a test that resolves little of the uncertainty is still recommended: it excludes a look-alike that
    the readings so far do not."""
    spec = TESTS[test]
    rows = table.rows_for(label)
    theirs = ", ".join(f"{display_name(n)} {expected_for(rows_n, test)}" for n in names
                       if (rows_n := table.rows_for(n)))
    ours = f"{label} {expected_for(rows, test)}" if rows else label
    return (f"{spec.action}: {ours}; {theirs}. The readings so far do not exclude "
            f"{join_names([display_name(n) for n in names])}, and this test tells "
            f"{'it' if len(names) == 1 else 'them'} from {label} ({spec.precision}).")
