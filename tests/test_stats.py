"""empirical.stats against scipy.stats.bootstrap, closed forms and its own promises (coverage, pairing)."""
import math

import numpy as np
import pytest
import scipy.stats as ss
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical import stats


# --------------------------------------------------------------------------- against scipy
@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("n", [7, 25])
def test_same_seed_matches_scipy_bootstrap(method, n):
    # Same generator, same call: the resample indices are identical, so the intervals differ only by the
    # order of floating-point sums (1e-12 relative covers it).
    x = np.random.default_rng(n).lognormal(size=n)
    ours = stats.bootstrap(x, unit="image", method=method, resamples=4000, seed=11)
    ref = ss.bootstrap((x,), np.mean, method=method, n_resamples=4000, rng=np.random.default_rng(11))
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, rel=1e-12)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, rel=1e-12)
    assert ours.estimate == pytest.approx(x.mean(), rel=1e-12)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_other_seed_agrees_with_scipy_within_monte_carlo_error(method):
    # Different draws: the interval ends are quantiles of 20,000 resamples, whose Monte-Carlo sd is a few
    # hundredths of the bootstrap standard error here; 0.15 of that standard error is > 5 such sds.
    x = np.random.default_rng(3).standard_t(3, size=40)
    ours = stats.bootstrap(x, unit="replica", method=method, resamples=20_000, seed=1)
    ref = ss.bootstrap((x,), np.mean, method=method, n_resamples=20_000, rng=np.random.default_rng(2))
    tol = 0.15 * ref.standard_error
    assert abs(ours.ci_low - ref.confidence_interval.low) < tol
    assert abs(ours.ci_high - ref.confidence_interval.high) < tol


def test_paired_difference_matches_scipy_paired():
    rng = np.random.default_rng(5)
    u = rng.normal(size=12)
    a, b = u + rng.normal(0, 0.1, 12), u + 0.05 + rng.normal(0, 0.1, 12)
    ours = stats.paired_difference(a, b, unit="model pair", method="percentile", resamples=3000, seed=4)
    ref = ss.bootstrap((a, b), lambda p, q, axis: p.mean(axis) - q.mean(axis), paired=True, method="percentile",
                       n_resamples=3000, rng=np.random.default_rng(4))
    assert (ours.ci_low, ours.ci_high) == pytest.approx(tuple(ref.confidence_interval), rel=1e-12)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_rank_correlation_matches_scipy_spearman_and_paired_bootstrap(method):
    # Same generator and paired resampling as scipy's: identical resample indices; ranks with ties (repeated
    # units) averaged on both sides, so the ends agree to rounding (1e-12 relative).
    rng = np.random.default_rng(8)
    a = rng.lognormal(size=30)
    b = a**2 + rng.normal(0, 2, 30)
    ours = stats.rank_correlation(a, b, unit="image", method=method, resamples=1500, seed=6)
    assert ours.estimate == pytest.approx(ss.spearmanr(a, b).statistic, rel=1e-12)
    ref = ss.bootstrap((a, b), lambda p, q: ss.spearmanr(p, q).statistic, paired=True, vectorized=False,
                       method=method, n_resamples=1500, rng=np.random.default_rng(6))
    assert (ours.ci_low, ours.ci_high) == pytest.approx(tuple(ref.confidence_interval), rel=1e-12)
    assert ours.unit == "image" and ours.n_units == 30 and ours.ci_low > 0


def test_spearman_of_a_constant_column_is_nan():
    sample = np.stack([np.arange(5.0), np.ones(5)], axis=1)[None]
    assert np.isnan(stats.spearman(sample)).all()


# --------------------------------------------------------------------------- closed forms
def test_three_units_give_the_range():
    # With 3 units each extreme recurs with probability 1/27 > 2.5 %: the 95 % interval is [min, max].
    for method in ("percentile", "expanded"):
        s = stats.summarize([0.3, -0.1, 0.7], unit="seed", method=method)
        assert (s.ci_low, s.ci_high) == pytest.approx((-0.1, 0.7))
        assert s.n_units == 3 and s.unit == "seed"


