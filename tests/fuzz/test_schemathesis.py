"""Schema-driven fuzzing: schemathesis, with every check and its stateful phase, over every
operation of a real server's /openapi.json.

Every response must be declared, match its schema and media type, no request may get a
5xx, schema-valid requests must be accepted and schema-invalid ones refused. Rules that
an OpenAPI schema cannot state (a cursor must be one the server gave out, a raw upload
needs ?name=...) are listed, with their reasons, in ``schemathesis.toml`` next to this
file and in the README ("Fuzzing"). Binary bodies are audio and PCM, as a real client's
are (``schemathesis_hooks.py``).

A run that refuses everything passes every check, so the run must also *reach* the API:
every operation had at least one request accepted (2xx), which for the routes of one
asset, chain, stream or render means the fuzzer created one (from the schemas alone) and
followed the document's links to it; and every link the document declares was followed.

The runs are reproducible (fixed seeds, deterministic generation, no example database)
and bounded (max-examples in ``schemathesis.toml``). To replay a failure, rerun the
command printed with it against a server started the same way.

It runs against a server with no keys (open) and one with an API key, where every
request carries ``Authorization: Bearer KEY`` and requests without it must be refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from restkit import PG_URL, fresh_postgres, start_server

# Sixteen schemathesis runs a server: minutes. The suite's 5-minute limit per test (a hang
# guard) is too short for them on a loaded machine, where they overran it in two runs of
# the suite; each run has its own limit (run_schemathesis).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SEED = 20240611
#: Runs per server: the phases, then stateful ones with the next seeds.
STATEFUL_RUNS = 24
#: Further stateful runs, with the seeds after those, made only while an operation has had
#: no request accepted or a link has not been followed: which links a seed walks depends
#: on what the server answered before (ids, and assets deleted by an earlier step), so 24
#: seeds once missed a link that a render must be accepted to offer.
EXTRA_STATEFUL_RUNS = 16
API_KEY = "fuzz-test-key-0123456789"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

#: Every phase with no keys; with a key, all but the coverage phase (which derives its cases
#: from the schemas alone, the same with a key or without, and takes most of a run's time).
#: Operations whose success needs a moment the fuzzer cannot arrange, and the test that
#: shows it instead; they are fuzzed and their answers checked like any other's.
TIMING_BOUND = {
    # Only a queued or running render can be cancelled: the fuzzer's renders (of tiny files)
    # end within milliseconds, so its few cancels of a real render (the link from the
    # create) found it ended (409) in one set-up of three. tests/queue cancels both kinds.
    "POST /api/renders/{id}/cancel": "tests/queue/test_cancel_local.py",
}
ALL_PHASES = "examples,coverage,fuzzing,stateful"
KEYED_PHASES = "examples,fuzzing,stateful"


@pytest.fixture(scope="class")
def server(request, tmp_path_factory):
    backend, key, phases = request.cls.SETUP
    # The fuzzer creates streams with rings as large as the document allows: bound what
    # they can hold, and reap the idle ones, as an operator facing the internet would.
    env = {
        "FXHOST_MAX_STREAMS": "12",
        "FXHOST_MAX_STREAM_RING_BYTES": str(4 << 20),
        "FXHOST_STREAM_CAPACITY_SECONDS": "1",
        "FXHOST_STREAM_IDLE_SECONDS": "5",
    }
    if key:
        env["FXHOST_API_KEYS"] = key
    if backend == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    srv = start_server(tmp_path_factory.mktemp(f"fuzz-{backend}"), env)
    srv.key, srv.phases = key, phases
    yield srv
    srv.stop()


def operations_in(document: dict) -> set[str]:
    return {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item if m in METHODS}


def links_in(document: dict) -> set[str]:
    """The links the document declares, named as schemathesis names a transition."""
    by_id = {
        op["operationId"]: f"{m.upper()} {path}"
        for path, item in document["paths"].items()
        for m, op in item.items()
        if m in METHODS
    }
    return {
        f"{m.upper()} {path} -> [{status}] {name} -> {by_id[link['operationId']]}"
        for path, item in document["paths"].items()
        for m, op in item.items()
        if m in METHODS
        for status, response in op["responses"].items()
        for name, link in response.get("links", {}).items()
    }


@dataclass
class Run:
    """What a run did, from its NDJSON event log: requests and accepted (2xx) requests per
    operation, the links (transitions) its stateful phase followed."""

    accepted: Counter = field(default_factory=Counter)
    sent: Counter = field(default_factory=Counter)
    links_followed: set[str] = field(default_factory=set)

    def add(self, other: Run) -> None:
        self.accepted += other.accepted
        self.sent += other.sent
        self.links_followed |= other.links_followed


def read_run(ndjson: Path) -> Run:
    run = Run()
    with ndjson.open() as events:
        for line in events:
            kind, event = next(iter(json.loads(line).items()))
            if kind != "ScenarioFinished":
                continue
            recorder = event["recorder"]
            for case_id, case in recorder.get("cases", {}).items():
                value = case["value"]
                operation = f"{value['method']} {value['path']}"
                response = (recorder.get("interactions", {}).get(case_id) or {}).get("response")
                if response is None:
                    continue
                run.sent[operation] += 1
                if 200 <= response["status_code"] < 300:
                    run.accepted[operation] += 1
                transition = case.get("transition") or value.get("transition")
                if transition and case.get("is_transition_applied"):
                    run.links_followed.add(transition["id"])
    return run


def run_schemathesis(
    base: str, reports: Path, headers: dict[str, str], phases: str, seed: int
) -> tuple[subprocess.CompletedProcess, dict, Path]:
    """One run: its process, its JSON report and its NDJSON event log."""
    command = [SCHEMATHESIS, "--config-file", str(CONFIG), "--no-color", "run", f"{base}/openapi.json"]
    command += ["--checks", "all", "--phases", phases, "--seed", str(seed)]
    command += ["--generation-deterministic", "--workers", "1"]  # deterministic: no example database
    json_report, events = reports / f"run-{seed}.json", reports / f"events-{seed}.ndjson"
    command += ["--report", "json,ndjson", "--report-dir", str(reports)]
    command += ["--report-json-path", str(json_report), "--report-ndjson-path", str(events)]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    output = result.stdout[-20000:] + result.stderr[-5000:]
    assert json_report.exists(), output
    return result, json.loads(json_report.read_text()), events


def check_run(result: subprocess.CompletedProcess, report: dict, expected: set[str], stateful: bool) -> None:
    """The run found nothing wrong, and (but for a stateful run, which goes where links
    lead) tested every operation of the document."""
    output = result.stdout[-20000:] + result.stderr[-5000:]
    # A new route cannot escape: every operation of the document was generated for and sent.
    ops = report["operations"]
    assert (ops["total"], ops["selected"]) == (len(expected),) * 2, output
    if not stateful:
        assert (ops["tested"], ops["skipped"]) == (len(expected), 0), output
    assert ops["errored"] == 0, output
    assert report["complete"] and report["test_cases"]["errored"] == 0, output
    assert report["failures"] == [], output
    assert result.returncode == 0, output


class _Fuzzed:
    """One server set-up, fuzzed: a class each (not a parametrized module fixture), so that
    xdist hands the set-ups to different workers (the suite's longest tests)."""

    SETUP: tuple[str, str | None, str]

    def test_every_operation_conforms_to_the_document(self, server, tmp_path):
        headers = {"Authorization": f"Bearer {server.key}"} if server.key else {}
        document = httpx.get(f"{server.base}/openapi.json", headers=headers, timeout=30).json()
        expected = operations_in(document)

        run, seconds, made = Run(), 0.0, 0
        declared = links_in(document)

        def never() -> list[str]:  # operations with no request accepted (2xx)
            return sorted(expected - set(+run.accepted) - TIMING_BOUND.keys())

        def unfollowed() -> list[str]:
            return sorted(declared - run.links_followed)

        # One run of the phases, then more stateful runs: a stateful run stops after some
        # twenty scenarios, whatever max-examples says; each seed walks other links. The
        # extra ones only while something is unreached.
        phases_of = [server.phases] + ["stateful"] * (STATEFUL_RUNS + EXTRA_STATEFUL_RUNS - 1)
        for i, phases in enumerate(phases_of):
            if i >= STATEFUL_RUNS and not (never() or unfollowed()):
                break
            result, report, events = run_schemathesis(server.base, tmp_path, headers, phases, SEED + i)
            check_run(result, report, expected, stateful=phases == "stateful")
            assert server.proc.poll() is None, "the server died under the fuzzer"
            run.add(read_run(events))
            seconds += report["running_time"]
            made += 1

        # ... and reached: every operation accepted a request, every declared link was followed.
        figures = (
            f"{len(expected & set(+run.accepted))}/{len(expected)} operations with accepted requests; "
            f"links followed {len(declared & run.links_followed)}/{len(declared)}; "
            f"{sum(run.sent.values())} requests in {seconds:.0f} s, {made} runs"
        )
        print(f"\nschemathesis ({server.base}): {figures}")
        assert not never(), f"no request accepted by {never()} ({figures})"
        assert declared, "the document declares no links"
        assert unfollowed() == [], figures


class TestSqliteOpen(_Fuzzed):
    SETUP = ("sqlite", None, ALL_PHASES)


class TestSqliteKeyed(_Fuzzed):
    SETUP = ("sqlite", API_KEY, KEYED_PHASES)


@pytest.mark.skipif(not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set")
class TestPostgresKeyed(_Fuzzed):
    SETUP = ("postgres", API_KEY, KEYED_PHASES)
