"""Reading a conformance report in tests."""

import contextlib
import io
import textwrap

from fxhost_sdk.testing import ConformanceReport


def names(report: ConformanceReport) -> list[str]:
    """The names of the checks that failed."""
    return [check.name for check in report.failures]


def detail(report: ConformanceReport, name: str) -> str:
    """The detail of check ``name`` (there is exactly one)."""
    (check,) = [c for c in report.checks if c.name == name]
    return check.detail


def reproduction(text: str) -> str:
    """The Python of the ``Reproduce:`` block in a check's detail, dedented."""
    lines = []
    for line in text[text.index("Reproduce:") :].split("\n", 1)[1].splitlines():
        if not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def run_reproduction(text: str) -> str:
    """Run the ``Reproduce:`` block of a check's detail; what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(reproduction(text), {})
    return out.getvalue()
