"""Study 3 with known answers: each evaluation is run through the code the workflow runs (the step functions,
the real spaCy tagger and MiniLM encoder where they decide the answer) on planted inputs, so a regression
that breaks ICL, OCP, pruning, the part-of-speech ablation or the cluster measure changes a number here.

- ICL: a scripted LLM answers from the summary it is shown; the packaged MiniLM snaps its keyword to the
  concept set; the chosen concepts are the planted ones, read from the calibrated summary.
- OCP: calibrated summaries whose nouns are known (spaCy) prune exactly the neurons that name the class.
- Pruning: a planted linear network whose class-c evidence sits in known neurons; DB finds them from the
  neurons' values and the captions' scores, and pruning them lowers class c's probability more than random.
- Part of speech: summaries with known noun and adjective counts; the nouns ablation prunes the noun-rich
  neuron, the adjectives ablation the adjective-rich one.
- Clusters: captions of three planted topics; neurons whose top clips share a topic are interpretable,
  neurons whose top clips span the topics are not.
"""

import numpy as np
import pandas as pd
import pytest

from audioprobe.dissect import interpretability
from audioprobe.dissect import summaries as summary_steps
from audioprobe.dissect.evaluation import last_layer_accuracy, pos_ablation, pruning_effects, pruning_selections
from audioprobe.dissect.probing import Head, write_neurons
from audioprobe.dissect.pruning import PrunedNetwork
from audioprobe.dissect.similarity import similarity, top_concepts
from audioprobe.dissect.text import DEFAULT_TAGGER
from audioprobe.io.atomic import read_csv, write_csv
from audioprobe.io.store import write_arrays

CONCEPTS = ["cardboard", "destructing", "glass", "metal", "plastic", "rubbing", "stone", "tapping", "whirling",
            "wood"]


@pytest.fixture(scope="module")
def minilm():
    from audioprobe.dissect.encoders import SentenceEncoder

    return SentenceEncoder()


@pytest.fixture(scope="module")
def nlp():
    from audioprobe.dissect.text import load_tagger

    return load_tagger()


# --- ICL -------------------------------------------------------------------------------------------------------


class ScriptedLLM:
    """Answers the ICL prompt from the summary it is shown (the text after the last "Description:"), as a
    model that follows the few-shot pattern would; records every prompt. A summary it was not scripted for
    (exactly) is an error, so a prompt without the summary, or with another one, fails the test."""

    def __init__(self, answers: dict[str, str]):
        self.answers, self.prompts = answers, []

    def __call__(self, prompt, *, max_tokens, stop=("\n\n",)):
        self.prompts.append(prompt)
        shown = prompt.rsplit("Description:", 1)[1].split("\nAnswer:")[0].strip()
        if shown not in self.answers:
            raise AssertionError(f"the ICL prompt shows an unexpected summary: {shown!r}")
        return self.answers[shown]

    def stats(self):
        return {"llm_calls": len(self.prompts), "cache_hits": 0}


ICL_PROMPT = ("Concepts: dog, rain\nDescription: dogs barking.\nAnswer: dog\n\n"
              "Concepts: {concepts}\nDescription: {summary}\nAnswer:")

# (layer, neuron, highly summary, calibrated summary, LLM reply to the calibrated one, its concept)
ICL_CASES = [
    ("layer8", 3, "Steel clanging. Hollow knocks on timber.", "Hollow knocks on timber.", " timber", "wood"),
    ("layer8", 7, "Rock scraping on rock.", "Rock scraping on rock.", " rock, steel", "stone"),
    ("head", 0, "Steel clanging. A pane of glass rings.", "A pane of glass rings.", ' "a pane of glass"', "glass"),
    ("head", 1, "Steel plates clang.", "Steel plates clang.", " steel\nBecause the clips ring.", "metal"),
    ("head", 2, "Things spinning fast. Steel clanging.", "Things spinning fast.", " spinning", "whirling"),
    ("head", 3, "Steel clanging.", "", None, None),  # calibration dropped every sentence: not asked
]
# The uncalibrated ("highly") summaries lead with steel (or rock): a model reading them answers that.
HIGHLY_ANSWERS = {highly: " rock" if highly.startswith("Rock") else " steel" for _, _, highly, *_ in ICL_CASES}


