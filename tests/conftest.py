import os
import sys
from pathlib import Path

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
