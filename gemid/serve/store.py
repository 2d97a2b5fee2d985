"""The report store: SQLite by default, PostgreSQL by URL; schema by Alembic migrations applied at start-up.

Invariant: a report row is committed only after its photo is safely on disk (`ImageStore.put`, atomic and
fsynced), so every stored report can show its photo. Revisions are append-only: adding readings inserts
revision N+1 with a compare-and-swap on the report's latest revision, so two technicians adding readings
at the same moment cannot silently overwrite each other (the loser gets `RevisionConflict` and retries).
All methods are synchronous; the service calls them off the event loop.

Signing: a store opened with a `Signer` (gemid.serve.keys; the service always has one) signs every revision
it stores, in place on the `Report` it was given, so what the route then serves is exactly what was stored.
`previous_signature` is read from the previous stored revision inside the same transaction as the
compare-and-swap, so the chain follows what is in the database, not what a caller believed. A signed
revision is read back as its stored JSON (`get_body`, `revision_bodies`): served through the model, a field
added to the schema later would appear with its default and the signature would no longer match.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from pydantic import BaseModel, Field
from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gemid.readings import STORED
from gemid.report import ConclusionDecision, Report, Signature
from gemid.serve.images import ImageStore, extension_for, sha256_bytes, sha256_file
from gemid.serve.models_db import IntakeRow, ReportRow, RevisionRow, ShadowRow

if TYPE_CHECKING:
    from gemid.serve.keys import Signer

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
INTAKE_STATS = ("brightness", "warmth", "tint", "stone_px", "sharpness", "confidence", "camera")


class RevisionConflict(RuntimeError):
    """Someone else added a revision first; reload the latest and try again."""


class ReportSummary(BaseModel):
    """One line of the history list: the report's current answer (its latest revision)."""

    report_id: str
    revision: int
    created_at: datetime
    updated_at: datetime
    reference: str | None
    file: str | None
    decision: ConclusionDecision
    species: str
    probability: float | None = Field(description="null when the conclusion has none (refer, rejected)")
    image_sha256: str


class ReportPage(BaseModel):
    items: list[ReportSummary]
    total: int
    limit: int
    offset: int
    next_offset: int | None


# --- engine and migrations ----------------------------------------------------------------------------


def make_engine(url: str) -> Engine:
    """An engine with SQLite set up for a small multi-threaded server: WAL, foreign keys, busy wait."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a committed report survives a power cut
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    """Alembic configuration without an ini file (also for developers: `command.revision(cfg, ...)`)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the database to the latest schema (idempotent)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for an empty database. Fails when the database does not answer."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


# --- the store ----------------------------------------------------------------------------------------


def current_answer(report: Report) -> tuple[str, str, float]:
    """(decision, label, probability) of the report's conclusion (photo and readings); for a report stored
    before conclusions existed, the photo's decision and the readings' combined ranking."""
    c = report.conclusion
    if c is not None:
        return c.decision, c.label or "", c.probability or 0.0
    top = report.species.top
    if report.tests and report.tests.reranking and report.tests.reranking.combined:
        top = report.tests.reranking.combined
    best = top[0] if top else None
    return report.species.decision, (best.label if best else ""), (best.probability if best else 0.0)


def confirmed_label(report: Report) -> str | None:
    """The label a laboratory or confirmatory tests settled for this revision (None: not confirmed)."""
    return report.confirmation.label[:100] if report.confirmation is not None else None


def put_photo(images: ImageStore, report: Report, data: bytes | Path) -> tuple[str, str]:
    """Store the report's photo (bytes, or the file it was spooled to; atomic, fsynced); (sha256, extension)
    to record in its row."""
    sha = sha256_file(data) if isinstance(data, Path) else sha256_bytes(data)
    if report.image.sha256 != sha:
        log.warning("report %s: image sha256 %s differs from the bytes' %s; storing by the bytes",
                    report.report_id, report.image.sha256[:12], sha[:12])
    ext = extension_for(report.image.format)
    images.put(data, sha, ext)
    return sha, ext


def new_verify_code() -> str:
    """The token of a report's public verification page: 128 random bits, so a printed code leads to its own
    report only and no code can be guessed or counted up from another."""
    return secrets.token_urlsafe(16)


