"""CLIP-Dissect's neuron-concept similarity functions: hand-computed values, the AND per-neuron bugs,
planted concepts, constant neurons, validation and determinism."""

import copy
import math

import numpy as np
import pytest

from audioprobe.dissect import similarity as sim
from audioprobe.dissect.similarity import FUNCTIONS, constant_neurons, similarity, top_concepts

LN3 = math.log(3)


# ------------------------------------------------------------------------------ hand-computed values


def test_cos_by_hand():
    A = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)   # neurons (1,1,0,0) and (0,0,1,1)
    P = np.array([[1, 0], [0, 1], [0, 1], [0, 2]], dtype=float)   # concepts (1,0,0,0) and (0,1,1,2)
    # |a0| = |a1| = sqrt 2, |p0| = 1, |p1| = sqrt 6; <a0,p0> = 1, <a0,p1> = 1, <a1,p0> = 0, <a1,p1> = 3
    expected = [[1 / math.sqrt(2), 1 / math.sqrt(12)],
                [0.0, 3 / math.sqrt(12)]]
    np.testing.assert_allclose(similarity("cos", A, P), expected, atol=1e-12)


def test_cos3_by_hand():
    A = np.array([[3, 0], [1, 0], [0, 0], [0, 4]], dtype=float)
    P = np.array([[1, 0], [0, 0], [0, 0], [0, 2]], dtype=float)
    # centred, cubed: a0 (3,1,0,0) -> (2,0,-1,-1) -> (8,0,-1,-1), norm sqrt 66
    #                 a1 (0,0,0,4) -> (-1,-1,-1,3) -> (-1,-1,-1,27), norm sqrt 732
    #                 p0 (1,0,0,0) -> (.75,-.25,-.25,-.25) -> (27,-1,-1,-1)/64, unit: (27,-1,-1,-1)/sqrt 732
    #                 p1 (0,0,0,2) -> (-.5,-.5,-.5,1.5) -> (-1,-1,-1,27)/8,   unit: (-1,-1,-1,27)/sqrt 732
    expected = [[(8 * 27 + 1 + 1) / math.sqrt(66 * 732), (-8 + 1 - 27) / math.sqrt(66 * 732)],
                [(-27 + 1 + 1 - 27) / 732, (1 + 1 + 1 + 729) / 732]]
    np.testing.assert_allclose(similarity("cos3", A, P), expected, atol=1e-12)


def test_cos3_clips_small_norms_at_min_norm():
    A = np.array([[3.0], [1.0], [0.0], [0.0]])
    P = np.array([[0.0], [0.01], [0.0], [0.0]])   # centred (-.0025,.0075,-.0025,-.0025), cubed norm ~4e-7
    cubed_a = np.array([8.0, 0, -1, -1]) / math.sqrt(66)
    cubed_p = np.array([-0.0025, 0.0075, -0.0025, -0.0025]) ** 3
    np.testing.assert_allclose(similarity("cos3", A, P), [[cubed_a @ cubed_p / 1e-3]], rtol=1e-12)


def rank_reorder_case():
    """N = 8 inputs, top_fraction 0.5 -> n = 4 top inputs per neuron; two fixed permutations."""
    A = np.array([[10, 0], [7, 0], [6, 0], [5, 0], [1, 1], [2, 4], [3, 3], [4, 2]], dtype=float)
    P = np.array([[0.4, 0.1], [0.1, 0.2], [0.3, 0.3], [0.2, 0.4],
                  [0.3, 0.1], [0.9, -0.1], [0.5, -0.2], [0.7, 0.0]])
    permutations = np.array([[1, 0, 3, 2], [3, 2, 1, 0]])
    return A, P, dict(top_fraction=0.5, permutations=permutations, min_mean_score=0.01)


