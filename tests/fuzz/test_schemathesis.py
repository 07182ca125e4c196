"""Schema-driven fuzzing: schemathesis over every operation of a real server's /openapi.json.

Every response must be declared, match its schema and media type, no request may get a
5xx, schema-valid requests must be accepted and schema-invalid ones refused. Rules that
an OpenAPI schema cannot state (a body must be audio, a name must exist...) are listed,
with their reasons, in ``schemathesis.toml`` next to this file.

The run is reproducible (fixed seed, deterministic generation, no example database)
and bounded (``MAX_EXAMPLES`` per operation). To replay a failure, rerun the command
printed with it against a server started the same way.

It runs against a server with no keys (open) and one with an API key, where every
request carries ``Authorization: Bearer KEY`` and requests without it must be refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from restkit import PG_URL, fresh_postgres, start_server

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
]
SEED = 20240611
MAX_EXAMPLES = 25
API_KEY = "fuzz-test-key-0123456789"

SETUPS = [
    pytest.param(("sqlite", None), id="sqlite-open"),
    pytest.param(("sqlite", API_KEY), id="sqlite-keyed"),
    pytest.param(
        ("postgres", API_KEY),
        id="postgres-keyed",
        marks=pytest.mark.skipif(not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set"),
    ),
]


@pytest.fixture(scope="module", params=SETUPS)
def server(request, tmp_path_factory):
    backend, key = request.param
    env = {"FXHOST_API_KEYS": key} if key else {}
    if backend == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    srv = start_server(tmp_path_factory.mktemp(f"fuzz-{backend}"), env)
    srv.key = key
    yield srv
    srv.stop()


def operations_in(document: dict) -> set[str]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item if m in methods}


def run_schemathesis(base: str, report: Path, headers: dict[str, str]) -> subprocess.CompletedProcess:
    command = [SCHEMATHESIS, "--config-file", str(CONFIG), "--no-color", "run", f"{base}/openapi.json"]
    checks = [*CHECKS, "ignored_auth"] if headers else CHECKS  # with a key: refused without it?
    command += ["--checks", ",".join(checks), "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES)]
    command += ["--generation-deterministic", "--workers", "1"]  # deterministic: no example database
    command += ["--report", "json", "--report-json-path", str(report)]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_every_operation_conforms_to_the_document(server, tmp_path):
    headers = {"Authorization": f"Bearer {server.key}"} if server.key else {}
    document = httpx.get(f"{server.base}/openapi.json", headers=headers, timeout=30).json()
    expected = operations_in(document)

    report_path = tmp_path / "schemathesis.json"
    result = run_schemathesis(server.base, report_path, headers)
    output = result.stdout[-20000:] + result.stderr[-5000:]
    assert report_path.exists(), output
    report = json.loads(report_path.read_text())

    # A new route cannot escape: every operation of the document was generated for and sent.
    ops = report["operations"]
    assert (ops["total"], ops["selected"], ops["tested"]) == (len(expected),) * 3, output
    assert (ops["errored"], ops["skipped"]) == (0, 0), output
    assert report["complete"] and report["test_cases"]["errored"] == 0, output
    assert report["failures"] == [], output
    assert result.returncode == 0, output
    assert server.proc.poll() is None, "the server died under the fuzzer"
