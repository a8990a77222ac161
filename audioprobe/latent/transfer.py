"""Latent transfer (Dick et al., Figure 2): move atypical sounds along a factor axis, watch the output.

For one factor (say material), every test clip M whose factor value lies far from its own class mean
(atypical) gets a typical partner P of its own class and a typical partner Q of another class, both with
M's value of the other factor (action) and both from another recording than M, each drawn once.
M's factor value is replaced by P's (M->P) or Q's (M->Q); M itself goes through the same round trip
unchanged (M), so all three differ only in the edit. The network then continues from the edited layer,
and distances in its output space say whether M moved towards P's or Q's semantics. The effects are tested
over M's recordings (:func:`recording_means`): clips of one recording overlap and are not independent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CONDITIONS = ("M", "M->P", "M->Q")
REFERENCES = ("P", "Q")
SPACES = ("logits", "log_probabilities")


def choose_partners(values: np.ndarray, classes: np.ndarray, others: np.ndarray | None = None,
                    groups: np.ndarray | None = None, *, typical_quantile: float, max_clips: int,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Rows m, p, q (indices into ``values``), the classes of M and Q, M's value of the other factor, and
    whether P and Q share it (p_other_fixed, q_other_fixed).

    ``groups`` gives each clip's source recording: P and Q never come from M's recording (clips of one
    recording overlap, so a P from it would be "closer" for being the same sound, not the same class; the
    original had a single recording per material x action pair and could not avoid this). Without
    ``groups`` every clip counts as its own recording.

    Typical clips lie within the ``typical_quantile`` of their class's distances to the class mean;
    atypical clips lie beyond it. As in the original, the other factor is held fixed: P is a typical clip of
    M's class and Q one of another class (drawn uniformly among the classes that have one), both with M's
    value of the other factor (``others``; editing material keeps the action). Partners are drawn without
    replacement: no clip is P twice or Q twice, and each atypical clip is M at most once. Where a
    combination has too few typical clips, M is dropped once they are used up, as the original cropped M, P
    and Q to equal numbers. Fallback, only where no typical clip of another recording has M's value of the
    other factor (nested factors, a combination with a single recording among the clips, or one whose other
    recordings' clips are all atypical for their class): the
    partner is drawn with any value of it and flagged False in p_other_fixed / q_other_fixed. The
    recording rule has no fallback: an M with no partner outside its own recording is dropped.
    """
    values, classes = np.asarray(values, float), np.asarray(classes).astype(str)
    others = np.zeros(len(values), str) if others is None else np.asarray(others).astype(str)
    groups = np.arange(len(values)).astype(str) if groups is None else np.asarray(groups).astype(str)
    if not len(values) == len(classes) == len(others) == len(groups):
        raise ValueError(f"values, classes, others and groups must have one entry per clip, got {len(values)}, "
                         f"{len(classes)}, {len(others)} and {len(groups)}")
    names = sorted(set(classes))
    if len(names) < 2:
        raise ValueError(f"latent transfer needs at least two classes of the factor, found {names}")
    typical, atypical = _typical_and_atypical(values, classes, names, typical_quantile)
    rng.shuffle(atypical)
    free = {"p": set(typical.tolist()), "q": set(typical.tolist())}
    rows = []
    for m in atypical:
        if len(rows) >= max_clips:
            break
        own, other = classes[m], others[m]
        elsewhere = typical[groups[typical] != groups[m]]  # never a clip of M's own recording
        p, p_fixed = _draw(free["p"], elsewhere, [own], classes, others, other, rng)
        q, q_fixed = _draw(free["q"], elsewhere, [c for c in names if c != own], classes, others, other, rng)
        if p is None or q is None:
            continue
        free["p"].discard(p)
        free["q"].discard(q)
        rows.append({"m": int(m), "p": int(p), "q": int(q), "class_m": own, "class_q": classes[q],
                     "other": other, "p_other_fixed": p_fixed, "q_other_fixed": q_fixed,
                     "group_m": groups[m], "group_p": groups[p], "group_q": groups[q]})
    if len(rows) < 2:
        lonely = [str(c) for c in names if len(set(groups[classes == c])) < 2]
        why = (f"; classes {lonely} have clips of a single recording, so no P can come from another one"
               if lonely else "")
        raise ValueError(f"only {len(rows)} atypical clip(s) found typical partners in other recordings{why}: the "
                         "clips are too few; give each class at least 2 recordings among the chosen clips (raise "
                         "latent.split.test_fraction or add recordings), use the clips 'all' or another "
                         "latent.transfer.typical_quantile")
    return pd.DataFrame(rows)


def _typical_and_atypical(values, classes, names, typical_quantile) -> tuple[np.ndarray, np.ndarray]:
    means = {c: values[classes == c].mean() for c in names}
    distance = np.abs(values - np.array([means[c] for c in classes]))
    typical, atypical = [], []
    for name in names:
        members = np.flatnonzero(classes == name)
        cut = np.quantile(distance[members], typical_quantile)
        typical.extend(members[distance[members] <= cut])
        atypical.extend(members[distance[members] > cut])
    return np.array(sorted(typical), dtype=int), np.array(sorted(atypical), dtype=int)