def test_rank_reorder_by_hand():
    A, P, params = rank_reorder_case()
    # neuron 0: top inputs 0,1,2,3, a = (10,7,6,5), a_up = (5,6,7,10)
    #   B = mean(mean|a_up - a_up[1,0,3,2]|^3, mean|a_up - a_up[3,2,1,0]|^3)
    #     = mean((1+1+27+27)/4, (125+1+1+125)/4) = (14 + 63)/2 = 38.5
    #   concept 0: c = (.4,.1,.3,.2), ranks (3,0,2,1), ã = (10,5,7,6), |a - ã|^3 = (0,8,1,1): E = 2.5/B
    #   concept 1: c = (.1,.2,.3,.4), ranks (0,1,2,3), ã = (5,6,7,10), |a - ã|^3 = (125,1,1,125): E = 63/B
    #   both concepts: mean c = 0.25, sqrt = 0.5
    # neuron 1: top inputs 5,6,7,4, a = (4,3,2,1), a_up = (1,2,3,4); B = (1 + 14)/2 = 7.5
    #   concept 0: c = (.9,.5,.7,.3), ranks (3,1,2,0), ã = (4,2,3,1), |a - ã|^3 = (0,1,1,0): E = 0.5/B,
    #              mean c = 0.6
    #   concept 1: c = (-.1,-.2,0,.1), ranks (1,0,2,3), ã = (2,1,3,4), |a - ã|^3 = (8,8,1,27): E = 11/B,
    #              mean c = -0.05 -> clipped to min_mean_score 0.01, sqrt = 0.1
    expected = [[-(2.5 / 38.5) / 0.5, -(63 / 38.5) / 0.5],
                [-(0.5 / 7.5) / math.sqrt(0.6), -(11 / 7.5) / 0.1]]
    np.testing.assert_allclose(similarity("rank_reorder", A, P, **params), expected, rtol=1e-12)


def test_rank_reorder_uses_true_ranks_not_a_single_argsort():
    A, P, params = rank_reorder_case()
    # AND's single argsort of c = (.4,.1,.3,.2) is (1,3,2,0): ã = (6,10,7,5), |a - ã|^3 = (64,27,1,0)
    single_argsort = -(23 / 38.5) / 0.5
    assert similarity("rank_reorder", A, P, **params)[0, 0] != pytest.approx(single_argsort)


def test_rank_reorder_matches_a_literal_per_neuron_loop_with_tied_scores():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(40, 3))
    P = rng.integers(1, 4, size=(40, 5)).astype(float)            # many ties among the concept scores
    permutations = np.array([rng.permutation(8) for _ in range(3)])
    expected = np.empty((3, 5))
    for u in range(3):
        top = np.argsort(-A[:, u], kind="stable")[:8]               # floor(0.2 * 40) = 8 inputs
        a = A[top, u]
        a_up = a[::-1]
        baseline = np.mean([np.mean(np.abs(a_up - a_up[perm]) ** 3) for perm in permutations])
        for j in range(5):
            c = P[top, j]
            ranks = np.argsort(np.argsort(c, kind="stable"), kind="stable")
            error = np.mean(np.abs(a - a_up[ranks]) ** 3) / baseline
            expected[u, j] = -error / np.mean(c) ** 0.5
    got = similarity("rank_reorder", A, P, top_fraction=0.2, permutations=permutations)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_wpmi_by_hand():
    # a = 1: Q rows are softmax((ln3, 0)) = (.75, .25), (.25, .75), (.75, .25), softmax((0, 0)) = (.5, .5)
    P = np.array([[LN3, 0], [0, LN3], [LN3, 0], [0, 0]])
    A = np.array([[4, 1], [1, 4], [3, 2], [2, 3]], dtype=float)   # top 2: neuron 0 -> 0, 2; neuron 1 -> 1, 3
    log_p_given = np.log([[0.75 * 0.75, 0.25 * 0.25],
                          [0.25 * 0.5, 0.75 * 0.5]])
    log_p = np.log([(0.75 * 0.75 + 0.25 * 0.5) / 2, (0.25 * 0.25 + 0.75 * 0.5) / 2])
    expected = log_p_given - 0.5 * log_p
    got = similarity("wpmi", A, P, top_k=2, a=1.0, lam=0.5, eps=0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_soft_wpmi_by_hand():
    P = np.array([[LN3, 0], [0, LN3], [LN3, 0], [0, 0]])
    A = np.array([[4, 1], [1, 4], [3, 2], [2, 3]], dtype=float)
    # top_k 2: weights π = (0.9, 0.9 - (1/2)(0.9 - 0.5)) = (0.9, 0.7); term = 1 + π (Q - 1)
    # neuron 0, inputs 0 then 2: concept 0: (1 - .9*.25)(1 - .7*.25) = .775 * .825
    #                            concept 1: (1 - .9*.75)(1 - .7*.75) = .325 * .475
    # neuron 1, inputs 1 then 3: concept 0: (1 - .9*.75)(1 - .7*.5)  = .325 * .65
    #                            concept 1: (1 - .9*.25)(1 - .7*.5)  = .775 * .65
    p_given = np.array([[0.775 * 0.825, 0.325 * 0.475],
                        [0.325 * 0.65, 0.775 * 0.65]])
    expected = np.log(p_given) - np.log(p_given.mean(axis=0))
    got = similarity("soft_wpmi", A, P, top_k=2, a=1.0, lam=1.0, p_start=0.9, p_end=0.5, eps=0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["wpmi", "soft_wpmi"])
def test_top_k_is_clamped_to_the_number_of_inputs(name):
    rng = np.random.default_rng(3)
    A, P = rng.normal(size=(6, 4)), rng.normal(size=(6, 5))
    np.testing.assert_allclose(similarity(name, A, P, top_k=100), similarity(name, A, P, top_k=6))
    assert not np.allclose(similarity(name, A, P, top_k=100), similarity(name, A, P, top_k=5))


# --------------------------------------------------------------------------------- the AND bugs


def test_whole_layer_soft_wpmi_is_not_zero_and_rank_reorder_has_no_nan():
    rng = np.random.default_rng(0)
    A, P = rng.normal(size=(200, 8)), rng.uniform(0.0, 0.5, size=(200, 6))
    soft = similarity("soft_wpmi", A, P)
    assert np.isfinite(soft).all()
    assert np.abs(soft).min() > 1e-6                      # AND: identically 0
    assert len({tuple(row) for row in top_concepts(soft, 3)}) > 1
    reorder = similarity("rank_reorder", A, P)            # n = 10 inputs per neuron
    assert np.isfinite(reorder).all() and (reorder < 0).all()   # AND: NaN


@pytest.mark.parametrize("name", ["wpmi", "soft_wpmi"])
def test_pmi_functions_refuse_a_single_neuron(name):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="whole layer"):
        similarity(name, rng.normal(size=(50, 1)), rng.normal(size=(50, 3)))


