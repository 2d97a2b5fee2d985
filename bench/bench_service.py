"""Service benchmark: a real `gemid serve` on loopback, identify requests from 1, 4 and 16 concurrent clients.

    python -m bench.bench_service                    # the shipped model (models/gemid-species)
    python -m bench.bench_service --tiny             # the tests' tiny ONNX bundle (needs the onnx package)
    python -m bench.bench_service --clients 1,4,16 --requests 200 --seconds 30 --variant int8
    python -m bench.bench_service --photo phone --variant int8   # + 12 MP phone photos, JPEG and HEIC (issue 33)

Each level sends a bounded number of requests (stopping early at the time limit) of one rendered stone
photo (gemid.datasets.synth, JPEG) to POST /v1/identify; every request is a full identification that is
stored (SQLite + photo store in a temp directory). Prints identifications/s, p50/p99 latency and the
failed count per level, the CPU the server (with its analysis workers) spent per request and the share of
the machine left idle (Linux), the server's own mean analysis time per photo from /metrics, and the peak
memory of the server and of each analysis worker (Linux).
Targets (issue 3): p99 < 250 ms at 16 clients, >= 50 identifications/s, 0 failures.
`--photo phone` (issue 33) runs the same levels on the 512-px product photo, a rendered 12 MP phone-style photo
as JPEG and the same as HEIC (`gemid.datasets.synth.phone`: the stone in the middle third, sensor noise) and
prints the ratios: full report / screen throughput at the most clients (target >= 0.5, with >= 50 ident/s and
p99 < 400 ms), and phone / product latency at one client and throughput at the most clients (target <= 1.6x).
Only loopback traffic; the server and the clients share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "support"))  # the tests' way of running a real `gemid serve` (and --tiny's bundle)

from serve_process import ServeError, cli_key, free_port, start, stop  # noqa: E402
from serve_process import wait_ready as _wait_ready  # noqa: E402

from bench.machine import cpu_description  # noqa: E402


@dataclass
class Level:
    clients: int
    sent: int
    failed: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return (self.sent - self.failed) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]  # nearest rank


def photos(size: int, n: int) -> list[bytes]:
    """`n` distinct JPEGs of one rendered ruby-coloured oval stone on white, as a desk camera takes them.

    Each differs in a few corner pixels, so every request stores a new photo (as every stone at a desk
    is new) and the benchmark pays the photo store's fsyncs, not just a content-addressed cache hit."""
    import cv2
    import numpy as np

    from gemid.datasets.synth import StoneSpec, render

    rgb, _mask, _truth = render(StoneSpec(cut="oval", aspect=1.3, lab=(40.0, 55.0, 20.0), noise=2.0), size=size)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    out = []
    for i in range(n):
        img = bgr.copy()
        for bit in range(14):  # the index in faint 8x8 blocks along the top-left border
            if i >> bit & 1:
                img[:8, 8 * bit : 8 * bit + 8] = np.clip(img[:8, 8 * bit : 8 * bit + 8].astype(int) - 12, 0, 255)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(buf.tobytes())
    return out


def distinct(photo: bytes, n: int) -> list[bytes]:
    """`n` byte-distinct copies of one encoded photo with the same pixels: a JPEG gets a comment segment after
    its SOI marker, a HEIC a trailing top-level `free` box (ISO-BMFF readers skip it). Re-encoding a 12 MP
    HEIC takes seconds; the photo store only needs new bytes to pay for a new photo."""
    return [tagged(photo, i) for i in range(n)]


