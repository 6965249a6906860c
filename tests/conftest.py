"""Session set-up shared by every test."""

import os

import pytest

# Compiled kernels kept by earlier runs (descend.optim.kernels) would make which path a test
# takes depend on what ran before it: off for the tests (and the processes they start), on in
# the tests of that cache, each with a cache folder of its own.
os.environ["DESCEND_KERNEL_CACHE"] = "0"


@pytest.fixture(scope="session", autouse=True)
def _bulk_library_ready():
    """The step's C++ reader of gradients (descend.optim.bulk) is built in the background by
    the first step; the tests wait for it once, so that every step takes the same path
    (tests/optim/test_bulk.py runs the Python path it replaces against it)."""
    from descend.optim import bulk

    bulk.library(wait=True)
    yield
