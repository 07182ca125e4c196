"""The README's tour, executed: every code block marked ``<!-- tour ... -->`` runs against a
live server, in order, as a reader following it would, and what the README shows it
answers is checked, so that the README cannot drift from the server.

- ``sh`` blocks: each ``curl`` command becomes the same HTTP request (method, headers,
  body, ``-o`` file), with ``localhost:8000`` pointed at the test server. Its trailing
  comment is what it answers: a status code (anything 2xx when none is shown), a JSON
  shape (the keys and values shown must be there; ``...`` stands for what is left out;
  a bare upper-case word such as ``ID`` binds to the value found there the first time,
  and later commands use it in their URL and body, as the README tells its reader), and
  ``event: NAME`` for server-sent events. A file written with ``-o`` must be what its
  name says (WAV, FLAC, PNG; the sample rate and subtype asked for).
- a ``json`` block marked ``<!-- tour: answer -->`` is the body the command before it
  answers, its ``status`` the HTTP status.
- ``python`` blocks run as scripts (port changed); each ``print`` commented with a JSON
  shape must print what the shape shows, in order.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import httpx
import numpy as np
import pytest
import soundfile as sf
from restkit import REPO, encode, start_server, tone

MARKER = re.compile(
    r"^<!-- tour(?::\s*(?P<kind>\w+))?\b[^\n]*-->\n+```(?P<lang>\w+)\n(?P<body>.*?)^```", re.M | re.S
)
MORE = "\0more"  # "...": more keys or items than shown
ANY = "\0any"  # "...": a value not shown
BIND = "\0bind:"


@dataclass
class Block:
    kind: str  # "tour" or "answer"
    lang: str
    body: str


def tour_blocks(readme: str) -> list[Block]:
    blocks = [
        Block(m["kind"] if m["kind"] == "answer" else "tour", m["lang"], m["body"])
        for m in MARKER.finditer(readme)
    ]
    assert blocks, "the README marks no tour blocks (<!-- tour --> before a fenced block)"
    return blocks


# -- documented answers -----------------------------------------------------------------


def _string_end(text: str, i: int) -> int:
    j = i + 1
    while text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    return j + 1


def shape_span(text: str) -> tuple[int, int] | None:
    """Where the first JSON-like value (``{...}`` or ``[...]``) in ``text`` is."""
    start = next((i for i, c in enumerate(text) if c in "{["), None)
    if start is None:
        return None
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _string_end(text, i)
            continue
        depth += c in "{["
        depth -= c in "}]"
        i += 1
        if depth == 0:
            return start, i
    raise AssertionError(f"unbalanced brackets in the README's answer {text!r}")


def parse_shape(text: str):
    """The README's JSON-with-``...``-and-placeholders as JSON with markers."""
    out, stack, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = _string_end(text, i)
            out.append(text[i:j])
            i = j
        elif text.startswith("...", i):
            before = "".join(out).rstrip()[-1:]
            if before == ":":
                out.append(json.dumps(ANY))
            elif stack[-1] == "{":
                out.append(f"{json.dumps(MORE)}: null")
            else:
                out.append(json.dumps(MORE))
            i += 3
        elif m := re.match(r"[A-Z][A-Z0-9_]*\b", text[i:]):
            out.append(json.dumps(BIND + m[0]))
            i += len(m[0])
        else:
            if c in "{[":
                stack.append(c)
            elif c in "}]":
                stack.pop()
            out.append(c)
            i += 1
    return json.loads("".join(out))


def match(shape, actual, binds: dict[str, object], path: str = "") -> None:
    where = path or "the answer"
    if shape == ANY:
        return
    if isinstance(shape, str) and shape.startswith(BIND):
        name = shape.removeprefix(BIND)
        if name in binds:
            assert actual == binds[name], f"{where}: README shows {name} = {binds[name]!r}, server {actual!r}"
        else:
            binds[name] = actual
    elif isinstance(shape, dict):
        assert isinstance(actual, dict), f"{where}: README shows an object, server sent {actual!r}"
        for key, value in shape.items():
            if key != MORE:
                assert key in actual, f"{where}: README shows {key!r}, server sent keys {sorted(actual)}"
                match(value, actual[key], binds, f"{path}.{key}")
    elif isinstance(shape, list):
        assert isinstance(actual, list), f"{where}: README shows a list, server sent {actual!r}"
        more = bool(shape) and shape[-1] == MORE
        items = shape[:-1] if more else shape
        if more:
            assert len(actual) >= len(items), (
                f"{where}: README shows {len(items)}+ items, server {len(actual)}"
            )
        else:
            assert len(actual) == len(items), (
                f"{where}: README shows {len(items)} items, server {len(actual)}"
            )
        for k, item in enumerate(items):
            match(item, actual[k], binds, f"{path}[{k}]")
    else:
        assert actual == shape, f"{where}: README shows {shape!r}, server sent {actual!r}"


