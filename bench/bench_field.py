"""Field accuracy and drift over a large store (issue 34's target: 100,000 stored reports, answers within 2 s).

    python -m bench.bench_field                  # 100,000 reports in a temporary SQLite store
    python -m bench.bench_field --reports 20000 --keep DIR

The rows are written straight through the store's tables (executemany in batches of 5,000: a report body
copied from a real one (~3 KB), its revision, its intake row, a shadow answer for half of them), not through /v1/identify: the
figures are about reading a big store, and identifying 100,000 photos would take hours. The reports are
spread over 26 weeks; 30 % of them are confirmed (revision 2 carries the confirmation); capture statistics
are drawn from the shipped reference's own bins (so drift has nothing to find) except in the last 3 weeks,
whose backgrounds are 12 b* units warmer (so it has). Each measurement runs in a fresh process, so its peak
memory (ru_maxrss) is that command's alone:

- `gemid field-report --json` and `gemid drift --json` as a user runs them (wall and CPU time, Python
  start-up included);
- the same functions in-process (`confirmed_rows` + `shadow_agreement` + `field_report`; `drift_report`
  over 8 weeks; `window_drift`, what /metrics computes), wall and CPU time of each. On the shared
  development VM the wall time follows the load of the other work on its 2 cores (printed); the CPU time
  is what the command itself cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_description  # noqa: E402

SPECIES = ["Ruby", "Sapphire Blue", "Emerald", "Spinel", "Garnet Red", "Tourmaline", "Peridot", "Citrine",
           "Amethyst", "Aquamarine", "Topaz", "Tanzanite", "Zircon", "Iolite", "Morganite", "Kunzite"]
BATCH = 5_000


def template() -> dict:
    """A real report's JSON (the shipped model on a rendered stone), so the stored bodies the queries read
    are the size of real ones (~3 KB: outline, grades, tests), not a few fields."""
    import io

    from PIL import Image

    from gemid.datasets.synth import StoneSpec, render
    from gemid.vision.pipeline import Identifier

    rgb, _mask, _truth = render(StoneSpec(cut="oval", lab=(40.0, 55.0, 25.0)), size=512, seed=3)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return Identifier().identify(buf.getvalue(), filename="stone.png").model_dump(mode="json")


def _body(base: dict, rid: str, created: datetime, label: str, confirmed: str | None, prob: float) -> dict:
    top = [{"label": label, "probability": prob}] + [{"label": s, "probability": (1 - prob) / 4}
                                                     for s in SPECIES[:5] if s != label][:4]
    body = {**base, "report_id": rid, "revision": 2 if confirmed else 1, "created_at": created.isoformat(),
            "file": f"{rid}.jpg", "species": {**base["species"], "top": top},
            "conclusion": {**base["conclusion"], "decision": "identified", "label": label, "probability": prob}}
    if confirmed:
        body["confirmation"] = {"label": confirmed, "method": "Raman", "confirmed_at": created.isoformat()}
    return body


def _draw(ref: dict, name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Values spread like the reference: a bin by its share, then uniform inside it (ends: a step beyond)."""
    s = ref["stats"][name]
    edges, shares = np.asarray(s["edges"]), np.asarray(s["shares"])
    lo = np.concatenate([[edges[0] - (edges[-1] - edges[0]) * 0.05 - 1e-3], edges])
    hi = np.concatenate([edges, [edges[-1] + (edges[-1] - edges[0]) * 0.05 + 1e-3]])
    b = rng.choice(len(shares), size=n, p=shares / shares.sum())
    return lo[b] + (hi[b] - lo[b]) * rng.random(n)