def test_rank_reorder_keeps_at_least_one_input_and_gives_nan_when_there_is_no_order():
    rng = np.random.default_rng(0)
    A, P = rng.normal(size=(10, 3)), rng.uniform(size=(10, 4))   # floor(0.05 * 10) = 0 -> n = 1
    assert np.isnan(similarity("rank_reorder", A, P)).all()      # one input: B_u = 0, no ordering
    assert np.isfinite(similarity("rank_reorder", A, P, top_fraction=0.5)).all()


@pytest.mark.parametrize("clips", [20, 36, 77, 99, 100, 101, 123])
def test_the_dissection_keeps_at_least_five_rank_reorder_inputs_on_small_probe_sets(clips):
    fraction = sim.similarity_params("rank_reorder", clips)["top_fraction"]
    assert sim.top_count(fraction, clips) == max(5, math.floor(0.05 * clips))


# ---------------------------------------------------------------------------------- planted concepts


@pytest.mark.parametrize("scale", [1.0, 100.0])   # raw cosines (CLIP-Dissect, AND's TAB) and 100 x cosine (AND's DB)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_planted_concepts_are_recovered(name, scale):
    rng = np.random.default_rng(7)
    inputs, concepts, neurons = 400, 10, 20
    P = scale * np.clip(rng.normal(0.2, 0.1, size=(inputs, concepts)), -1, 1)
    planted = np.arange(neurons) % concepts
    A = 3.0 * P[:, planted] / scale + 0.1 * rng.normal(size=(inputs, neurons))   # signal SD 0.3
    best = top_concepts(similarity(name, A, P), 1)[:, 0]
    assert np.mean(best == planted) >= 0.8


# ------------------------------------------------------------------------------- constant neurons


