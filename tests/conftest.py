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
