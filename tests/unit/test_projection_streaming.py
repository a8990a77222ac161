"""The streamed projection fit (issue 13, memory): randomized PCA over row chunks, every fold from the same passes.

It must agree with the exact fit on data with a clear spectrum, not depend on the chunk size beyond rounding,
repeat exactly, read at most a chunk of rows at a time (its memory then cannot grow with the rows times the
values), never use a fold's own rows for that fold's fit, and keep the inverse exact.
"""

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pandas as pd
import pytest

from audioprobe.io.atomic import write_csv
from audioprobe.latent import steps
from audioprobe.latent.projection import (
    GRAM_MAX_ROWS,
    ArrayChunks,
    Projection,
    choose_route,
    exact_peak_mb,
    fit_streamed,
    fold_projections,
    plan_streamed,
    streamed_peak_mb,
)

COMPONENTS = 6
SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"


def known_spectrum(rng, n=300, d=500, rank=40, noise=0.02):
    """Rows with singular values falling 0.8x per component, distinct column means and scales."""
    spectrum = 10 * 0.8 ** np.arange(rank)
    u = np.linalg.qr(rng.standard_normal((n, rank)))[0]
    v = np.linalg.qr(rng.standard_normal((d, rank)))[0]
    x = (u * spectrum) @ v.T * np.sqrt(n) + noise * rng.standard_normal((n, d))
    return (x * rng.uniform(0.5, 3, d) + rng.uniform(-2, 5, d)).astype(np.float32)


def folds_of(n, folds=5):
    fold_of = np.arange(n) % folds
    return fold_of, fold_of[None, :] != np.arange(folds)[:, None]


def correlations(a, b):
    return np.array([np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(a.shape[1])])


class CountingChunks(ArrayChunks):
    """Records every block handed out: how many rows, and how many passes over the rows."""

    def __init__(self, x, chunk_rows):
        super().__init__(x, chunk_rows)
        self.block_rows, self.passes = [], 0

    def __iter__(self):
        self.passes += 1
        for first, block in super().__iter__():
            self.block_rows.append(len(block))
            yield first, block


@pytest.fixture(scope="module")
def spectrum_fits():
    x = known_spectrum(np.random.default_rng(0))
    fold_of, train = folds_of(len(x))
    exact, _ = fold_projections(x, fold_of, COMPONENTS)
    streamed = fit_streamed(ArrayChunks(x, 64), train, COMPONENTS, seed=0)
    return x, fold_of, train, exact, streamed


