"""Is a metamer a metamer? The model must predict the same class for it as for the natural sound, and
its activations at the generating layer must resemble the natural sound's more than those of random
pairs of natural sounds resemble each other (the null distribution)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

MEASURES = ("spearman", "pearson", "snr_db")


def similarity(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Spearman rho, Pearson r, and SNR in dB = 20 log10(|b| / |a - b|) with b the reference."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return {m: float("nan") for m in MEASURES}
    error = np.linalg.norm(a - b)
    snr = float("inf") if error == 0 else 20 * np.log10(np.linalg.norm(b) / error)
    constant = np.ptp(a) == 0 or np.ptp(b) == 0
    return {"spearman": float("nan") if constant else float(stats.spearmanr(a, b).statistic),
            "pearson": float("nan") if constant else float(np.corrcoef(a, b)[0, 1]),
            "snr_db": float(snr)}


def null_distribution(activations: np.ndarray, pairs: int, rng: np.random.Generator) -> pd.DataFrame:
    """Similarities between random pairs of different natural clips at one layer."""
    n = activations.shape[0]
    if n < 2:
        raise ValueError("a null distribution needs at least two natural clips")
    first = rng.integers(0, n, pairs)
    second = (first + rng.integers(1, n, pairs)) % n  # never the same clip
    return pd.DataFrame([similarity(activations[i], activations[j]) for i, j in zip(first, second)])


def thresholds(null: pd.DataFrame, rule: str) -> dict[str, float]:
    """The value a metamer must exceed: the null's maximum, or a quantile such as 'q0.99'."""
    if rule == "max":
        return {m: float(null[m].max()) for m in MEASURES}
    if rule.startswith("q"):
        quantile = float(rule[1:])
        return {m: float(null[m].quantile(quantile)) for m in MEASURES}
    raise ValueError(f"metamers.null_threshold must be 'max' or 'q<fraction>' such as 'q0.99', not {rule!r}")


def validate(metamer_acts: np.ndarray, natural_acts: np.ndarray, metamer_pred: np.ndarray, natural_pred: np.ndarray,
             limits: dict[str, float]) -> pd.DataFrame:
    """One row per metamer: prediction match, similarities, whether each beats the null, and the verdict."""
    rows = []
    for i in range(natural_acts.shape[0]):
        scores = similarity(metamer_acts[i], natural_acts[i])
        diverged = not np.isfinite(metamer_acts[i]).all()
        beats = {f"{m}_beats_null": _beats(scores[m], limits[m]) for m in MEASURES}
        match = bool(not diverged and metamer_pred[i] == natural_pred[i])
        reasons = (["diverged"] if diverged else []) + ([] if match or diverged else ["prediction differs"]) + \
                  [f"{m} within null" for m in MEASURES if not beats[f"{m}_beats_null"] and not diverged]
        rows.append({"prediction_natural": int(natural_pred[i]), "prediction_metamer": int(metamer_pred[i]),
                     "prediction_match": match, **scores, **beats, "diverged": diverged,
                     "passed": not reasons, "reason": "; ".join(reasons)})
    return pd.DataFrame(rows)


def _beats(score: float, limit: float) -> bool:
    """Above the null's threshold. A correlation whose null already reaches 1 (a layer of a few units, such
    as logits, where random pairs can rank identically) cannot be beaten: matching it counts."""
    if not np.isfinite(score):
        return False
    saturated = limit >= 1.0 - 1e-9
    return bool(score > limit or (saturated and score >= 1.0 - 1e-9))


def pass_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Share of metamers that pass, per model and layer (every metamer counted, failed ones included)."""
    grouped = table.groupby(["model", "layer"], sort=False)
    return grouped.agg(metamers=("passed", "size"), passed=("passed", "sum"),
                       prediction_match=("prediction_match", "mean"), diverged=("diverged", "sum"),
                       median_spearman=("spearman", "median")).assign(
        pass_rate=lambda t: t["passed"] / t["metamers"]).reset_index()