def icl_inputs(tmp_path):
    table = pd.DataFrame([{"layer": layer, "neuron": neuron, "highly": highly, "calibrated": calibrated}
                          for layer, neuron, highly, calibrated, _, _ in ICL_CASES])
    write_csv(tmp_path / "calibrated.csv", table.drop(columns="highly"), config={})
    write_csv(tmp_path / "summaries.csv", table.drop(columns="calibrated"), config={})
    write_arrays(tmp_path / "scores.h5", {"concepts": np.asarray(CONCEPTS, dtype=object),
                                          "db": np.zeros((2, len(CONCEPTS)))},
                 clip_ids=["a", "b"], labels={}, attrs={"captioner": "labels(material)", "text_encoder": "x"})


def run_icl(tmp_path, monkeypatch, minilm, llm, source):
    monkeypatch.setattr(summary_steps, "cached_llm", lambda settings: llm)
    monkeypatch.setattr(summary_steps, "sentence_encoder", lambda settings: minilm)
    summaries_path = tmp_path / ("calibrated.csv" if source == "calibrated" else "summaries.csv")
    out = tmp_path / f"icl-{source}.csv"
    summary_steps.icl_step(summaries_path=summaries_path, scores_path=tmp_path / "scores.h5", out_csv=out,
                           settings={"icl": {"summary": source}, "concepts": {"text_encoder": None}},
                           llm_settings={"prompt": ICL_PROMPT})
    return read_csv(out)


def test_icl_names_the_concept_of_the_calibrated_summary(tmp_path, monkeypatch, minilm):
    """Catches: reading the uncalibrated summary, a prompt without the summary or the concepts, snapping to the
    least similar or a shifted concept, keeping the last keyword instead of the first, answers attached to
    the wrong neuron, random concepts (1 in 10^5 to pass), and asking the LLM about an empty summary."""
    icl_inputs(tmp_path)
    llm = ScriptedLLM({calibrated: reply for _, _, _, calibrated, reply, _ in ICL_CASES if calibrated})
    table = run_icl(tmp_path, monkeypatch, minilm, llm, "calibrated")
    assert list(zip(table["layer"], table["neuron"])) == [(layer, n) for layer, n, *_ in ICL_CASES]
    asked = table["status"] == "ok"
    assert table.loc[asked, "concept"].tolist() == [concept for *_, concept in ICL_CASES if concept]
    assert table.loc[asked, "keyword"].tolist() == ["timber", "rock", "a pane of glass", "steel", "spinning"]
    assert (table["summary"] == "calibrated").all()
    # the neuron whose calibration dropped everything is recorded without an answer, and the LLM is not asked
    last = table.iloc[-1]
    assert last["status"] == "no calibrated summary (not asked)" and pd.isna(last["concept"])
    assert len(llm.prompts) == 5
    assert all("Concepts: " + ", ".join(CONCEPTS) in prompt for prompt in llm.prompts)

    # The head rows feed Table 2's ICL line: three of the four head neurons answered, each with its class.
    classes = ["glass", "metal", "whirling", "wood"]
    last_layer = last_layer_accuracy(pd.DataFrame(columns=["layer", "method", "function", "class"]), table,
                                     classes, CONCEPTS, minilm).set_index("method")
    assert last_layer.loc["icl", "top1_accuracy"] == 1.0 and last_layer.loc["icl", "neurons"] == 3
    assert last_layer.loc["icl", "skipped"] == 1 and last_layer.loc["icl", "cosine"] == pytest.approx(1.0, abs=1e-5)


