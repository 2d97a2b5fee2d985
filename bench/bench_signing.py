"""What signing and verifying add per report (target: ≤ 2 ms each).

Real reports: real photos (../shared/data/gems68/train, one per species, `--photos N`) identified by the
shipped model, so each report has its real size (outline polygons, five candidates, colour, clarity, tests).
Then, per report, timed over `--repeat` rounds (the median over reports of each one's median time, which the
target is about, and the 95th percentile of all calls):
- sign: what the store adds to storing a revision: `model_dump(mode="json")` is done anyway; on top come the
  RFC 8785 canonical form and the Ed25519 signature (gemid.signing.sign);
- verify: what `gemid verify` and the verification page do per revision: canonical form and Ed25519 check
  (gemid.signing.verify_revisions on one revision);
- chain of 3: three revisions checked together (photo, readings, confirmation), per revision.
Without ../shared it uses drawn stones (tests/support/bundle_fixture) and says so.

    python bench/bench_signing.py                 # 20 real photos, 200 rounds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gems68 import one_per_species  # noqa: E402
from bench.machine import cpu_description  # noqa: E402
from gemid import signing  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def real_reports(n: int) -> tuple[list[dict], str]:
    from gemid.vision.pipeline import Identifier

    identifier = Identifier(REPO / "models" / "gemid-species")
    photos = one_per_species(n)
    if photos:
        return [identifier.identify(p).model_dump(mode="json") for p in photos], f"{len(photos)} gems68 photos"
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from bundle_fixture import draw_stone, encode  # type: ignore[import-not-found]

    tmp = Path("/tmp/gemid-bench-signing")
    tmp.mkdir(exist_ok=True)
    out = []
    for i in range(n):
        path = tmp / f"stone{i}.png"
        path.write_bytes(encode(draw_stone((150 + i, 30, 40)), ".png"))
        out.append(identifier.identify(path).model_dump(mode="json"))
    return out, f"{n} drawn stones (no ../shared)"


def timed(fn, rounds: int) -> list[float]:
    """Milliseconds of each of `rounds` calls."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()

    reports, source = real_reports(args.photos)
    key = signing.new_private_key()
    kid = signing.key_id(key.public_key())
    keys = {kid: key.public_key()}
    sizes = [len(signing.canonical_bytes(r)) for r in reports]

    sign_ms, verify_ms, chain_ms = [], [], []
    for body in reports:
        signed = dict(body, signature=signing.sign(body, key, kid))
        second = dict(signed, revision=2, previous_signature=signed["signature"]["value"])
        second["signature"] = signing.sign(second, key, kid)
        third = dict(second, revision=3, previous_signature=second["signature"]["value"])
        third["signature"] = signing.sign(third, key, kid)
        assert signing.verify_revisions([signed, second, third], keys).ok
        sign_ms.append(timed(lambda b=body: signing.sign(b, key, kid), args.repeat))
        verify_ms.append(timed(lambda s=signed: signing.verify_revisions([s], keys), args.repeat))
        chain = [signed, second, third]
        chain_ms.append([t / 3 for t in timed(lambda c=chain: signing.verify_revisions(c, keys), args.repeat)])

    def line(name: str, per_report: list[list[float]]) -> str:
        """The target is the cost per report: the median over reports of each report's median time. The
        95th percentile of all calls shows the spread (on a shared machine, mostly other processes)."""
        med = statistics.median(statistics.median(r) for r in per_report)
        pooled = sorted(t for r in per_report for t in r)
        p95 = pooled[int(0.95 * (len(pooled) - 1))]
        ok = "met" if med <= 2.0 else "MISSED"
        return f"{name:<22} median {med:6.3f} ms/report   p95 of all calls {p95:6.3f} ms   target ≤ 2 ms: {ok}"

    print(f"CPU: {cpu_description()}")
    print(f"reports: {source}; canonical JSON {min(sizes)}-{max(sizes)} bytes (median "
          f"{int(statistics.median(sizes))}); {args.repeat} rounds each")
    print(line("sign", sign_ms))
    print(line("verify (1 revision)", verify_ms))
    print(line("verify (chain of 3)", chain_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
