import logging

import numpy as np
import pytest

from tests.conftest import require

torch = require("torch")
require("nflows")

from audioprobe.latent import flow as F  # noqa: E402

DIM = 10
SETTINGS = dict(stages=2, hidden=32, householder=8, sigma=0.9, epochs=40, batch_size=64, learning_rate=3e-3,
                patience=8, pairing="balanced")


def synthetic(n, dim, seed):
    """Material (3 classes) and action (2 classes) along two directions, noise elsewhere, then rotated."""
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(3, size=n), rng.integers(2, size=n)], axis=1)
    x = rng.normal(size=(n, dim))
    x[:, 0] = np.array([-2.0, 0.0, 2.0])[labels[:, 0]] + 0.4 * rng.normal(size=n)
    x[:, 1] = np.array([-1.5, 1.5])[labels[:, 1]] + 0.4 * rng.normal(size=n)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return (x @ rotation).astype(np.float32), labels


def nearest_mean_accuracy(train_values, train_classes, test_values, test_classes):
    classes = np.unique(train_classes)
    means = np.array([train_values[train_classes == c].mean() for c in classes])
    predicted = classes[np.argmin(np.abs(test_values[:, None] - means[None]), axis=1)]
    return float(np.mean(predicted == test_classes))


@pytest.fixture(scope="module")
def problem():
    x, y = synthetic(600, DIM, seed=1)
    return {"train": (x[:300], y[:300]), "val": (x[300:450], y[300:450]), "test": (x[450:], y[450:])}


@pytest.fixture(scope="module")
def trained(problem):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("test_flow")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        flow, curve = F.train_flow(*problem["train"], *problem["val"], **SETTINGS, seed=1, log=log)
    finally:
        log.removeHandler(handler)
    return flow, curve, records


def fixed_val_loss(flow, x, y, seed=0):
    idx_a, idx_b = F.sample_pairs(y, 2000, np.random.default_rng(seed), "uniform")
    with torch.no_grad():
        return F.pair_loss(flow.eval(), torch.from_numpy(x), y, idx_a, idx_b, 0.9).item()


# -- loss ------------------------------------------------------------------------------------------------------

def test_factor_loss_matches_a_hand_computation():
    z_a = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    z_b = np.array([[0.2, 0.3, 1.5], [-1.0, 2.0, 1.5]])
    logdet_a, logdet_b = np.array([0.1, -0.2]), np.array([0.3, 0.0])
    same, sigma = np.array([[1], [0]]), 0.9
    # pair 1 shares the factor: z_b,F ~ N(0.9 * 2.0, 1 - 0.81); pair 2 does not: z_b,F ~ N(0, 1)
    pair_1 = 0.5 * (0.25 + 1 + 4) - 0.1 + 0.5 * (0.04 + 0.09) + 0.5 * (1.5 - 1.8) ** 2 / (0.19 + 1e-5) - 0.3
    pair_2 = 0.5 * (1 + 0 + 0.25) + 0.2 + 0.5 * (1 + 4) + 0.5 * 1.5 ** 2 / (1 + 1e-5) - 0.0
    expected = (pair_1 + pair_2) / 2 / 3
    args = [torch.from_numpy(v) for v in (z_a, logdet_a, z_b, logdet_b, same)]
    assert F.factor_loss(*args, sigma).item() == pytest.approx(expected, rel=1e-12)
    assert F.factor_loss(*[a.float() for a in args], sigma).item() == pytest.approx(expected, rel=1e-6)


def test_sharing_a_factor_rewards_close_factor_values_and_penalises_distant_ones():
    rng = np.random.default_rng(0)
    z_a = torch.from_numpy(rng.normal(size=(16, 4)))
    logdet = torch.zeros(16)
    close, far = z_a.clone(), z_a.clone()
    close[:, -1] = 0.95 * z_a[:, -1]
    far[:, -1] = -z_a[:, -1]
    shared, unshared = torch.ones(16, 1), torch.zeros(16, 1)
    assert F.factor_loss(z_a, logdet, close, logdet, shared, 0.9) < F.factor_loss(z_a, logdet, close, logdet,
                                                                                  unshared, 0.9)
    assert F.factor_loss(z_a, logdet, far, logdet, shared, 0.9) > F.factor_loss(z_a, logdet, far, logdet,
                                                                                unshared, 0.9)
    # sigma = 0 makes sharing irrelevant; a residual dimension is never pulled towards z_a
    assert F.factor_loss(z_a, logdet, far, logdet, shared, 0.0) == pytest.approx(
        F.factor_loss(z_a, logdet, far, logdet, unshared, 0.0).item())
    residual_close = z_a.clone()
    residual_close[:, 0] = 3.0
    assert F.factor_loss(z_a, logdet, residual_close, logdet, shared, 0.9) > F.factor_loss(
        z_a, logdet, z_a, logdet, shared, 0.9)


