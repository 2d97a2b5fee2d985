"""The report store and the photo store: migrations, revisions, listing, durability, on a real SQLite file and on
a real PostgreSQL server (GEMID_DB_URL), the same tests for both."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from gemid.readings import STORED
from gemid.report import (
    Candidate,
    ImageInfo,
    ModelInfo,
    Quality,
    Readings,
    Report,
    Reranking,
    SpeciesResult,
)
from gemid.report import (
    TestsResult as SectionTests,
)
from gemid.serve.images import ImageStore
from gemid.serve.models_db import Base, RevisionRow
from gemid.serve.store import (
    ReportStore,
    RevisionConflict,
    alembic_config,
    make_engine,
    migrate,
    schema_revision,
)

pytest_plugins = ["postgres_support"]

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def make_report(rid: str, data: bytes, *, label: str = "Ruby", prob: float = 0.9, decision: str = "identified",
                created: datetime = T0, reference: str | None = None, revision: int = 1) -> Report:
    others = [Candidate(label=f"Other {i}", probability=(1 - prob) / 4) for i in range(4)]
    return Report(
        report_id=rid, revision=revision, created_at=created, reference=reference, file=f"{rid}.png",
        image=ImageInfo(sha256=hashlib.sha256(data).hexdigest(), width=8, height=8, format="PNG", bytes=len(data)),
        model=ModelInfo(name="test", version="1", sha256="0" * 64),
        species=SpeciesResult(decision=decision, reason="test", top=[Candidate(label=label, probability=prob), *others]),
        quality=Quality(),
    )


@pytest.fixture
def store(database_url: str):
    s = ReportStore.open(database_url)
    yield s
    s.close()


@pytest.fixture
def images(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def test_migrations_build_the_orm_schema_on_an_empty_database(database_url: str):
    engine = make_engine(database_url)
    assert schema_revision(engine) is None
    migrate(engine)
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert head is not None and schema_revision(engine) == head  # the one head (see CONTRIBUTING: migrations)
    assert {"reports", "report_revisions", "signing_keys", "photos", "report_intake", "shadow_answers",
            "alembic_version"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:  # `alembic check`: the migrations and the ORM describe the same schema
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    migrate(engine)  # idempotent: a restart applies nothing twice
    assert schema_revision(engine) == head
    engine.dispose()


def test_confirmed_label_follows_the_latest_revision_and_is_filled_for_reports_stored_before_it(
        database_url: str, images: ImageStore):
    from alembic import command
    from sqlalchemy import select

    from gemid.report import Confirmation
    from gemid.serve.models_db import ReportRow
    from gemid.serve.store import alembic_config

    engine = make_engine(database_url)
    cfg = alembic_config(database_url)
    with engine.begin() as conn:  # a store as the release before the column left it
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003_intake_shadow")
    store = ReportStore(engine)
    first = make_report("old", b"old photo")
    with engine.begin() as conn:  # what add_reports wrote then: no confirmed_label column yet
        conn.exec_driver_sql(
            "INSERT INTO reports (id, created_at, updated_at, image_sha256, image_ext, latest_revision, decision, "
            "top1_label, top1_probability) VALUES ('old', '2025-03-01 09:30:00', '2025-03-01 09:30:00', 'x', 'png', "
            "2, 'identified', 'Ruby', 0.9)")
        for rev, confirmation in ((1, None), (2, {"label": "Spinel", "method": "Raman"})):
            body = {**first.model_dump(mode="json"), "revision": rev, "confirmation": confirmation}
            conn.execute(RevisionRow.__table__.insert(), [{  # type: ignore[attr-defined]
                "report_id": "old", "revision": rev, "created_at": T0, "decision": "identified",
                "top1_label": "Ruby", "top1_probability": 0.9, "body": body}])
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(select(ReportRow.confirmed_label).where(ReportRow.id == "old")).scalar_one() == "Spinel"

    store.add_new([(make_report("new", b"new photo"), b"new photo")], images)
    confirmed = store.get("new").model_copy(update={"revision": 2, "confirmation": Confirmation(
        label="Ruby", method="Raman")})
    store.add_revision(confirmed)
    later = confirmed.model_copy(update={"revision": 3})  # readings after the confirmation keep it
    store.add_revision(later)
    with engine.connect() as conn:
        assert dict(conn.execute(select(ReportRow.id, ReportRow.confirmed_label)).all()) == {
            "old": "Spinel", "new": "Ruby"}
    engine.dispose()


def test_image_store_is_content_addressed_and_leaves_no_temp_files(images: ImageStore):
    data = b"\x89PNG fake bytes"
    sha = hashlib.sha256(data).hexdigest()
    path = images.put(data, sha, "png")
    assert path == images.root / sha[:2] / sha[2:4] / f"{sha}.png"
    assert path.read_bytes() == data
    assert images.put(data, sha, "png") == path  # idempotent
    assert images.count() == 1
    assert not list(path.parent.glob(".tmp-*"))
    with pytest.raises(ValueError):
        images.put(b"other bytes", sha, "png")  # the name must be the content's hash
    with pytest.raises(ValueError):
        images.path_for("../../etc/passwd", "png")
    assert images.get("a" * 64, "png") is None


def test_report_round_trip_and_timezone(store: ReportStore, images: ImageStore):
    data = b"photo-1"
    report = make_report("r1", data, reference="PARCEL 7")
    store.add_new([(report, data)], images)
    got = store.get("r1")
    assert got == report
    assert got.created_at.tzinfo is not None and got.created_at == T0
    sha, ext, name = store.image_of("r1")
    assert images.get(sha, ext).read_bytes() == data and name == "r1.png"
    assert store.get("nope") is None and store.image_of("nope") is None
    assert store.counts() == (1, 1)


def test_verification_codes_are_read_for_many_reports_at_once(store: ReportStore, images: ImageStore):
    """The parcel manifest prints every stone's code: one query for all (in chunks of 500), each the report's own."""
    ids = [f"v{i}" for i in range(3)]
    store.add_new([(make_report(rid, rid.encode()), rid.encode()) for rid in ids], images)
    codes = store.verify_codes([*ids, "unknown"])
    assert codes == {rid: store.verify_code(rid) for rid in ids}
    assert all(codes.values()) and len(set(codes.values())) == 3
    assert store.verify_codes([]) == {}


def test_photo_is_on_disk_before_the_row_and_a_failed_commit_stores_no_row(store: ReportStore, images: ImageStore):
    store.add_new([(make_report("dup", b"first"), b"first")], images)
    with pytest.raises(IntegrityError):  # same report id: the commit fails after the photo was written
        store.add_new([(make_report("dup", b"second"), b"second")], images)
    assert store.counts() == (1, 1)
    assert images.count() == 2  # the orphan photo stays, harmless: named by its own hash
    assert store.get("dup").image.sha256 == hashlib.sha256(b"first").hexdigest()


def test_a_photo_that_cannot_be_written_stores_no_report(tmp_path: Path, store: ReportStore):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the photo directory should be")
    with pytest.raises(OSError):
        store.add_new([(make_report("x", b"px"), b"px")], ImageStore(blocked))
    assert store.counts() == (0, 0)


def test_revisions_are_appended_never_overwritten(store: ReportStore, images: ImageStore):
    first = make_report("r", b"p", label="Ruby", prob=0.5)
    store.add_new([(first, b"p")], images)
    readings = Readings(ri=1.718)
    combined = [Candidate(label="Spinel", probability=0.8), Candidate(label="Ruby", probability=0.2)]
    second = first.model_copy(update={"revision": 2, "tests": SectionTests(reranking=Reranking(
        readings=readings, photo_only=first.species.top, combined=combined, fits_none=False))})
    store.add_revision(second)
    with pytest.raises(RevisionConflict):
        store.add_revision(second)  # a second writer at the same revision loses
    with pytest.raises(RevisionConflict):
        store.add_revision(first.model_copy(update={"revision": 4}))  # no gaps
    assert store.get("r") == second
    assert store.get("r", 1) == first
    assert store.get("r", 3) is None
    assert [r.revision for r in store.revisions("r")] == [1, 2]
    # the history list shows the current answer: the readings' combined ranking
    (item,) = store.list().items
    assert (item.revision, item.species, item.probability) == (2, "Spinel", 0.8)


def test_readings_stored_before_a_newer_rule_are_read_back(store: ReportStore, images: ImageStore):
    """RI edges past the refractometer's limit are refused as input since 2026-12-07; a revision stored with one
    before that still loads, lists and serves."""
    first = make_report("old", b"p")
    store.add_new([(first, b"p")], images)
    top = [c.model_dump() for c in first.species.top]
    tests = SectionTests.model_validate({"reranking": {"readings": {"ri": 1.85}, "photo_only": top, "combined": top,
                                                       "fits_none": False}}, context={STORED: True})
    second = first.model_copy(update={"revision": 2, "tests": tests})
    store.add_revision(second)
    assert store.get("old").tests.reranking.readings.ri == 1.85
    assert [r.revision for r in store.revisions("old")] == [1, 2]
    assert store.list().items[0].revision == 2


def test_listing_filters_and_pages(store: ReportStore, images: ImageStore):
    specs = [
        ("a", "Ruby", "identified", T0, "LOT-1"),
        ("b", "Emerald", "uncertain", T0 + timedelta(days=1), "LOT-1"),
        ("c", "Ruby", "identified", T0 + timedelta(days=2), "lot_2"),
        ("d", "Sapphire Blue", "rejected", T0 + timedelta(days=3), None),
        ("e", "ruby", "uncertain", T0 + timedelta(days=4), "100%"),
    ]
    for rid, label, decision, created, ref in specs:
        data = rid.encode()
        store.add_new([(make_report(rid, data, label=label, decision=decision, created=created, reference=ref),
                        data)], images)

    def ids(**kw) -> list[str]:
        return [i.report_id for i in store.list(**kw).items]

    assert ids() == ["e", "d", "c", "b", "a"]  # newest first
    assert ids(species="RUBY") == ["e", "c", "a"]
    assert ids(decision="uncertain") == ["e", "b"]
    assert ids(reference="lot-") == ["b", "a"]
    assert ids(reference="_") == ["c"]  # LIKE wildcards are literal
    assert ids(reference="%") == ["e"]
    assert ids(created_from=T0 + timedelta(days=1), created_to=T0 + timedelta(days=3)) == ["c", "b"]
    assert ids(species="ruby", decision="identified", reference="lot") == ["c", "a"]
    page = store.list(limit=2, offset=0)
    assert [i.report_id for i in page.items] == ["e", "d"] and page.total == 5 and page.next_offset == 2
    last = store.list(limit=2, offset=4)
    assert [i.report_id for i in last.items] == ["a"] and last.next_offset is None
