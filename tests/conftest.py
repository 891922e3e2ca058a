import warnings

import numpy as np
import pytest
import torch

from helpers import write_npz

warnings.filterwarnings("ignore")


def pytest_collection_modifyitems(items):
    # The Ray grid, whole runs of i-CTRL and the paper preset are the slow part of the suite:
    # `pytest -m "not slow"` leaves them out for a quick edit-test loop.
    for item in items:
        if "harness/test_grid.py" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tiny_npz(tmp_path):
    """4 classes of generated bars, 48 training and 16 test images each (a fresh file per test)."""
    return write_npz(tmp_path / "tiny.npz")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
