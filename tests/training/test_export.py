"""`gemid export`: a clean ONNX graph, dynamic batch, parity with PyTorch, a working int8 model, a valid bundle."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from model_fixture import LABELS, SIZE, moved_manifest, tiny_run  # noqa: E402

from gemid.errors import ModelError  # noqa: E402
from gemid.training import onnx_export  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def val(run):
    """Validation crops (runtime view, normalised) and labels, from the run's own crop cache."""
    import os

    from gemid.training.data import eval_crops
    from gemid.training.presets import to_tensor

    old = os.environ.get("GEMID_CACHE_DIR")
    os.environ["GEMID_CACHE_DIR"] = str(run["cache"])
    try:
        crops, species, _ = eval_crops(run["manifest"], "val", SIZE, 0.12)
    finally:
        os.environ.pop("GEMID_CACHE_DIR") if old is None else os.environ.__setitem__("GEMID_CACHE_DIR", old)
    return to_tensor(crops, (0.5,) * 3, (0.5,) * 3).numpy(), np.array([LABELS.index(s) for s in species])


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_graph_is_clean_with_dynamic_batch(run):
    model = onnx.load(str(run["bundle"] / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    ops = onnx_export.op_counts(model)
    assert ops.get("Pad", 0) == 0, "padding must be folded into the convolutions"
    assert not onnx_export.UNWANTED_OPS & set(ops), ops
    assert ops["Conv"] == 49  # Lite0: stem + 16 blocks (2 or 3 convs) + head conv
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    inp = model.graph.input[0].type.tensor_type.shape.dim
    assert inp[0].dim_param and [d.dim_value for d in inp[1:]] == [3, SIZE, SIZE]
    assert [o.name for o in model.graph.output] == ["logits", "clarity_grade"]


def test_batch_1_and_3_match_pytorch(run, val):
    from gemid.training.restore import load_checkpoint

    x = val[0][:3]
    model = load_checkpoint(run["checkpoint"]).model
    import torch

    with torch.inference_mode():
        ref = model.forward_all(torch.from_numpy(x))
    sess = _session(run["bundle"] / "model.onnx")
    one = sess.run(None, {"input": x[:1]})
    three = sess.run(None, {"input": x})
    assert one[0].shape == (1, len(LABELS)) and three[0].shape == (3, len(LABELS)) and three[1].shape == (3, 3)
    assert np.abs(three[0] - ref["logits"].numpy()).max() <= 1e-3
    assert np.abs(three[1] - ref["clarity_grade"].numpy()).max() <= 1e-3
    assert np.abs(one[0][0] - three[0][0]).max() <= 1e-4  # batch size does not change a photo's answer


def test_int8_is_quantized_smaller_and_agrees(run, val):
    q = onnx.load(str(run["bundle"] / "model.int8.onnx"))
    ops = onnx_export.op_counts(q)
    assert ops.get("QuantizeLinear", 0) > 20 and ops.get("DequantizeLinear", 0) > 40
    assert (run["bundle"] / "model.int8.onnx").stat().st_size < 0.5 * (run["bundle"] / "model.onnx").stat().st_size
    x, y = val
    fp = _session(run["bundle"] / "model.onnx").run(["logits"], {"input": x})[0]
    q8 = _session(run["bundle"] / "model.int8.onnx").run(["logits"], {"input": x})[0]
    assert (fp.argmax(1) == q8.argmax(1)).mean() >= 0.9
    assert (q8.argmax(1) == y).mean() >= 0.9


def test_bundle_is_read_by_the_runtime_and_identifies_a_stone(run):
    from bundle_fixture import STONE_COLOURS, draw_stone

    from gemid.vision.bundle import load_bundle
    from gemid.vision.classify import SpeciesClassifier
    from gemid.vision.segment import segment

    bundle = load_bundle(run["bundle"])
    meta = json.loads((run["bundle"] / "bundle.json").read_text())
    assert bundle.name == "gemid-species" and bundle.version == "0.0.0-test"
    assert not bundle.trained_on_every_photo and bundle.in_sample_note() is None  # its val photos are held out
    assert bundle.labels == LABELS and bundle.heads == {"clarity_grade": ["VVS", "VS", "SI"]}
    assert bundle.input.size == SIZE and bundle.input.crop.policy == "stone_square"
    ev = json.loads((run["eval"] / "metrics.json").read_text())
    assert bundle.temperature == pytest.approx(ev["calibration"]["temperature"])
    assert bundle.abstain.energy_threshold == pytest.approx(ev["abstain"]["energy_threshold"])
    for key in ("val_top1", "val_top5", "val_top1_int8", "val_top5_int8", "int8_delta_top1", "ece",
                "onnx_parity_max_abs", "n_val"):
        assert key in meta["metrics"], key
    assert meta["metrics"]["onnx_parity_max_abs"] <= 1e-3
    assert meta["training"]["manifest_sha256"] and meta["training"]["seed"] == 0
    for variant in ("fp32", "int8"):
        clf = SpeciesClassifier(bundle, variant)
        rgb = draw_stone(STONE_COLOURS["Ruby"], size=(160, 120), seed=123)
        pred = clf.predict([clf.crop(rgb, segment(rgb))])[0]
        assert LABELS[int(pred.probs.argmax())] == "Ruby"
        assert set(pred.heads) == {"clarity_grade"}


def test_altered_model_is_refused(run, tmp_path):
    from gemid.vision.bundle import load_bundle

    copy = tmp_path / "bundle"
    shutil.copytree(run["bundle"], copy)
    data = bytearray((copy / "model.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_bundle(copy)


def test_export_refuses_an_evaluation_of_another_checkpoint(run, tmp_path, capsys):
    from gemid.cli import main

    ev = json.loads((run["eval"] / "metrics.json").read_text())
    ev["checkpoint"]["sha256"] = "0" * 64
    (tmp_path / "metrics.json").write_text(json.dumps(ev))
    rc = main(["export", "--checkpoint", str(run["checkpoint"]), "--eval", str(tmp_path / "metrics.json"),
               "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "different checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out" / "bundle.json").exists()


def test_export_cli_reports_missing_checkpoint(tmp_path, capsys):
    from gemid.cli import main

    rc = main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--eval", str(tmp_path), "--out", str(tmp_path)])
    assert rc == 2
    assert "no checkpoint" in capsys.readouterr().err


# --- the clean-graph check on a hand-made graph ----------------------------------------------------------------

def test_a_graph_with_a_pad_left_is_refused():
    """What the exporter must have folded: a Pad before a Conv (as the TorchScript exporter left them)."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([0, 0, 0, 1, 0, 0, 1, 2], np.int64), "pads"),
             numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")]
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"]), helper.make_node("Conv", ["p", "w"], ["y"], strides=[2, 2])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 10, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(onnx_export.GraphError, match="Pad"):
        onnx_export.assert_clean(model)
    del model.graph.node[0]
    model.graph.node[0].input[0] = "x"
    onnx_export.assert_clean(model)  # Conv alone passes


def test_export_refuses_when_the_manifest_changed_since_training(run, tmp_path, capsys):
    from gemid.cli import main

    ev = json.loads((run["eval"] / "metrics.json").read_text())
    ev["manifest"]["same_as_training"] = False  # e.g. the splits were redrawn after training
    (tmp_path / "metrics.json").write_text(json.dumps(ev))
    rc = main(["export", "--checkpoint", str(run["checkpoint"]), "--eval", str(tmp_path / "metrics.json"),
               "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "validation photos may have been trained on" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_manifest_edited_after_evaluation(run, tmp_path, capsys):
    from gemid.cli import main

    ev = json.loads((run["eval"] / "metrics.json").read_text())
    ev["manifest"]["sha256"] = "f" * 64  # as if the CSV had been rewritten since gemid evaluate
    (tmp_path / "metrics.json").write_text(json.dumps(ev))
    rc = main(["export", "--checkpoint", str(run["checkpoint"]), "--eval", str(tmp_path / "metrics.json"),
               "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "changed since `gemid evaluate`" in capsys.readouterr().err


def test_quantize_rebuilds_int8_from_the_bundle_and_remeasures_it(run, tmp_path, monkeypatch, capsys):
    from gemid.cli import main
    from gemid.vision.bundle import load_bundle

    monkeypatch.setenv("GEMID_CACHE_DIR", str(run["cache"]))
    out = tmp_path / "bundle"
    shutil.copytree(run["bundle"], out)
    old = json.loads((out / "bundle.json").read_text())
    (out / "model.int8.onnx").write_bytes(b"")  # a broken int8 file: quantize must replace it, not read it
    old["files"]["int8"]["sha256"] = "0" * 64
    (out / "bundle.json").write_text(json.dumps(old))
    assert main(["quantize", "--bundle", str(out), "--manifest", str(run["manifest"])]) == 0
    assert "7-bit range" in capsys.readouterr().out
    b = load_bundle(out, verify=True)  # new sha256 recorded and matching
    assert b.metrics["val_top1_int8"] >= 0.9 and b.metrics["int8_top1_agreement"] >= 0.9
    assert b.metrics["val_top1"] == old["metrics"]["val_top1"] and b.labels == old["labels"]
    assert b.training["quantize_command"].startswith("gemid quantize") and "7-bit" in b.training["how"]
    assert "gemid quantize --bundle" in (out / "MODEL_CARD.md").read_text()


def test_quantize_refuses_another_manifest(run, tmp_path, capsys):
    from gemid.cli import main

    out = tmp_path / "bundle"
    shutil.copytree(run["bundle"], out)
    other = tmp_path / "other.csv"
    other.write_text(run["manifest"].read_text() + "\n")
    before = (out / "model.int8.onnx").read_bytes()
    assert main(["quantize", "--bundle", str(out), "--manifest", str(other)]) == 2
    assert "not the manifest this model was trained on" in capsys.readouterr().err
    assert (out / "model.int8.onnx").read_bytes() == before


# --- the training commands' --help ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "evaluate", "export", "quantize"])
def test_help_names_every_default(command, capsys):
    """Every optional flag that takes a value says its default in `gemid COMMAND --help` (a newcomer's first read)."""
    import argparse

    from gemid.cli import build_parser, main

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    valued = [a for a in parser._actions if a.option_strings and not a.required and a.nargs != 0]
    assert valued, command
    silent = [a.option_strings[0] for a in valued if "default" not in (a.help or "")]
    assert not silent, f"gemid {command} --help does not say the default of {silent}"
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for a in valued:
        if "%(default)" in a.help:
            assert f"default: {a.default}" in text, (a.option_strings[0], a.default)


def test_export_names_the_bundle_by_name_or_by_its_folder(run, tmp_path, monkeypatch, capsys):
    """`--name` names a retrained bundle; without it the bundle takes its folder's name (models/mine → mine),
    so a retrained model never reports itself as the shipped gemid-species."""
    from gemid.cli import main
    from gemid.vision.bundle import load_bundle

    monkeypatch.setenv("GEMID_CACHE_DIR", str(run["cache"]))
    common = ["export", "--checkpoint", str(run["checkpoint"]), "--eval", str(run["eval"]), "--no-int8"]
    assert main([*common, "--out", str(tmp_path / "b1"), "--name", "lab-stones-v2"]) == 0
    named = load_bundle(tmp_path / "b1")
    assert named.name == "lab-stones-v2"
    assert (tmp_path / "b1" / "MODEL_CARD.md").read_text().startswith("# Model card — lab-stones-v2 ")
    assert "(lab-stones-v2 " in capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "mine")]) == 0
    assert load_bundle(tmp_path / "mine").name == "mine"


def test_quantize_accepts_the_manifest_re_imported_since_paths_became_relative(run, tmp_path, monkeypatch):
    """The shipped bundle records the hash of data/gems68.csv as written with absolute paths; a fresh
    `gemid dataset import` writes the same rows relative to the manifest: still the manifest it was trained on."""
    from gemid.cli import main
    from gemid.vision.bundle import load_bundle

    monkeypatch.setenv("GEMID_CACHE_DIR", str(run["cache"]))
    out = tmp_path / "bundle"
    shutil.copytree(run["bundle"], out)
    moved, legacy = moved_manifest(run, tmp_path)
    meta = json.loads((out / "bundle.json").read_text())
    meta["training"]["manifest_sha256"] = legacy
    (out / "bundle.json").write_text(json.dumps(meta))
    assert main(["quantize", "--bundle", str(out), "--manifest", str(moved)]) == 0
    assert load_bundle(out).training["manifest_sha256"] == legacy



def test_export_with_a_class_nothing_was_predicted_as(run, tmp_path, monkeypatch, capsys):
    """An evaluation in which a class had no prediction (F1 None) still exports, card included; it used to
    end in a traceback and leave a bundle without its card."""
    from gemid.cli import main
    from gemid.vision.bundle import load_bundle

    monkeypatch.setenv("GEMID_CACHE_DIR", str(run["cache"]))
    ev = tmp_path / "eval"
    shutil.copytree(run["eval"], ev)
    metrics = json.loads((ev / "metrics.json").read_text())
    metrics["per_class"][0].update(precision=None, f1=None)
    (ev / "metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "b"
    assert main(["export", "--checkpoint", str(run["checkpoint"]), "--eval", str(ev), "--no-int8",
                 "--out", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert (out / "MODEL_CARD.md").is_file() and load_bundle(out).name == "b"