@pytest.mark.parametrize("name", FUNCTIONS)
def test_constant_neurons_give_nan_rows(name):
    rng = np.random.default_rng(1)
    A = rng.normal(size=(100, 5))
    A[:, 1] = 0.0
    A[:, 3] = 2.5
    P = rng.uniform(size=(100, 4))
    scores = similarity(name, A, P)
    np.testing.assert_array_equal(np.isnan(scores).all(axis=1), [False, True, False, True, False])
    assert np.isfinite(scores[[0, 2, 4]]).all()
    np.testing.assert_array_equal(top_concepts(scores, 2)[[1, 3]], -1)


@pytest.mark.parametrize("name", ["wpmi", "soft_wpmi"])
def test_constant_neurons_are_left_out_of_the_marginal(name):
    rng = np.random.default_rng(2)
    A, P = rng.normal(size=(100, 3)), rng.uniform(size=(100, 4))
    with_dead = np.column_stack([A, np.zeros(100)])
    np.testing.assert_allclose(similarity(name, with_dead, P)[:3], similarity(name, A, P))


def test_constant_neurons_flags_columns_within_atol():
    A = np.array([[1.0, 0.0, 5.0], [1.0, 1e-9, 6.0], [1.0, 0.0, 7.0]])
    np.testing.assert_array_equal(constant_neurons(A), [True, False, False])
    np.testing.assert_array_equal(constant_neurons(A, atol=1e-6), [True, True, False])


def test_top_concepts_best_first_with_stable_ties():
    scores = np.array([[0.1, 0.5, 0.5, -1.0], [np.nan, 2.0, np.nan, 1.0]])
    np.testing.assert_array_equal(top_concepts(scores, 3), [[1, 2, 0], [1, 3, -1]])


# ----------------------------------------------------------------------------------- validation


def test_shape_mismatch_names_both_arrays():
    with pytest.raises(ValueError, match="activations has 5 inputs .* concept_scores has 4"):
        similarity("cos", np.ones((5, 2)), np.ones((4, 3)))


@pytest.mark.parametrize("argument", ["activations", "concept_scores"])
def test_non_finite_input_is_named_and_counted(argument):
    arrays = {"activations": np.random.default_rng(0).normal(size=(6, 2)), "concept_scores": np.ones((6, 3))}
    arrays[argument][0, 0] = np.nan
    arrays[argument][2, 1] = np.inf
    with pytest.raises(ValueError, match=f"{argument} has 2 non-finite entries"):
        similarity("cos", arrays["activations"], arrays["concept_scores"])


def test_unknown_function_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown similarity function 'softwpmi'.*cos, cos3, rank_reorder"):
        similarity("softwpmi", np.ones((4, 2)), np.ones((4, 2)))


def test_unknown_parameter_is_named_with_the_valid_ones():
    with pytest.raises(TypeError, match="unknown parameter.*'wpmi': topk; valid parameters: top_k, a, lam"):
        similarity("wpmi", np.ones((4, 2)), np.ones((4, 2)), topk=5)


@pytest.mark.parametrize("activations, message", [
    (np.ones(4), "must be 2-D"),
    (np.ones((1, 3)), "at least 2 inputs"),
    (np.ones((4, 0)), "is empty"),
])
def test_bad_activation_shapes(activations, message):
    with pytest.raises(ValueError, match=message):
        similarity("cos", activations, np.ones((len(activations), 2)))


@pytest.mark.parametrize("params, message", [
    ({"top_fraction": 0.0}, r"top_fraction must lie in \(0, 1\]"),
    ({"permutations": 0}, "permutations must be a positive integer"),
    ({"permutations": np.array([[0, 1, 1, 3]])}, "n = 4"),
    ({"permutations": np.array([[0, 1, 2]])}, "n = 4"),
])
def test_bad_rank_reorder_parameters(params, message):
    A, P, _ = rank_reorder_case()
    with pytest.raises(ValueError, match=message):
        similarity("rank_reorder", A, P, top_fraction=params.pop("top_fraction", 0.5), **params)


def test_top_concepts_rejects_k_out_of_range():
    with pytest.raises(ValueError, match="from 1 to the number of concepts"):
        top_concepts(np.zeros((2, 3)), 4)


# ---------------------------------------------------------------------------------- determinism


