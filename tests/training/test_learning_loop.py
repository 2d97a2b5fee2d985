"""The learning loop end to end, each step the real command: rendered stones (gemid.datasets.synth) identified
by the service → confirmed → `gemid dataset from-store` → `gemid train` on the export plus a small base set →
`gemid evaluate` + `gemid export` → `gemid evaluate --compare` of the served bundle and the new one."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.register_assert_rewrite("serve_support")

from model_fixture import write_stones  # noqa: E402
from PIL import Image  # noqa: E402
from serve_support import make_settings, signed_client, upload  # noqa: E402

from gemid.datasets.manifest import read_manifest  # noqa: E402
from gemid.datasets.synth import StoneSpec, render  # noqa: E402
from gemid.serve.app import create_app  # noqa: E402

pytest_plugins = ["serve_support"]

LAB = {"Ruby": (40.0, 62.0, 32.0), "Emerald": (48.0, -48.0, 18.0)}  # CIELAB body colours of the renders
PER_SPECIES = 4


def _render(label: str, k: int) -> bytes:
    spec = StoneSpec(cut=("round", "oval", "cushion", "emerald")[k % 4], lab=LAB[label], scale=0.5 + 0.04 * k,
                     rotation=17.0 * k, facet_seed=k)
    rgb, _mask, _truth = render(spec, size=192, seed=100 * k + len(label))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def _gemid(*argv: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gemid.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


@pytest.mark.slow
def test_confirmed_desk_photos_train_a_model_that_is_compared_with_the_served_one(tmp_path: Path, tiny_bundle,
                                                                                   identifier):
    data = tmp_path / "data"
    env = {"GEMID_DATA_DIR": str(data), "GEMID_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "NO_ALBUMENTATIONS_UPDATE": "1"}
    confirmed: dict[str, str] = {}
    with signed_client(create_app(make_settings(data, tiny_bundle, training_consent=True),
                               identifier=identifier)) as c:
        for label in LAB:
            for k in range(PER_SPECIES):
                r = c.post("/v1/identify?grade=false", files=[upload(f"{label}-{k}.png", _render(label, k))])
                assert r.status_code == 200, r.text
                rid = r.json()["reports"][0]["report_id"]
                assert c.post(f"/v1/reports/{rid}/confirmation",
                              json={"label": label, "method": "Raman"}).status_code == 201
                confirmed[rid] = label

    base = write_stones(tmp_path / "base", labels=list(LAB), n_train=3, n_val=3)
    out = tmp_path / "field"
    done = _gemid("dataset", "from-store", str(out), "--against", str(base), env=env)
    assert done.returncode == 0, done.stderr
    exported = read_manifest(out / "manifest.csv")
    # every confirmed render is there, labelled as confirmed, unless dropped as a near-duplicate by name
    dropped = {line.split()[1].rstrip(":") for line in done.stdout.splitlines() if line.strip().startswith("dropped")}
    assert {r.source.split(":")[1]: r.species for r in exported.rows} == {
        rid: label for rid, label in confirmed.items() if rid not in dropped}
    assert len(exported.rows) >= len(confirmed) - 2 and all(r.split == "train" for r in exported.rows)
    combined = read_manifest(out / "combined.csv")
    assert len(combined.rows) == len(exported.rows) + len(read_manifest(base).rows)

    run, ev, bundle = tmp_path / "run", tmp_path / "eval", tmp_path / "bundle"
    trained = _gemid("train", "--manifest", str(out / "combined.csv"), "--out", str(run), "--input-size", "64",
                     "--epochs", "2", "--batch-size", "8", "--cache-views", "1", "--threads", "2", "--quiet", "--cpu",
                     env=env, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    assert _gemid("evaluate", "--checkpoint", str(run / "best.pt"), "--out", str(ev), "--threads", "2",
                  env=env, timeout=300).returncode == 0
    exp = _gemid("export", "--checkpoint", str(run / "best.pt"), "--eval", str(ev), "--out", str(bundle),
                 "--no-int8", "--name", "field-tuned", env=env, timeout=300)
    assert exp.returncode == 0, exp.stderr[-3000:]
    assert json.loads((bundle / "bundle.json").read_text())["labels"] == sorted(LAB)

    cmp = _gemid("evaluate", "--compare", str(tiny_bundle), str(bundle), "--manifest", str(out / "combined.csv"),
                 "--split", "val", "--min-photos", "3", "--json", env=env, timeout=300)
    assert cmp.returncode in (0, 1), cmp.stderr  # 1: the new model is clearly worse (a verdict, not a failure)
    result = json.loads(cmp.stdout)
    overall = result["overall"]
    assert overall["n"] == len(combined.split("val")) == 2 * 3  # the base set's held-out photos, no field photo
    assert 0.0 <= overall["old_top1"] <= 1.0 and 0.0 <= overall["new_top1"] <= 1.0
    lo, hi = overall["difference_ci"]
    assert lo <= overall["difference"] <= hi
    assert {s["species"] for s in result["species"]} == set(LAB) and all(s["judged"] for s in result["species"])
    worse = hi < 0 or any(s["difference_ci"][1] < 0 for s in result["species"])
    assert result["worse"] == worse and cmp.returncode == (1 if worse else 0)
