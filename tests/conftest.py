import numpy as np
import pytest

# No thread-count environment variables here on purpose: joblib only limits the threads of
# its worker processes (cpu_count // n_jobs) for variables the user has not set, and the
# GridSearchCV(n_jobs=2) tests check that torch inside the workers follows that limit.


def pytest_collection_modifyitems(config, items):
    import pytest

    if config.getoption("-m"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


# Property tests draw their examples deterministically, so a CI run cannot fail on an
# input no earlier run saw; HYPOTHESIS_PROFILE=explore searches with fresh random seeds.
def _register_hypothesis_profiles():
    import os

    from hypothesis import settings

    settings.register_profile("deterministic", derandomize=True)
    settings.register_profile("explore", derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


_register_hypothesis_profiles()


@pytest.fixture(scope="module")
def blobs():
    """Three Gaussian blobs of 30 rows in 3 features, the small data of the refusal tests."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(loc, 0.3, size=(30, 3)) for loc in np.eye(3) * 2])
    y = np.repeat([0, 1, 2], 30)
    return X, y
