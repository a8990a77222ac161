"""The disentangling invertible flow of Dick et al. (Study 1), built from nflows transforms.

The flow maps a reduced latent x (e.g. the top PCA coordinates of one YAMNet layer) to z of the same size.
The last ``n_factors`` dimensions of z are the factor dimensions, one per label column in order (e.g.
material, then action); the others are residual. Training uses the supervised pair loss of Esser, Rombach
& Ommer (2020, eqs. 7-10): z is standard normal, except that the factor dimension F of two instances that
share factor F is correlated with coefficient sigma, which pulls instances of one class together along F.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import numbers

import numpy as np
import pandas as pd
import torch
from nflows.transforms import (ActNorm, AdditiveCouplingTransform, CompositeTransform, HouseholderSequence,
                               Permutation, Transform)
from nflows.utils.torchutils import create_alternating_binary_mask
from torch import nn

from audioprobe.io.atomic import atomic_path

PAIRINGS = ("uniform", "balanced")
ARCHITECTURE = ("dim", "stages", "hidden", "householder", "seed")
CHECKPOINT_KEYS = (*ARCHITECTURE, "n_factors")
VARIANCE_EPS = 1e-5
MIN_VALIDATION_PAIRS = 1024
ROUND_TRIP_ROWS = 2048
ROUND_TRIP_TOLERANCE = 1e-3
CHUNK = 4096


class FlowDiverged(RuntimeError):
    """Training produced a NaN or infinite loss, or a flow that float32 no longer inverts; no model is returned."""


# -- architecture --------------------------------------------------------------------------------------------

class CouplingNet(nn.Module):
    """3 x [Linear(hidden) + LeakyReLU] -> Linear: the shift network of one additive coupling."""

    def __init__(self, in_features: int, out_features: int, hidden: int):
        super().__init__()
        layers, width = [], in_features
        for _ in range(3):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU()]
            width = hidden
        last = nn.Linear(hidden, out_features)
        # A zero last layer makes every coupling start as the identity (as in Glow), so training begins from
        # a well-conditioned map; the gradient still reaches this layer and, through it, the others.
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.layers = nn.Sequential(*layers, last)

    def forward(self, inputs, context=None):  # nflows passes a context; this flow is unconditional
        return self.layers(inputs)


def random_permutation(dim: int) -> Permutation:
    return Permutation(torch.randperm(dim))


def additive_coupling(dim: int, hidden: int, even: bool) -> AdditiveCouplingTransform:
    """Shift the even (or odd) coordinates by a function of the others."""
    mask = create_alternating_binary_mask(dim, even=even)
    return AdditiveCouplingTransform(mask, lambda n_in, n_out: CouplingNet(n_in, n_out, hidden))


def flow_stage(dim: int, hidden: int, householder: int) -> list[Transform]:
    """Permute, couple, permute, couple on the complementary mask, reflect, normalise."""
    layers = [random_permutation(dim), additive_coupling(dim, hidden, even=True),
              random_permutation(dim), additive_coupling(dim, hidden, even=False)]
    if householder:
        layers.append(HouseholderSequence(dim, householder))
    layers.append(ActNorm(dim))
    return layers


def build_flow(dim: int, stages: int = 3, hidden: int = 64, householder: int = 8, seed: int = 0) -> Transform:
    """A CompositeTransform of ``stages`` stages; the same arguments always give the same flow.

    The flow starts as a fixed permutation of its input: the coupling nets output zero, nflows starts the
    Householder sequence as pairs of equal reflections that cancel, and ActNorm is the identity until its
    data-dependent initialisation (``initialize_actnorm``, done by ``train_flow``).
    """
    dim = _check_int("dim", dim, 2, "the coupling layers split the input into two non-empty halves")
    stages = _check_int("stages", stages, 1)
    hidden = _check_int("hidden", hidden, 1)
    householder = _check_int("householder", householder, 0)
    seed = _check_int("seed", seed, 0)
    if householder > 2 * dim:
        # nflows initialises reflection vectors from rows of the identity, two per row.
        raise ValueError(f"householder is {householder} but nflows supports at most 2 * dim = {2 * dim} "
                         f"reflections; use fewer")
    torch.manual_seed(seed)
    return CompositeTransform([layer for _ in range(stages) for layer in flow_stage(dim, hidden, householder)])


def flow_dim(flow: Transform) -> int:
    for module in flow.modules():
        if isinstance(module, ActNorm):
            return module.shift.numel()
    raise TypeError("expected a flow made by build_flow (it has no ActNorm layer)")


def initialize_actnorm(flow: Transform, x: np.ndarray) -> None:
    """Run nflows' data-dependent ActNorm initialisation on all of ``x`` rather than on the first batch.

    Each ActNorm then gives zero mean and unit variance over ``x``; ActNorms already initialised keep their
    values. Leaves the flow in training mode.
    """
    values = torch.from_numpy(_as_matrix(x, "x", flow_dim(flow)))
    flow.train()
    with torch.no_grad():
        flow(values)


def factor_dims(dim: int, n_factors: int) -> list[int]:
    """Indices of the factor dimensions of z: the last ``n_factors``, one per factor in label order."""
    dim = _check_int("dim", dim, 1)
    n_factors = _check_int("n_factors", n_factors, 1)
    if n_factors > dim:
        raise ValueError(f"{n_factors} factors do not fit into {dim} dimensions; use a larger dim")
    return list(range(dim - n_factors, dim))


# -- loss and pairs ------------------------------------------------------------------------------------------

def factor_loss(z_a: torch.Tensor, logdet_a: torch.Tensor, z_b: torch.Tensor, logdet_b: torch.Tensor,
                same: torch.Tensor, sigma: float) -> torch.Tensor:
    """Negative log-likelihood of pairs (a, b) per pair and per dimension, up to additive constants.

    ``z_a``, ``z_b``: [B, dim] flow outputs; ``logdet_a``, ``logdet_b``: [B] log|det J| of the flow there;
    ``same``: [B, n_factors], 1 where a and b share that factor. z_a is standard normal; z_b's residual
    dimensions are standard normal, and its factor dimension F is N(sigma_F z_a,F, 1 - sigma_F^2) with
    sigma_F = sigma if the pair shares F, else 0. The constants left out (the 2 pi normalisers and
    ½ log(1 - sigma_F^2)) do not depend on the flow.
    """
    _check_pair_shapes(z_a, logdet_a, z_b, logdet_b, same)
    sigma = _check_sigma(sigma)
    dim, n_factors = z_a.shape[1], same.shape[1]
    split = dim - n_factors
    rho = sigma * same.to(z_a.dtype)
    # Esser et al.'s form: a pair that does not share F gets the standard-normal term ½ z_b,F². gyoza 0.2.0
    # (which the reference notes transcribe) multiplies the term by y_F, leaving z_b,F of such pairs free.
    factor = 0.5 * (z_b[:, split:] - rho * z_a[:, split:]) ** 2 / (1 - rho ** 2 + VARIANCE_EPS)
    nll = (0.5 * z_a.pow(2).sum(1) - logdet_a
           + 0.5 * z_b[:, :split].pow(2).sum(1) + factor.sum(1) - logdet_b)
    return nll.mean() / dim


def sample_pairs(labels: np.ndarray, batch: int, rng: np.random.Generator,
                 pairing: str = "balanced", partners: PartnerTable | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (idx_a, idx_b) of ``batch`` pairs; a is uniform over the rows.

    "uniform": b is uniform too (the original), so for a factor with k balanced classes only 1/k of the
    pairs share it. "balanced": for each pair and independently for each factor, b shares that factor
    with probability 1/2, drawn uniformly among the other rows that match the drawn same/different
    pattern; where no row matches, b falls back to uniform. ``partners`` (a :class:`PartnerTable` of the
    same ``labels``) saves rebuilding the candidate rows on every call: training draws thousands of batches.
    """
    if partners is None:
        labels = _check_labels(labels, "labels")
    batch = _check_int("batch", batch, 1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy Generator, e.g. np.random.default_rng(seed)")
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing {pairing!r} is unknown; use one of {', '.join(PAIRINGS)}")
    idx_a = rng.integers(len(labels), size=batch)
    if pairing == "uniform":
        return idx_a, rng.integers(len(labels), size=batch)
    return idx_a, (partners or PartnerTable(labels)).draw(idx_a, rng)


class PartnerTable:
    """The rows a balanced pair's b may come from, for each cell (one combination of classes) of a and each
    same/different pattern over the factors; built once per label matrix, each candidate list on first use.

    Lists are sorted row indices, so draws are the same whether or not a table is reused."""

    def __init__(self, labels: np.ndarray):
        labels = _check_labels(labels, "labels")
        self.n_rows, self.n_factors = labels.shape
        self.cells, cell_of = np.unique(labels, axis=0, return_inverse=True)
        self.cell_of = cell_of.reshape(-1)
        self.patterns = 2 ** self.n_factors
        self._candidates: dict[int, np.ndarray] = {}

    def candidates(self, key: int) -> np.ndarray:
        """Rows matching a's cell on exactly the factors that ``key``'s pattern marks as shared."""
        if key not in self._candidates:
            cell, pattern = divmod(key, self.patterns)
            same = ((pattern >> np.arange(self.n_factors)) & 1) == 1
            matching_cells = np.all((self.cells == self.cells[cell]) == same, axis=1)
            self._candidates[key] = np.flatnonzero(matching_cells[self.cell_of])
        return self._candidates[key]

    def draw(self, idx_a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        want_same = rng.random((len(idx_a), self.n_factors)) < 0.5
        keys = self.cell_of[idx_a] * self.patterns + want_same @ (1 << np.arange(self.n_factors))
        idx_b = np.empty_like(idx_a)
        for key in np.unique(keys):
            rows = np.flatnonzero(keys == key)
            candidates = self.candidates(int(key))
            if int(key) % self.patterns == self.patterns - 1:
                # the candidates are a's own cell: leave a out, a pair with itself teaches nothing
                if len(candidates) > 1:
                    pick = rng.integers(len(candidates) - 1, size=len(rows))
                    pick += pick >= np.searchsorted(candidates, idx_a[rows])
                    idx_b[rows] = candidates[pick]
                    continue
                candidates = candidates[:0]
            if len(candidates):
                idx_b[rows] = candidates[rng.integers(len(candidates), size=len(rows))]
            else:
                idx_b[rows] = rng.integers(self.n_rows, size=len(rows))
        return idx_b


def pair_loss(flow: Transform, x: torch.Tensor, labels: np.ndarray, idx_a: np.ndarray, idx_b: np.ndarray,
              sigma: float) -> torch.Tensor:
    z, logdet = flow(torch.cat([x[idx_a], x[idx_b]]))
    n = len(idx_a)
    same = torch.from_numpy(labels[idx_a] == labels[idx_b])
    return factor_loss(z[:n], logdet[:n], z[n:], logdet[n:], same, sigma)


# -- training ------------------------------------------------------------------------------------------------

def train_flow(z_train: np.ndarray, labels_train: np.ndarray, z_val: np.ndarray | None,
               labels_val: np.ndarray | None, *,
               stages: int, hidden: int, householder: int, sigma: float, epochs: int, batch_size: int,
               learning_rate: float, patience: int, pairing: str, seed: int,
               log: logging.Logger | None = None) -> tuple[Transform, pd.DataFrame]:
    """Fit a flow to ``z_train`` [N, dim] with integer class codes ``labels_train`` [N, n_factors].

    Adam on ``N // batch_size`` batches of freshly sampled pairs per epoch; after each epoch the loss on a
    fixed, seeded set of validation pairs decides early stopping, and the weights of the best epoch are
    returned, in eval mode. Without validation data (``z_val`` None) there is no early stopping: the flow
    trains for all ``epochs`` and the last epoch is kept (never stop on clips that are later evaluated).
    Returns (flow, curve) with curve columns epoch, train_loss (mean over the epoch's batches), val_loss
    (NaN without validation data), in nats per dimension, and kept (True on the epoch whose weights are
    returned). Raises FlowDiverged rather than return a flow whose loss became NaN or infinite or that no
    longer inverts its training data (``check_invertible``).
    """
    x_train, y_train = _check_data(z_train, labels_train, "z_train", "labels_train")
    validate = z_val is not None
    if validate:
        x_val, y_val = _check_data(z_val, labels_val, "z_val", "labels_val")
    else:
        x_val, y_val = x_train[:0], y_train[:0]
    dim, n_factors = x_train.shape[1], y_train.shape[1]
    if validate and (x_val.shape[1] != dim or y_val.shape[1] != n_factors):
        raise ValueError(f"validation data has {x_val.shape[1]} dimensions and {y_val.shape[1]} factors but "
                         f"training data has {dim} and {n_factors}; pass both from the same projection")
    factor_dims(dim, n_factors)
    _check_trainable(x_train, y_train)
    sigma = _check_sigma(sigma)
    epochs = _check_int("epochs", epochs, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    patience = _check_int("patience", patience, 1)
    seed = _check_int("seed", seed, 0)
    if not (isinstance(learning_rate, numbers.Real) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing {pairing!r} is unknown; use one of {', '.join(PAIRINGS)}")

    flow = build_flow(dim, stages, hidden, householder, seed)
    initialize_actnorm(flow, x_train)
    train_tensor, val_tensor = torch.from_numpy(x_train), torch.from_numpy(x_val)
    optimizer = torch.optim.Adam(flow.parameters(), lr=learning_rate)
    train_seed, val_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(train_seed)
    val_pairs = sample_pairs(y_val, max(len(y_val), MIN_VALIDATION_PAIRS), np.random.default_rng(val_seed),
                             pairing) if validate else None
    partners = PartnerTable(y_train)
    batches = max(1, len(x_train) // batch_size)
    if log:
        log.info("flow: %d training rows, %d dimensions, %d factors; %d batches of %d pairs per epoch",
                 len(x_train), dim, n_factors, batches, batch_size)
        if not validate:
            log.warning("flow: no validation clips, so no early stopping: training for all %d epochs and "
                        "keeping the last", epochs)

    rows, best_loss, best_state, best_epoch = [], math.inf, None, 0
    for epoch in range(1, epochs + 1):
        flow.train()
        losses = []
        for _ in range(batches):
            loss = pair_loss(flow, train_tensor, y_train, *sample_pairs(y_train, batch_size, rng, pairing, partners),
                             sigma)
            losses.append(loss.item())
            _check_diverged(losses[-1], "training", epoch, learning_rate)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        flow.eval()
        val_loss = math.nan
        if validate:
            with torch.no_grad():
                val_loss = pair_loss(flow, val_tensor, y_val, *val_pairs, sigma).item()
            _check_diverged(val_loss, "validation", epoch, learning_rate)
        rows.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
        if log:
            log.info("flow epoch %d/%d: train loss %.4f, validation loss %.4f nats/dim",
                     epoch, epochs, rows[-1]["train_loss"], val_loss)
        if not validate:
            best_epoch = epoch
        elif val_loss < best_loss:
            best_loss, best_state, best_epoch = val_loss, copy.deepcopy(flow.state_dict()), epoch
        elif epoch - best_epoch >= patience:
            if log:
                log.info("flow: no improvement for %d epochs, stopping; keeping epoch %d", patience, best_epoch)
            break
    if validate:
        flow.load_state_dict(best_state)
    flow.eval()
    check_invertible(flow, x_train[::max(1, len(x_train) // ROUND_TRIP_ROWS)],
                     hint=f"lower the learning rate (now {learning_rate:g})")
    curve = pd.DataFrame(rows, columns=["epoch", "train_loss", "val_loss"])
    return flow, curve.assign(kept=curve["epoch"] == best_epoch)


def check_invertible(flow: Transform, x: np.ndarray, tolerance: float = ROUND_TRIP_TOLERANCE,
                     hint: str = "") -> None:
    """Raise FlowDiverged if inverse(forward(x)) misses x by more than ``tolerance`` * max(1, max |x|).

    A flow can keep a finite loss while its weights grow so large that float32 no longer inverts it; such a
    flow is useless for latent edits, which go forward and back.
    """
    values = _as_matrix(x, "x", flow_dim(flow))
    error = round_trip_error(flow, values)
    if not error <= tolerance * max(1.0, float(np.max(np.abs(values)))):
        raise FlowDiverged(f"the flow no longer inverts accurately (largest round-trip error {error:.3g} on data "
                           f"of magnitude up to {np.max(np.abs(values)):.3g})" + (f"; {hint}" if hint else ""))


def _check_diverged(loss: float, which: str, epoch: int, learning_rate: float) -> None:
    if not math.isfinite(loss):
        raise FlowDiverged(f"the flow's {which} loss became {loss} in epoch {epoch}; lower the learning rate "
                           f"(now {learning_rate:g}, try {learning_rate / 10:g}) or check the inputs for "
                           f"extreme values")


def _check_trainable(x: np.ndarray, labels: np.ndarray) -> None:
    for factor in range(labels.shape[1]):
        classes = np.unique(labels[:, factor])
        if len(classes) < 2:
            raise ValueError(f"label column {factor} has only class {classes.tolist()} in the "
                             f"training data; the flow needs at least 2 classes per factor")
    constant = np.flatnonzero(x.std(axis=0) == 0)
    if len(constant):
        raise ValueError(f"z_train dimensions {constant.tolist()} are constant, which ActNorm cannot scale; "
                         f"drop them or project to fewer dimensions")


# -- applying the flow ---------------------------------------------------------------------------------------

def forward(flow: Transform, x: np.ndarray, batch_size: int = CHUNK) -> np.ndarray:
    """z = flow(x) for a [N, dim] array, in float32 chunks of ``batch_size`` rows, without gradients."""
    return _apply(flow, x, "x", batch_size, inverse=False)


def inverse(flow: Transform, z: np.ndarray, batch_size: int = CHUNK) -> np.ndarray:
    """x = flow^-1(z) for a [N, dim] array, in float32 chunks of ``batch_size`` rows, without gradients."""
    return _apply(flow, z, "z", batch_size, inverse=True)


def round_trip_error(flow: Transform, z: np.ndarray) -> float:
    """max |inverse(forward(z)) - z| over all entries, in float32.

    ``z`` are inputs of the flow (e.g. the PCA latents given to ``train_flow``): they go forward to the
    factor space and back, the path a latent edit takes.
    """
    values = _as_matrix(z, "z", flow_dim(flow))
    if not len(values):
        raise ValueError("z has no rows; pass at least one")
    return float(np.max(np.abs(inverse(flow, forward(flow, values)) - values)))


def _apply(flow: Transform, values, name: str, batch_size: int, inverse: bool) -> np.ndarray:
    dim = flow_dim(flow)
    values = _as_matrix(values, name, dim)
    batch_size = _check_int("batch_size", batch_size, 1)
    step = flow.inverse if inverse else flow
    was_training = flow.training
    flow.eval()  # in training mode an uninitialised ActNorm would initialise itself on these values
    try:
        with torch.no_grad():
            chunks = [step(torch.from_numpy(values[start:start + batch_size]))[0].numpy()
                      for start in range(0, len(values), batch_size)]
    finally:
        flow.train(was_training)
    return np.concatenate(chunks) if chunks else np.empty((0, dim), np.float32)


# -- checkpoints ---------------------------------------------------------------------------------------------

def save_flow(path, flow: Transform, settings: dict) -> None:
    """Write {"state_dict", "settings"} with torch.save, atomically.

    ``settings`` must hold plain JSON types (so the file loads with ``weights_only=True``) and at least the
    build_flow arguments dim, stages, hidden, householder, seed, plus n_factors; the flow is rebuilt from
    them before writing, so a checkpoint that would not load is never written.
    """
    settings = _plain_settings(settings)
    state = {key: value.detach().cpu().clone() for key, value in flow.state_dict().items()}
    try:
        _rebuild(settings).load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"settings {_architecture(settings)} do not describe this flow; pass the arguments it "
                         f"was built with ({error})") from error
    # Through a file object: given a path, torch.save names the archive's inner folder after the (random)
    # temporary file name, and two identical flows would be written as different bytes.
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save({"state_dict": state, "settings": settings}, handle)


def load_flow(path) -> tuple[Transform, dict]:
    """(flow in eval mode, settings) from a checkpoint written by save_flow."""
    checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(checkpoint, dict) or set(checkpoint) != {"state_dict", "settings"}:
        raise ValueError(f"{path} is not a flow checkpoint written by save_flow")
    settings = _plain_settings(checkpoint["settings"])
    flow = _rebuild(settings)
    flow.load_state_dict(checkpoint["state_dict"])
    flow.eval()
    return flow, settings


def _plain_settings(settings) -> dict:
    if not isinstance(settings, dict):
        raise TypeError(f"settings must be a dict, got {type(settings).__name__}")
    try:
        plain = json.loads(json.dumps(settings, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"settings must hold plain JSON types (dict, list, str, int, float, bool, None) so the "
                         f"checkpoint loads with weights_only=True ({error}); convert numpy values with "
                         f".item() or .tolist()") from error
    missing = [key for key in CHECKPOINT_KEYS if key not in plain]
    if missing:
        raise ValueError(f"settings lack {', '.join(missing)}; a checkpoint needs {', '.join(CHECKPOINT_KEYS)}")
    factor_dims(plain["dim"], plain["n_factors"])
    return plain


def _architecture(settings: dict) -> dict:
    return {key: settings[key] for key in ARCHITECTURE}


def _rebuild(settings: dict) -> Transform:
    return build_flow(**_architecture(settings))


# -- validation ----------------------------------------------------------------------------------------------

def _check_int(name: str, value, minimum: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}" + (f": {why}" if why else ""))
    return int(value)


def _check_sigma(sigma) -> float:
    if not (isinstance(sigma, numbers.Real) and 0 <= sigma < 1):
        raise ValueError(f"sigma is the correlation of a shared factor and must lie in [0, 1), got {sigma!r}")
    return float(sigma)


def _as_matrix(values, name: str, dim: int | None = None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [instances, dimensions], got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} has {array.shape[1]} dimensions but the flow has {dim}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_labels(labels, name: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array [instances, factors] with at least one row and column, got "
                         f"shape {array.shape}; for a single factor pass labels[:, None]")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class codes, got dtype {array.dtype}; encode the classes "
                         f"first, e.g. with pandas.factorize")
    return array


def _check_data(z, labels, z_name: str, labels_name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_matrix(z, z_name), _check_labels(labels, labels_name)
    if len(x) != len(y):
        raise ValueError(f"{z_name} has {len(x)} rows but {labels_name} has {len(y)}; they must match row by row")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise ValueError(f"{z_name} has NaN or infinite values (as float32) in {len(bad)} of {len(x)} rows (first: "
                         f"row {bad[0]}); drop or impute them before training")
    return x, y


def _check_pair_shapes(z_a, logdet_a, z_b, logdet_b, same) -> None:
    if z_a.ndim != 2 or z_b.shape != z_a.shape:
        raise ValueError(f"z_a and z_b must both be [batch, dim], got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    batch, dim = z_a.shape
    if logdet_a.shape != (batch,) or logdet_b.shape != (batch,):
        raise ValueError(f"logdet_a and logdet_b must be [batch] = [{batch}], got {tuple(logdet_a.shape)} and "
                         f"{tuple(logdet_b.shape)}")
    if same.ndim != 2 or same.shape[0] != batch or not 1 <= same.shape[1] <= dim:
        raise ValueError(f"same must be [batch, n_factors] with 1 <= n_factors <= dim = {dim}, got "
                         f"{tuple(same.shape)}")
    if not bool(((same == 0) | (same == 1)).all()):
        raise ValueError("same must hold 0 or 1 (does the pair share the factor?)")