def test_factor_loss_rejects_bad_arguments():
    z, logdet = torch.zeros(4, 3), torch.zeros(4)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        F.factor_loss(z, logdet, z, logdet, torch.ones(4, 1), 1.0)
    with pytest.raises(ValueError, match="n_factors"):
        F.factor_loss(z, logdet, z, logdet, torch.ones(4, 4), 0.9)
    with pytest.raises(ValueError, match="0 or 1"):
        F.factor_loss(z, logdet, z, logdet, torch.full((4, 1), 2.0), 0.9)


def test_factor_dims_are_the_last_ones_in_label_order():
    assert F.factor_dims(64, 2) == [62, 63]
    assert F.factor_dims(3, 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="do not fit"):
        F.factor_dims(2, 3)


# -- pairs -----------------------------------------------------------------------------------------------------

def test_balanced_pairs_share_each_factor_half_of_the_time():
    rng = np.random.default_rng(0)
    labels = np.stack([rng.integers(6, size=600), rng.integers(4, size=600)], axis=1)
    idx_a, idx_b = F.sample_pairs(labels, 8000, np.random.default_rng(1), "balanced")
    same = labels[idx_a] == labels[idx_b]
    assert same[:, 0].mean() == pytest.approx(0.5, abs=0.03)
    assert same[:, 1].mean() == pytest.approx(0.5, abs=0.03)
    assert same.all(axis=1).mean() == pytest.approx(0.25, abs=0.03)  # independently per factor
    assert not np.any(idx_a == idx_b)
    idx_a, idx_b = F.sample_pairs(labels, 8000, np.random.default_rng(1), "uniform")
    assert (labels[idx_a, 0] == labels[idx_b, 0]).mean() == pytest.approx(1 / 6, abs=0.03)


def test_a_reused_partner_table_draws_the_same_pairs_as_a_fresh_one():
    """Training builds the table once (per-batch rebuilding grew with the rows); the draws must not change."""
    rng = np.random.default_rng(0)
    labels = np.stack([rng.integers(6, size=900), rng.integers(4, size=900)], axis=1)
    labels[:3] = [5, 3]  # a small cell, so the own-cell draws leave a out of few candidates
    table = F.PartnerTable(labels)
    draws = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(5):  # one table over successive batches, as train_flow uses it
        fresh = F.sample_pairs(labels, 300, draws[0], "balanced")
        reused = F.sample_pairs(labels, 300, draws[1], "balanced", table)
        np.testing.assert_array_equal(fresh[0], reused[0])
        np.testing.assert_array_equal(fresh[1], reused[1])
    assert len(table._candidates) > 1


def test_pairs_are_reproducible_and_fall_back_to_uniform_without_candidates():
    labels = np.array([[0, 0]] * 5 + [[1, 1]] * 5)  # the factors never differ independently
    first = F.sample_pairs(labels, 500, np.random.default_rng(3))
    second = F.sample_pairs(labels, 500, np.random.default_rng(3))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    idx_a, idx_b = first
    assert idx_b.min() >= 0 and idx_b.max() < 10
    same = labels[idx_a] == labels[idx_b]
    assert np.array_equal(same[:, 0], same[:, 1])
    # "both same" (1/4) always shares, "both different" (1/4) never; the mixed patterns (1/2) have no
    # candidate and fall back to uniform, which shares half of the time here
    assert same[:, 0].mean() == pytest.approx(0.5, abs=0.07)
    with pytest.raises(ValueError, match="integer class codes"):
        F.sample_pairs(labels.astype(float), 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="pairing 'random' is unknown"):
        F.sample_pairs(labels, 4, np.random.default_rng(0), "random")


# -- flow ------------------------------------------------------------------------------------------------------

