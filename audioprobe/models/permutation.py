"""The permuted-weights control of Tuckute et al. (2023): a network whose every learned parameter tensor has
its values shuffled (within the tensor, seeded). The architecture, the number of parameters and each tensor's
distribution of values stay; what training arranged in them is gone. A layer that predicts brain data as well
when permuted owes its score to the architecture and the input, not to what the network learned.

Fixed statistics are not parameters and stay as they were: batch-norm running means and variances (PyTorch
buffers, Keras moving_mean / moving_variance) and front ends that are not parameters of the network."""

from __future__ import annotations

import numpy as np

FIXED_STATISTICS = ("moving_mean", "moving_variance")


def permuted(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` with its entries shuffled (any shape; the same shape and dtype back)."""
    flat = np.asarray(values).ravel()
    return flat[rng.permutation(flat.size)].reshape(np.shape(values))


def permuted_all(tensors: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Each tensor shuffled, in order, from one generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    return [permuted(values, rng) for values in tensors]


def is_fixed_statistic(variable_name: str) -> bool:
    return any(part in variable_name for part in FIXED_STATISTICS)


def permuted_checksum(weights_sha256: str, seed: int) -> str:
    """What layer files record as the weights of the permuted network: the source's checksum and the seed."""
    return f"{weights_sha256}+permuted:{seed}"
