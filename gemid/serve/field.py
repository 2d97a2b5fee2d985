"""Field accuracy: how often gemid's answers matched what confirmatory tests or a laboratory settled.

`confirmed_rows` reads, for every report whose latest revision carries a confirmation, only the few values
the figures need (photo-only top-1, the conclusion's label, the confirmed label, the photo's file), straight
from the JSON of that one revision in one query: the reports are found through the indexed
`reports.confirmed_label`, and no report is parsed whole, so on a store of 100,000 reports only the confirmed
ones' latest revisions are read (bench/bench_field.py). `field_report` turns those rows
into the figures `gemid field-report` prints: overall and per species, with counts, Wilson 95 % intervals and
the most frequent confusions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select

from gemid.serve.models_db import IntakeRow, ReportRow, RevisionRow, ShadowRow
from gemid.serve.store import ReportStore
from gemid.stats import wilson

OTHER = "other"
TOP_CONFUSIONS = 10


def same_label(answer: str | None, confirmed: str | None) -> bool:
    """Whether an answer names the confirmed species (any case); 'other' is never a model's answer."""
    if not answer or not confirmed:
        return False
    a, c = answer.strip().lower(), confirmed.strip().lower()
    return a == c and c != OTHER


@dataclass(frozen=True)
class ConfirmedRow:
    report_id: str
    created_at: datetime  # when the stone was photographed (the report's first revision)
    photo_label: str  # the photo-only top-1, species.top[0] ("" when the photo gave none)
    answer_label: str  # the conclusion's label ("" when rejected)
    confirmed_label: str
    other_name: str | None
    image_sha256: str
    image_ext: str
    shadow_label: str | None = None  # the shadow model's top-1 on this photo (None: it gave none)
    training_consent: bool | None = None  # as recorded when the photo was stored (None: before consent existed)