def test_a_new_flow_is_a_permutation_and_random_weights_still_invert():
    x = np.random.default_rng(0).normal(scale=3.0, size=(256, 16)).astype(np.float32)
    flow = F.build_flow(16, stages=3, hidden=64, householder=8, seed=0)
    np.testing.assert_allclose(np.sort(F.forward(flow, x), axis=1), np.sort(x, axis=1), atol=1e-5)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    z = F.forward(flow, x)
    assert np.abs(np.sort(z, axis=1) - np.sort(x, axis=1)).max() > 3.0
    assert F.round_trip_error(flow, x) <= 1e-4
    np.testing.assert_allclose(F.forward(flow, F.inverse(flow, z)), z, atol=1e-4)
    assert flow.training  # the numpy helpers leave the mode as they found it
    F.check_invertible(flow, x)
    with torch.no_grad():  # weights this large leave float32 unable to invert the couplings
        for parameter in flow.parameters():
            parameter.mul_(4.0)
    with pytest.raises(F.FlowDiverged, match="no longer inverts accurately"):
        F.check_invertible(flow, x)


def test_build_flow_is_deterministic_and_validates():
    first, second, other = (F.build_flow(8, 2, 16, 4, seed) for seed in (5, 5, 6))
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values()))
    with pytest.raises(ValueError, match="at least 2"):
        F.build_flow(1)
    with pytest.raises(ValueError, match="at most 2 \\* dim = 8"):
        F.build_flow(4, householder=9)


def test_training_puts_the_classes_on_their_factor_dimensions(problem, trained):
    flow, curve, records = trained
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = problem["train"], problem["val"], problem["test"]
    untrained = F.build_flow(DIM, SETTINGS["stages"], SETTINGS["hidden"], SETTINGS["householder"], seed=1)
    F.initialize_actnorm(untrained, x_train)
    accuracy = {}
    for name, model in (("untrained", untrained), ("trained", flow)):
        z_train, z_test = F.forward(model, x_train), F.forward(model, x_test)
        accuracy[name] = [nearest_mean_accuracy(z_train[:, d], y_train[:, factor], z_test[:, d], y_test[:, factor])
                          for factor, d in enumerate(F.factor_dims(DIM, 2))]
    material, action = accuracy["trained"]
    assert material >= 0.85 and material >= accuracy["untrained"][0] + 0.2, accuracy  # chance 1/3
    assert action >= 0.95 and action > accuracy["untrained"][1], accuracy  # chance 1/2
    assert fixed_val_loss(flow, x_val, y_val) < fixed_val_loss(untrained, x_val, y_val) - 0.1
    assert list(curve.columns) == ["epoch", "train_loss", "val_loss", "kept"]
    assert curve["epoch"].tolist() == list(range(1, len(curve) + 1))
    assert curve["val_loss"].min() < curve["val_loss"].iloc[0] - 0.1
    assert curve["train_loss"].iloc[-1] < curve["train_loss"].iloc[0]
    epoch_lines = [r.getMessage() for r in records if "validation loss" in r.getMessage()]
    assert len(epoch_lines) == len(curve) and epoch_lines[0].startswith("flow epoch 1/40")
    assert not flow.training


def test_early_stopping_keeps_the_best_epoch(problem, trained):
    flow, curve, _ = trained
    best = curve["val_loss"].idxmin()
    assert len(curve) < SETTINGS["epochs"], "the fixture should stop early; raise epochs or lower patience"
    assert len(curve) - 1 - best == SETTINGS["patience"]
    assert curve["kept"].tolist() == [i == best for i in range(len(curve))]
    # the validation pairs are drawn from seed 1's child stream; rebuild them to check the returned weights
    _, val_seed = np.random.SeedSequence(1).spawn(2)
    x_val, y_val = problem["val"]
    pairs = F.sample_pairs(y_val, max(len(y_val), F.MIN_VALIDATION_PAIRS), np.random.default_rng(val_seed),
                           "balanced")
    with torch.no_grad():
        returned = F.pair_loss(flow, torch.from_numpy(x_val), y_val, *pairs, SETTINGS["sigma"]).item()
    assert returned == pytest.approx(curve["val_loss"].min(), rel=1e-6)


def test_a_trained_flow_inverts(problem, trained):
    flow = trained[0]
    x = np.concatenate([problem["test"][0], np.random.default_rng(2).normal(scale=2.0, size=(200, DIM))])
    assert F.round_trip_error(flow, x) <= 1e-4


def test_training_is_reproducible_with_a_seed():
    x, y = synthetic(200, 6, seed=4)
    small = dict(SETTINGS, stages=1, hidden=16, householder=4, epochs=3)
    runs = [F.train_flow(x[:150], y[:150], x[150:], y[150:], **small, seed=seed) for seed in (0, 0, 1)]
    (flow_0, curve_0), (flow_0b, curve_0b), (flow_1, curve_1) = runs
    assert curve_0.equals(curve_0b)
    for a, b in zip(flow_0.state_dict().values(), flow_0b.state_dict().values()):
        assert torch.equal(a, b)
    assert not curve_0.equals(curve_1)
    assert any(not torch.equal(a, b) for a, b in zip(flow_0.state_dict().values(), flow_1.state_dict().values()))


