"""Reading a conformance report in tests."""

from fxhost_sdk.testing import ConformanceReport


def names(report: ConformanceReport) -> list[str]:
    """The names of the checks that failed."""
    return [check.name for check in report.failures]


def detail(report: ConformanceReport, name: str) -> str:
    """The detail of check ``name`` (there is exactly one)."""
    (check,) = [c for c in report.checks if c.name == name]
    return check.detail
