import math

import numpy as np
import pytest

from audioprobe import stats


def test_bonferroni_multiplies_by_the_number_of_tests_and_caps_at_one():
    np.testing.assert_allclose(stats.bonferroni([0.01, 0.04, 0.5]), [0.03, 0.12, 1.0])


def test_holm_matches_hand_computation():
    # sorted: 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> running max 0.06; back in input order
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_holm_caps_at_one_and_keeps_the_order_of_raw_pvalues():
    raw = np.array([0.2, 0.001, 0.6, 0.04, 0.3])
    adjusted = stats.holm(raw)
    # 0.001x5=0.005, 0.04x4=0.16, 0.2x3=0.6, 0.3x2=0.6, 0.6x1=0.6
    np.testing.assert_allclose(adjusted, [0.6, 0.005, 0.6, 0.16, 0.6])
    order = np.argsort(raw)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert stats.holm([0.4, 0.5, 0.9]).max() == 1.0
    assert np.all(stats.holm(raw) <= stats.bonferroni(raw))


def test_corrections_leave_untested_rows_out_of_the_family():
    np.testing.assert_allclose(stats.bonferroni([0.01, np.nan, 0.02]), [0.02, np.nan, 0.04])
    np.testing.assert_allclose(stats.holm([0.01, np.nan, 0.02]), [0.02, np.nan, 0.02])


def test_corrections_reject_values_that_are_not_pvalues():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([0.1, 1.5])
    with pytest.raises(ValueError, match="1-D"):
        stats.bonferroni([[0.1, 0.2]])


def test_mean_and_se():
    mean, se = stats.mean_and_se([1.0, 2.0, 3.0, 6.0])
    assert mean == 3.0
    assert se == pytest.approx(math.sqrt(14 / 3) / 2)
    assert math.isnan(stats.mean_and_se([5.0])[1])
    with pytest.raises(ValueError, match="empty"):
        stats.mean_and_se([])


def test_paired_t_matches_hand_computation():
    a = np.array([0.81, 0.77, 0.90, 0.85, 0.79, 0.88])
    b = np.array([0.70, 0.74, 0.80, 0.83, 0.71, 0.80])
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    result = stats.paired_comparison(a, b, label_a="layer3", label_b="layer1")
    assert result["t"] == pytest.approx(t)
    assert result["df"] == 5 and result["n"] == 6
    assert result["mean_diff"] == pytest.approx(d.mean())
    assert result["se_diff"] == pytest.approx(d.std(ddof=1) / math.sqrt(6))
    assert result["mean_a"] == pytest.approx(a.mean()) and result["mean_b"] == pytest.approx(b.mean())
    # two-sided p from the t distribution with n - 1 degrees of freedom
    from scipy.stats import t as t_dist

    assert result["p_t"] == pytest.approx(2 * t_dist.sf(abs(t), 5))
    # all six differences positive: the exact two-sided signed-rank p is 2 / 2**6
    assert result["w"] == 0.0
    assert result["p_wilcoxon"] == pytest.approx(2 / 64)
    assert result["comparison"] == "layer3 vs layer1"
    assert result["note"] == ""


def test_all_zero_differences_give_p_one_and_say_so():
    x = [0.5, 0.6, 0.7, 0.8]
    result = stats.paired_comparison(x, x, label_a="a", label_b="b")
    assert result["p_wilcoxon"] == 1.0 and result["p_t"] == 1.0
    assert math.isnan(result["t"])
    assert "zero" in result["note"]


def test_paired_comparison_validates_its_inputs():
    with pytest.raises(ValueError, match="same length"):
        stats.paired_comparison([1, 2, 3], [1, 2], label_a="a", label_b="b")
    with pytest.raises(ValueError, match="at least 2 pairs"):
        stats.paired_comparison([1], [2], label_a="a", label_b="b")
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_comparison([1, np.nan], [2, 3], label_a="a", label_b="b")


def test_compare_pairs_adds_corrected_columns_across_rows():
    rng = np.random.default_rng(1)
    base = rng.normal(size=12)
    rows = [("x", base + 1.0 + rng.normal(0, 0.1, 12), "y", base),
            ("x", base + 0.05 + rng.normal(0, 0.5, 12), "z", base),
            ("y", base, "z", base + rng.normal(0, 1, 12))]
    table = stats.compare_pairs(rows)
    assert list(table["comparison"]) == ["x vs y", "x vs z", "y vs z"]
    for column in ("p_t", "p_wilcoxon"):
        np.testing.assert_allclose(table[f"{column}_bonferroni"], np.minimum(3 * table[column], 1))
        np.testing.assert_allclose(table[f"{column}_holm"], stats.holm(table[column]))
        assert np.all(table[f"{column}_holm"] >= table[column])
    assert table.loc[0, "p_t"] < 1e-6
    with pytest.raises(ValueError, match="at least one"):
        stats.compare_pairs([])


def test_bonferroni_interval_excludes_zero_exactly_when_the_corrected_paired_t_test_is_significant():
    rng = np.random.default_rng(4)
    rows = [(f"a{i}", rng.normal(0, 1, 12), f"b{i}", rng.normal(shift, 1, 12))
            for i, shift in enumerate([0.0, 0.3, 0.8, 1.2, 2.0, 0.6])]
    table = stats.compare_pairs(rows)
    low, high = stats.confidence_interval(table["mean_diff"], table["se_diff"], table["df"], family=len(table))
    excludes_zero = (low > 0) | (high < 0)
    significant = table["p_t_bonferroni"] < 0.05
    assert excludes_zero.tolist() == significant.tolist() and 0 < significant.sum() < len(table)
    # the interval is wider than an uncorrected one, and centred on the mean difference
    plain_low, _ = stats.confidence_interval(table["mean_diff"], table["se_diff"], table["df"])
    assert (low < plain_low).all()
    np.testing.assert_allclose((low + high) / 2, table["mean_diff"])
    with pytest.raises(ValueError, match="family"):
        stats.confidence_interval(0.0, 1.0, 5, family=0)