def test_without_validation_data_every_epoch_runs_and_the_last_is_kept():
    x, y = synthetic(200, 6, seed=4)
    small = dict(SETTINGS, stages=1, hidden=16, householder=4, epochs=6, patience=1)
    flow, curve = F.train_flow(x, y, None, None, **small, seed=0)
    assert curve["epoch"].tolist() == list(range(1, 7)) and curve["val_loss"].isna().all()
    assert curve["kept"].tolist() == [False] * 5 + [True]
    # the returned weights are the last epoch's: one more epoch from the same seed changes them
    longer, _ = F.train_flow(x, y, None, None, **dict(small, epochs=7), seed=0)
    assert any(not torch.equal(a, b) for a, b in zip(flow.state_dict().values(), longer.state_dict().values()))


def test_bad_inputs_and_divergence_raise_clear_errors():
    x, y = synthetic(120, 6, seed=5)
    small = dict(SETTINGS, stages=1, hidden=16, householder=4, epochs=3)
    broken = x.copy()
    broken[7, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values .* row 7"):
        F.train_flow(broken, y, x, y, **small, seed=0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        F.train_flow(x, np.stack([y[:, 0], np.zeros(120, int)], axis=1), x, y, **small, seed=0)
    with pytest.raises(ValueError, match="rows"):
        F.train_flow(x, y[:100], x, y, **small, seed=0)
    with pytest.raises(ValueError, match="dimensions"):
        F.train_flow(x, y, x[:, :5], y, **small, seed=0)
    with pytest.raises(ValueError, match="learning_rate"):
        F.train_flow(x, y, x, y, **dict(small, learning_rate=-1.0), seed=0)
    with pytest.raises(F.FlowDiverged, match=r"in epoch \d+; lower the learning rate \(now 1e\+06"):
        F.train_flow(x, y, x, y, **dict(small, learning_rate=1e6), seed=0)


# -- checkpoints -----------------------------------------------------------------------------------------------

def test_a_saved_flow_loads_with_weights_only_and_gives_identical_outputs(tmp_path, problem, trained):
    flow = trained[0]
    settings = {"dim": DIM, "n_factors": 2, "factors": ["material", "action"], "seed": 1,
                **{key: SETTINGS[key] for key in ("stages", "hidden", "householder", "sigma")}}
    path = tmp_path / "models" / "flow.pt"
    F.save_flow(path, flow, settings)
    assert [p.name for p in path.parent.iterdir()] == ["flow.pt"]
    raw = torch.load(path, weights_only=True)
    assert raw["settings"] == settings and set(raw) == {"state_dict", "settings"}
    loaded, loaded_settings = F.load_flow(path)
    assert loaded_settings == settings and not loaded.training
    x = problem["test"][0]
    np.testing.assert_array_equal(F.forward(loaded, x), F.forward(flow, x))
    z = F.forward(flow, x)
    np.testing.assert_array_equal(F.inverse(loaded, z), F.inverse(flow, z))


def test_the_same_flow_saved_twice_gives_the_same_bytes(tmp_path, trained):
    settings = {"dim": DIM, "n_factors": 2, "seed": 1,
                **{key: SETTINGS[key] for key in ("stages", "hidden", "householder", "sigma")}}
    first, second = tmp_path / "a" / "flow.pt", tmp_path / "b" / "flow.pt"
    for path in (first, second):
        F.save_flow(path, trained[0], settings)
    assert first.read_bytes() == second.read_bytes()


def test_save_refuses_settings_that_would_not_load(tmp_path, trained):
    flow = trained[0]
    good = {"dim": DIM, "n_factors": 2, "seed": 1, "stages": 2, "hidden": 32, "householder": 8}
    path = tmp_path / "flow.pt"
    with pytest.raises(ValueError, match="plain JSON types"):
        F.save_flow(path, flow, dict(good, sigma=np.float32(0.9)))
    with pytest.raises(ValueError, match="lack n_factors"):
        F.save_flow(path, flow, {k: v for k, v in good.items() if k != "n_factors"})
    with pytest.raises(ValueError, match="do not describe this flow"):
        F.save_flow(path, flow, dict(good, hidden=16))
    assert list(tmp_path.iterdir()) == []