def test_rank_reorder_is_deterministic_under_a_seed():
    rng = np.random.default_rng(5)
    A, P = rng.normal(size=(100, 6)), rng.uniform(0.1, 1.0, size=(100, 4))
    first = similarity("rank_reorder", A, P, seed=11)
    np.testing.assert_array_equal(first, similarity("rank_reorder", A, P, seed=11))
    assert not np.array_equal(first, similarity("rank_reorder", A, P, seed=12))


def test_defaults_cover_every_function():
    assert set(sim.DEFAULTS) == set(FUNCTIONS)
    assert sim.DEFAULTS["wpmi"] == {"top_k": 28, "a": 2.0, "lam": 0.6, "eps": 1e-7}


# ------------------------------------------------------------- raw cosines, as CLIP-Dissect passes them


def _published_pmi_labels(A, C, top_k, a, lam, weights_of_rank):
    """Each neuron's argmax concept by the CLIP-Dissect formulas, written out with plain loops:
    Q_i = softmax_j(a C_ij); log p(c|u) = sum over u's top_k inputs (by activation, rank k) of
    log(1 + w_k (Q_ij - 1) + eps); log p(c) = log mean_u p(c|u); label = argmax_j log p(c|u) - lam log p(c)."""
    inputs, neurons = A.shape
    concepts = C.shape[1]
    Q = []
    for i in range(inputs):
        exps = [math.exp(a * C[i, j]) for j in range(concepts)]
        Q.append([e / sum(exps) for e in exps])
    log_p_given = []
    for u in range(neurons):
        ranked = sorted(range(inputs), key=lambda i: -A[i, u])[:top_k]
        log_p_given.append([sum(math.log(1 + weights_of_rank(k, top_k) * (Q[i][j] - 1) + 1e-7)
                                for k, i in enumerate(ranked)) for j in range(concepts)])
    log_p = [math.log(sum(math.exp(log_p_given[u][j]) for u in range(neurons)) / neurons)
             for j in range(concepts)]
    scores = [[log_p_given[u][j] - lam * log_p[j] for j in range(concepts)] for u in range(neurons)]
    return np.array([max(range(concepts), key=lambda j: row[j]) for row in scores])


def _noisy_cosines(seed=4, inputs=120, concepts=6, neurons=16):
    """A fixed noisy case: clip-concept cosines around 0.2 (as text and CLAP cosines are), neurons that
    follow one concept weakly."""
    rng = np.random.default_rng(seed)
    C = np.clip(rng.normal(0.2, 0.08, size=(inputs, concepts)), -1, 1)
    A = C[:, np.arange(neurons) % concepts] + 0.3 * rng.normal(size=(inputs, neurons))
    return A, C


PUBLISHED = {  # CLIP-Dissect's similarity.py defaults; wpmi weights every top input 1
    "wpmi": dict(top_k=28, a=2.0, lam=0.6, weights_of_rank=lambda k, top_k: 1.0),
    "soft_wpmi": dict(top_k=100, a=10.0, lam=1.0,
                      weights_of_rank=lambda k, top_k: 0.998 - k / top_k * (0.998 - 0.97)),
}


@pytest.mark.parametrize("name", ["wpmi", "soft_wpmi"])
def test_pmi_labels_on_raw_cosines_follow_the_published_formulas(name):
    A, C = _noisy_cosines()
    expected = _published_pmi_labels(A, C, **PUBLISHED[name])
    np.testing.assert_array_equal(top_concepts(similarity(name, A, C), 1)[:, 0], expected)
    # The scale matters: 100 x cosine (CLIP's logit scale) gives other labels on this case, so feeding it
    # instead of the raw cosines CLIP-Dissect passes would fail the first assertion.
    hard = _published_pmi_labels(A, 100 * C, **PUBLISHED[name])
    assert np.mean(hard != expected) >= 0.2
    np.testing.assert_array_equal(top_concepts(similarity(name, A, 100 * C), 1)[:, 0], hard)


def test_the_dissection_passes_raw_cosines_by_default():
    from audioprobe import config

    cfg = {"dissect": {}}
    config.fill_defaults(cfg, config.load_schema())
    assert cfg["dissect"]["similarity"]["scale"] == 1


