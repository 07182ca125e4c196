"""Settings for the whole suite.

Hypothesis: the property tests and state machines run the same examples on every run
(``derandomize``), with no per-example deadline (this machine is shared: a slow example
is not a bug; a hang is caught by pytest's timeout), and a failure prints the blob that
reproduces it (``@reproduce_failure``). ``HYPOTHESIS_PROFILE=dev`` draws random examples
instead, remembered in .hypothesis/, to explore beyond the fixed ones."""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True, database=None)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def moto_s3():
    """A real S3 API (moto's server mode) on a free port, for the whole run."""
    from s3kit import MotoS3

    server = MotoS3().start()
    yield server
    server.stop()