def served(body: dict[str, Any]) -> dict[str, Any]:
    """A stored revision as the API serves it: a signed one exactly as stored (its signature covers it), an
    unsigned one from before signing brought up to the current schema (new fields with their defaults)."""
    return body if body.get("signature") else Report.model_validate(body, context={STORED: True}).model_dump(mode="json")


class ReportStore:
    def __init__(self, engine: Engine, signer: Signer | None = None) -> None:
        self.engine = engine
        self.signer = signer
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def _signed_body(self, report: Report) -> dict[str, Any]:
        """The revision's JSON to store, signed (and `report` given the same signature) when there is a signer."""
        if self.signer is None:
            return report.model_dump(mode="json")
        report.signature = None
        body = report.model_dump(mode="json")
        body["signature"] = self.signer.sign(body)
        report.signature = Signature.model_validate(body["signature"])
        return body

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> ReportStore:
        if url.startswith("sqlite:///"):
            db_path = url.removeprefix("sqlite:///")
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(url)
        if upgrade:
            migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    # --- writes --------------------------------------------------------------------------------------

    def add_new(self, items: Sequence[tuple[Report, bytes]], images: ImageStore) -> list[str]:
        """Store the photos first, then commit their reports in one transaction. Returns the ids."""
        return self.add_reports([(report, *put_photo(images, report, data)) for report, data in items])

    def add_reports(self, entries: Sequence[tuple[Report, str, str]], *,
                    captures: Sequence[dict[str, Any] | None] | None = None,
                    training_consent: bool | None = None) -> list[str]:
        """Commit reports whose photos `put_photo` already stored: (report, photo sha256, extension).

        With `training_consent` (the service passes GEMID_TRAINING_CONSENT), each report also gets its intake
        row: that consent and its photo's capture statistics (`captures`, aligned with `entries`; None where
        unknown). Plain executemany inserts of the tables in one transaction: the same rows the ORM would
        write, without its unit-of-work bookkeeping, which cost more CPU than the rest of storing a report."""
        reports: list[dict[str, Any]] = []
        revisions: list[dict[str, Any]] = []
        intake: list[dict[str, Any]] = []
        for i, (report, sha, ext) in enumerate(entries):
            if training_consent is not None:
                capture = (captures[i] if captures is not None else None) or {}
                intake.append({"report_id": report.report_id, "created_at": report.created_at,
                               "training_consent": training_consent,
                               **{k: capture.get(k) for k in INTAKE_STATS}})
            decision, label, prob = current_answer(report)
            answer = {"decision": decision, "top1_label": label[:100], "top1_probability": prob}
            reports.append({"confirmed_label": confirmed_label(report), "id": report.report_id, "created_at": report.created_at, "updated_at": report.created_at,
                            "reference": report.reference, "file": (report.file or None) and report.file[:255],
                            "image_sha256": sha, "image_ext": ext, "latest_revision": report.revision,
                            "verify_code": new_verify_code(),
                            "desk": report.issued_by.desk if report.issued_by else None, **answer})
            report.previous_signature = None  # a new report: revision 1 starts the chain
            revisions.append({"report_id": report.report_id, "revision": report.revision,
                              "created_at": report.created_at, "body": self._signed_body(report), **answer})
        if reports:
            with self.engine.begin() as conn:
                conn.execute(insert(ReportRow), reports)
                conn.execute(insert(RevisionRow), revisions)
                if intake:
                    conn.execute(insert(IntakeRow), intake)
        return [r["id"] for r in reports]

    def add_shadow(self, row: dict[str, Any]) -> None:
        """Record a shadow answer (gemid.serve.shadow); a report deleted meanwhile is not an error."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(ShadowRow), [row])
        except IntegrityError as exc:
            log.info("shadow answer of %s not recorded: %s", row.get("report_id"), exc.orig)

    def add_revision(self, report: Report) -> None:
        """Append `report` as the next revision of its report; `RevisionConflict` if another got there first."""
        decision, label, prob = current_answer(report)
        now = report.created_at
        try:
            with self._session() as session, session.begin():
                swapped = session.execute(
                    update(ReportRow)
                    .where(ReportRow.id == report.report_id, ReportRow.latest_revision == report.revision - 1)
                    .values(latest_revision=report.revision, updated_at=now, decision=decision,
                            top1_label=label[:100], top1_probability=prob, confirmed_label=confirmed_label(report))
                ).rowcount
                if swapped != 1:
                    raise RevisionConflict(f"report {report.report_id} is no longer at revision {report.revision - 1}")
                previous = session.execute(select(RevisionRow.body).where(
                    RevisionRow.report_id == report.report_id, RevisionRow.revision == report.revision - 1)
                ).scalar_one_or_none()
                report.previous_signature = ((previous or {}).get("signature") or {}).get("value")
                session.add(RevisionRow(report_id=report.report_id, revision=report.revision, created_at=now,
                                        decision=decision, top1_label=label[:100], top1_probability=prob,
                                        body=self._signed_body(report)))
        except IntegrityError as exc:
            raise RevisionConflict(str(exc.orig)) from exc

    # --- reads ---------------------------------------------------------------------------------------

    def get(self, report_id: str, revision: int | None = None) -> Report | None:
        """The latest revision, or revision `revision`; None when unknown."""
        body = self.get_body(report_id, revision)
        return None if body is None else Report.model_validate(body, context={STORED: True})

    def get_body(self, report_id: str, revision: int | None = None) -> dict[str, Any] | None:
        """The stored JSON of the latest revision, or of revision `revision`; None when unknown."""
        with self._session() as session:
            if revision is None:
                latest = select(ReportRow.latest_revision).where(ReportRow.id == report_id).scalar_subquery()
                stmt = select(RevisionRow.body).where(RevisionRow.report_id == report_id,
                                                      RevisionRow.revision == latest)
            else:
                stmt = select(RevisionRow.body).where(RevisionRow.report_id == report_id,
                                                      RevisionRow.revision == revision)
            return session.execute(stmt).scalar_one_or_none()

    def revisions(self, report_id: str) -> list[Report]:
        """Every revision, oldest first; empty when the id is unknown."""
        return [Report.model_validate(b, context={STORED: True}) for b in self.revision_bodies(report_id)]

    def revision_bodies(self, report_id: str) -> list[dict[str, Any]]:
        """The stored JSON of every revision, oldest first; empty when the id is unknown."""
        with self._session() as session:
            return list(session.execute(
                select(RevisionRow.body).where(RevisionRow.report_id == report_id).order_by(RevisionRow.revision)
            ).scalars().all())

    def by_verify_code(self, code: str) -> str | None:
        """The id of the report whose verification code is `code`."""
        with self._session() as session:
            return session.execute(select(ReportRow.id).where(ReportRow.verify_code == code)).scalar_one_or_none()

    def verify_code(self, report_id: str) -> str | None:
        with self._session() as session:
            return session.execute(select(ReportRow.verify_code).where(ReportRow.id == report_id)).scalar_one_or_none()

    def verify_codes(self, report_ids: list[str]) -> dict[str, str | None]:
        """{report id: its verification code} in one query (a parcel manifest prints fifty of them)."""
        found: dict[str, str | None] = {}
        with self._session() as session:
            for start in range(0, len(report_ids), 500):
                chunk = report_ids[start:start + 500]
                found.update(session.execute(select(ReportRow.id, ReportRow.verify_code)
                                             .where(ReportRow.id.in_(chunk))).tuples().all())
        return found

    def report_ids(self) -> list[str]:
        """Every report's id, oldest first (for checking a whole store, e.g. after a restore)."""
        with self._session() as session:
            return list(session.execute(select(ReportRow.id).order_by(ReportRow.created_at, ReportRow.id))
                        .scalars().all())

    def desk_of(self, report_id: str) -> tuple[str | None] | None:
        """(desk,) of the report (desk None: issued without one); None when the id is unknown."""
        with self._session() as session:
            row = session.execute(select(ReportRow.desk).where(ReportRow.id == report_id)).one_or_none()
        return None if row is None else (row[0],)

    def image_of(self, report_id: str) -> tuple[str, str, str | None] | None:
        """(sha256, extension, uploaded file name) of the report's photo."""
        with self._session() as session:
            row = session.execute(
                select(ReportRow.image_sha256, ReportRow.image_ext, ReportRow.file).where(ReportRow.id == report_id)
            ).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    @staticmethod
    def _filters(created_from: datetime | None = None, created_to: datetime | None = None, species: str | None = None,
                 decision: str | None = None, reference: str | None = None,
                 desk: tuple[str | None] | None = None) -> list[Any]:
        """The history list's filters as SQL conditions (the list, its CSV export); `desk` (a 1-tuple, as its
        value may be None): only that desk's reports (a technician's view)."""
        conds: list[Any] = []
        if desk is not None:
            conds.append(ReportRow.desk.is_(None) if desk[0] is None else ReportRow.desk == desk[0])
        if created_from is not None:
            conds.append(ReportRow.created_at >= created_from)
        if created_to is not None:
            conds.append(ReportRow.created_at < created_to)
        if species:
            conds.append(func.lower(ReportRow.top1_label) == species.strip().lower())
        if decision:
            conds.append(ReportRow.decision == decision)
        if reference:
            conds.append(ReportRow.reference.icontains(reference.strip(), autoescape=True))  # % and _ are text
        return conds

    def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        species: str | None = None,
        decision: str | None = None,
        reference: str | None = None,
        desk: tuple[str | None] | None = None,
    ) -> ReportPage:
        """Newest first. `created_to` is exclusive; species matches the current top-1 label, any case;
        reference matches a substring, any case; `desk` (a 1-tuple: its value may be None) only that desk's."""
        conds = self._filters(created_from, created_to, species, decision, reference, desk)
        with self._session() as session:
            total = session.execute(select(func.count()).select_from(ReportRow).where(*conds)).scalar_one()
            rows = session.execute(
                select(ReportRow).where(*conds)
                .order_by(ReportRow.created_at.desc(), ReportRow.id.desc())
                .limit(limit).offset(offset)
            ).scalars().all()
        items = [ReportSummary(
            report_id=r.id, revision=r.latest_revision, created_at=r.created_at, updated_at=r.updated_at,
            reference=r.reference, file=r.file, decision=r.decision,  # type: ignore[arg-type]
            species=r.top1_label, probability=None if r.decision in ("refer", "rejected") else r.top1_probability,
            image_sha256=r.image_sha256,
        ) for r in rows]
        next_offset = offset + len(items) if offset + len(items) < total else None
        return ReportPage(items=items, total=total, limit=limit, offset=offset, next_offset=next_offset)

    def latest(self, *, limit: int, newest_first: bool = True, **filters: Any) -> list[Report]:
        """The latest revision of each report the history list's `filters` match (its CSV), at most `limit`."""
        return self._latest(self._filters(**filters), limit=limit, newest_first=newest_first)

    def parcel(self, reference: str, *, limit: int, desk: tuple[str | None] | None = None) -> list[Report]:
        """A parcel: the latest revision of every report stored under exactly this reference, photo by photo in
        the order they were stored, each photo's stones in reading order (only `desk`'s, as in `_filters`)."""
        return self._latest([ReportRow.reference == reference, *self._filters(desk=desk)], limit=limit,
                            newest_first=False)

    def duplicates(self, image_sha256: str, reference: str, desk: tuple[str | None] | None = None) -> list[Report]:
        """The reports already stored for this photo under this reference (every stone; only `desk`'s, as in
        `_filters`), oldest first."""
        return self._latest([ReportRow.image_sha256 == image_sha256, ReportRow.reference == reference,
                             *self._filters(desk=desk)], limit=10_000, newest_first=False)

    def _latest(self, conds: list[Any], *, limit: int, newest_first: bool) -> list[Report]:
        order = (ReportRow.created_at.desc(), ReportRow.id.desc()) if newest_first else (
            ReportRow.created_at, ReportRow.id)
        with self._session() as session:
            rows = session.execute(
                select(ReportRow.created_at, RevisionRow.body)
                .join(ReportRow, (RevisionRow.report_id == ReportRow.id)
                      & (RevisionRow.revision == ReportRow.latest_revision))
                .where(*conds).order_by(*order).limit(limit)
            ).all()
        # the stones of one photo share its analysis time (gemid.serve.analysis): in reading order within it
        keyed = [(at, Report.model_validate(body, context={STORED: True})) for at, body in rows]
        sign = -1 if newest_first else 1
        keyed.sort(key=lambda k: (sign * k[0].timestamp(), k[1].image.sha256, k[1].stone.index if k[1].stone else 0))
        return [r for _, r in keyed]

    def counts(self) -> tuple[int, int]:
        """(reports, revisions) stored."""
        with self._session() as session:
            n_reports = session.execute(select(func.count()).select_from(ReportRow)).scalar_one()
            n_revs = session.execute(select(func.count()).select_from(RevisionRow)).scalar_one()
        return n_reports, n_revs

