"""Deprecation warnings fail the test run (pyproject's ``filterwarnings``), so that a
deprecated call is fixed when it appears, not when the API it uses is gone."""

from __future__ import annotations

import warnings

import pytest
from starlette.exceptions import StarletteDeprecationWarning


@pytest.mark.parametrize(
    "category", [DeprecationWarning, PendingDeprecationWarning, StarletteDeprecationWarning]
)
def test_a_deprecation_is_an_error(category):
    with pytest.raises(category):
        warnings.warn("something old", category, stacklevel=1)


def test_starlettes_test_client_runs_on_httpx2():
    """With plain httpx, starlette.testclient warns on import that httpx is deprecated there."""
    import starlette.testclient

    assert starlette.testclient.httpx.__name__ == "httpx2"
