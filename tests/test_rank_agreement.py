"""Rank agreement metrics (empirical/measures/rank_agreement.py) against scipy.stats and hand-worked examples."""
import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.errors import UserError
from empirical.measures import rank_agreement as ra

# Integer-valued maps with few levels: many ties, which is what τ-b and average ranks are about.
tied_rows = st.integers(2, 12).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(0, 3), min_size=n, max_size=n), min_size=1, max_size=4),
    st.lists(st.lists(st.integers(0, 3), min_size=n, max_size=n), min_size=1, max_size=4)).filter(
    lambda ab: len(ab[0]) == len(ab[1])))


def _scipy(fn, x, y):
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
            return np.array([fn(a, b)[0] for a, b in zip(x, y)], dtype=np.float64)


@settings(deadline=None, max_examples=150)
@given(tied_rows)
def test_kendall_and_spearman_match_scipy_with_ties(ab):
    x, y = (np.asarray(v, dtype=np.float64) for v in ab)
    tk = ra.kendall_rows(torch.tensor(x), torch.tensor(y)).numpy()
    ts = ra.spearman_rows(torch.tensor(x), torch.tensor(y)).numpy()
    # Same formula on integer pair counts (τ-b) and on exact half-integer ranks (ρ); the float64 results
    # differ only by the last rounding of a ratio and a square root: a few ulps of a number <= 1.
    np.testing.assert_allclose(tk, _scipy(scipy.stats.kendalltau, x, y), rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ts, _scipy(scipy.stats.spearmanr, x, y), rtol=0, atol=1e-12, equal_nan=True)


@settings(deadline=None, max_examples=50)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=30))
def test_average_ranks_match_scipy_rankdata(v):
    got = ra.average_ranks(torch.tensor([v], dtype=torch.float64))[0].numpy()
    np.testing.assert_array_equal(got, scipy.stats.rankdata(v, method="average"))


def test_kendall_blocks_do_not_change_the_result(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 4, (5, 40), generator=g).double(), torch.randint(0, 4, (5, 40), generator=g).double()
    whole = ra.kendall_rows(x, y)
    monkeypatch.setattr(ra, "PAIR_BLOCK", 100)  # < 40²: splits images and the i axis
    assert torch.equal(ra.kendall_rows(x, y), whole)  # integer sums: identical, not just close


def test_maps_are_reduced_by_sum_abs_before_ranking():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    fa, fb = a.abs().sum(1).flatten(1).double().numpy(), b.abs().sum(1).flatten(1).double().numpy()
    np.testing.assert_allclose(ra.kendall_tau(a, b).numpy(), _scipy(scipy.stats.kendalltau, fa, fb), atol=1e-12)
    np.testing.assert_allclose(ra.spearman_rho(a, b).numpy(), _scipy(scipy.stats.spearmanr, fa, fb), atol=1e-12)


def test_topk_correlations_use_the_first_maps_topk_pixels():
    # a ranks pixels 0 > 1 > 2 > 3 > 4 > 5; its top 3 are {0, 1, 2}; b reverses them there and
    # agrees elsewhere, so over the full map τ is high-ish but over a's top-3 it is -1.
    a = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]]).view(1, 1, 2, 3)
    b = torch.tensor([[4.0, 5.0, 6.0, 3.0, 2.0, 1.0]]).view(1, 1, 2, 3)
    assert ra.kendall_tau(a, b, k=3).item() == -1.0
    assert ra.spearman_rho(a, b, k=3).item() == -1.0
    full = scipy.stats.kendalltau(a.flatten().numpy(), b.flatten().numpy())[0]
    assert ra.kendall_tau(a, b).item() == pytest.approx(full, abs=1e-12) and full > 0.5


def test_topk_intersection_hand_worked():
    # |a| order: pixels 0, 1, 2, 3; |b| order: 3, 0, 1, 2 (b's pixel 1 ties pixel 2 at |.|=1: the lower index wins).
    a = torch.tensor([[[[4.0, -3.0], [2.0, 1.0]]]])
    b = torch.tensor([[[[2.0, 1.0], [-1.0, 5.0]]]])
    assert ra.topk_intersection(a, b, 1).item() == 0.0  # {0} vs {3}
    assert ra.topk_intersection(a, b, 2).item() == 0.5  # {0,1} vs {3,0}
    assert ra.topk_intersection(a, b, 3).item() == pytest.approx(2 / 3)  # {0,1,2} vs {3,0,1}
    assert ra.topk_intersection(a, b, 3, count=True).item() == 2.0
    assert ra.topk_intersection(a, b, 0.5).item() == 0.5  # a fraction: k = round(0.5 · 4) = 2 pixels
    assert ra.topk_intersection(a, b, 4).item() == 1.0


def test_rank_agreement_equals_the_separate_functions():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(4, 1, 5, 5, generator=g), torch.randn(4, 1, 5, 5, generator=g)
    r = ra.agreement_metrics(a, b, k=7)
    assert torch.equal(r["topk_intersection"], ra.topk_intersection(a, b, 7))
    assert torch.equal(r["kendall"], ra.kendall_tau(a, b))
    assert torch.equal(r["spearman_topk"], ra.spearman_rho(a, b, k=7))
    assert torch.equal(r["kendall_topk"], ra.kendall_tau(a, b, k=7))
    same = ra.agreement_metrics(a, a, k=7)
    assert all(bool((v == 1).all()) for v in same.values())


def test_resolve_k_and_bad_input():
    assert ra.resolve_k(100, 784) == 100 and ra.resolve_k(0.1, 784) == 78 and ra.resolve_k(0.0001, 784) == 1
    for bad in (0, 785, 1.0, -0.5, True, "10"):
        with pytest.raises(UserError, match="k must be"):
            ra.resolve_k(bad, 784)
    with pytest.raises(UserError, match="NaN/inf"):
        ra.kendall_tau(torch.full((1, 1, 2, 2), float("nan")), torch.zeros(1, 1, 2, 2))
    with pytest.raises(UserError, match="same shape"):
        ra.spearman_rho(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))


def test_summarize_images_median_and_mean_with_intervals():
    v = np.array([0.1, 0.2, 0.25, 0.3, 0.9, 0.35, 0.4, 0.2, 0.15, 0.5, 0.3, float("nan")])
    s = ra.summarize_images(v, resamples=2000)
    assert s["n_images"] == 11 and s["n_nan"] == 1
    assert s["median"]["estimate"] == pytest.approx(np.nanmedian(v))
    assert s["mean"]["estimate"] == pytest.approx(np.nanmean(v))
    for part in ("median", "mean"):
        assert s[part]["ci_low"] <= s[part]["estimate"] <= s[part]["ci_high"] and s[part]["unit"] == "image"
    assert s["mean"]["method"] == "bootstrap BCa"  # 11 images >= BCA_MIN_UNITS
