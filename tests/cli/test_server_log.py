"""What ``fxhost serve`` logs at info level says what happens, once: the migrations it
applied (or that the schema is current), no line twice before the server is up, and the
ORM's "shutdown" only when the server stops."""

from __future__ import annotations

from collections import Counter

from restkit import REPO, start_server

SHUTDOWN = "Tortoise-ORM shutdown"
MIGRATIONS = sorted(
    f"fxhost.{path.stem}" for path in (REPO / "host/src/fxhost/store/db/migrations").glob("[0-9]*.py")
)


def server_log(server) -> list[str]:
    return (server.root / f"server-{server.base.rsplit(':', 1)[1]}.log").read_text().splitlines()


def check_one_run(lines: list[str]) -> list[str]:
    """The start-up lines (up to "startup complete"), after checking the whole run."""
    complete = next(i for i, line in enumerate(lines) if "Application startup complete" in line)
    startup = lines[: complete + 1]
    repeated = [line for line, n in Counter(startup).items() if n > 1]
    assert not repeated, "\n".join(lines)
    assert SHUTDOWN not in "\n".join(startup), "\n".join(lines)
    assert sum(SHUTDOWN in line for line in lines) <= 1, "\n".join(lines)
    stopping = next(i for i, line in enumerate(lines) if "Shutting down" in line)
    assert all(i > stopping for i, line in enumerate(lines) if SHUTDOWN in line), "\n".join(lines)
    assert not [line for line in lines if "ERROR" in line or "Traceback" in line], "\n".join(lines)
    return startup


def test_startup_log_says_what_happens_once(tmp_path):
    server = start_server(tmp_path, {"FXHOST_LOG_LEVEL": "info"})
    server.stop()
    startup = check_one_run(server_log(server))
    assert startup.count(f"fxhost: INFO: database: applied {', '.join(MIGRATIONS)}") == 1
    assert not [line for line in startup if "up to date" in line]

    again = server.restart()  # the same database, nothing to migrate
    again.stop()
    startup = check_one_run(server_log(again))
    assert startup.count("fxhost: INFO: database: the schema is up to date") == 1
    assert not [line for line in startup if "applied" in line]
