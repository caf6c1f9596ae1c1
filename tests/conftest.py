"""Suite-wide settings: fixed-seed hypothesis profile and NaN-poisoned kernel outputs."""

import os

import pytest
from hypothesis import HealthCheck, settings

from convkernels import _C

# Fixed seeds: hypothesis runs the same examples every time (a failure reproduces), and the
# number of examples is one knob for the whole suite.
settings.register_profile(
    "default",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("CONVKERNELS_TEST_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("default")


@pytest.fixture(autouse=True, scope="session")
def poison_outputs():
    """Every kernel output starts as NaN, so an element a kernel never writes is caught."""
    _C._set_poison_outputs(True)
    yield
    _C._set_poison_outputs(False)
