"""List the licence of every installed distribution; fail on one that is not known.

    uv run python .ci/licences.py            # the project's environment (.ci/run)
    uv run python .ci/licences.py --path DIR # the distributions installed in DIR only

Each distribution's licence is read from its metadata, the first of: an entry in
OVERRIDES below; the SPDX ``License-Expression`` (PEP 639); the ``License`` field when it
is an SPDX expression; the ``License ::`` trove classifiers; the first line of a free-text
``License`` field. Every licence found must belong to a known family (FAMILIES); strong
copyleft (GPL, AGPL) only in the distributions named in COPYLEFT, where it is known and
said in the README (an install with fxhost-pedalboard is a combined GPLv3 work). Prints
a table; exits 1 naming each distribution whose licence is unknown or not allowed."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from dataclasses import dataclass

from license_expression import ExpressionError, get_spdx_licensing

#: Licence families, by SPDX identifier (a LicenseRef-... matches none: unknown).
FAMILIES = {
    "MIT": r"MIT(-0|-CMU)?",
    "BSD": r"0BSD|BSD-[0-9].*",
    "Apache": r"Apache-[12]\.[01]",
    # CNRI-Python: the licence of Python 1.6, permissive (regex's Unicode tables carry it).
    "PSF": r"PSF-2\.0|Python-2\.0(\.1)?|CNRI-Python",
    "ISC": r"ISC",
    "Zlib": r"Zlib",
    "HPND": r"HPND",
    "Public domain": r"Unlicense|CC0-1\.0",
    "MPL": r"MPL-[12]\.[01](-no-copyleft-exception)?",
    "LGPL": r"LGPL-[23]\.[01](-only|-or-later|\+)?",
    "GPL": r"GPL-[23]\.0(-only|-or-later|\+)?",
    "AGPL": r"AGPL-3\.0(-only|-or-later)?",
}
#: The same families as trove classifiers name them (the last part of ``License :: ...``).
CLASSIFIERS = {
    "MIT": r"MIT( No Attribution)? License",
    "BSD": r"BSD License|0-Clause BSD",
    "Apache": r"Apache Software License",
    "PSF": r"Python Software Foundation License",
    "ISC": r"ISC License",
    "Zlib": r"zlib/libpng License",
    "HPND": r"Historical Permission Notice",
    "Public domain": r"The Unlicense|CC0",
    "MPL": r"Mozilla Public License",
    "LGPL": r"GNU (Library or )?Lesser General Public License",
    "GPL": r"GNU General Public License",
    "AGPL": r"GNU Affero General Public License",
}
#: ...and as a free-text ``License`` field's first line says them, in this order.
FREE_TEXT = [
    ("LGPL", r"\bLGPL|Lesser General Public"),
    ("AGPL", r"\bAGPL|Affero"),
    ("GPL", r"\bGPL|GNU GENERAL PUBLIC"),
    ("MIT", r"\bMIT\b"),
    ("BSD", r"\bBSD\b"),
    ("Apache", r"\bApache\b"),
    ("MPL", r"\bMPL\b|Mozilla Public"),
    ("PSF", r"\bPSF\b|Python Software Foundation"),
    ("ISC", r"\bISC\b"),
]
STRONG_COPYLEFT = {"GPL", "AGPL"}
#: Distributions under a strong copyleft licence that are known and allowed: the
#: first-party plugin that links pedalboard, and pedalboard itself (GPLv3).
COPYLEFT = {"pedalboard", "fxhost-pedalboard"}
#: Distributions whose metadata says no licence (or says it wrongly), with the licence
#: checked by hand in the distribution's own LICENSE file, as an SPDX expression, and
#: where it was checked. None is needed today: every distribution of uv.lock says its
#: licence. Add an entry only after reading the licence, e.g.
#:   "some-package": ("BSD-3-Clause", "LICENSE.txt of some-package 1.2 on PyPI"),
OVERRIDES: dict[str, tuple[str, str]] = {}

LICENSING = get_spdx_licensing()


@dataclass
class Row:
    name: str
    version: str
    licence: str
    source: str
    families: list[str]
    problem: str | None


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def spdx_families(expression: str) -> list[str | None] | None:
    """The family of each licence an SPDX expression names (None: not known); None
    when the text is not an SPDX expression at all."""
    try:
        parsed = LICENSING.parse(expression, validate=True, strict=False)
    except ExpressionError:
        return None
    if parsed is None:
        return None
    return [
        next((family for family, pattern in FAMILIES.items() if re.fullmatch(pattern, key)), None)
        for key in sorted(LICENSING.license_keys(parsed))
    ]


def licence_of(dist: importlib.metadata.Distribution) -> tuple[str, str, list[str | None]]:
    """(what the metadata says, where it says it, the families), empty when it says nothing."""
    meta = dist.metadata
    name = normalise(meta["Name"])
    if name in OVERRIDES:
        expression, _ = OVERRIDES[name]
        return expression, "override", spdx_families(expression) or [None]
    if expression := (meta.get("License-Expression") or "").strip():
        return expression, "License-Expression", spdx_families(expression) or [None]
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and (families := spdx_families(text)) and None not in families:
        return text, "License (SPDX)", families
    classifiers = [
        c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License :: ")
    ]
    families = [
        next((f for f, pattern in CLASSIFIERS.items() if re.search(pattern, c)), None)
        for c in classifiers
        if c not in ("OSI Approved", "DFSG approved")
    ]
    if families:
        return "; ".join(classifiers), "classifier", families
    if text:
        first = text.splitlines()[0].strip()
        family = next((f for f, pattern in FREE_TEXT if re.search(pattern, first, re.IGNORECASE)), None)
        return first, "License (text)", [family]
    return "", "", []


def check(dist: importlib.metadata.Distribution) -> Row:
    name, version = dist.metadata["Name"], dist.version
    licence, source, families = licence_of(dist)
    problem = None
    if not families:
        problem = "its metadata names no licence"
    elif None in families:
        problem = f"unknown licence: {licence!r} ({source})"
    elif (copyleft := STRONG_COPYLEFT.intersection(families)) and normalise(name) not in COPYLEFT:
        problem = f"{'/'.join(sorted(copyleft))} outside the known copyleft distributions ({licence!r})"
    known = sorted({f for f in families if f})
    return Row(name, version, licence, source, known, problem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", action="append", help="look only in this folder (repeatable)")
    args = parser.parse_args(argv)
    dists = {}
    for dist in importlib.metadata.distributions(**({"path": args.path} if args.path else {})):
        dists.setdefault(normalise(dist.metadata["Name"]), dist)  # the first on the path wins
    rows = [check(dists[name]) for name in sorted(dists)]

    def cut(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    header = ("distribution", "version", "family", "licence", "from")
    table = [(r.name, r.version, ", ".join(r.families) or "?", cut(r.licence, 48), r.source) for r in rows]
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    bad = [r for r in rows if r.problem]
    print(f"\n{len(rows)} distributions, {len(bad)} with a licence that is unknown or not allowed")
    for r in bad:
        print(f"  {r.name} {r.version}: {r.problem}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