def test_the_streamed_fit_agrees_with_the_exact_fit_on_a_clear_spectrum(spectrum_fits):
    x, _, train, exact_z, (projections, z) = spectrum_fits
    for f, projection in enumerate(projections):
        exact = Projection.fit(x[train[f]], COMPONENTS)
        np.testing.assert_allclose(projection.mean_in, exact.mean_in, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(projection.scale_in, exact.scale_in, rtol=1e-6)
        np.testing.assert_allclose(projection.explained_variance_ratio, exact.explained_variance_ratio, rtol=1e-3)
        # the same subspace (principal angles near zero) and the same axes, signs fixed alike
        cosines = np.linalg.svd(projection.components @ exact.components.T, compute_uv=False)
        assert cosines.min() > 1 - 1e-6
        np.testing.assert_allclose(np.abs(np.sum(projection.components * exact.components, axis=1)), 1, atol=1e-5)
        assert (correlations(z[f], exact_z[f]) > 0.9999).all()
        np.testing.assert_allclose(z[f], exact_z[f], atol=2e-3)


def test_subspace_iteration_keeping_only_the_last_block_agrees_too(spectrum_fits):
    """The variant the benchmark compares block Krylov with (bench/projection.py --grid)."""
    x, _, train, exact_z, _ = spectrum_fits
    _, z = fit_streamed(ArrayChunks(x, 64), train, COMPONENTS, block=12, power_iterations=3, krylov=False)
    for f in range(len(train)):
        assert (correlations(z[f], exact_z[f]) > 0.999).all()
    with pytest.raises(ValueError, match="cannot hold"):
        fit_streamed(ArrayChunks(x, 64), train, COMPONENTS, block=4, power_iterations=3, krylov=False)


def test_the_chunk_size_changes_nothing_beyond_rounding(spectrum_fits):
    x, _, train, _, (projections, z) = spectrum_fits
    for chunk_rows in (7, len(x)):
        other, other_z = fit_streamed(ArrayChunks(x, chunk_rows), train, COMPONENTS, seed=0)
        np.testing.assert_allclose(other_z, z, atol=1e-4)
        for a, b in zip(projections, other):
            np.testing.assert_allclose(a.components, b.components, atol=1e-5)
            np.testing.assert_allclose(a.mean_in, b.mean_in, rtol=1e-6, atol=1e-6)


def test_fitting_the_folds_in_batches_changes_nothing_beyond_rounding(spectrum_fits):
    x, _, train, _, (projections, z) = spectrum_fits
    batched, batched_z = fit_streamed(ArrayChunks(x, 64), train, COMPONENTS, seed=0, fits_per_batch=2)
    assert len(batched) == len(projections)
    np.testing.assert_allclose(batched_z, z, atol=1e-4)


def test_the_streamed_fit_is_deterministic(spectrum_fits):
    x, _, train, _, (projections, z) = spectrum_fits
    again, again_z = fit_streamed(ArrayChunks(x, 64), train, COMPONENTS, seed=0)
    np.testing.assert_array_equal(again_z, z)
    for a, b in zip(projections, again):
        for name in ("mean_in", "scale_in", "components", "explained_variance_ratio", "mean_out", "scale_out"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_the_fit_reads_a_few_passes_of_chunks_of_at_most_c_rows():
    """Memory flat in the rows, shown structurally: no block beyond C rows is ever handed out, and all folds
    come from 4 + 2 x power_iterations passes (not ten times that)."""
    x = known_spectrum(np.random.default_rng(1), n=200, d=120)
    _, train = folds_of(len(x), folds=10)
    for iterations in (0, 2):
        chunks = CountingChunks(x, 16)
        fit_streamed(chunks, train, COMPONENTS, power_iterations=iterations)
        assert max(chunks.block_rows) <= 16
        assert chunks.passes == 4 + 2 * iterations
        assert sum(chunks.block_rows) == chunks.passes * len(x)


def test_a_fold_fit_never_uses_the_fold_own_rows():
    """Replace fold 1's rows: fold 1's projection and its coordinates of every other row stay the same bit for
    bit (its moments, centring shift and products are sums over its training rows only)."""
    rng = np.random.default_rng(2)
    x = known_spectrum(rng, n=150, d=90)
    fold_of, train = folds_of(len(x))
    projections, z = fit_streamed(ArrayChunks(x, 32), train, COMPONENTS, seed=0)
    changed = x.copy()
    changed[fold_of == 1] = rng.normal(40, 5, changed[fold_of == 1].shape)
    again, again_z = fit_streamed(ArrayChunks(changed, 32), train, COMPONENTS, seed=0)
    for name in ("mean_in", "scale_in", "components", "explained_variance_ratio", "mean_out", "scale_out"):
        np.testing.assert_array_equal(getattr(again[1], name), getattr(projections[1], name))
    np.testing.assert_array_equal(again_z[1][fold_of != 1], z[1][fold_of != 1])
    assert not np.allclose(again_z[0], z[0], atol=1e-2)  # fold 0's fit trains on fold 1's rows


def test_the_inverse_of_a_streamed_fit_is_exact(spectrum_fits):
    x, _, _, _, (projections, _) = spectrum_fits
    projection = projections[0]
    np.testing.assert_allclose(projection.components @ projection.components.T, np.eye(COMPONENTS), atol=1e-5)
    z = projection.transform(x)
    edited = z.copy()
    edited[:, 1] += 2.0
    moved = projection.inverse(edited, x)
    np.testing.assert_allclose(projection.transform(moved), edited, atol=1e-3)
    np.testing.assert_allclose(projection.inverse(z, x), x, rtol=1e-4, atol=1e-3)

    def outside(a):  # the standardised part orthogonal to the kept components
        standard = (a - projection.mean_in) / projection.scale_in
        return standard - (standard @ projection.components.T) @ projection.components

    np.testing.assert_allclose(outside(moved), outside(x), atol=1e-3)


def test_the_route_is_exact_while_it_fits_the_budget():
    assert choose_route(800, 98_304, 720, budget_mb=4000) == "exact"  # the default run's layer2
    assert exact_peak_mb(800, 98_304, 720) <= 4000 < exact_peak_mb(3_000, 98_304, 2_700)
    assert choose_route(3_000, 98_304, 2_700, budget_mb=4000) == "streamed"
    assert choose_route(3_000, 98_304, 2_700, budget_mb=float("inf")) == "exact"
    # beyond GRAM_MAX_ROWS training rows the in-memory fit is no longer exact: stream whatever the memory
    assert choose_route(GRAM_MAX_ROWS + 2, 6_144, GRAM_MAX_ROWS + 1, budget_mb=1e9) == "streamed"
    assert choose_route(GRAM_MAX_ROWS + 2, 6_144, GRAM_MAX_ROWS + 1, budget_mb=None) == "exact"  # null: exact
    assert choose_route(50_000, 24, 45_000, budget_mb=4000) == "exact"  # narrow: an SVD of 24 columns


def test_the_streamed_plan_stays_within_the_budget_and_barely_grows_with_the_rows():
    one, four = (streamed_peak_mb(rows, 98_304, 10, 64) for rows in (9_000, 36_000))
    assert four - one < 0.05 * 27_000 * 98_304 * 4 / 2 ** 20  # far below the rows' own bytes
    assert plan_streamed(36_000, 98_304, 10, 64, budget_mb=4000) == (10, 256)
    batch, chunk = plan_streamed(36_000, 98_304, 10, 64, budget_mb=1200)
    assert batch < 10 and streamed_peak_mb(36_000, 98_304, batch, 64, chunk_rows=chunk) <= 1200


# --- the layer file side ------------------------------------------------------------------------------------

class CountingDataset:
    """An h5py dataset that records every read (first row, rows)."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def read_direct(self, out, source_sel, dest_sel):
        self.reads.append((source_sel.start, source_sel.stop - source_sel.start))
        self.data.read_direct(out, source_sel, dest_sel)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_layer_chunks_read_increasing_runs_of_at_most_c_rows(tmp_path, dtype):
    x = np.random.default_rng(3).normal(size=(40, 2, 3)).astype(dtype)
    with h5py.File(tmp_path / "layer.h5", "w") as file:
        file.create_dataset("activations", data=x, chunks=(1, 2, 3))
    index = np.array([0, 1, 2, 5, 6, 9, 10, 11, 12, 13, 20, 39])
    with h5py.File(tmp_path / "layer.h5", "r") as file:
        data = CountingDataset(file["activations"])
        blocks = [(first, block.copy()) for first, block in steps.LayerChunks(data, index, 5)]
    assert [first for first, _ in blocks] == [0, 5, 10]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), x[index].reshape(len(index), -1))
    assert all(block.dtype == np.float32 for _, block in blocks)
    starts = [start for start, _ in data.reads]
    assert starts == sorted(starts) and max(rows for _, rows in data.reads) <= 5
    with pytest.raises(ValueError, match="sort"):
        steps.LayerChunks(data, index[::-1], 5)


def write_layer_and_folds(folder, x, fold_of, order):
    """A layer file (layer14 of 0.975 s clips: 6,144 values) and folds listing its clips in ``order``."""
    import pandas as pd

    from audioprobe.io.store import write_arrays

    ids = [f"clip{i}" for i in range(len(x))]
    write_arrays(folder / "layer.h5", {"activations": x.reshape(len(x), 1, 3, 2, 1024)}, clip_ids=ids,
                 labels={"material": ["wood"] * len(x)},
                 attrs={"layer": "layer14", "axes": "patch,time,freq,channel",
                        "config": {"clip_seconds": 0.975, "model": {"kind": "yamnet"}}})
    write_csv(folder / "cv_folds.csv", pd.DataFrame({"clip_id": [ids[i] for i in order],
                                                     "group": [f"g{i}" for i in order],
                                                     "fold": fold_of[order]}))


def test_project_folds_streams_below_the_budget_in_chunks_and_agrees_with_the_exact_route(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    x = known_spectrum(rng, n=120, d=6144, rank=30)
    fold_of = np.arange(len(x)) % 4
    order = rng.permutation(len(x))[:100]  # 20 clips are in no fold (the test split)
    write_layer_and_folds(tmp_path, x, fold_of, order)
    reads = []
    original = h5py.Dataset.read_direct

    def counting(self, out, source_sel=None, dest_sel=None):
        if self.name == "/activations":
            reads.append(source_sel.stop - source_sel.start)
        return original(self, out, source_sel, dest_sel)

    monkeypatch.setattr(h5py.Dataset, "read_direct", counting)
    for budget, name in ((None, "exact.h5"), (1, "streamed.h5")):
        steps.project_folds(tmp_path / "layer.h5", tmp_path / "cv_folds.csv", tmp_path / name,
                            components=COMPONENTS, seed=0, chunk=16, memory_mb=budget)
    assert max(reads) <= 16
    with h5py.File(tmp_path / "exact.h5") as exact, h5py.File(tmp_path / "streamed.h5") as streamed:
        assert '"exact"' in exact.attrs["fit"] and '"streamed"' in streamed.attrs["fit"]
        expected, _ = fold_projections(x[order], fold_of[order], COMPONENTS)
        np.testing.assert_array_equal(exact["projected"][()], expected)
        z = streamed["projected"][()]
        for f in range(4):
            assert (np.abs(correlations(z[f], expected[f])) > 0.999).all()


def test_project_layer_streamed_saves_the_projection_it_applied(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(5)
    x = known_spectrum(rng, n=60, d=6144, rank=20)
    write_layer_and_folds(tmp_path, x, np.zeros(len(x), int), np.arange(len(x)))
    write_csv(tmp_path / "split.csv", pd.DataFrame({"clip_id": [f"clip{i}" for i in range(len(x))],
                                                    "group": [f"g{i}" for i in range(len(x))],
                                                    "split": ["train", "train", "test"] * 20}))
    steps.project_layer(tmp_path / "layer.h5", tmp_path / "split.csv", tmp_path / "projection.h5",
                        components=COMPONENTS, seed=0, chunk=8, memory_mb=1)
    projection = Projection.load(tmp_path / "projection.h5")
    z, _, _ = steps.projected(tmp_path / "projection.h5")
    np.testing.assert_allclose(z, projection.transform(x), atol=1e-4)
    train = np.arange(len(x)) % 3 != 2
    exact = Projection.fit(x[train], COMPONENTS)
    np.testing.assert_allclose(projection.explained_variance_ratio, exact.explained_variance_ratio, rtol=1e-3)
    np.testing.assert_allclose(z[train].mean(0), 0, atol=1e-4)


# --- latent.projection_memory_mb through the entry scripts ----------------------------------------------------

def run_entry_script(name, inputs: dict, output, memory_mb, monkeypatch):
    """A workflow/scripts/ entry script as Snakemake runs it, with the rule's params (the log setup left out)."""
    monkeypatch.setattr("audioprobe.workflow.setup", lambda snakemake: None)
    snakemake = SimpleNamespace(input=SimpleNamespace(**inputs), output=[str(output)], log=[], rule=name,
                                wildcards={}, params=SimpleNamespace(components=COMPONENTS, split={"seed": 0},
                                                                     memory_mb=memory_mb))
    runpy.run_path(str(SCRIPTS / f"{name}.py"), init_globals={"snakemake": snakemake})
    with h5py.File(output, "r") as file:
        return json.loads(file.attrs["fit"])


@pytest.mark.parametrize(("memory_mb", "route"), [(1, "streamed"), (None, "exact"), (4000, "exact")])
@pytest.mark.parametrize("rule", ["project_layer", "project_folds"])
def test_the_memory_budget_reaches_the_step_and_its_record(tmp_path, monkeypatch, rule, memory_mb, route):
    """A 1 MB budget streams the 80 clips x 6,144 values (their exact fit needs about 210 MB), null fits exactly,
    and the fit record keeps the budget it was planned with."""
    x = known_spectrum(np.random.default_rng(6), n=80, d=6144, rank=20)
    write_layer_and_folds(tmp_path, x, np.arange(len(x)) % 4, np.arange(len(x)))
    ids = [f"clip{i}" for i in range(len(x))]
    write_csv(tmp_path / "split.csv", pd.DataFrame({"clip_id": ids, "group": ids, "split": ["train"] * len(x)}))
    inputs = {"layer": str(tmp_path / "layer.h5"), "split": str(tmp_path / "split.csv"),
              "folds": str(tmp_path / "cv_folds.csv")}
    fit = run_entry_script(rule, inputs, tmp_path / "out.h5", memory_mb, monkeypatch)
    assert fit["route"] == route and fit["memory_mb"] == memory_mb
    if route == "streamed":
        assert fit["fits_per_batch"] >= 1 and fit["chunk_rows"] <= 256