@dataclass
class Expected:
    status: int | None = None
    shape: object = None
    has_shape: bool = False
    events: list[str] = field(default_factory=list)


def expected_of(comment: str) -> Expected:
    comment = comment.strip()
    expected = Expected()
    if m := re.match(r"(\d{3})\b", comment):
        expected.status = int(m[1])
    if span := shape_span(comment):
        expected.shape, expected.has_shape = parse_shape(comment[span[0] : span[1]]), True
    expected.events = re.findall(r"\bevent: (\w+)", comment)
    return expected


# -- curl commands as HTTP requests --------------------------------------------------------


def split_comment(line: str) -> tuple[str, str]:
    """A shell line and its trailing ``# comment`` (a ``#`` outside quotes)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :]
    return line, ""


def shell_commands(body: str) -> list[tuple[str, str]]:
    """(command, comment) for each command of an ``sh`` block, continuation lines joined."""
    commands, pending, comments = [], "", []
    for raw in body.splitlines():
        line, comment = split_comment(raw)
        if comment:
            comments.append(comment)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command:
            commands.append((command, " ".join(comments)))
        comments = []
    return commands


@dataclass
class Curl:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None
    files: dict | None
    output: str | None


def placeholders(shape) -> set[str]:
    if isinstance(shape, str) and shape.startswith(BIND):
        return {shape.removeprefix(BIND)}
    items = shape.values() if isinstance(shape, dict) else shape if isinstance(shape, list) else ()
    return set().union(*(placeholders(item) for item in items))


def parse_curl(command: str, binds: dict[str, object], cwd: Path, base: str, names: set[str]) -> Curl:
    """``names``: the tour's placeholders (``ID``); each must be bound before it is used."""

    def sub(text: str) -> str:
        def value(m: re.Match) -> str:
            if m[0] not in names:
                return m[0]
            assert m[0] in binds, f"{command!r} uses {m[0]} before the README says where it comes from"
            return str(binds[m[0]])

        return re.sub(r"\b[A-Z][A-Z0-9_]*\b", value, text)

    argv = shlex.split(command)
    assert argv[0] == "curl", f"the tour's shell blocks hold only curl commands: {command!r}"
    method, url, headers, content, files, output = None, None, {}, None, None, None
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-s", "-sN", "-N"):
            continue
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip().lower()] = value.strip()
        elif arg in ("-d", "--data-binary"):
            data = next(args)
            content = (cwd / data[1:]).read_bytes() if data.startswith("@") else sub(data).encode()
            if arg == "-d" and not data.startswith("@"):
                content = content.replace(b"\n", b"").replace(b"\r", b"")
            headers.setdefault("content-type", "application/x-www-form-urlencoded")
        elif arg == "-F":
            name, _, value = next(args).partition("=")
            assert value.startswith("@"), f"-F without a file: {command!r}"
            path = cwd / value[1:]
            files = {name: (path.name, path.read_bytes(), "application/octet-stream")}
        elif arg == "-o":
            output = next(args)
        elif arg.startswith("-"):
            raise AssertionError(f"the tour uses a curl option this test does not know: {arg} in {command!r}")
        else:
            assert url is None, f"two URLs in {command!r}"
            url = sub(arg)
    assert url is not None, f"no URL in {command!r}"
    url = re.sub(r"^(https?://)?localhost:8000", base, url)
    method = method or ("POST" if content is not None or files else "GET")
    return Curl(method, url, headers, content, files, output)


def check_file(path: Path, url: str) -> None:
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{path.name} is not a PNG"
        return
    info = sf.info(io.BytesIO(data))
    assert info.format == {".wav": "WAV", ".flac": "FLAC"}[suffix], f"{path.name} is {info.format}"
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if "sample_rate" in query:
        assert info.samplerate == int(query["sample_rate"]), f"{path.name}: {info.samplerate} Hz"
    if "subtype" in query:
        assert info.subtype == query["subtype"], f"{path.name}: {info.subtype}"