def confirmed_rows(store: ReportStore, *, created_from: datetime | None = None,
                   created_to: datetime | None = None) -> list[ConfirmedRow]:
    """Every report whose latest revision is confirmed, oldest first; `created_to` is exclusive."""
    body = RevisionRow.body
    confirmed = ReportRow.confirmed_label  # indexed: only the confirmed reports' JSON is opened
    conds = [confirmed.is_not(None)]
    if created_from is not None:
        conds.append(ReportRow.created_at >= created_from)
    if created_to is not None:
        conds.append(ReportRow.created_at < created_to)
    stmt = (
        select(ReportRow.id, ReportRow.created_at, body[("species", "top", 0, "label")].as_string(),
               RevisionRow.top1_label, confirmed, body[("confirmation", "other_name")].as_string(),
               ReportRow.image_sha256, ReportRow.image_ext, ShadowRow.label, IntakeRow.training_consent)
        .join(RevisionRow, and_(RevisionRow.report_id == ReportRow.id,
                                RevisionRow.revision == ReportRow.latest_revision))
        .outerjoin(ShadowRow, ShadowRow.report_id == ReportRow.id)
        .outerjoin(IntakeRow, IntakeRow.report_id == ReportRow.id)
        .where(*conds)
        .order_by(ReportRow.created_at, ReportRow.id)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [ConfirmedRow(report_id=r[0], created_at=r[1], photo_label=r[2] or "", answer_label=r[3] or "",
                         confirmed_label=r[4], other_name=r[5], image_sha256=r[6], image_ext=r[7],
                         shadow_label=r[8], training_consent=r[9])
            for r in rows]


def shadow_agreement(store: ReportStore, *, created_from: datetime | None = None,
                     created_to: datetime | None = None) -> dict[str, Any]:
    """How often the shadow model's top-1 matched the served one on every photo it answered in the period
    (confirmed or not), per candidate bundle."""
    agreed = func.sum(func.lower(ShadowRow.label) == func.lower(ShadowRow.served_label))
    stmt = select(ShadowRow.bundle, func.count(), agreed).group_by(ShadowRow.bundle).order_by(ShadowRow.bundle)
    if created_from is not None:
        stmt = stmt.where(ShadowRow.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(ShadowRow.created_at < created_to)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {"bundles": [{"bundle": b, "answered": int(n), "agreement": _rate(int(a or 0), int(n))}
                        for b, n, a in rows]}


def _shadow_accuracy(rows: Sequence[ConfirmedRow], agreement: dict[str, Any] | None) -> dict[str, Any] | None:
    """Served vs shadow photo-only top-1 on the confirmed reports the shadow answered (the same photos)."""
    paired = [r for r in rows if r.shadow_label is not None]
    if not paired and not (agreement and agreement["bundles"]):
        return None
    served = sum(same_label(r.photo_label, r.confirmed_label) for r in paired)
    shadow = sum(same_label(r.shadow_label, r.confirmed_label) for r in paired)
    only_shadow = sum(same_label(r.shadow_label, r.confirmed_label) and not same_label(r.photo_label, r.confirmed_label)
                      for r in paired)
    return {"confirmed": len(paired), "served": _rate(served, len(paired)), "shadow": _rate(shadow, len(paired)),
            "only_shadow_right": only_shadow, "only_served_right": only_shadow + served - shadow,
            "agreement": agreement["bundles"] if agreement else []}


def _rate(correct: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {"correct": 0, "accuracy": None, "ci95": None}
    lo, hi = wilson(correct / n, n)
    return {"correct": correct, "accuracy": correct / n, "ci95": [lo, hi]}


def _confusions(pairs: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CONFUSIONS]
    return [{"confirmed": c, "answered": a or "(none)", "count": n} for (c, a), n in ranked]


def field_report(rows: Sequence[ConfirmedRow], *, since: str | None = None, until: str | None = None,
                 shadow: dict[str, Any] | None = None) -> dict:
    """The figures, as JSON-able data: overall, per confirmed species (most confirmed first) and confusions."""
    per: dict[str, list[int]] = {}
    photo_conf: Counter[tuple[str, str]] = Counter()
    answer_conf: Counter[tuple[str, str]] = Counter()
    for r in rows:
        label = r.confirmed_label
        photo_ok, answer_ok = same_label(r.photo_label, label), same_label(r.answer_label, label)
        counts = per.setdefault(label, [0, 0, 0])
        counts[0] += 1
        counts[1] += photo_ok
        counts[2] += answer_ok
        shown = f"other ({r.other_name})" if label == OTHER and r.other_name else label
        if not photo_ok:
            photo_conf[(shown, r.photo_label)] += 1
        if not answer_ok:
            answer_conf[(shown, r.answer_label)] += 1
    n = len(rows)
    species = [{"label": label, "n": c[0], "photo": _rate(c[1], c[0]), "conclusion": _rate(c[2], c[0])}
               for label, c in sorted(per.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    return {
        "since": since, "until": until, "confirmed": n,
        "photo": _rate(sum(c[1] for c in per.values()), n),
        "conclusion": _rate(sum(c[2] for c in per.values()), n),
        "species": species,
        "confusions": {"photo": _confusions(photo_conf), "conclusion": _confusions(answer_conf)},
        "shadow": _shadow_accuracy(rows, shadow),
    }


def _pct(rate: dict[str, Any]) -> str:
    if rate["accuracy"] is None:
        return "n/a"
    lo, hi = rate["ci95"]
    return f"{100 * rate['accuracy']:5.1f} % ({100 * lo:.0f}-{100 * hi:.0f})"


def render_table(report: dict) -> str:
    """The report as plain text: the overall line, one row per species, then the confusions."""
    period = f"{report['since'] or 'the start'} to {report['until'] or 'now'}"
    lines = [f"Field accuracy, reports from {period}: {report['confirmed']} confirmed",
             "  accuracy with its 95 % Wilson interval; photo = photo-only top-1, conclusion = with readings", ""]
    if not report["confirmed"]:
        return "\n".join(lines[:1] + ["  no confirmed reports in this period"])
    width = max(12, *(len(s["label"]) for s in report["species"]))
    lines.append(f"  {'species':<{width}} {'n':>6}  {'photo top-1':<22} conclusion")
    lines.append(f"  {'all':<{width}} {report['confirmed']:>6}  {_pct(report['photo']):<22} "
                 f"{_pct(report['conclusion'])}")
    for s in report["species"]:
        lines.append(f"  {s['label']:<{width}} {s['n']:>6}  {_pct(s['photo']):<22} {_pct(s['conclusion'])}")
    lines += _shadow_lines(report.get("shadow"))
    for which in ("photo", "conclusion"):
        confusions = report["confusions"][which]
        if confusions:
            lines += ["", f"  most frequent confusions ({which}): confirmed <- answered"]
            lines += [f"    {c['confirmed']} <- {c['answered']}: {c['count']}" for c in confusions]
    return "\n".join(lines)


def _shadow_lines(shadow: dict[str, Any] | None) -> list[str]:
    if not shadow:
        return []
    lines = ["", f"  shadow model, on the {shadow['confirmed']} confirmed photos it answered (photo-only top-1):",
             f"    served {_pct(shadow['served'])}   shadow {_pct(shadow['shadow'])}   "
             f"only the shadow right: {shadow['only_shadow_right']}, only the served right: "
             f"{shadow['only_served_right']}"]
    for b in shadow["agreement"]:
        lines.append(f"    {b['bundle']}: agrees with the served top-1 on {_pct(b['agreement'])} of "
                     f"{b['answered']} photos")
    return lines