def test_the_closed_concepts_step_gives_the_similarity_functions_the_raw_cosines(tmp_path):
    """The workflow step, on files: with the default config, every neuron's top concepts are those of the
    similarity function applied to the stored cosines as they are. Scores of 100 x cosine would give other
    wpmi and soft_wpmi labels on this case, so a x100 anywhere in the step (or a default of 100) fails here."""
    import pandas as pd

    from audioprobe import config
    from audioprobe.dissect.concepts import closed_concepts_step
    from audioprobe.dissect.probing import write_neurons
    from audioprobe.dissect.similarity import similarity_params
    from audioprobe.io.atomic import read_csv, write_csv
    from audioprobe.io.store import LayerFile, write_arrays

    A, C = _noisy_cosines()
    A = A.astype(np.float32)  # as the neuron file stores them
    ids = [f"clip{i:03d}" for i in range(len(A))]
    concepts = [f"concept{j}" for j in range(C.shape[1])]
    write_neurons(tmp_path / "layer1.h5", A, ids, {}, layer="layer1",
                  settings={"top_k": 5, "neurons": {"per_layer": 4, "seed": 0}})
    order = np.random.default_rng(0).permutation(len(ids))  # the score file lists the clips in another order
    write_arrays(tmp_path / "scores.h5", {"concepts": np.asarray(concepts, dtype=object), "db": C[order]},
                 clip_ids=[ids[i] for i in order], labels={},
                 attrs={"config": {}, "text_encoder": "test", "captioner": "test"})
    write_csv(tmp_path / "summaries.csv", pd.DataFrame({"layer": ["layer1"] * A.shape[1], "neuron": range(A.shape[1])}))
    cfg = {"dissect": {}}
    config.fill_defaults(cfg, config.load_schema())
    dissect = cfg["dissect"]
    settings = {"similarity": dissect["similarity"], "methods": ["db"],
                "pruning": {key: dissect["pruning"][key] for key in ("db_function", "tab_function")}}
    closed_concepts_step(neuron_paths=[str(tmp_path / "layer1.h5")], scores_path=str(tmp_path / "scores.h5"),
                         summaries_path=str(tmp_path / "summaries.csv"), out_csv=str(tmp_path / "closed.csv"),
                         top_h5=str(tmp_path / "closed.h5"), settings=settings)

    table = read_csv(tmp_path / "closed.csv")
    with LayerFile(tmp_path / "closed.h5") as stored:
        tops = {name: stored.file[f"layer1/db/{name}"][()] for name in dissect["similarity"]["functions"]}
    assert set(tops) == set(FUNCTIONS)
    for name, top in tops.items():
        expected = top_concepts(similarity(name, A, C, **similarity_params(name, len(ids))), 5)
        np.testing.assert_array_equal(top, expected, err_msg=name)
        rows = table[table["function"] == name].sort_values("neuron")
        assert rows["top1"].tolist() == [concepts[i] for i in expected[:, 0]], name
    for name in ("wpmi", "soft_wpmi"):
        scaled = top_concepts(similarity(name, A, 100 * C, **similarity_params(name, len(ids))), 5)
        assert np.mean(scaled[:, 0] != tops[name][:, 0]) >= 0.2, name


def test_the_old_scale_key_is_refused_with_a_message_naming_the_new_one():
    import jsonschema

    from audioprobe import config

    old = {"dissect": {"concepts": {"scale": 100}}}
    with pytest.raises(config.ConfigError, match=r"dissect\.concepts\.scale was renamed dissect\.similarity\.scale"
                                                 r".*from 100 to 1.*similarity: \{scale: 100\}"):
        config.check_renamed(old)
    # Without the check the schema's own error says only that the key is unexpected.
    schema = config.load_schema()
    dissect = {**schema["properties"]["dissect"], "$defs": schema.get("$defs", {})}
    filled = config.fill_defaults(copy.deepcopy(old), schema)
    with pytest.raises(jsonschema.ValidationError, match="Additional properties") as refused:
        jsonschema.validate(filled["dissect"], dissect)
    assert "similarity" not in str(refused.value.message)
    # The new key, and configs without a dissect or concepts section, pass.
    for fine in ({"dissect": {"similarity": {"scale": 100}, "concepts": {"file": None}}}, {"dissect": {}}, {},
                 {"dissect": {"concepts": None}}):
        config.check_renamed(fine)
