"""Study 3 (audio network dissection, AND) end to end: the session's tiny run, the LLM cache, and real ESC-10
recordings with oracle captions."""

import json
import re

import pytest

from audioprobe.io.atomic import read_csv
from tests import snakemake_cli
from tests.conftest import copy_run, shared_path

pytestmark = pytest.mark.slow


def test_study3_outputs(tiny_run):
    base = tiny_run / "results/dissect/yamnet/maas-synth"
    last = read_csv(base / "last_layer.csv")
    assert set(zip(last["method"], last["function"])) == {
        *(("db", f) for f in ("cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi")), ("icl", "llm")}
    assert (last["neurons"] + last["skipped"] == 2).all() and last["top1_accuracy"].between(0, 1).all()
    assert (last["not_in_concepts"] == 0).all()  # the concepts are every label value, classes included
    assert (last["captioner"] == "tags(yamnet)").all() and last["captioner_is_target"].all()
    closed = read_csv(base / "closed_concepts.csv")
    varying = closed[~closed["constant"]]
    assert varying["top1"].notna().all() and set(closed["method"]) == {"db"}
    summaries = read_csv(base / "summaries.csv")
    assert summaries.groupby("layer").size().to_dict() == {"head": 2, "layer14": 2, "layer2": 2, "layer8": 2}
    assert ((summaries["status"] == "ok") == ~summaries["constant"]).all()
    llm = json.loads((base / "summaries.llm.json").read_text())
    assert llm["llm_calls"] + llm["cache_hits"] == 2 * (~summaries["constant"]).sum()
    pruning = read_csv(base / "pruning.csv")
    assert pruning["strategy"].tolist() == ["db", "random_db", "ocp", "random_ocp"] and (pruning["classes"] == 2).all()
    by_strategy = pruning.set_index("strategy")
    db = by_strategy.loc["db"]
    assert db["mean_pruned"] > 0 and db["delta_target_probability"] != 0
    per_class = read_csv(base / "pruning_per_class.csv").set_index(["strategy", "class"])["pruned"]
    for strategy in ("db", "ocp"):  # each random baseline prunes exactly its strategy's count in each class
        assert per_class.loc[f"random_{strategy}"].equals(per_class.loc[strategy])
    # the random baselines are 5 draws with a spread (SD over draws); the strategies are one draw, no SD
    assert by_strategy.loc[["random_db", "random_ocp"], "draws"].eq(5).all()
    assert by_strategy.loc[["random_db", "random_ocp"], "delta_target_probability_sd"].notna().all()
    assert by_strategy.loc[["db", "ocp"], "delta_target_probability_sd"].isna().all()
    # one candidate pool: the 2 summarised neurons of each of the 3 pruned layers
    assert (pruning["candidate_pool"] == "summarised").all() and (pruning["pool_neurons"] == 6).all()
    pos = read_csv(base / "pos_ablation.csv")  # Figure 4(a): r = 25 % and 50 % of the 6 summarised neurons
    assert pos.groupby("fraction")["category"].apply(list).to_dict() == {
        r: ["adjectives", "verbs", "nouns", "prepositions", "caption_len", "random"] for r in (0.25, 0.5)}
    assert pos.groupby("fraction")["pruned"].first().to_dict() == {0.25: 2, 0.5: 3}
    assert (read_csv(base / "icl.csv")["summary"] == "calibrated").all()  # ICL reads Module B's output
    clusters = read_csv(base / "interpretability.csv")
    assert set(clusters["layer"]) == {"layer2", "layer8", "layer14", "head"}
    assert clusters["uninterpretable_percent"].between(0, 100).all()
    for figure in ("last_layer.png", "pruning.png", "pos_ablation.png", "interpretability.png"):
        assert (base / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_forced_rerun_of_the_llm_steps_makes_no_llm_call(tiny_run, yamnet_tflite, tmp_path):
    copy = copy_run(tiny_run, tmp_path / "copy")
    base = copy / "results/dissect/yamnet/maas-synth"
    # -f on the three outputs forces exactly these jobs (and calibration, which sits between them). With
    # "-R rules --until rules" Snakemake dropped the downstream jobs once the summaries came out unchanged.
    snakemake_cli.run(copy, "-f", *(str(base.relative_to(copy) / name) for name in ("summaries.csv", "open_concepts.csv",
                                                                             "icl.csv")), weights=yamnet_tflite)
    assert json.loads((base / "summaries.llm.json").read_text())["llm_calls"] == 0
    for rule in ("open_concepts", "icl_concepts"):
        log = (copy / f"results/logs/{rule}/yamnet/maas-synth.log").read_text()
        assert log != (tiny_run / f"results/logs/{rule}/yamnet/maas-synth.log").read_text(), f"{rule} did not rerun"
        assert re.search(r"'llm_calls': 0, 'cache_hits': [1-9]", log), log[-2000:]
    assert (base / "summaries.csv").read_bytes() == (tiny_run / "results/dissect/yamnet/maas-synth/summaries.csv").read_bytes()


def test_study3_on_real_recordings_with_oracle_captions(tmp_path, yamnet_tflite):
    """ESC-10 clips (ESC-50's naming) of four classes, captioned by the labels oracle: the closed-set
    method must then name the head's output neurons, and pruning a class's neurons must hurt that class."""
    root = shared_path("data", "esc10")
    meta = read_csv(root / "meta.csv")
    classes = ["dog", "rain", "rooster", "crying_baby"]
    subset = tmp_path / "labels.csv"
    meta[meta["category"].isin(classes)].to_csv(subset, index=False)
    config = {
        "datasets": {"esc": {"kind": "folder", "root": str(root), "clip_seconds": 1.0,
                             "labels": {"scheme": "csv", "csv": str(subset), "columns": ["category"],
                                        "group_column": "src_file"}}},
        "activations": {"runs": [{"model": "yamnet", "dataset": "esc"}], "layers": ["layer4", "layer10", "layer14"]},
        "latent": {"runs": []},
        "metamers": {"dataset": None},
        "dissect": {"runs": [{"model": "yamnet", "dataset": "esc"}], "label": "category", "layers": "all",
                    "neurons": {"per_layer": 1}, "captions": {"backend": "labels"}, "top_k": 5,
                    "similarity": {"functions": ["cos", "soft_wpmi"]},
                    # one neuron per layer is summarised: DB and its random baseline choose from every neuron
                    # (without OCP, which needs a summary for each)
                    "pruning": {"pool": "all"}},
    }
    snakemake_cli.run(tmp_path, config=config, weights=yamnet_tflite)
    base = tmp_path / "results/dissect/yamnet/esc"
    captions = read_csv(base / "captions.csv")
    assert len(captions) > 100 and captions["caption"].str.startswith("A recording of ").all()
    last = read_csv(base / "last_layer.csv").set_index(["method", "function"])
    assert last.loc[("db", "cos"), "neurons"] == 4
    assert last.loc[("db", "cos"), "top1_accuracy"] >= 0.75, last
    assert not last["captioner_is_target"].any() and (last["captioner"] == "labels(category)").all()
    pruning = read_csv(base / "pruning.csv").set_index("strategy")
    assert pruning.loc["db", "difference_probability"] < 0, pruning
    assert pruning.loc["db", "delta_target_probability"] < pruning.loc["random_db", "delta_target_probability"]
    assert pruning.loc["db", "mean_pruned"] == pruning.loc["random_db", "mean_pruned"] > 0
    assert "ocp" not in pruning.index and (pruning["candidate_pool"] == "all").all()
