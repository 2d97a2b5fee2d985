"""Authentication benchmark: what accounts, roles and the audit trail cost per request, and the service's
throughput at 16 clients with them on against the same service without them, in one run.

    python -m bench.bench_auth                       # the shipped model, int8, 16 clients, screen mode
    python -m bench.bench_auth --tiny --requests 100 # the tests' tiny bundle

1. Per request (in process, no HTTP): the access middleware (gemid.serve.access) in front of an endpoint that
   does nothing, with a real technician key on a real SQLite store and the rate limits, with the key
   remembered and looked up every request; first with the audit trail off (authentication alone), then with
   its entry queued and committed by the group commit (each run timed until its entries are committed) —
   against the same endpoint without the middleware. Target (issue 31): authentication adds <= 1 ms per
   request.
2. The service: a real `gemid serve` (auth + audit on, requests signed with a technician's key) and a
   baseline server built from the same code with the access middleware taken out (no auth, no trail), one
   after the other, alternating twice, each on a fresh store: POST /v1/identify from 16 clients (bench_service's
   client). Target: the service figures of issue 3 hold with authentication on.

Both servers share this machine's cores with the clients and with whatever else runs; the alternation
shows how much of a difference is noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "support"))

from serve_process import cli_key, free_port, stop  # noqa: E402

from bench import bench_service  # noqa: E402
from bench.machine import cpu_description  # noqa: E402


def baseline_app():
    """The service without the access middleware (no authentication, no audit trail): the bench's baseline
    only, built by uvicorn as `gemid serve` builds the real one."""
    from gemid.serve.access import AccessMiddleware
    from gemid.serve.app import create_app

    app = create_app()
    app.user_middleware = [m for m in app.user_middleware if m.cls is not AccessMiddleware]
    return app


def start_baseline(port: int, data_dir: Path, model_dir: Path, variant: str) -> subprocess.Popen:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "GEMID_DATA_DIR": str(data_dir),
           "GEMID_MODEL_DIR": str(model_dir), "GEMID_MODEL_VARIANT": variant, "PYTHONPATH": str(REPO)}
    code = ("import uvicorn; uvicorn.run('bench.bench_auth:baseline_app', factory=True, host='127.0.0.1', "
            f"port={port}, log_level='warning', http='gemid.serve.connections:GuardedHttpTools', "
            "timeout_keep_alive=5)")
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=str(REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


# --- 1. per request, in process -------------------------------------------------------------------------


@dataclass(frozen=True)
class PerRequest:
    """ms per request, median of 3 alternated runs: no middleware; the middleware with the audit trail off
    (authentication alone) and on, each with the key remembered and with a database lookup every request."""

    bare: float
    remembered: float
    looked_up: float
    remembered_trail: float
    looked_up_trail: float
    entries: int  # audit entries committed meanwhile

    @property
    def authentication(self) -> float:
        """What authentication adds at most: a key looked up every request, against no middleware."""
        return max(self.remembered, self.looked_up) - self.bare

    @property
    def with_trail(self) -> float:
        """What the middleware adds at most with its audit entry committed."""
        return max(self.remembered_trail, self.looked_up_trail) - self.bare


async def _per_request(n: int, tmp: Path) -> PerRequest:
    """The middleware timed over `n` requests each way (see PerRequest). With the trail on, a run is timed
    until its entries are committed: the writer commits in the background whenever the event loop is free,
    which a run that never waits (a remembered key) would otherwise leave for after its clock stops, and a
    run that waits for a lookup would pay for both."""
    from types import SimpleNamespace

    from gemid.serve import accounts
    from gemid.serve.access import AccessMiddleware
    from gemid.serve.audit import AuditEntry, AuditWriter, Sealing
    from gemid.serve.keys import open_signer
    from gemid.serve.security import allowed_hosts
    from gemid.serve.settings import Settings
    from gemid.serve.store import ReportStore

    settings = Settings(data_dir=tmp / "data", rate_per_key=1e9, rate_per_address=1e9)  # timed, not refused
    store = ReportStore.open(settings.database_url)
    key = accounts.create_key(store.engine, "bench desk", "technician", "desk-1")
    writer = AuditWriter(store.engine, Sealing(open_signer(settings, store.engine)))  # sealed, as the service does
    await writer.start()
    state = SimpleNamespace(settings=settings, store=store, audit=None,
                            allowed_hosts=allowed_hosts(None, "127.0.0.1", None))
    service = SimpleNamespace(state=state)

    async def endpoint(scope, receive, send) -> None:  # answers at once: what is timed is what is in front
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = AccessMiddleware(endpoint, service=service)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message) -> None:
        pass

    def scope() -> dict:
        return {"type": "http", "method": "GET", "path": "/v1/reports", "query_string": b"", "scheme": "http",
                "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Bearer {key}".encode())],
                "client": ("127.0.0.1", 5000), "state": {}}

    async def timed(app, cold: bool = False, trail: bool = False) -> float:
        state.audit = writer if trail else None
        for _ in range(50):
            await app(scope(), receive, send)
        t0 = time.perf_counter()
        for _ in range(n):
            if cold:  # forget the key: every request asks the database (a key used less than once a second)
                guarded._known.clear()
            await app(scope(), receive, send)
        if trail:  # committed after every entry queued before it: the run's own
            await writer.write(AuditEntry(action="bench", detail="end of a timed run"))
        return 1000 * (time.perf_counter() - t0) / n

    runs: dict[str, list[float]] = {k: [] for k in ("bare", "remembered", "looked_up", "remembered_trail",
                                                     "looked_up_trail")}
    for _ in range(3):  # alternated: a burst of other work on the machine hits all of them
        runs["bare"].append(await timed(endpoint))
        runs["remembered"].append(await timed(guarded))
        runs["looked_up"].append(await timed(guarded, cold=True))
        runs["remembered_trail"].append(await timed(guarded, trail=True))
        runs["looked_up_trail"].append(await timed(guarded, cold=True, trail=True))
    await writer.close()
    with store.engine.connect() as conn:
        from sqlalchemy import text

        entries = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    store.close()
    return PerRequest(**{k: statistics.median(v) for k, v in runs.items()}, entries=entries)


# --- 2. the service -------------------------------------------------------------------------------------


def _service_level(kind: str, root: Path, model_dir: Path, variant: str, data: list[bytes], clients: int,
                   requests: int, grade: bool, warmup: int = 10) -> bench_service.Level:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = root / f"{kind}-{port}"
    key = None
    if kind == "auth":
        key = cli_key(data_dir, "technician", "bench")
        proc = bench_service.start_server(port, data_dir, model_dir, variant, 1)
    else:
        proc = start_baseline(port, data_dir, model_dir, variant)
    try:
        bench_service.wait_ready(proc, base)
        asyncio.run(bench_service.run_level(base, data[:warmup], 1, warmup, 60, grade, key))
        return asyncio.run(bench_service.run_level(base, data[warmup:warmup + requests], clients, requests, 120,
                                                   grade, key))
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, help="bundle directory (default: the shipped models/gemid-species)")
    p.add_argument("--tiny", action="store_true", help="the tests' tiny ONNX bundle instead of the real model")
    p.add_argument("--variant", choices=("fp32", "int8"), default="int8")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=400, help="requests per service run")
    p.add_argument("--rounds", type=int, default=2, help="baseline/auth pairs, alternated")
    p.add_argument("--mode", choices=tuple(bench_service.MODES), default="screen")
    p.add_argument("--per-request", type=int, default=2000, help="requests per in-process timing")
    args = p.parse_args(argv)

    print(f"CPU: {cpu_description()}")
    with tempfile.TemporaryDirectory(prefix="gemid-bench-auth-") as tmp:
        root = Path(tmp)
        pr = asyncio.run(_per_request(args.per_request, root))
        print(f"\n[per request, in process] GET /v1/reports to an endpoint that answers at once, a technician's "
              f"Bearer key on SQLite, {args.per_request} requests x 3 alternated (median), load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:")
        print(f"  without access middleware {pr.bare:.3f} ms")
        print(f"  authentication (key, role, desk, rates, headers; audit trail off): {pr.remembered:.3f} ms with "
              f"the key remembered (used within the last second), {pr.looked_up:.3f} ms with a database lookup "
              "every request")
        print(f"  the same with the audit trail on, each run timed until its entries are committed: "
              f"{pr.remembered_trail:.3f} ms remembered, {pr.looked_up_trail:.3f} ms looked up "
              f"({pr.entries} entries written)")
        print(f"  authentication adds at most {pr.authentication:.3f} ms per request (target <= 1 ms: "
              f"{'met' if pr.authentication <= 1.0 else 'MISSED'}); with its audit entry at most "
              f"{pr.with_trail:.3f} ms")
        if args.rounds < 1:
            return 0

        if args.tiny:
            model_dir = bench_service.tiny_bundle(root / "bundle")
        else:
            from gemid.vision.bundle import DEFAULT_BUNDLE_DIR

            model_dir = args.model_dir or DEFAULT_BUNDLE_DIR
        grade = bench_service.MODES[args.mode]
        data = bench_service.photos(512, 10 + args.requests)
        print(f"\n[service] gemid serve, 1 HTTP worker, model {Path(model_dir).name} ({args.variant}), "
              f"{args.clients} clients, {args.requests} requests of POST /v1/identify ({args.mode}) per run, "
              "baseline and auth alternated on fresh stores")
        print(f"{'run':>10} {'ident/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6}")
        results: dict[str, list[bench_service.Level]] = {"baseline": [], "auth": []}
        for _ in range(args.rounds):
            for kind in ("baseline", "auth"):
                level = _service_level(kind, root, Path(model_dir), args.variant, data, args.clients,
                                       args.requests, grade)
                results[kind].append(level)
                print(f"{kind:>10} {level.throughput:>8.1f} {level.pct(50):>8.1f} {level.pct(99):>8.1f} "
                      f"{level.failed:>6}", flush=True)
        base = statistics.mean(lv.throughput for lv in results["baseline"])
        auth = statistics.mean(lv.throughput for lv in results["auth"])
        print(f"mean ident/s: baseline {base:.1f}, auth + audit {auth:.1f} ({100 * (auth - base) / base:+.1f} %)")
        last = results["auth"][-1]
        print(f"issue 3 targets with auth at {args.clients} clients: p99 < 250 ms "
              f"{'met' if last.pct(99) < 250 else 'MISSED'}; >= 50 ident/s {'met' if auth >= 50 else 'MISSED'}; "
              f"0 failures {'met' if all(lv.failed == 0 for lv in results['auth']) else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