def seed(data_dir: Path, n: int, now: datetime) -> float:
    from sqlalchemy import insert

    from gemid.serve.drift import load_reference
    from gemid.serve.models_db import IntakeRow, ReportRow, RevisionRow, ShadowRow
    from gemid.serve.settings import Settings
    from gemid.serve.store import ReportStore
    from gemid.vision.capture import NUMERIC

    start = time.perf_counter()
    store = ReportStore.open(Settings(data_dir=data_dir).database_url)
    ref = load_reference()
    base = template()
    rng = np.random.default_rng(0)
    first = now - timedelta(weeks=26)
    for b0 in range(0, n, BATCH):
        k = min(BATCH, n - b0)
        created = [first + timedelta(seconds=float(s)) for s in np.sort(rng.random(k)) * 26 * 7 * 86400]
        created = sorted(created)
        stats = {name: _draw(ref, name, k, rng) for name in NUMERIC}
        late = np.array([c > now - timedelta(weeks=3) for c in created])
        stats["warmth"][late] += 12.0
        reports, revisions, intake, shadow = [], [], [], []
        for i in range(k):
            rid = f"b{b0 + i:07d}"
            truth = SPECIES[int(rng.integers(len(SPECIES)))]
            label = truth if rng.random() < 0.8 else SPECIES[int(rng.integers(len(SPECIES)))]
            confirmed = truth if rng.random() < 0.3 else None
            prob = float(np.clip(stats["confidence"][i], 0.05, 1.0))
            at = created[i]
            rev = 2 if confirmed else 1
            reports.append({"id": rid, "created_at": at, "updated_at": at, "reference": None, "file": f"{rid}.jpg",
                            "image_sha256": rid.ljust(64, "0"), "image_ext": "jpg", "latest_revision": rev,
                            "decision": "identified", "top1_label": label, "top1_probability": prob,
                            "verify_code": rid, "confirmed_label": confirmed})
            row = {"report_id": rid, "created_at": at, "decision": "identified", "top1_label": label,
                   "top1_probability": prob}
            revisions.append({**row, "revision": 1, "body": _body(base, rid, at, label, None, prob)})
            if confirmed:
                revisions.append({**row, "revision": 2, "body": _body(base, rid, at, label, confirmed, prob)})
            intake.append({"report_id": rid, "created_at": at, "training_consent": True, "camera": "",
                           **{name: float(stats[name][i]) for name in NUMERIC}})
            if i % 2 == 0:
                other = truth if rng.random() < 0.85 else SPECIES[int(rng.integers(len(SPECIES)))]
                shadow.append({"report_id": rid, "created_at": at, "bundle": "candidate 2 int8", "decision":
                               "identified", "label": other, "probability": prob, "served_label": label,
                               "seconds": 0.02})
        with store.engine.begin() as conn:
            conn.execute(insert(ReportRow), reports)
            conn.execute(insert(RevisionRow), revisions)
            conn.execute(insert(IntakeRow), intake)
            conn.execute(insert(ShadowRow), shadow)
    store.close()
    return time.perf_counter() - start


def measure(data_dir: Path) -> dict:
    """In a fresh process: the three computations in-process, with their times and this process's peak RSS."""
    from gemid.serve.drift import drift_report, load_reference, window_drift
    from gemid.serve.field import confirmed_rows, field_report, shadow_agreement
    from gemid.serve.settings import Settings
    from gemid.serve.store import ReportStore

    store = ReportStore.open(Settings(data_dir=data_dir).database_url, upgrade=False)
    ref = load_reference()
    out = {}
    t, c = time.perf_counter(), time.process_time()
    rows = confirmed_rows(store)
    report = field_report(rows, shadow=shadow_agreement(store))
    out["field_report_s"], out["field_report_cpu"] = time.perf_counter() - t, time.process_time() - c
    out["confirmed"] = report["confirmed"]
    t, c = time.perf_counter(), time.process_time()
    drift = drift_report(store, ref, weeks=8)
    out["drift_8_weeks_s"], out["drift_cpu"] = time.perf_counter() - t, time.process_time() - c
    out["moved"] = drift["moved"]
    t, c = time.perf_counter(), time.process_time()
    window_drift(store, ref)
    out["metrics_window_s"], out["metrics_cpu"] = time.perf_counter() - t, time.process_time() - c
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.close()
    return out


def _cli(data_dir: Path, *argv: str) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MB) of one `gemid` command in a process of its own."""
    env = {**os.environ, "GEMID_DATA_DIR": str(data_dir)}
    code = ("import resource, sys; from gemid.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, int(done.stderr.strip().splitlines()[-1]) / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, help="seed into this folder and keep it (default: a temporary one)")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    print(f"CPU: {cpu_description()}; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.keep or Path(tmp)
        secs = seed(data, args.reports, datetime.now(UTC))
        print(f"seeded {args.reports:,} reports in {secs:.1f} s ({(data / 'gemid.db').stat().st_size / 1e6:.0f} MB)")
        child = subprocess.run([sys.executable, __file__, "--measure", str(data)], capture_output=True, text=True)
        if child.returncode:
            raise SystemExit(f"the measuring process failed:\n{child.stderr[-2000:]}")
        m = json.loads(child.stdout)
        print(f"in-process (wall / CPU): field report {m['field_report_s']:.2f} / {m['field_report_cpu']:.2f} s "
              f"({m['confirmed']:,} confirmed), drift over 8 weeks {m['drift_8_weeks_s']:.2f} / {m['drift_cpu']:.2f} s "
              f"(moved: {', '.join(m['moved']) or 'nothing'}), /metrics' 7-day window {m['metrics_window_s']:.2f} / "
              f"{m['metrics_cpu']:.2f} s; peak RSS {m['peak_rss_mb']:.0f} MB")
        for argv_ in (("field-report", "--json"), ("drift", "--json")):
            wall, cpu, peak = _cli(data, *argv_)
            print(f"gemid {' '.join(argv_)}: {wall:.2f} s wall, {cpu:.2f} s CPU (Python start-up included), "
                  f"peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
