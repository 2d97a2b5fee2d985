"""Re-ranking with readings: the table's physics overrules the photo where it should, and misfits are flagged."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gemid.gemmology.rerank import ReadingsError, rerank
from gemid.gemmology.table import default_table
from gemid.readings import STORED
from gemid.report import Candidate, Readings


def _c(*pairs: tuple[str, float]) -> list[Candidate]:
    return [Candidate(label=lab, probability=p) for lab, p in pairs]


RED_68 = _c(("Pyrope", 0.62), ("Rhodolite", 0.2), ("Ruby", 0.1), ("Almandine", 0.05), ("Spessartite", 0.02))


def _top(result) -> str:
    return result.combined[0].label


def test_ri_puts_ruby_on_top_although_the_photo_preferred_spinel():
    cands = _c(("Red spinel", 0.80), ("Ruby", 0.12), ("Pyrope", 0.08))
    result = rerank(cands, Readings(ri=1.765))
    assert result.photo_only[0].label == "Red spinel"
    assert _top(result) == "Ruby" and result.combined[0].probability > 0.9
    assert not result.fits_none and result.flag is None
    assert [c.label for c in result.photo_only] == ["Red spinel", "Ruby", "Pyrope"]


def test_a_strong_reading_overturns_a_very_confident_photo():
    cands = _c(("Red spinel", 0.995), ("Ruby", 0.003), ("Pyrope", 0.002))
    result = rerank(cands, Readings(ri=1.766, ri_high=1.774, sg=4.00))
    assert _top(result) == "Ruby"


def test_ri_alone_leaves_ruby_and_rhodolite_sg_and_polariscope_settle_it():
    labels = default_table().model_labels
    ri_only = rerank(RED_68, Readings(ri=1.765), model_labels=labels)
    assert {c.label for c in ri_only.combined[:2]} == {"Ruby", "Rhodolite"}  # rhodolite 1.740-1.770 overlaps ruby on RI
    # a 2 ct stone: its SG is precise (a small stone's SG of 4.01 would still leave rhodolite a few percent)
    full = rerank(RED_68, Readings(ri=1.765, sg=4.01, optic="DR", weight_ct=2.0), model_labels=labels)
    assert _top(full) == "Ruby" and full.combined[0].probability > 0.9
    # the other corundum colours fit those readings too: they may surface from the photo's tail, below ruby
    assert all(c.label.startswith("Sapphire") for c in full.combined[1:] if c.probability > 0.001)
    small = rerank(RED_68, Readings(ri=1.765, sg=4.01, optic="DR"), model_labels=labels)
    assert _top(small) == "Ruby" and "Rhodolite" in {c.label for c in small.combined[1:3]}


def test_spinel_readings_with_only_garnet_and_ruby_candidates_name_spinel():
    result = rerank(RED_68, Readings(ri=1.718, sg=3.60, optic="SR"))
    assert not result.fits_none  # pyrope's range reaches 1.714 and 3.62: it does fit
    assert result.flag and "red spinel" in result.flag


def test_glass_simulant_fits_nothing_and_the_flag_names_glass():
    cands = _c(("Ruby", 0.6), ("Red spinel", 0.25), ("Pyrope", 0.1), ("Rhodolite", 0.03), ("Almandine", 0.02))
    result = rerank(cands, Readings(ri=1.52, optic="SR", sg=2.5))
    assert result.fits_none
    assert "simulant" in result.flag and "full gemmological laboratory" in result.flag
    assert "glass (RI 1.470-1.560" in result.flag
    # no unrelated class is pulled up from the photo's tail by readings it does not fit either
    assert {c.label for c in result.combined} == {c.label for c in cands}


def test_cubic_zirconia_over_the_limit_and_heavy():
    cands = _c(("Diamond", 0.55), ("Quartz Smoky", 0.2), ("Topaz", 0.15), ("Zircon", 0.06), ("Citrine", 0.04))
    result = rerank(cands, Readings(ri_otl=True, sg=5.80, optic="SR"))
    assert result.fits_none and "cubic zirconia" in result.flag
    real = rerank(cands, Readings(ri_otl=True, sg=3.52, optic="SR"))
    assert not real.fits_none and _top(real) == "Diamond" and real.combined[0].probability > 0.95


def test_two_edges_give_birefringence_emerald_beats_tourmaline():
    cands = _c(("Tourmaline", 0.6), ("Emerald", 0.25), ("Peridot", 0.1), ("Tsavorite", 0.03), ("Chrome Diopside", 0.02))
    result = rerank(cands, Readings(ri=1.577, ri_high=1.583))
    assert _top(result) == "Emerald"
    peridot = rerank(cands, Readings(ri=1.654, ri_high=1.690))
    assert _top(peridot) == "Peridot"


def test_flux_synthetic_emerald_is_flagged():
    cands = _c(("Emerald", 0.8), ("Tourmaline", 0.1), ("Peridot", 0.05), ("Tsavorite", 0.03), ("Chrome Diopside", 0.02))
    result = rerank(cands, Readings(ri=1.561, ri_high=1.564, sg=2.65, uv_lw="strong"))
    assert result.flag and "synthetic emerald" in result.flag and "synthetic" in result.flag


def test_a_class_from_the_photo_tail_is_promoted_when_only_it_fits():
    labels = default_table().model_labels
    readings = Readings(ri=1.624, ri_high=1.644, sg=3.06, optic="DR")
    result = rerank(RED_68[:5], readings, model_labels=labels)
    assert result.fits_none  # none of the photo's red candidates is a tourmaline
    assert "Tourmaline" in result.flag
    assert _top(result) == "Tourmaline"
    # without the model's label list nothing outside the top-k is invented
    alone = rerank(RED_68[:5], readings)
    assert {c.label for c in alone.combined} == {c.label for c in RED_68}
    assert "Tourmaline" in alone.flag


def test_uninformative_or_empty_readings_keep_the_photo_order():
    empty = rerank(RED_68, Readings())
    assert empty.combined == empty.photo_only and not empty.fits_none and empty.flag is None
    unchecked = rerank(RED_68, Readings(ri_otl=False))
    assert unchecked.combined == unchecked.photo_only
    all_sr = rerank(RED_68, Readings(optic="SR"))
    assert [c.label for c in all_sr.combined[:2]] == ["Pyrope", "Rhodolite"]  # ruby sinks: it is DR
    assert all_sr.combined.index(next(c for c in all_sr.combined if c.label == "Ruby")) >= 3


def test_combined_is_a_sorted_distribution_of_the_same_length():
    result = rerank(RED_68, Readings(ri=1.75, sg=3.8))
    probs = [c.probability for c in result.combined]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-9
    assert len(result.combined) == len(RED_68)


def test_unknown_labels_are_neutral_not_fatal():
    cands = _c(("Moonstone", 0.5), ("Ruby", 0.3), ("Opal", 0.2))
    result = rerank(cands, Readings(ri=1.765, optic="DR"))
    assert _top(result) == "Ruby" and not result.fits_none
    misfit = rerank(cands, Readings(ri=1.43))
    assert not misfit.fits_none  # moonstone's properties are unknown: the readings may fit it


@pytest.mark.parametrize(
    "cands, readings, message",
    [
        ([], Readings(ri=1.7), "no candidates"),
        (_c(("Ruby", 0.8), ("Pyrope", 0.5)), Readings(ri=1.7), "add up"),
        (_c(("Ruby", 0.5), ("Ruby", 0.2)), Readings(ri=1.7), "twice"),
        # Readings refuses these itself (below); the re-ranking still does for readings built without checks
        (_c(("Ruby", 0.8)), Readings.model_construct(ri_high=1.77), "ri_high"),
        (_c(("Ruby", 0.8)), Readings.model_construct(ri=1.77, ri_high=1.76), "swap"),
    ],
)
def test_bad_input_is_a_typed_error(cands, readings, message):
    with pytest.raises(ReadingsError, match=message) as exc:
        rerank(cands, readings)
    assert exc.value.code == "bad_readings" and exc.value.status == 422


@pytest.mark.parametrize("fields, words", [({"ri_high": 1.77}, "needs the low RI reading"),
                                           ({"ri": 1.77, "ri_high": 1.76}, "swap them")])
def test_a_high_edge_without_its_low_one_or_below_it_is_refused_with_the_readings(fields, words):
    # a user's finding: `gemid identify --ri-high 1.77` analysed the photo first, then failed "unexpectedly"
    with pytest.raises(ValidationError, match=words) as exc:
        Readings(**fields)
    assert exc.value.errors()[0]["loc"] == ("ri_high",)
    with pytest.raises(ValidationError, match=words):
        Readings.model_validate_strings({k: str(v) for k, v in fields.items()})


def test_a_birefringence_that_disagrees_with_the_two_edges_is_refused():
    """An outside try entered edges 1.762/1.770 with birefringence 0.030 and got "refer Benitoite" for a ruby: the
    two say different things, so the readings are refused before a photo is analysed; agreeing ones pass."""
    with pytest.raises(ValidationError, match="disagrees with the two RI edges") as exc:
        Readings(ri=1.762, ri_high=1.770, birefringence=0.030)
    assert exc.value.errors()[0]["loc"] == ("birefringence",)
    assert Readings(ri=1.762, ri_high=1.770, birefringence=0.008).birefringence == 0.008
    assert Readings(ri=1.762, birefringence=0.030).birefringence == 0.030  # one edge: nothing to disagree with


def test_an_edge_past_the_refractometers_limit_is_refused_but_a_stored_one_is_read_back():
    """An outside try entered RI 1.85 (and a diamond's 2.417) and got a referral: the refractometer shows no edge
    past its limit, so the number was not read on it. A report stored before the rule still loads."""
    for fields in ({"ri": 1.85}, {"ri": 2.417}, {"ri": 1.76, "ri_limit": 1.70}, {"ri": 1.78, "ri_high": 1.83}):
        with pytest.raises(ValidationError, match="beyond the refractometer's limit"):
            Readings(**fields)
    assert Readings(ri=1.815).ri == 1.815  # the last graduation, read generously
    assert Readings(ri=1.85, ri_limit=1.85).ri == 1.85  # a denser contact liquid
    assert Readings.model_validate({"ri": 1.85}, context={STORED: True}).ri == 1.85


def test_carbonate_blink_readings_sit_at_either_edge():
    cands = _c(("Sapphire Pink", 0.35), ("Rhodonite", 0.25), ("Rhodochrosite", 0.2), ("Kunzite", 0.12), ("Coral", 0.08))
    low_edge = rerank(cands, Readings(ri=1.60))
    assert _top(low_edge) == "Rhodochrosite"
    assert _top(rerank(cands, Readings(ri=1.735, optic="AGG"))) == "Rhodonite"
    # between the two edges of a blink there is no reading: 1.70 does not favour rhodochrosite
    middle = rerank(cands, Readings(ri=1.70))
    assert _top(middle) != "Rhodochrosite"


def _bench_module(monkeypatch):
    """bench/ is scripts, not a package: load the file as a module."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_readings.py"
    spec = importlib.util.spec_from_file_location("bench_readings", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_readings", module)
    spec.loader.exec_module(module)
    return module


def test_benchmark_reads_the_documented_prediction_formats(tmp_path, monkeypatch):
    import json

    import numpy as np

    bench = _bench_module(monkeypatch)
    classes = ["Ruby", "Pyrope", "Emerald", "Tourmaline", "Peridot", "Sapphire Blue"]
    probs = np.array([[0.2, 0.6, 0.05, 0.05, 0.05, 0.05], [0.05, 0.05, 0.3, 0.5, 0.05, 0.05]])
    truth = ["Ruby", "Emerald"]
    (tmp_path / "list.json").write_text(json.dumps(
        [{"label": t, "probs": dict(zip(classes, p.tolist(), strict=True))} for t, p in zip(truth, probs, strict=True)]
    ))
    (tmp_path / "cols.json").write_text(json.dumps({"classes": classes, "labels": truth, "probs": probs.tolist()}))
    np.savez(tmp_path / "p.npz", probs=probs, labels=np.array([0, 2]), classes=np.array(classes))
    for name in ("list.json", "cols.json", "p.npz"):
        stones = bench.load_predictions(tmp_path / name)
        assert [s.label for s in stones] == truth and stones[0].probs["Pyrope"] == pytest.approx(0.6)
    out = tmp_path / "res.json"
    assert bench.main(["--predictions", str(tmp_path / "list.json"), "--json", str(out), "--top-k", "5"]) == 0
    res = json.loads(out.read_text())
    assert res["stones"] == 2 and res["top1"]["photo"]["label"] == 0.0  # the photo got both wrong
    # every listed confusion is a wrong mineral with RI whose true species was among the candidates
    assert all(w["truth"] in truth and w["called"] != w["truth"] and w["stones"] >= 1 for w in res["ri_confusions"])
    assert sum(w["stones"] for w in res["ri_confusions"]) <= 2 - 2 * res["top1"]["photo+RI"]["mineral"] + 1e-9
    assert res["top1"]["photo+RI+SG"]["mineral"] == 1.0  # ruby vs pyrope, emerald vs tourmaline: settled


def test_benchmark_lists_the_minerals_one_ri_cannot_split(tmp_path, monkeypatch):
    import json

    bench = _bench_module(monkeypatch)
    # amethyst (quartz, RI 1.544-1.553) photographed as iolite (cordierite, 1.522-1.578): one RI fits both, so the
    # photo's choice stands and every such stone is listed; its truth is always among the candidates
    classes = ["Iolite", "Amethyst", "Ruby", "Emerald", "Peridot", "Sapphire Blue"]
    preds = [{"label": "Amethyst", "probs": dict(zip(classes, [0.8, 0.15, 0.02, 0.01, 0.01, 0.01], strict=True))}] * 20
    (tmp_path / "p.json").write_text(json.dumps(preds))
    out = tmp_path / "res.json"
    assert bench.main(["--predictions", str(tmp_path / "p.json"), "--json", str(out), "--seed", "0"]) == 0
    res = json.loads(out.read_text())
    wrong = round(20 * (1 - res["top1"]["photo+RI"]["mineral"]))
    assert wrong >= 10  # mostly still called iolite
    assert res["ri_confusions"] == [{"truth": "Amethyst", "called": "Iolite", "stones": wrong}]


def test_benchmark_reads_a_polariscope_too_when_asked(monkeypatch):
    """`--polariscope` draws a polariscope reading (misjudged as the instrument model says) for the genuine
    referrals and the simulants: eye-judged readings only weigh, so genuine stones are no more referred."""
    import numpy as np

    from gemid.gemmology.table import default_table

    bench = _bench_module(monkeypatch)
    table = default_table()
    stones = bench.synthetic_predictions(list(table.model_labels)[:20], 10, np.random.default_rng(0), 3.5)
    plain = bench.run(stones, table, 5, np.random.default_rng(0))
    seen = bench.run(stones, table, 5, np.random.default_rng(0), polariscope=True)
    assert seen["genuine_referred"] <= plain["genuine_referred"] + 0.02
    sim = bench.simulants(table, np.random.default_rng(0), 2, 2, polariscope=True)
    assert sim["distinct"][0] >= 0.95 * sim["distinct"][1] and sim["overlapping"][0] == sim["overlapping"][1]


def test_short_wave_uv_weighs_like_the_long_wave_and_is_its_own_test():
    """The table's short-wave column was unused (an outside gemmologist): benitoite glows blue under 254 nm and
    is inert under 365 nm, which sapphire does not do."""
    from gemid.gemmology.guidance import recommend
    from gemid.gemmology.likelihood import tests_done

    cands = _c(("Sapphire Blue", 0.6), ("Benitoite", 0.4))
    assert _top(rerank(cands, Readings(uv_lw="inert", uv_sw="strong"))) == "Benitoite"
    assert _top(rerank(cands, Readings(uv_lw="inert", uv_sw="inert"))) == "Sapphire Blue"
    assert tests_done(Readings(uv_sw="weak")) == ["uv_fluorescence_sw"]
    offered = [t.test for t in recommend(cands, available={"uv_fluorescence_sw", "uv_fluorescence"}).recommended]
    assert "uv_fluorescence_sw" in offered, offered
    with pytest.raises(ValidationError):
        Readings(uv_sw="bright")