def tagged(photo: bytes, i: int) -> bytes:
    """One of `distinct`'s copies: copy `i`."""
    tag = f"gemid-bench {i}".encode()
    if photo.startswith(b"\xff\xd8"):
        return photo[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + photo[2:]
    return photo + (len(tag) + 8).to_bytes(4, "big") + b"free" + tag


PHOTO_KINDS = ("product", "phone-jpeg", "phone-heic")


def kind_photos(kind: str, size: int, n: int) -> list[bytes]:
    """The photos of one kind: `product` the rendered stone at `size` px, else a 12 MP phone-style frame of the
    same stone (spec and colour as `photos`), JPEG quality 90 or HEIC."""
    if kind == "product":
        return photos(size, n)
    from gemid.datasets.synth import StoneSpec
    from gemid.datasets.synth.phone import encode_photo, phone_frame

    frame = phone_frame(StoneSpec(cut="oval", aspect=1.3, lab=(40.0, 55.0, 20.0), noise=2.0))
    return distinct(encode_photo(frame, "heic" if kind == "phone-heic" else "jpeg"), n)


def tiny_bundle(dest: Path) -> Path:
    from bundle_fixture import build_bundle

    return build_bundle(dest)


def start_server(port: int, data_dir: Path, model_dir: Path, variant: str, workers: int,
                 analysis: str = "processes") -> subprocess.Popen:
    return start(data_dir, model_dir, port, "--host", "127.0.0.1", "--workers", str(workers),
                 GEMID_MODEL_VARIANT=variant, GEMID_ANALYSIS=analysis)


def wait_ready(proc: subprocess.Popen, base: str, timeout: float = 120.0) -> dict:
    """/readyz's answer (the model served) once the server is ready; a bench stops with the server's output."""
    try:
        return _wait_ready(proc, base, timeout)
    except ServeError as exc:
        raise SystemExit(str(exc)) from None


BOUNDARY = "gemid-bench-7d1c5a"


def identify_request(port: int, photo: bytes, grade: bool, key: str | None = None) -> bytes:
    """The whole HTTP/1.1 request for POST /v1/identify with one photo (signed with API key `key`), encoded
    once before timing."""
    name, ctype = ("stone.jpg", "image/jpeg") if photo.startswith(b"\xff\xd8") else ("stone.heic", "image/heic")
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"{name}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + photo + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (f"POST /v1/identify{'' if grade else '?grade=false'} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n"
            + (f"Authorization: Bearer {key}\r\n" if key else "") + "\r\n")
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection; (status, body). The server answers with Content-Length."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(v) for k, _, v in (ln.partition(":") for ln in lines[1:]) if k.lower() == "content-length")
    return status, await reader.readexactly(length)


async def run_level(base: str, data: list[bytes], clients: int, requests: int, seconds: float,
                    grade: bool = True, key: str | None = None) -> Level:
    """`clients` keep-alive connections, each sending its next request as soon as the last one is answered.

    The client is a few lines of asyncio over raw sockets with the requests encoded in advance: it shares
    the machine's cores with the server, and a full HTTP client library would spend several ms of CPU per
    request that a desk's browser or script spends on its own machine."""
    port = int(base.rsplit(":", 1)[1])
    payloads = [identify_request(port, body, grade, key) for body in data]
    latencies: list[float] = []
    failed = 0
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal failed, sent
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while sent < requests and time.perf_counter() < deadline:
            request = payloads[sent % len(payloads)]
            sent += 1
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                status, body = await asyncio.wait_for(_exchange(*conn, request), 60)
                ok = status == 200 and "species" in json.loads(body)["reports"][0]
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError,
                    KeyError, IndexError, StopIteration):
                ok = False
                if conn is not None:
                    conn[1].close()
                conn = None
            latencies.append((time.perf_counter() - t0) * 1000)
            failed += not ok
        if conn is not None:
            conn[1].close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    return Level(clients, sent, failed, elapsed, latencies)


def server_inference_totals(base: str) -> tuple[float, float]:
    """(seconds, count) of the server's analysis time so far, from /metrics."""
    text = httpx2.get(f"{base}/metrics", timeout=10).text
    s = re.search(r"^gemid_inference_seconds_sum (\S+)$", text, re.M)
    n = re.search(r"^gemid_inference_seconds_count (\S+)$", text, re.M)
    return (float(s.group(1)), float(n.group(1))) if s and n else (0.0, 0.0)


