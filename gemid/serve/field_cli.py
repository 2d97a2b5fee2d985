"""The learning loop on the command line:

    gemid confirm REPORT_ID --label L --method M [--lab-reference R] [--other-name N] [--server URL]
    gemid field-report [--since DATE] [--until DATE] [--json] [--data-dir DIR]
    gemid dataset from-store OUT/ [--since DATE] [--until DATE] [--against MANIFEST] [--data-dir DIR]
    gemid drift [--weeks N] [--json] [--reference FILE] [--data-dir DIR]
    gemid drift-reference PHOTOS/ [--out FILE]

`confirm` talks to a running service (it records a revision, so the service's rules and counters apply);
the other two read the store named by the GEMID_* settings, as `gemid serve` does. `from-store` lives here,
not in gemid.datasets, because datasets must not import the service; it is registered under `gemid dataset`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "http://127.0.0.1:8000"


def register(subparsers: argparse._SubParsersAction) -> None:
    c = subparsers.add_parser("confirm", help="record a report's confirmed species in a running service",
                              description="Record what confirmatory tests or a laboratory settled: a new revision.")
    c.add_argument("report_id")
    c.add_argument("--label", required=True, help="a species label of the model or property table, or 'other'")
    c.add_argument("--method", required=True, help="how it was settled, e.g. 'Raman'")
    c.add_argument("--lab-reference", help="the laboratory's report number")
    c.add_argument("--other-name", help="what the stone is, with --label other")
    c.add_argument("--server", default=DEFAULT_SERVER, help="the gemid service (default: %(default)s)")
    c.add_argument("--api-key", default=None, help=(
        "a supervisor's or admin's API key (gemid keys create); default: the GEMID_API_KEY environment variable"))
    c.set_defaults(func=_confirm)

    f = subparsers.add_parser("field-report", help="how often gemid matched the confirmed species",
                              description="Field accuracy of confirmed reports (by the date each stone was "
                                          "photographed), read from the store of the GEMID_* settings.")
    _period(f)
    f.add_argument("--json", action="store_true", help="print JSON instead of a table")
    f.set_defaults(func=_field_report)

    dr = subparsers.add_parser("drift", help="have the photos moved away from the training photos? which way?",
                               description="Each of the last weeks' capture statistics (brightness, colour cast, "
                                           "stone size, sharpness, confidence, camera) against the training "
                                           "photos' (gemid.serve.drift): PSI, KS, medians, and what moved.")
    dr.add_argument("--weeks", type=int, default=8, help="ISO weeks to show, the current one included")
    dr.add_argument("--reference", type=Path, help="the training photos' statistics (default: the shipped one)")
    dr.add_argument("--data-dir", help="where reports and photos are stored (GEMID_DATA_DIR)")
    dr.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dr.set_defaults(func=_drift)

    ref = subparsers.add_parser("drift-reference", help="the training photos' capture statistics -> JSON",
                                description="Run the served model over a folder of photos (one sub-folder per "
                                            "species, as gems68/train) and write the drift reference.")
    ref.add_argument("photos", type=Path)
    ref.add_argument("--out", type=Path, help="default: the shipped reference, gemid/serve/data/")
    ref.add_argument("--model-dir", type=Path, help="the bundle (default: GEMID_MODEL_DIR or the shipped one)")
    ref.set_defaults(func=_drift_reference)

    dataset = subparsers.choices.get("dataset")
    if dataset is not None:  # `gemid dataset` registered first (gemid.cli)
        sub = next(a for a in dataset._actions if isinstance(a, argparse._SubParsersAction))
        d = sub.add_parser("from-store", help="confirmed desk photos from the store -> a training manifest",
                           description="Copy the confirmed photos of the store into OUT/photos and write "
                                       "OUT/manifest.csv (and OUT/combined.csv with --against).")
        d.add_argument("out", type=Path, metavar="OUT")
        _period(d)
        d.add_argument("--against", type=Path, metavar="MANIFEST",
                       help="drop photos that are near-duplicates of this manifest's, and write "
                            "OUT/combined.csv with its rows and the exported ones")
        d.set_defaults(func=_from_store)


def _period(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="ISO date, inclusive (reports photographed from that day)")
    p.add_argument("--until", help="ISO date, that whole day included")
    p.add_argument("--data-dir", help="where reports and photos are stored (GEMID_DATA_DIR)")


class _Refused(Exception):
    pass


def _day(value: str | None, name: str, *, end: bool) -> datetime | None:
    if not value:
        return None
    try:
        d = date.fromisoformat(value.strip())
    except ValueError as exc:
        raise _Refused(f"--{name}: '{value}' is not an ISO date such as 2025-11-22") from exc
    at = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return at + timedelta(days=1) if end else at


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    """(settings, store) of the GEMID_* settings (and --data-dir); refuses a store that does not exist."""
    from pydantic import ValidationError

    from gemid.serve.settings import Settings
    from gemid.serve.store import ReportStore, schema_revision

    try:  # --data-dir overrides GEMID_DATA_DIR for this command, without changing the process's environment
        settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    except ValidationError as exc:
        raise _Refused(f"invalid GEMID_* setting: {exc.errors()[0]['msg']}") from exc
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise _Refused(f"no store at {settings.data_dir} (set GEMID_DATA_DIR or --data-dir)")
    try:
        store = ReportStore.open(url, upgrade=False)
        if schema_revision(store.engine) is None:
            raise _Refused(f"no reports are stored in {settings.data_dir}")
    except _Refused:
        raise
    except Exception as exc:  # a wrong URL, a database that does not answer: one line
        raise _Refused(f"cannot open the store: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    return settings, store


def _fail(command: str, exc: Exception) -> int:
    print(f"gemid {command}: {exc}", file=sys.stderr)
    return 2


def _confirmed(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """(settings, the confirmed reports of --since/--until) from the store the settings name."""
    from gemid.serve.field import confirmed_rows

    frm, to = _day(args.since, "since", end=False), _day(args.until, "until", end=True)
    settings, store = _open(args)
    try:
        return settings, confirmed_rows(store, created_from=frm, created_to=to)
    finally:
        store.close()


def _field_report(args: argparse.Namespace) -> int:
    from gemid.serve.field import confirmed_rows, field_report, render_table, shadow_agreement

    try:
        frm, to = _day(args.since, "since", end=False), _day(args.until, "until", end=True)
        _settings, store = _open(args)
    except _Refused as exc:
        return _fail("field-report", exc)
    try:
        rows = confirmed_rows(store, created_from=frm, created_to=to)
        shadow = shadow_agreement(store, created_from=frm, created_to=to)
    finally:
        store.close()
    report = field_report(rows, since=args.since, until=args.until, shadow=shadow)
    print(json.dumps(report, indent=2) if args.json else render_table(report))
    return 0


def _from_store(args: argparse.Namespace) -> int:
    from gemid.datasets.from_store import FieldPhoto, export
    from gemid.datasets.manifest import ManifestError
    from gemid.serve.field import OTHER
    from gemid.serve.photos import open_images
    from gemid.serve.store import ReportStore

    try:
        settings, rows = _confirmed(args)
    except _Refused as exc:
        return _fail("dataset from-store", exc)
    store = ReportStore.open(settings.database_url, upgrade=False)
    try:  # on PostgreSQL the photos are in the database: fetched into this machine's copy as they are named
        images = open_images(settings, store.engine)
        photos, missing, unconsented = [], 0, 0
        for r in rows:
            if r.confirmed_label == OTHER:
                continue  # no class to train: the model cannot learn "other"
            if not r.training_consent:  # stored while GEMID_TRAINING_CONSENT was off (or before it existed)
                unconsented += 1
                continue
            path = images.get(r.image_sha256, r.image_ext)
            if path is None:
                missing += 1
                continue
            photos.append(FieldPhoto(path=path, species=r.confirmed_label, report_id=r.report_id,
                                     date=r.created_at.date().isoformat()))
    finally:
        store.close()
    try:
        result = export(photos, args.out, against=args.against)
    except (ManifestError, OSError) as exc:
        return _fail("dataset from-store", exc)
    print(f"{len(result.kept)} confirmed photos -> {result.manifest}"
          + (f" (and {result.combined})" if result.combined else ""))
    others = sum(r.confirmed_label == OTHER for r in rows)
    if others or missing or unconsented:
        print(f"  skipped: {others} confirmed as 'other', {unconsented} stored without training consent "
              f"(GEMID_TRAINING_CONSENT off), {missing} photos missing from the store")
    for report_id, why in result.dropped.items():
        print(f"  dropped {report_id}: {why}")
    return 0


def _confirm(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.parse
    import urllib.request

    body = {"label": args.label, "method": args.method}
    if args.lab_reference:
        body["lab_reference"] = args.lab_reference
    if args.other_name:
        body["other_name"] = args.other_name
    server = args.server.rstrip("/")
    url = f"{server}/v1/reports/{urllib.parse.quote(args.report_id, safe='')}/confirmation"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    key = args.api_key or os.environ.get("GEMID_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            report = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return _fail("confirm", Exception(f"the service refused it (HTTP {exc.code}): {_message(exc)}"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return _fail("confirm", Exception(f"cannot reach the gemid service at {server} ({reason}); "
                                          "is `gemid serve` running? (--server URL)"))
    c, con = report.get("confirmation") or {}, report.get("conclusion") or {}
    answer = con.get("label") or "none"
    prob = f" ({100 * con['probability']:.0f} %)" if con.get("probability") is not None else ""
    confirmed = c.get("label", "")
    if c.get("other_name"):
        confirmed += f" ({c['other_name']})"
    print(f"report {report.get('report_id')} revision {report.get('revision')}")
    print(f"  conclusion:   {con.get('decision', '?')}: {answer}{prob}")
    print(f"  confirmed:    {confirmed} by {c.get('method', '')}"
          + (f", lab report {c['lab_reference']}" if c.get("lab_reference") else "")
          + f", at {c.get('confirmed_at', '')}")
    return 0


def _message(exc: Any) -> str:
    try:
        body = json.loads(exc.read())
        return body["error"]["message"]
    except Exception:  # not our JSON error shape: the status says enough
        return exc.reason or "no reason given"


def _drift(args: argparse.Namespace) -> int:
    from gemid.serve.drift import drift_report, load_reference, render_drift

    try:
        if args.weeks < 1 or args.weeks > 520:
            raise _Refused("--weeks: give 1 to 520")
        reference = load_reference(args.reference)
        _settings, store = _open(args)
    except (_Refused, OSError, ValueError) as exc:
        return _fail("drift", exc)
    try:
        report = drift_report(store, reference, weeks=args.weeks)
    finally:
        store.close()
    print(json.dumps(report, indent=2) if args.json else render_drift(report))
    return 0


def _drift_reference(args: argparse.Namespace) -> int:
    from gemid.serve.drift import DEFAULT_REFERENCE, reference_from_folder
    from gemid.serve.settings import Settings

    settings = Settings()
    out = args.out or DEFAULT_REFERENCE
    if not args.photos.is_dir():
        return _fail("drift-reference", Exception(f"{args.photos} is not a folder of photos"))
    reference = reference_from_folder(args.photos, args.model_dir or settings.model_dir, settings.model_variant)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"{reference['photos']} photos ({reference['refused']} refused) -> {out}")
    return 0
