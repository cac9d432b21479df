import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# tests/reference.py is imported as a plain module by the tests.
sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile(
    "default",
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("default")


@pytest.fixture
def restore_torch_threads():
    """Give torch's intra-op thread count back after a test that trains (tests that
    use it import torch anyway)."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
