"""Statistics shared by several analyses: paired comparisons and multiple-comparison corrections.

P-value corrections accept NaN for a comparison that was not made: it stays NaN and does not count as a
test, so the family size is the number of finite p-values.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

P_COLUMNS = ("p_t", "p_wilcoxon")


def _pvalues(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a 1-D sequence, got an array of shape {p.shape}; "
                         "flatten it first")
    finite = p[~np.isnan(p)]
    if np.any((finite < 0) | (finite > 1)):
        raise ValueError(f"p-values must lie in [0, 1] (or be NaN for a test not made), got {p.tolist()}")
    return p


def bonferroni(pvalues) -> np.ndarray:
    """Bonferroni-adjusted p-values: each p times the number of tests, capped at 1."""
    p = _pvalues(pvalues)
    return np.minimum(p * np.count_nonzero(~np.isnan(p)), 1.0)


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    The i-th smallest of m p-values is multiplied by (m - i + 1); a running maximum keeps the adjusted
    values in the same order as the raw ones, and they are capped at 1.
    """
    p = _pvalues(pvalues)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    scaled = p[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def mean_and_se(values) -> tuple[float, float]:
    """Mean and standard error of the mean (sample SD with ddof=1 over sqrt(n)); SE is NaN when n = 1."""
    x = _sample(values, "values")
    se = float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return float(np.mean(x)), se


def paired_comparison(a, b, *, label_a: str, label_b: str) -> dict:
    """Compare two paired samples (a[i] goes with b[i]) with a paired t-test and a Wilcoxon signed-rank test.

    Both tests are two-sided and work on the differences d = a - b. The Wilcoxon test drops zero
    differences (scipy's default ``zero_method="wilcox"``); when every difference is zero neither test has
    anything to test, so both p-values are 1 and ``note`` says so.

    Returns a dict with: comparison, label_a, label_b, n, mean_a, mean_b, mean_diff, se_diff, t, df, p_t,
    w, p_wilcoxon, note.
    """
    x = _sample(a, label_a)
    y = _sample(b, label_b)
    if len(x) != len(y):
        raise ValueError(f"paired samples must have the same length, got {len(x)} values for {label_a!r} "
                         f"and {len(y)} for {label_b!r}")
    if len(x) < 2:
        raise ValueError(f"a paired comparison needs at least 2 pairs, got {len(x)} for {label_a!r} vs "
                         f"{label_b!r}")
    d = x - y
    mean_diff, se_diff = mean_and_se(d)
    record = {"comparison": f"{label_a} vs {label_b}", "label_a": label_a, "label_b": label_b, "n": len(d),
              "mean_a": float(np.mean(x)), "mean_b": float(np.mean(y)), "mean_diff": mean_diff,
              "se_diff": se_diff, "df": len(d) - 1}
    if np.all(d == 0):
        return {**record, "t": math.nan, "p_t": 1.0, "w": 0.0, "p_wilcoxon": 1.0,
                "note": "all differences are zero: no test, p set to 1"}
    note = ""
    if se_diff == 0:
        note = "all differences are equal and non-zero: t is infinite"
    t = _scipy_stats.ttest_rel(x, y)
    w = _scipy_stats.wilcoxon(d)
    return {**record, "t": float(t.statistic), "p_t": float(t.pvalue), "w": float(w.statistic),
            "p_wilcoxon": float(w.pvalue), "note": note}


def add_corrections(frame: pd.DataFrame, columns=P_COLUMNS) -> pd.DataFrame:
    """A copy of ``frame`` with ``{column}_bonferroni`` and ``{column}_holm`` for each p-value column,
    corrected across the rows of ``frame``."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"no p-value column {missing} in the table (it has {list(frame.columns)})")
    out = frame.copy()
    for column in columns:
        out[f"{column}_bonferroni"] = bonferroni(out[column].to_numpy(dtype=float))
        out[f"{column}_holm"] = holm(out[column].to_numpy(dtype=float))
    return out


def compare_pairs(rows) -> pd.DataFrame:
    """Run :func:`paired_comparison` on each ``(label_a, a, label_b, b)`` row and correct across the rows.

    Returns one row per comparison with the columns of :func:`paired_comparison` plus p_t_bonferroni,
    p_t_holm, p_wilcoxon_bonferroni and p_wilcoxon_holm.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("compare_pairs needs at least one (label_a, a, label_b, b) row")
    records = []
    for row in rows:
        if len(row) != 4:
            raise ValueError(f"each row must be (label_a, a, label_b, b), got a row of {len(row)} items")
        label_a, a, label_b, b = row
        records.append(paired_comparison(a, b, label_a=label_a, label_b=label_b))
    return add_corrections(pd.DataFrame.from_records(records))


def confidence_interval(mean, se, df, *, level: float = 0.95, family: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Student-t confidence interval mean ± t * se, Bonferroni-adjusted for ``family`` comparisons.

    Each interval has coverage 1 - (1 - level) / family, so an interval of a paired mean difference
    excludes 0 exactly when the two-sided paired t-test's Bonferroni-corrected p-value is below
    1 - level: a figure drawn with these intervals agrees with its stars.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    if isinstance(family, bool) or not isinstance(family, (int, np.integer)) or family < 1:
        raise ValueError(f"family must be the number of comparisons (a whole number >= 1), got {family!r}")
    mean, se = np.asarray(mean, float), np.asarray(se, float)
    half = _scipy_stats.t.ppf(1 - (1 - level) / (2 * family), np.asarray(df, float)) * se
    return mean - half, mean + half


def _sample(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name!r} must be a 1-D sequence of numbers, got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{name!r} is empty; give at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name!r} contains NaN or infinite values; drop or fix them first")
    return x
