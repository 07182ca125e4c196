"""What the suite itself promises: the same examples on every run, no timing of them."""

import os
import re
from pathlib import Path

from hypothesis import settings

TESTS = Path(__file__).parent


def test_hypothesis_examples_are_fixed_and_untimed():
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    assert settings.get_current_profile_name() == profile
    if profile == "ci":
        assert settings.default.derandomize and settings.default.database is None
    assert settings.default.deadline is None and settings.default.print_blob
    # No test brings a deadline back for itself.
    timed = [
        f"{path.relative_to(TESTS)}:{text.count(chr(10), 0, match.start()) + 1}"
        for path in TESTS.rglob("*.py")
        for text in [path.read_text()]
        for match in re.finditer(r"\bdeadline=(?!None\b)", text)
    ]
    assert not timed, timed