def test_expanded_alpha_closed_form():
    # Hesterberg (2015): alpha' = Phi(-sqrt(n/(n-1)) t_{1-alpha, n-1})
    for n in (3, 5, 10, 32):
        want = ss.norm.cdf(-math.sqrt(n / (n - 1)) * ss.t.ppf(0.975, n - 1))
        assert stats.expanded_alpha(0.025, n) == pytest.approx(want, rel=1e-12)
    assert stats.expanded_alpha(0.025, 10_000) == pytest.approx(0.025, rel=1e-2)


def test_constant_shift_is_exact_in_a_paired_design():
    a = np.array([1.0, 5.0, 2.0, 9.0, 4.0])
    s = stats.paired_difference(a + 0.25, a, unit="seed")
    assert (s.estimate, s.ci_low, s.ci_high) == pytest.approx((0.25, 0.25, 0.25))
    assert s.signs().positive == 5 and stats.verdict(s, "up", "down") == "up"


def test_one_unit_has_no_interval():
    s = stats.summarize([0.4], unit="seed")
    assert math.isnan(s.ci_low) and not s.has_interval
    assert stats.verdict(s).startswith("no interval")


def test_fit_loglog_matches_linregress():
    rng = np.random.default_rng(0)
    x = np.array([0.0, 0.05, 0.1, 0.2, 0.4])
    y = 2.0 * np.maximum(x, 1e-3) ** -0.3 * rng.lognormal(0, 0.05, x.size)
    f = stats.fit_loglog(x, y)
    ref = ss.linregress(np.log(x[1:]), np.log(y[1:]))
    assert f["exponent"] == pytest.approx(ref.slope, rel=1e-12)
    assert f["r2"] == pytest.approx(ref.rvalue**2, rel=1e-12)
    assert f["prefactor"] == pytest.approx(math.exp(ref.intercept), rel=1e-12)
    assert f["n_dropped"] == 1


def test_power_law_recovers_an_exact_law():
    x = np.array([64.0, 128, 256, 512])
    c = np.array([0.5, 1.0, 2.0, 3.0, 0.7])[:, None]  # units differ by a factor: the law's slope is shared
    pl = stats.power_law(x, c * x**-0.8, unit="replica")
    assert pl.exponent.estimate == pytest.approx(-0.8, abs=1e-12)
    assert (pl.exponent.ci_low, pl.exponent.ci_high) == pytest.approx((-0.8, -0.8), abs=1e-9)
    assert pl.r2.estimate == pytest.approx(1.0)
    assert pl.exponent.signs().negative == 5 and pl.n_x == 4
    assert pl.prefactor == pytest.approx(c.mean(), rel=1e-9)


def test_statistic_must_be_vectorised():
    with pytest.raises(ValueError, match=r"\(B,\)"):
        stats.bootstrap(np.ones((4, 2)), lambda s: s.mean(axis=1), unit="seed")


def test_record_fields():
    d = stats.summarize([1.0, 2.0, 4.0, 3.0], unit="model pair").as_dict()
    assert {"estimate", "ci_low", "ci_high", "confidence", "method", "unit", "n_units"} <= set(d)
    assert d["unit_values"] == [1.0, 2.0, 4.0, 3.0]


def test_words():
    s = stats.summarize([0.1, 0.2, 0.3], unit="seed")
    assert stats.describe(s) == ("+0.20 [+0.10, +0.30] (95 % bootstrap expanded percentile CI over 3 seeds; "
                                 "3/3 > 0): positive")
    assert stats.fmt(-0.0001, 2, signed=True) == "0.00"
    assert stats.fmt(-0.5, 1) == "−0.5"
    assert stats.sign_consistency([1, -2, 0]).text == "1/3 > 0, 1/3 < 0, 1/3 = 0"
    assert stats.ci_note(stats.summarize([1.0, 2.0], unit="replica")).endswith("over 2 replicas")