def test_icl_reads_the_highly_summary_when_configured(tmp_path, monkeypatch, minilm):
    """``dissect.icl.summary: highly`` (the original code) reads the uncalibrated summaries: here every one
    leads with steel (or rock), so the answers change; a step that ignored the setting would not change."""
    icl_inputs(tmp_path)
    llm = ScriptedLLM(HIGHLY_ANSWERS)
    table = run_icl(tmp_path, monkeypatch, minilm, llm, "highly")
    assert table["concept"].tolist() == ["metal", "stone", "metal", "metal", "metal", "metal"]
    assert (table["status"] == "ok").all() and (table["summary"] == "highly").all() and len(llm.prompts) == 6


# --- OCP ---------------------------------------------------------------------------------------------------------


OCP_SUMMARIES = [  # (neuron, calibrated summary); the nouns spaCy finds are in the comment
    (0, "Two dogs are barking at the mailman near the gate."),   # dog, mailman, gate
    (1, "A baby cries in a quiet room."),                        # baby, room
    (2, "Metallic ringing, bright and sharp."),                  # ringing (metallic is an adjective)
    (3, "The old trains rumble over the rails."),                # train, rail: not "rain"
    (4, "Rain falls on a metal roof."),                          # rain, metal, roof
    (5, ""),                                                     # calibration dropped everything
    (6, "Puppies and dogs in a noisy kennel."),                  # puppy, dog, kennel
]


def open_table_of(tmp_path, summaries, layer="layer8"):
    """open_concepts.csv as the workflow makes it from calibrated summaries (spaCy, no LLM filter)."""
    calibrated = pd.DataFrame({"layer": layer, "neuron": [n for n, _ in summaries],
                               "calibrated": [text for _, text in summaries]})
    write_csv(tmp_path / "calibrated.csv", calibrated, config={"captioner": "x"})
    summary_steps.open_concepts_step(calibrated_path=tmp_path / "calibrated.csv",
                                     out_csv=tmp_path / "open_concepts.csv",
                                     settings={"pos_model": DEFAULT_TAGGER, "llm_filter": False},
                                     llm_settings={"prompt": "{word}"})
    return read_csv(tmp_path / "open_concepts.csv")


def test_ocp_prunes_the_neurons_whose_calibrated_nouns_name_the_class(tmp_path):
    """Catches: matching substrings ("rain" in "trains", "metal" in "metallic"), matching adjectives too
    ("quiet"), nouns without lemmas ("dogs" is not "dog"), class names not split at "_" (crying_baby), and OCP
    reaching neurons outside the summarised pool."""
    open_table = open_table_of(tmp_path, OCP_SUMMARIES)
    assert open_table.set_index("neuron").loc[[0, 3, 4], "nouns"].tolist() == [
        "dog mailman gate", "train rail", "rain metal roof"]
    # "quiet" (a loudness label, say) is an adjective of neuron 1's summary: OCP reads nouns only
    classes = ["crying_baby", "dog", "metal", "quiet", "rain", "train", "wood"]
    tops = {"layer8/db/cos3": np.zeros((10, 3), dtype=int)}  # ten neurons in the layer, seven summarised
    settings = {"methods": ["db"], "pruning": {"top": 1, "db_function": "cos3", "tab_function": "soft_wpmi",
                                               "seed": 0, "random_seeds": 3, "pool": "summarised"}}
    chosen = pruning_selections(classes, classes, tops, open_table, ["layer8"], settings)
    ocp = {name: [n for _, n in chosen[("ocp", name)][0]] for name in classes}
    assert ocp == {"crying_baby": [1], "dog": [0, 6], "metal": [4], "quiet": [], "rain": [4], "train": [3],
                   "wood": []}
    pool = {("layer8", n) for n, _ in OCP_SUMMARIES}
    for name in classes:  # the random baseline: as many neurons, from the same summarised pool
        assert all(len(draw) == len(ocp[name]) and set(draw) <= pool for draw in chosen[("random_ocp", name)])


# --- pruning effects on a planted network ---------------------------------------------------------------------