def _draw(free: set, typical: np.ndarray, wanted: list[str], classes, others, other, rng):
    """(clip, other factor kept): an unused clip of ``typical`` (the typical clips outside M's recording)
    of one of the ``wanted`` classes with the other factor's value ``other`` (class drawn uniformly among
    those that have one left, then the clip), or (None, _) once such clips are used up. Only if no such
    clip of those classes ever had that value is the value let go (the fallback)."""
    wanted_typical = typical[np.isin(classes[typical], wanted)]
    fixed = bool((others[wanted_typical] == other).any())
    pool = np.array(sorted(free), dtype=int)
    pool = pool[np.isin(pool, wanted_typical)] if len(pool) else pool
    candidates = pool
    if fixed:
        candidates = candidates[others[candidates] == other]
    if not len(candidates):
        return None, fixed
    present = sorted(set(classes[candidates]))
    chosen = present[rng.integers(len(present))]
    candidates = candidates[classes[candidates] == chosen]
    return int(candidates[rng.integers(len(candidates))]), fixed


def edited_latents(latents: np.ndarray, partners: pd.DataFrame, dim: int) -> dict[str, np.ndarray]:
    """Flow latents for M (unchanged), M->P and M->Q, and for the partners P and Q."""
    m, p, q = (partners[c].to_numpy() for c in ("m", "p", "q"))
    to_p, to_q = latents[m].copy(), latents[m].copy()
    to_p[:, dim] = latents[p, dim]
    to_q[:, dim] = latents[q, dim]
    return {"M": latents[m].copy(), "M->P": to_p, "M->Q": to_q, "P": latents[p].copy(), "Q": latents[q].copy()}


SCORES = ("sigmoid", "softmax")


def output_vectors(logits: np.ndarray, space: str, scores: str = "sigmoid") -> np.ndarray:
    """Clip-level output vectors: per-patch logits averaged over patches, in the chosen space; log-probabilities
    are the model's own (``scores``: independent sigmoids, as YAMNet and CREPE, or one softmax)."""
    if space not in SPACES:
        raise ValueError(f"transfer.distance_space must be one of {', '.join(SPACES)}, not {space!r}")
    if scores not in SCORES:
        raise ValueError(f"scores must be one of {', '.join(SCORES)}, not {scores!r}")
    mean_logits = np.asarray(logits, np.float64).reshape(logits.shape[0], -1, logits.shape[-1]).mean(axis=1)
    if space == "logits":
        return mean_logits
    if scores == "softmax":
        shifted = mean_logits - mean_logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.logaddexp(0.0, -mean_logits)  # log(sigmoid(x)), computed stably


def distances(outputs: dict[str, np.ndarray], space: str, scores: str = "sigmoid") -> pd.DataFrame:
    """Euclidean distance of each condition to each reference, one row per clip x reference x condition."""
    vectors = {name: output_vectors(values, space, scores) for name, values in outputs.items()}
    rows = []
    for reference in REFERENCES:
        for condition in CONDITIONS:
            d = np.linalg.norm(vectors[condition] - vectors[reference], axis=1)
            rows.append(pd.DataFrame({"pair": np.arange(d.shape[0]), "reference": reference,
                                      "condition": condition, "distance": d}))
    return pd.concat(rows, ignore_index=True)


def recording_means(table: pd.DataFrame) -> pd.DataFrame:
    """Each M recording's mean distance per reference x condition: the unit of the transfer tests.

    ``table`` (see :func:`distances`) needs a ``group_m`` column, M's source recording. Returns columns
    group_m, reference, condition, distance (the mean over that recording's pairs) and n_pairs.
    """
    if "group_m" not in table.columns:
        raise ValueError("the distance table has no group_m column (M's recording): rerun transfer_edit so the "
                         "edited clips carry their recordings")
    grouped = table.groupby(["group_m", "reference", "condition"], sort=True)["distance"]
    return grouped.agg(distance="mean", n_pairs="size").reset_index()


def comparisons(table: pd.DataFrame, unit: str = "pair") -> list[tuple]:
    """The paired comparisons of Figure 2: each edit against the unedited M, for both references, paired by
    ``unit``: "group_m" for a :func:`recording_means` table (n = M's recordings, what the workflow tests),
    "pair" for a clip-level :func:`distances` table."""
    if unit not in table.columns:
        raise ValueError(f"the distance table has no {unit!r} column to pair the conditions by")
    rows = []
    for reference in REFERENCES:
        by_condition = {c: table[(table.reference == reference) & (table.condition == c)]
                        .sort_values(unit)["distance"].to_numpy() for c in CONDITIONS}
        for edit in ("M->P", "M->Q"):
            rows.append((f"d({reference}, M)", by_condition["M"], f"d({reference}, {edit})", by_condition[edit]))
    return rows
