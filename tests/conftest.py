"""Shared fixtures: real Fashion-MNIST when installed, tiny on-disk data sets otherwise."""
from __future__ import annotations

import pytest
import torch

from engine.data import DEBIAN_FASHION_MNIST


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _model_code_trust():
    """Each test starts from the trust a fresh process has: only the code it names itself."""
    from engine.models import spec

    allowed, trust_all = set(spec._ALLOWED), dict(spec._TRUST_ALL)
    yield
    spec._ALLOWED.clear()
    spec._ALLOWED.update(allowed)
    spec._TRUST_ALL.update(trust_all)


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real data set (Debian's dataset-fashion-mnist); the test setup installs it."""
    from engine.data import load_dataset

    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail("Fashion-MNIST is missing: `apt-get install dataset-fashion-mnist` (make test does)")
    return load_dataset("fashion-mnist")


@pytest.fixture
def one_thread():
    # One intra-op thread: fast and stable on a shared 2-core machine, and the same
    # arithmetic in every process (thread count changes float summation order).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