# --------------------------------------------------------------------------- properties
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60)
@given(st.lists(finite, min_size=2, max_size=30), st.integers(0, 2**16), st.sampled_from(["percentile", "expanded"]))
def test_percentile_interval_contains_the_mean(values, seed, method):
    s = stats.summarize(values, unit="image", method=method, resamples=500, seed=seed)
    slack = 1e-9 * (1 + max(abs(v) for v in values))
    assert s.ci_low - slack <= s.estimate <= s.ci_high + slack


@settings(max_examples=60)
@given(st.lists(finite, min_size=1, max_size=12), st.integers(0, 2**16))
def test_no_direction_when_the_interval_contains_the_null(values, seed):
    s = stats.summarize(values, unit="seed", resamples=300, seed=seed)
    word = stats.verdict(s, "up", "down")
    if s.has_interval and s.ci_low <= 0 <= s.ci_high:
        assert word == "not significant"
    if word == "up":
        assert s.ci_low > 0
        if s.n_units < stats.BCA_MIN_UNITS:  # few units: every one must agree
            assert s.signs().positive == s.n_units


def test_few_units_need_every_unit_to_agree():
    # 4 of 5 pairs rise and one barely falls: the bootstrap interval sits above 0, the verdict does not
    s = stats.paired_difference([0.1, 0.2, 0.3, 0.4, 0.499], [0.0, 0.1, 0.2, 0.3, 0.5], unit="model pair")
    assert s.ci_low > 0
    assert stats.verdict(s) == "not significant"


@pytest.mark.parametrize("n,method,lo,hi", [(20, "percentile", 0.89, 0.98), (20, "bca", 0.89, 0.98),
                                            (5, "expanded", 0.89, 0.99)])
def test_coverage_is_roughly_nominal_on_normal_data(n, method, lo, hi):
    # 400 seeded trials: the binomial sd of a 95 % coverage estimate is 0.011; the bands allow the known
    # small-sample shortfall of the percentile/BCa intervals (about 2 points at n = 20)
    rng = np.random.default_rng(123)
    hits = [stats.bootstrap(rng.normal(size=n), unit="x", method=method, resamples=1000, seed=t).excludes(0.0)
            for t in range(400)]
    cover = 1 - np.mean(hits)
    assert lo <= cover <= hi


def test_plain_percentile_undercovers_with_five_units():
    # why "auto" expands below 10 units: the plain interval of 5 units covers ~85 %
    rng = np.random.default_rng(7)
    data = [rng.normal(size=5) for _ in range(400)]
    plain = 1 - np.mean([stats.bootstrap(d, unit="x", method="percentile", resamples=1000, seed=i).excludes(0.0)
                         for i, d in enumerate(data)])
    wide = 1 - np.mean([stats.bootstrap(d, unit="x", method="expanded", resamples=1000, seed=i).excludes(0.0)
                        for i, d in enumerate(data)])
    assert plain < 0.9 < wide


@settings(max_examples=25)
@given(st.integers(0, 2**16), st.integers(8, 30))
def test_paired_interval_narrower_than_unpaired_under_positive_correlation(seed, n):
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 1.0, n)  # unit effect common to both conditions: correlation ~0.99
    a, b = shared + rng.normal(0, 0.1, n), shared + 0.05 + rng.normal(0, 0.1, n)
    paired = stats.paired_difference(a, b, unit="model pair", method="percentile", resamples=2000, seed=seed)
    unpaired = stats.two_sample(a, b, unit="model pair", method="percentile", resamples=2000, seed=seed)
    assert paired.ci_high - paired.ci_low < unpaired.ci_high - unpaired.ci_low
    assert paired.estimate == pytest.approx(unpaired.estimate)