def check(response: httpx.Response, expected: Expected, binds: dict, what: str) -> None:
    if expected.status is not None:
        assert response.status_code == expected.status, (
            f"{what}: {response.status_code} {response.text[:500]}"
        )
    else:
        assert response.is_success, f"{what}: {response.status_code} {response.text[:500]}"
    if expected.has_shape:
        match(expected.shape, response.json(), binds)
    for event in expected.events:
        assert re.search(rf"^event: {event}$", response.text, re.M), f"{what}: no `event: {event}`"


# -- the tour ---------------------------------------------------------------------------


def m4a(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("tour"), {})
    yield srv
    srv.stop()


def test_the_readme_tour_runs_as_written(server, tmp_path):
    rate = 44100
    (tmp_path / "in.wav").write_bytes(encode(tone(1.0, rate), rate, "WAV"))
    (tmp_path / "take1.wav").write_bytes(encode(tone(1.5, rate, seed=1), rate, "WAV"))
    (tmp_path / "voice.m4a").write_bytes(m4a(tone(1.0, rate, seed=2), rate))
    blocks = tour_blocks((REPO / "README.md").read_text())
    names = set().union(
        *(
            placeholders(expected_of(comment).shape)
            for block in blocks
            if block.lang == "sh"
            for _, comment in shell_commands(block.body)
        )
    )
    binds: dict[str, object] = {}
    ran, last = 0, None
    with server.client() as client:
        for i, block in enumerate(blocks):
            answered = i + 1 < len(blocks) and blocks[i + 1].kind == "answer"
            if block.kind == "answer":
                assert last is not None, "an answer block before any command"
                body = parse_shape(block.body)
                assert last.status_code == body["status"], (last.status_code, last.text)
                match(body, last.json(), binds)
            elif block.lang == "sh":
                commands = shell_commands(block.body)
                for k, (command, comment) in enumerate(commands):
                    curl = parse_curl(command, binds, tmp_path, server.base, names)
                    last = client.request(
                        curl.method, curl.url, headers=curl.headers, content=curl.content, files=curl.files
                    )
                    if not (answered and k == len(commands) - 1):  # else the answer block says
                        check(last, expected_of(comment), binds, command)
                    if curl.output:
                        (tmp_path / curl.output).write_bytes(last.content)
                        check_file(tmp_path / curl.output, curl.url)
                    ran += 1
            elif block.lang == "python":
                run_python(block.body, server.base)
                ran += 1
            else:
                raise AssertionError(f"a tour block in {block.lang}, which this test cannot run")
    assert ran >= 20 and {"ID", "RID"} <= set(binds), (ran, binds)


def run_python(source: str, base: str) -> None:
    port = base.rsplit(":", 1)[1]
    script = re.sub(r"(127\.0\.0\.1|localhost):8000", f"127.0.0.1:{port}", source)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    shown = [
        parse_shape(comment[slice(*shape_span(comment))])
        for line in source.splitlines()
        if "print(" in line and (comment := split_comment(line)[1]) and shape_span(comment)
    ]
    assert len(printed) == len(shown), (printed, shown)
    for shape, line in zip(shown, printed, strict=True):
        match(shape, json.loads(line), {})


# -- the checker itself: it must see drift -------------------------------------------------


def test_the_checker_sees_drift():
    binds: dict[str, object] = {}
    shape = parse_shape(
        '{"id": ID, "title": "Unprocessable Content", "errors": [...], "items": [{"a": 1}, ...]}'
    )
    match(
        shape, {"id": "x", "title": "Unprocessable Content", "errors": [], "items": [{"a": 1, "b": 2}]}, binds
    )
    assert binds == {"ID": "x"}
    for drifted in (
        {"id": "x", "title": "Unprocessable Entity", "errors": [], "items": [{"a": 1}]},  # another title
        {"id": "y", "title": "Unprocessable Content", "errors": [], "items": [{"a": 1}]},  # another ID
        {"id": "x", "title": "Unprocessable Content", "items": [{"a": 1}]},  # a key gone
        {"id": "x", "title": "Unprocessable Content", "errors": [], "items": []},  # too few items
    ):
        with pytest.raises(AssertionError):
            match(shape, drifted, dict(binds))
    assert parse_shape('{"type":"ready","latency":0,...,"tail_frames":...}') == {
        "type": "ready",
        "latency": 0,
        MORE: None,
        "tail_frames": ANY,
    }
    assert expected_of(' 202 {"id": RID}: queued').status == 202
    assert expected_of("server-sent events: event: progress ..., then event: done").events == [
        "progress",
        "done",
    ]
    with pytest.raises(AssertionError, match="uses ID before"):
        parse_curl("curl -s localhost:8000/api/assets/ID", {}, Path("."), "http://x", {"ID"})