def _processes() -> dict[int, tuple[int, float]]:
    """Every process on the machine: pid -> (parent pid, CPU seconds used so far). Linux /proc only."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        table[int(d.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return table


def _descendants(table: dict[int, tuple[int, float]], pid: int) -> set[int]:
    tree, frontier = {pid}, {pid}
    while frontier:
        frontier = {c for c, (p, _) in table.items() if p in frontier and c not in tree}
        tree |= frontier
    return tree - {pid}


def tree_cpu_seconds(pid: int) -> tuple[float, float] | None:
    """CPU seconds (user + system) used so far by a process and by all its descendants: the server and its
    analysis workers. Linux /proc only (None elsewhere); a worker that already exited is not counted."""
    if not Path(f"/proc/{pid}/stat").is_file():
        return None
    table = _processes()
    return table.get(pid, (0, 0.0))[1], sum(table[c][1] for c in _descendants(table, pid))


def tree_peak_memory_mb(pid: int) -> tuple[float, list[float]] | None:
    """Peak resident memory (VmHWM, MB) of a process and of each of its descendants, largest first: the
    server and its analysis workers (and multiprocessing's small resource tracker). Linux /proc only."""
    def peak(p: int) -> float | None:
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            return None
        m = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
        return int(m.group(1)) / 1024 if m else None

    own = peak(pid)
    if own is None:
        return None
    kids = [k for k in (peak(c) for c in _descendants(_processes(), pid)) if k is not None]
    return own, sorted(kids, reverse=True)


def cpu_idle() -> tuple[int, int] | None:
    """(idle, total) jiffies of the whole machine so far, from /proc/stat (None elsewhere)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return values[3] + values[4], sum(values)


MODES = {"screen": False, "full": True}  # mode -> grade colour and clarity


def run(model_dir: Path | None = None, *, tiny: bool = False, variant: str = "fp32",
        clients: tuple[int, ...] = (1, 4, 16), requests: int = 200, seconds: float = 30.0,
        size: int = 512, workers: int = 1, warmup: int = 10, analysis: str = "processes",
        modes: tuple[str, ...] = ("screen", "full"), kinds: tuple[str, ...] = ("product",)) -> dict[str, list[Level]]:
    """Every level of every mode for every kind of photo; results keyed "mode" (one kind) or "kind/mode"."""
    with tempfile.TemporaryDirectory(prefix="gemid-bench-") as tmp:
        tmpdir = Path(tmp)
        if tiny:
            model_dir = tiny_bundle(tmpdir / "bundle")
        elif model_dir is None:
            from gemid.vision.bundle import DEFAULT_BUNDLE_DIR

            model_dir = DEFAULT_BUNDLE_DIR
        if not (Path(model_dir) / "bundle.json").is_file():
            raise SystemExit(f"no model bundle at {model_dir}; train/export one, pass --model-dir, or use --tiny")
        # one encoded photo per kind; each level gets byte-distinct copies of it (a new photo per request)
        base_photo = {k: kind_photos(k, size, 1)[0] for k in kinds}
        serial = iter(range(1, 1 << 30))

        def fresh(kind: str, n: int) -> list[bytes]:
            if kind == "product":
                return photos(size, n)  # the index drawn into the pixels, as before
            return [tagged(base_photo[kind], next(serial)) for _ in range(n)]

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(port, tmpdir / "data", Path(model_dir), variant, workers, analysis)
        try:
            ready = wait_ready(proc, base)
            api_key = cli_key(tmpdir / "data", "technician", "bench")  # as a desk's client signs its requests
            model = ready["model"]
            print(f"server: gemid serve, {workers} worker(s), analysis in {analysis}, model {model['name']} {model['version']} "
                  f"({model['variant']}), all CPUs shared with the clients\nCPU: {cpu_description()}; "
                  f"load average {os.getloadavg()[0]:.1f} at start (other work on the machine shows in every figure)")
            for k in kinds:
                what = f"rendered stone {size}x{size} JPEG" if k == "product" else (
                    f"12 MP (4032x3024) phone-style {k.split('-')[1].upper()}, stone in the middle third, sensor noise")
                print(f"photos [{k}]: {what}, {len(base_photo[k]) / 1024:.0f} KiB, a new photo per request")
            print(f"up to {requests} requests or {seconds:.0f} s per level")
            print("modes: screen = POST /v1/identify?grade=false (species, quality, test guidance: issue 3's "
                  "identification); full = also colour and clarity grading (issue 4)")
            for k in kinds:
                asyncio.run(run_level(base, fresh(k, warmup), 1, warmup, 120, key=api_key))  # caches, first calls
            results: dict[str, list[Level]] = {}
            for kind in kinds:
                for mode in modes:
                    key = mode if len(kinds) == 1 else f"{kind}/{mode}"
                    results[key] = _run_mode(base, proc, key, MODES[mode], clients, requests, seconds,
                                             lambda n, kind=kind: fresh(kind, n), api_key)
            if len(kinds) > 1 or len(modes) > 1:
                print_ratios(results, kinds, modes)
            memory = tree_peak_memory_mb(proc.pid)
            if memory is not None:
                print(f"\npeak memory (RSS): server process {memory[0]:.0f} MB; its children (analysis workers, "
                      f"resource tracker) {', '.join(f'{m:.0f}' for m in memory[1])} MB")
            print(f"load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
                  if Path("/proc/loadavg").is_file() else "")
            return results
        finally:
            stop(proc)


def _run_mode(base: str, proc: subprocess.Popen, key: str, grade: bool, clients: tuple[int, ...], requests: int,
              seconds: float, fresh: object, api_key: str | None = None) -> list[Level]:
    """The levels of one mode on one kind of photo, printed as they finish."""
    before = server_inference_totals(base)
    print(f"\n[{key}]\n{'clients':>7} {'requests':>8} {'failed':>6} {'ident/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'server CPU ms/req (own + workers)':>33} {'idle':>5}")
    levels = []
    for n in clients:
        data = fresh(requests)  # type: ignore[operator]
        cpu0, idle0 = tree_cpu_seconds(proc.pid), cpu_idle()
        level = asyncio.run(run_level(base, data, n, requests, seconds, grade, api_key))
        cpu1, idle1 = tree_cpu_seconds(proc.pid), cpu_idle()
        del data
        levels.append(level)
        cpu = "-"
        if cpu0 is not None and cpu1 is not None:
            own, kids = (1000 * (b - a) / level.sent for a, b in zip(cpu0, cpu1, strict=True))
            cpu = f"{own + kids:.1f} ({own:.1f} + {kids:.1f})"
        idle = (f"{100 * (idle1[0] - idle0[0]) / max(1, idle1[1] - idle0[1]):.0f}%"
                if idle0 is not None and idle1 is not None else "-")
        print(f"{n:>7} {level.sent:>8} {level.failed:>6} {level.throughput:>8.1f} "
              f"{level.pct(50):>8.1f} {level.pct(99):>8.1f} {cpu:>33} {idle:>5}", flush=True)
    after = server_inference_totals(base)
    if after[1] > before[1]:
        mean = 1000 * (after[0] - before[0]) / (after[1] - before[1])
        print(f"server-side analysis per photo ({key}), mean over all levels: {mean:.1f} ms")
    last = levels[-1]
    verdict = (last.pct(99) < 250, last.throughput >= 50, all(lv.failed == 0 for lv in levels))
    print(f"targets at {last.clients} clients ({key}): p99 < 250 ms {'met' if verdict[0] else 'MISSED'}; "
          f">= 50 ident/s {'met' if verdict[1] else 'MISSED'}; "
          f"0 failures {'met' if verdict[2] else 'MISSED'}")
    return levels


def print_ratios(results: dict[str, list[Level]], kinds: tuple[str, ...], modes: tuple[str, ...]) -> None:
    """Issue 33's ratios, from this one run: full report vs screen, phone photo vs product photo."""
    def get(kind: str, mode: str) -> list[Level] | None:
        return results.get(mode if len(kinds) == 1 else f"{kind}/{mode}")

    print("\nratios (this run)")
    for kind in kinds:
        screen, full = get(kind, "screen"), get(kind, "full")
        if screen and full:
            s, f = screen[-1], full[-1]
            ok = f.throughput / max(s.throughput, 1e-9) >= 0.5 and f.throughput >= 50 and f.pct(99) < 400
            print(f"  [{kind}] full / screen throughput at {f.clients} clients: {f.throughput:.1f} / "
                  f"{s.throughput:.1f} = {f.throughput / max(s.throughput, 1e-9):.2f}x (full p99 {f.pct(99):.0f} ms; "
                  f"target >= 0.5x, >= 50 ident/s, p99 < 400 ms: {'met' if ok else 'MISSED'})")
    if "product" not in kinds:
        return
    for kind in kinds:
        if kind == "product":
            continue
        for mode in modes:
            ref, ph = get("product", mode), get(kind, mode)
            if not ref or not ph:
                continue
            lat = ph[0].pct(50) / max(ref[0].pct(50), 1e-9)
            thr = ref[-1].throughput / max(ph[-1].throughput, 1e-9)
            print(f"  [{kind} vs product, {mode}] p50 at {ph[0].clients} client(s) {ph[0].pct(50):.0f} / "
                  f"{ref[0].pct(50):.0f} ms = {lat:.2f}x; time per photo at {ph[-1].clients} clients "
                  f"(1 / throughput) {thr:.2f}x (target <= 1.6x: {'met' if max(lat, thr) <= 1.6 else 'MISSED'})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, help="bundle directory (default: the shipped models/gemid-species)")
    p.add_argument("--tiny", action="store_true", help="use the tests' tiny ONNX bundle instead of a real model")
    p.add_argument("--variant", choices=("fp32", "int8"), default="fp32")
    p.add_argument("--clients", default="1,4,16", help="comma-separated concurrency levels")
    p.add_argument("--requests", type=int, default=200, help="requests per level (upper bound)")
    p.add_argument("--seconds", type=float, default=30.0, help="time limit per level")
    p.add_argument("--size", type=int, default=512, help="side of the rendered photo, pixels")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--analysis", choices=("processes", "threads"), default="processes",
                   help="where the server analyses photos (GEMID_ANALYSIS)")
    p.add_argument("--modes", default="screen,full", help="comma-separated: screen (grade=false), full")
    p.add_argument("--photo", default="product",
                   help=f"comma-separated kinds of photo: {', '.join(PHOTO_KINDS)}; 'phone' = all three")
    args = p.parse_args(argv)
    kinds = PHOTO_KINDS if args.photo == "phone" else tuple(k.strip() for k in args.photo.split(",") if k.strip())
    if not kinds or any(k not in PHOTO_KINDS for k in kinds):
        p.error(f"--photo: choose from {', '.join(PHOTO_KINDS)} or phone")
    clients = tuple(int(c) for c in args.clients.split(",") if c.strip())
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes: choose from {', '.join(MODES)}")
    results = run(args.model_dir, tiny=args.tiny, variant=args.variant, clients=clients, requests=args.requests,
                  seconds=args.seconds, size=args.size, workers=args.workers, modes=modes,
                  analysis=args.analysis, kinds=kinds)
    return 1 if any(lv.failed for levels in results.values() for lv in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
