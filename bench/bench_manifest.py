"""Time to make a parcel's manifest PDF (GET /v1/parcels/{reference}.pdf) of ~50 stones, in English and Urdu.

Real reports: 50 real photos (../shared/data/gems68/train, one per species; a photo of several stones gives a
report per stone) identified by the shipped model through the real app and stored under one reference in a
real SQLite store, as a desk's parcel would be.
Then the PDF is asked for through the app (access check, store query, thumbnails, layout, fonts, QR codes):
- first: the first request (English is asked first: it also decodes each photo once for its display preview,
  cached on disk as the page's previews are; Urdu's first then finds them cached);
- warm: the median of `--repeat` later requests (previews cached), the usual case after the page was seen.
Without ../shared it uses drawn tray photos (tests/support/bundle_fixture) and says so.

    python bench/bench_manifest.py                # 50 photos, 5 warm rounds per language
    python bench/bench_manifest.py --save out/    # and keep the two PDFs to look at
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gems68 import one_per_species  # noqa: E402
from bench.machine import cpu_description  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def photos(n: int) -> tuple[list[tuple[str, bytes]], str]:
    """(file name, bytes) of `n` photos: one real photo per gems68 species, else drawn trays of ~n stones."""
    found = one_per_species(n)
    if len(found) == n:
        return [(p.name, p.read_bytes()) for p in found], f"{n} gems68 photos (one per species)"
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from bundle_fixture import draw_tray, encode  # type: ignore[import-not-found]

    trays = [(f"tray{k}.png", encode(draw_tray(background=(245 - k, 245 - k, 245)))) for k in range(-(-n // 6))]
    return trays, f"{len(trays)} drawn tray photos of 6 stones (no ../shared)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--save", type=Path, help="write the manifests here as manifest-en.pdf, manifest-ur.pdf")
    args = parser.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from fastapi.testclient import TestClient
    from pypdf import PdfReader

    from gemid.serve import accounts
    from gemid.serve.app import create_app
    from gemid.serve.settings import Settings
    from gemid.serve.store import ReportStore

    files, source = photos(args.photos)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", model_dir=REPO / "models" / "gemid-species")
        store = ReportStore.open(settings.database_url)
        key = accounts.create_key(store.engine, "bench", "technician", "desk-1")
        store.close()
        with TestClient(create_app(settings), base_url="http://localhost",
                        headers={"Authorization": f"Bearer {key}"}) as c:
            for start in range(0, len(files), 10):
                r = c.post("/v1/identify", data={"reference": "BENCH-50"},
                           files=[("images", (n, b, "application/octet-stream")) for n, b in files[start:start + 10]])
                assert r.status_code == 200, r.text
            stones = c.get("/v1/parcels/BENCH-50").json()["stones"]
            print(f"parcel: {stones} stones from {source}; CPU: {cpu_description()}")
            for lang in ("en", "ur"):
                times, size, pages = [], 0, 0
                for _ in range(args.repeat + 1):
                    load = os.getloadavg()[0]
                    t0 = time.perf_counter()
                    r = c.get(f"/v1/parcels/BENCH-50.pdf?lang={lang}")
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text
                    size, pages = len(r.content), len(PdfReader(io.BytesIO(r.content)).pages)
                if args.save:
                    args.save.mkdir(parents=True, exist_ok=True)
                    (args.save / f"manifest-{lang}.pdf").write_bytes(r.content)
                warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
                print(f"{lang}: first {times[0]:.2f} s, warm median {warm:.2f} s over {len(times) - 1} "
                      f"(min {min(times[1:] or times):.2f} s); {size / 1e3:.0f} kB, {pages} pages; "
                      f"load average {load:.2f} before the last")

        in_process(settings.database_url)


def in_process(url: str) -> None:
    """Where the time goes: `manifest.build_pdf` alone (no thumbnails), the fonts, the QR codes."""
    from datetime import UTC, datetime

    import qrcode

    from gemid.serve import manifest
    from gemid.serve.store import ReportStore

    store = ReportStore.open(url)
    try:
        reports = store.parcel("BENCH-50", limit=1000)
        codes = store.verify_codes([r.report_id for r in reports])
    finally:
        store.close()
    cards = [manifest.Card(r, None, codes[r.report_id], f"http://localhost/verify/{codes[r.report_id]}")
             for r in reports]
    for lang in ("en", "ur"):
        t0 = time.perf_counter()
        manifest._Writer(lang, manifest.Fonts.find())
        fonts = time.perf_counter() - t0
        t0 = time.perf_counter()
        for card in cards:
            qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=1)
            qr.add_data(card.url)
            qr.make(fit=True)
        qrs = time.perf_counter() - t0
        t0 = time.perf_counter()
        manifest.build_pdf("BENCH-50", cards, lang=lang, printed_at=datetime.now(UTC))
        print(f"{lang} in process: build_pdf without thumbnails {time.perf_counter() - t0:.2f} s, of which fonts "
              f"{fonts:.2f} s, {len(cards)} QR codes {qrs:.2f} s, the rest shaping and layout")


if __name__ == "__main__":
    main()