class PlantedModel:
    """A frozen "network" whose embedding is its masked input channels: neuron j of layer l1 carries the
    evidence of class j // 2 (two neurons per class, eight in all)."""

    def forward_from(self, layer, activations, masks=None):
        assert layer == "l1"
        values = np.asarray(activations, dtype=np.float64)
        if masks:
            values = values * masks["l1"]
        return {"embedding": values[:, None, :]}  # one patch


PLANTED_CLASSES = ["a", "b", "c", "d"]


def planted_clips(per_class, seed):
    """Clips of each class: their class's two neurons near 1, the others near 0.2, with noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), per_class)
    values = 0.2 + 0.05 * rng.standard_normal((len(labels), 8))
    for clip, k in enumerate(labels):
        values[clip, 2 * k:2 * k + 2] = 1.0 + 0.1 * rng.standard_normal(2)
    return values, labels


def planted_network(seed=1):
    activations, labels = planted_clips(6, seed)
    coef = np.zeros((4, 8))
    for k in range(4):
        coef[k, 2 * k:2 * k + 2] = 4.0
    network = object.__new__(PrunedNetwork)  # the real outputs(); the held-out clips given here, not read
    network.model, network.start_layer, network.activations = PlantedModel(), "l1", activations
    network.head = Head(coef, np.zeros(4), PLANTED_CLASSES)
    network.truth = labels
    network.baseline = network.outputs({})
    return network


def test_pruning_a_class_s_neurons_hurts_that_class_more_than_random_neurons():
    """DB finds each class's neurons from the probe clips (neuron values x caption-concept scores) and pruning
    them lowers that class's held-out probability; random sets of the same size lower it less.

    Catches: an inverted mask (keeping only the chosen neurons), a change taken as before - after, target and
    rest swapped, DB choosing by the wrong concept index, a random baseline that repeats the strategy's
    neurons, and a delta on all clips instead of the target class's."""
    values, labels = planted_clips(10, seed=0)                          # probe clips
    scores = np.eye(4)[labels] * 0.6 + 0.2                              # caption vs concept cosines
    top = top_concepts(similarity("cos3", values, scores), 3)
    tops = {"l1/db/cos3": top}
    assert top[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    open_table = pd.DataFrame({"layer": "l1", "neuron": range(8), "nouns": [f"{PLANTED_CLASSES[n // 2]}" for n in
                                                                         range(8)]})
    settings = {"methods": ["db"], "pruning": {"top": 1, "db_function": "cos3", "tab_function": "soft_wpmi",
                                               "seed": 0, "random_seeds": 5, "pool": "summarised"}}
    chosen = pruning_selections(PLANTED_CLASSES, PLANTED_CLASSES, tops, open_table, ["l1"], settings)
    for k, name in enumerate(PLANTED_CLASSES):
        assert chosen[("db", name)] == [[("l1", 2 * k), ("l1", 2 * k + 1)]]
        assert chosen[("ocp", name)] == chosen[("db", name)]

    network = planted_network()
    baseline = network.baseline["probability"]
    assert network.baseline["correct"].all() and baseline.min() > 0.9
    per_class, summary = pruning_effects(network, chosen, {"l1": 8})
    summary, per_class = summary.set_index("strategy"), per_class.set_index(["strategy", "class"])

    # By hand for class a: with its neurons off, an a-clip's logits are (0, 4x_b, 4x_c, 4x_d) for its
    # other channels x; its true-class probability is 1 / (1 + sum exp(4x)).
    clips = network.truth == 0
    other = network.activations[clips][:, 2:]
    expected = (1 / (1 + np.exp(4 * other).reshape(-1, 3, 2).prod(axis=2).sum(axis=1)) - baseline[clips]).mean()
    assert per_class.loc[("db", "a"), "delta_target_probability"] == pytest.approx(expected)
    assert per_class.loc[("db", "a"), "delta_rest_probability"] == pytest.approx(0.0, abs=0.02)

    db, random_db = summary.loc["db"], summary.loc["random_db"]
    assert db["delta_target_probability"] < -0.6                   # the class is unlearned
    assert db["delta_rest_probability"] > -0.05                    # the other classes barely move
    assert db["difference_probability"] < -0.6 and db["difference_logit"] < -3
    # random pairs of the 8 neurons hit the target's neurons rarely: much smaller target loss
    assert random_db["delta_target_probability"] > db["delta_target_probability"] + 0.3
    assert random_db["delta_target_probability_sd"] > 0 and random_db["mean_pruned"] == db["mean_pruned"] == 2
    assert summary.loc["ocp", "delta_target_probability"] == pytest.approx(db["delta_target_probability"])


# --- part-of-speech ablation ----------------------------------------------------------------------------------


POS_SUMMARIES = [
    (0, "Dogs, cats, birds, horses, cows and sheep."),                 # 6 nouns, no adjective
    (1, "Loud, bright, harsh, metallic and hollow tones."),            # 5 adjectives, 1 noun
    (2, "A baby cries in a quiet room."),                              # 2 nouns, 1 adjective, 1 verb
    (3, "Rain falls on a metal roof near the old trains in the town."),  # 5 nouns, 3 prepositions, longest
    (4, "Water."),
    (5, "Sounds."),
    (6, "Sirens wail."),
    (7, "Quiet."),
]


class VitalNeuronNetwork:
    """Held-out clips stay right unless a vital neuron is pruned; each vital neuron pruned makes a quarter
    of the 12 clips wrong (probability 0.9 right, 0.3 wrong)."""

    def __init__(self, vital):
        self.vital = vital
        self.baseline = self.outputs({})

    def outputs(self, masks):
        hit = sum(int(masks[layer][n] == 0) for layer, n in self.vital if layer in masks)
        correct = np.arange(12) >= 3 * hit
        return {"correct": correct, "probability": np.where(correct, 0.9, 0.3)}


def test_the_part_of_speech_ablation_prunes_the_neurons_richest_in_that_part_of_speech(tmp_path):
    """Counts from the real tagger on summaries of known content, then Figure 4(a) at r = 1/8 (one neuron):
    nouns prune neuron 0, adjectives neuron 1, prepositions neuron 3, caption length neuron 3.

    Catches: the counts of one part of speech filed under another, the fewest instead of the most words
    pruned, nouns counted as adjectives (tags), and accuracy taken before pruning."""
    open_table = open_table_of(tmp_path, POS_SUMMARIES, layer="l1")
    counts = open_table.set_index("neuron")
    assert counts["n_nouns"].tolist()[:4] == [6, 1, 2, 5] and counts["n_adjectives"].tolist()[:4] == [0, 5, 1, 1]
    assert counts["n_prepositions"].idxmax() == 3 and counts["caption_len"].idxmax() == 3
    assert counts["n_nouns"].idxmax() == 0 and counts["n_adjectives"].idxmax() == 1
    settings = {"fractions": [0.125], "seeds": 2}
    for vital, hurt in ((0, "nouns"), (1, "adjectives")):
        table = pos_ablation(VitalNeuronNetwork([("l1", vital)]), open_table, {"l1": 8}, settings)
        accuracy = table.set_index("category")["accuracy"]
        assert table["pruned"].eq(1).all() and table["baseline_accuracy"].eq(1.0).all()
        assert accuracy[hurt] == 0.75 and table.set_index("category").loc[hurt, "accuracy_sd"] == 0
        for category in ("adjectives", "nouns", "prepositions", "caption_len"):
            if category != hurt:
                assert accuracy[category] == 1.0, (vital, category)
        assert table.set_index("category").loc[hurt, "delta_true_probability"] == pytest.approx(-0.25 * 0.6)
    # prepositions and caption length both pick neuron 3
    table = pos_ablation(VitalNeuronNetwork([("l1", 3)]), open_table, {"l1": 8}, settings).set_index("category")
    assert table.loc[["prepositions", "caption_len"], "accuracy"].tolist() == [0.75, 0.75]
    assert table.loc[["nouns", "adjectives"], "accuracy"].tolist() == [1.0, 1.0]


# --- the cluster (un)interpretability measure ---------------------------------------------------------------


class TopicVectors:
    """One axis per planted topic word, so K-means with three clusters finds the three topics."""

    topics = ("dog", "rain", "engine")

    def encode(self, texts):
        return np.array([[float(t in text.lower()) for t in self.topics] for text in texts]) + 1e-3


TOPIC_CAPTIONS = {"dog": "A dog barks twice.", "rain": "Rain falls on a roof.", "engine": "An engine idles."}


def test_the_uninterpretable_share_counts_neurons_whose_top_clips_span_topics(tmp_path, monkeypatch):
    """Twelve clips, four per topic, listed in captions.csv in another order than in the neuron files.
    layer_a: four neurons whose top-3 clips share a topic; layer_b: two of the same and two whose top clips
    are one of each topic; the head: one topic-pure neuron and one constant neuron (not counted).

    Catches: neuron clip indices read as captions.csv rows (the order differs), bottom clips used for top
    clips, the share inverted, constant neurons counted, and a wrong count threshold (>= min_shared)."""
    topics = ("dog", "rain", "engine")
    clip_ids = [f"clip{i:02d}" for i in range(12)]
    topic_of = {clip: topics[i % 3] for i, clip in enumerate(clip_ids)}   # clip00 dog, clip01 rain, ...
    # a permutation that does not map topics onto topics (a rotation by any step would)
    shuffled = [clip_ids[i] for i in (4, 9, 0, 11, 2, 7, 5, 1, 10, 3, 8, 6)]
    write_csv(tmp_path / "captions.csv", pd.DataFrame({"clip_id": shuffled,
                                                       "caption": [TOPIC_CAPTIONS[topic_of[c]] for c in shuffled]}),
              config={"captioner": "planted"})

    def values_for(groups, columns):
        """values [clips, neurons]: neuron j is high on the clips of groups[j] (indices into clip_ids)."""
        values = np.tile(np.linspace(0, 0.1, 12)[:, None], (1, columns))
        for j, group in enumerate(groups):
            values[group, j] = 1.0 + np.arange(len(group))
        return values

    dog, rain, engine = [0, 3, 6], [1, 4, 7], [2, 5, 8]
    layers = {"layer_a": values_for([dog, rain, engine, [3, 6, 9]], 4),
              "layer_b": values_for([dog, rain, [0, 1, 2], [3, 7, 11]], 4),
              "head": values_for([engine], 2)}
    layers["head"][:, 1] = 0.5  # constant
    settings = {"top_k": 3, "neurons": {"per_layer": "all", "seed": 0}}
    paths = []
    for layer, values in layers.items():
        paths.append(tmp_path / f"{layer}.h5")
        write_neurons(paths[-1], values, clip_ids, {}, layer=layer, settings=settings)
    monkeypatch.setattr(interpretability, "sentence_encoder", lambda settings: TopicVectors())
    interpretability.interpretability_step(
        neuron_paths=paths, captions_path=tmp_path / "captions.csv", out_csv=tmp_path / "interpretability.csv",
        out_png=tmp_path / "interpretability.png",
        settings={"clustering": {"clusters": 3, "min_shared": [2, 3], "seed": 0}}, layers=["layer_a", "layer_b"])
    table = read_csv(tmp_path / "interpretability.csv").set_index(["layer", "min_shared"])
    percent = table["uninterpretable_percent"].to_dict()
    assert percent == {("layer_a", 2): 0.0, ("layer_a", 3): 0.0, ("layer_b", 2): 50.0, ("layer_b", 3): 50.0,
                       ("head", 2): 0.0, ("head", 3): 0.0}
    assert table.loc[("head", 3), "neurons"] == 1 and table.loc[("layer_b", 3), "neurons"] == 4
