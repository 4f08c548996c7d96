"""Hypothesis profiles: derandomised and deadline-free under CI, so a verdict never flips between runs."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=200, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Tests that compare float results across code paths, batch sizes, libraries or runs: `make test-portable`
# runs them under every CPU kernel setting (scripts/test_portable.sh). Their tolerances follow the float32
# rounding model of empirical/runtime/rounding.py, or they compare the same kernel path bit for bit.
NUMERICS_MODULES = {"test_attacks", "test_benchmarks", "test_curvature", "test_differentiable_maps", "test_ifia",
                    "test_keyed_rng", "test_lockstep", "test_rank_agreement",
                    "test_metrics", "test_models_training", "test_network_bounds", "test_quality_metrics",
                    "test_saliency", "test_smoothing", "test_captum_compat", "test_sigma_units", "test_front_door"}


def pytest_collection_modifyitems(config, items):
    import pytest
    for item in items:
        if item.module.__name__.rpartition(".")[2] in NUMERICS_MODULES and "slow" not in item.keywords:
            item.add_marker(pytest.mark.numerics)
