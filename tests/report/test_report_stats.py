import math

import pytest

from asym_sweep.report.stats import mean_ci, t_quantile


@pytest.mark.parametrize(
    "df, expected", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (29, 2.0452)]
)
def test_t_quantile_matches_printed_tables(df: int, expected: float) -> None:
    assert t_quantile(df) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_needs_a_degree_of_freedom() -> None:
    with pytest.raises(ValueError):
        t_quantile(0)


def test_mean_ci_by_hand() -> None:
    # mean 0.82, s = 0.02, t(0.975, 2) = 4.302653: half width 4.302653 * 0.02 / sqrt(3) = 0.0496828
    mean, lo, hi, n = mean_ci([0.80, 0.82, 0.84])
    assert (mean, n) == (pytest.approx(0.82), 3)
    assert lo == pytest.approx(0.82 - 0.0496828, abs=1e-6)
    assert hi == pytest.approx(0.82 + 0.0496828, abs=1e-6)


def test_single_and_empty_groups_have_no_interval() -> None:
    mean, lo, hi, n = mean_ci([0.9])
    assert (mean, n) == (0.9, 1) and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in mean_ci([])[:3]) and mean_ci([])[3] == 0
    assert mean_ci([0.5, float("nan"), 0.7])[3] == 2
