"""The runtime (identify, serve) must work on a lab PC without PyTorch: it never imports torch."""

from __future__ import annotations

import importlib.util
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
