"""Latent transfer (Dick et al., Figure 2): move atypical sounds along a factor axis, watch the output.

For one factor (say material), every held-out clip M whose factor value lies far from its own class
mean (atypical) gets a typical partner P of its own class and a typical partner Q of another class.
M's factor value is replaced by P's (M->P) or Q's (M->Q); M itself goes through the same round trip
unchanged (M), so all three differ only in the edit. The network then continues from the edited layer,
and distances in its output space say whether M moved towards P's or Q's semantics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CONDITIONS = ("M", "M->P", "M->Q")
REFERENCES = ("P", "Q")
SPACES = ("logits", "log_probabilities")


def choose_partners(values: np.ndarray, classes: np.ndarray, *, typical_quantile: float, max_clips: int,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Rows m, p, q (indices into ``values``) and the classes of M and Q.

    Typical clips lie within the ``typical_quantile`` of their class's distances to the class mean;
    atypical clips lie beyond it. Each atypical clip is used once.
    """
    values, classes = np.asarray(values, float), np.asarray(classes).astype(str)
    names = sorted(set(classes))
    if len(names) < 2:
        raise ValueError(f"latent transfer needs at least two classes of the factor, found {names}")
    means = {c: values[classes == c].mean() for c in names}
    distance = np.abs(values - np.array([means[c] for c in classes]))
    typical, atypical = {}, []
    for name in names:
        members = np.flatnonzero(classes == name)
        cut = np.quantile(distance[members], typical_quantile)
        typical[name] = members[distance[members] <= cut]
        atypical.extend(members[distance[members] > cut])
    atypical = np.array(sorted(atypical), dtype=int)
    rng.shuffle(atypical)
    rows = []
    for m in atypical[:max_clips]:
        own = classes[m]
        other = names[(names.index(own) + 1 + rng.integers(len(names) - 1)) % len(names)]
        rows.append({"m": int(m), "p": int(rng.choice(typical[own])), "q": int(rng.choice(typical[other])),
                     "class_m": own, "class_q": other})
    if not rows:
        raise ValueError("no atypical clips to transfer: every class has too few held-out clips")
    return pd.DataFrame(rows)


def edited_latents(latents: np.ndarray, partners: pd.DataFrame, dim: int) -> dict[str, np.ndarray]:
    """Flow latents for M (unchanged), M->P and M->Q, and for the partners P and Q."""
    m, p, q = (partners[c].to_numpy() for c in ("m", "p", "q"))
    to_p, to_q = latents[m].copy(), latents[m].copy()
    to_p[:, dim] = latents[p, dim]
    to_q[:, dim] = latents[q, dim]
    return {"M": latents[m].copy(), "M->P": to_p, "M->Q": to_q, "P": latents[p].copy(), "Q": latents[q].copy()}


def output_vectors(logits: np.ndarray, space: str) -> np.ndarray:
    """Clip-level output vectors: per-patch logits averaged over patches, in the chosen space."""
    if space not in SPACES:
        raise ValueError(f"transfer.distance_space must be one of {', '.join(SPACES)}, not {space!r}")
    mean_logits = np.asarray(logits, np.float64).reshape(logits.shape[0], -1, logits.shape[-1]).mean(axis=1)
    if space == "logits":
        return mean_logits
    return -np.logaddexp(0.0, -mean_logits)  # log(sigmoid(x)), computed stably


def distances(outputs: dict[str, np.ndarray], space: str) -> pd.DataFrame:
    """Euclidean distance of each condition to each reference, one row per clip x reference x condition."""
    vectors = {name: output_vectors(values, space) for name, values in outputs.items()}
    rows = []
    for reference in REFERENCES:
        for condition in CONDITIONS:
            d = np.linalg.norm(vectors[condition] - vectors[reference], axis=1)
            rows.append(pd.DataFrame({"pair": np.arange(d.shape[0]), "reference": reference,
                                      "condition": condition, "distance": d}))
    return pd.concat(rows, ignore_index=True)


def comparisons(table: pd.DataFrame) -> list[tuple]:
    """The paired comparisons of Figure 2: each edit against the unedited M, for both references."""
    rows = []
    for reference in REFERENCES:
        by_condition = {c: table[(table.reference == reference) & (table.condition == c)]
                        .sort_values("pair")["distance"].to_numpy() for c in CONDITIONS}
        for edit in ("M->P", "M->Q"):
            rows.append((f"d({reference}, M)", by_condition["M"], f"d({reference}, {edit})", by_condition[edit]))
    return rows
