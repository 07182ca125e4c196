"""The bad-input catalogue: hostile or broken input at every entry point of fxhost, one
row each in :data:`CASES`, run against a real server (SQLite, and PostgreSQL when
``FXHOST_TEST_DATABASE_URL`` is set) and the real ``fxhost`` command line.

Every row says what is sent, where, and what must come back: an HTTP 4xx as
``application/problem+json``, a WebSocket ``error`` message and close code (or an
``error`` reply with the session left open), or a CLI exit code with one line on
stderr; and a word or field path the answer must name. After every row the server must
still answer ``/health``, and the files in the uploads and renders folders, the assets,
chains, renders and streams must be exactly as before it.

To add a case, append a ``Case(id, send, expect, names)`` to :data:`CASES`, where
``send`` is the input and its entry point: ``upload(...)``, ``form(...)``, ``process(...)``,
``post/get/put/patch/delete(path, ...)``, ``ws(path, *messages)`` or ``cli(*args, **files)``
(paths and JSON strings may use ``{asset}`` and ``{stream}``: an uploaded asset and a live
stream made before any case runs). Deleting an asset while it renders is a scenario, not
one request: it is :func:`test_deleting_an_asset_while_it_renders`, below the table.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from clitools import REPO, run_fxhost
from restkit import PG_URL, encode, fresh_postgres, start_server, tone
from websockets.exceptions import ConnectionClosed
from wskit import open_ws

SR = 44100
MAX_UPLOAD = 400_000
MAX_FRAME = 65536
PROBLEM_JSON = "application/problem+json"
STAYS_OPEN = "error reply, session goes on"


# -- hostile audio, made here ---------------------------------------------------------


def m4a(audio: np.ndarray, sample_rate: int = SR) -> bytes:
    """AAC in MP4, which only PyAV reads."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = sample_rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


AUDIO = tone(0.5, SR)
GOOD = {
    "wav": encode(AUDIO, SR, "WAV", "PCM_16"),
    "flac": encode(AUDIO, SR, "FLAC", "PCM_16"),
    "ogg": encode(AUDIO, SR, "OGG", "VORBIS"),
    "opus": encode(tone(0.5, 48000), 48000, "OGG", "OPUS"),
    "mp3": encode(AUDIO, SR, "MP3", "MPEG_LAYER_III"),
    "aiff": encode(AUDIO, SR, "AIFF", "PCM_16"),
    "m4a": m4a(AUDIO),
}


def cut(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: int(len(data) * fraction)]


def scribble(data: bytes, at: float = 0.5, size: int = 4000) -> bytes:
    """``size`` random bytes written over the middle of the file."""
    start = int(len(data) * at)
    noise = np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes()
    return data[:start] + noise + data[start + size :]


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def float_wav_with(value: float) -> bytes:
    audio = AUDIO.copy()
    audio[1, 1000] = value
    return encode(audio, SR, "WAV", "FLOAT")


def wav_header(sample_rate: int = SR, channels: int = 2) -> bytes:
    # WAV fields: channels at byte 22 (<H), sample rate at 24 (<I)
    return patched(patched(GOOD["wav"], 22, "<H", channels), 24, "<I", sample_rate)


def pcm(samples: np.ndarray, dtype: str = "<f4") -> bytes:
    return np.asarray(samples, dtype=dtype).tobytes()


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


NOT_AUDIO = b"<!doctype html><html><body>" + b"not audio " * 500 + b"</body></html>"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(2000)
BAD_UTF8 = b"\xff\xfe\xc3\x28"
ID = "0123456789abcdef0123456789abcdef"


# -- how a case sends its input -------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int | str  # HTTP status, WebSocket close code (or STAYS_OPEN), CLI exit code
    said: str  # what the answer says: problem detail and field paths, WS error, CLI stderr


@dataclass(frozen=True)
class Http:
    method: str
    path: str
    params: dict[str, str] | None = None
    content: bytes | None = None
    json_body: Any = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    headers: dict[str, str] | None = None

    @property
    def entry(self) -> str:
        return f"{self.method} {self.path}"

    def __call__(self, ctx: Context) -> Outcome:
        response = ctx.http.request(
            self.method,
            self.path.format(**ctx.ids),
            params=self.params,
            content=self.content,
            json=_fill(self.json_body, ctx.ids),
            files=self.files,
            headers=self.headers,
        )
        assert response.headers["content-type"] == PROBLEM_JSON, (response.status_code, response.text[:300])
        problem = response.json()
        assert problem["status"] == response.status_code and problem["title"] and problem["detail"]
        assert "Traceback" not in response.text and str(ctx.root) not in response.text
        paths = " ".join(e["path"] for e in problem.get("errors") or [])
        return Outcome(response.status_code, f"{problem['detail']} [{paths}]")


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return [_fill(v, ids) for v in value] if isinstance(value, list) else value


def http(method: str, path: str, **kw: Any) -> Http:
    if "json" in kw:
        kw["json_body"] = kw.pop("json")
    return Http(method, path, **kw)


def post(path: str, **kw: Any) -> Http:
    return http("POST", path, **kw)


def get(path: str, **kw: Any) -> Http:
    return http("GET", path, **kw)


def put(path: str, **kw: Any) -> Http:
    return http("PUT", path, **kw)


def patch(path: str, **kw: Any) -> Http:
    return http("PATCH", path, **kw)


def delete(path: str, **kw: Any) -> Http:
    return http("DELETE", path, **kw)


START = {"type": "start", "chain": "hall", "sample_rate": SR, "channels": 2}
START_S16 = {**START, "format": "s16le"}


class TextBytes(bytes):
    """Bytes sent as a WebSocket *text* frame (to send text that is not UTF-8)."""


@dataclass(frozen=True)
class Ws:
    path: str
    messages: tuple[str | bytes | dict, ...]

    @property
    def entry(self) -> str:
        return f"WS {self.path}"

    def __call__(self, ctx: Context) -> Outcome:
        conn = open_ws(ctx.base, self.path.format(**ctx.ids))
        errors: list[dict] = []
        try:
            for i, message in enumerate(self.messages):
                if isinstance(message, dict):
                    conn.send(json.dumps(message))
                    if i == 0 and message in (START, START_S16):  # a valid start: wait for ready
                        assert json.loads(conn.recv(timeout=10))["type"] == "ready"
                else:
                    conn.send(message, text=True if isinstance(message, TextBytes) else None)
            while True:
                reply = conn.recv(timeout=10)
                if isinstance(reply, str):
                    errors.append(json.loads(reply))
                    if errors[-1]["type"] == "error" and self.path == "/ws/process":
                        # closing, or going on? A session that goes on answers stats.
                        conn.send(json.dumps({"type": "stats"}))
                        answer = json.loads(conn.recv(timeout=10))
                        if answer["type"] == "stats":
                            return Outcome(STAYS_OPEN, json.dumps(errors[-1]))
                        errors.append(answer)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            reason = closed.rcvd.reason if closed.rcvd else ""
            return Outcome(code, " ".join(json.dumps(e) for e in errors) or reason)
        finally:
            conn.close()


def ws(path: str, *messages: str | bytes | dict) -> Ws:
    return Ws(path, messages)


_cli_outcomes: dict[tuple, Outcome] = {}


@dataclass(frozen=True)
class Cli:
    args: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def entry(self) -> str:
        return f"fxhost {self.args[0]}"

    def __call__(self, ctx: Context) -> Outcome:
        # The command line uses no server: it runs once, not once per server backend.
        key = (self.args, tuple(sorted(self.files.items())))
        if key not in _cli_outcomes:
            _cli_outcomes[key] = self.run(ctx)
        return _cli_outcomes[key]

    def run(self, ctx: Context) -> Outcome:
        folder = ctx.root / "cli"
        folder.mkdir(exist_ok=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        before = set(folder.iterdir())
        result = run_fxhost(*self.args, cwd=folder, env={"FXHOST_PLUGINS_CONFIG": str(REPO / "plugins.toml")})
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fxhost: "), result.stderr
        assert set(folder.iterdir()) == before, "the CLI left a file behind"
        return Outcome(result.returncode, lines[0])


def cli(*args: str, **files: bytes) -> Cli:
    return Cli(args, {name.replace("_", "."): data for name, data in files.items()})


@dataclass(frozen=True)
class Case:
    id: str
    #: The hostile input, and where it goes: ``upload(...)``, ``post(...)``, ``ws(...)``, ``cli(...)``...
    send: Http | Ws | Cli
    #: HTTP status, WebSocket close code (or STAYS_OPEN), CLI exit code.
    expect: int | str
    #: A field path or word the answer must contain.
    names: str

    @property
    def entry(self) -> str:
        return self.send.entry


def upload(data: bytes, name: str = "take.wav", **kw: Any) -> Http:
    return post("/api/assets", params={"name": name}, content=data, **kw)


def process(data: bytes, **params: str) -> Http:
    return post("/api/process", params={"effect": "reverb", **params}, content=data)


def form(data: bytes, filename: str, content_type: str) -> Http:
    return post("/api/assets", files={"file": (filename, data, content_type)})


REVERB = [{"effect": "reverb"}]

CASES = [
    # -- truncated and corrupt audio of each format fxhost reads ----------------------
    Case("wav-truncated", upload(cut(GOOD["wav"])), 415, "truncated"),
    Case("wav-corrupt-fmt-chunk", upload(patched(GOOD["wav"], 20, "<H", 0x1234)), 415, "take.wav"),
    Case("flac-truncated", upload(cut(GOOD["flac"]), "take.flac"), 415, "FLAC"),
    Case("flac-corrupt-frames", upload(scribble(GOOD["flac"]), "take.flac"), 415, "corrupt"),
    # (an Ogg stream cut or scribbled over mid-way reads as a shorter stream: see the report)
    Case("ogg-vorbis-cut-in-headers", upload(cut(GOOD["ogg"], 0.05), "take.ogg"), 415, "take.ogg"),
    Case("ogg-vorbis-corrupt-headers", upload(scribble(GOOD["ogg"], 0.02, 200), "take.ogg"), 415, "take.ogg"),
    Case("opus-truncated", upload(cut(GOOD["opus"]), "take.opus"), 415, "take.opus"),
    Case("opus-corrupt", upload(scribble(GOOD["opus"], 0.3), "take.opus"), 415, "take.opus"),
    Case("mp3-truncated-to-header", upload(cut(GOOD["mp3"], 0.05), "take.mp3"), 415, "take.mp3"),
    Case("mp3-corrupt-frames", upload(scribble(GOOD["mp3"]), "take.mp3"), 415, "corrupt"),
    Case("aiff-truncated", upload(cut(GOOD["aiff"]), "take.aiff"), 415, "truncated"),
    Case(
        "aiff-corrupt-comm-chunk",
        upload(GOOD["aiff"][:20] + bytes(18) + GOOD["aiff"][38:], "take.aiff"),
        415,
        "take.aiff",
    ),
    Case("m4a-truncated", upload(cut(GOOD["m4a"]), "take.m4a"), 415, "take.m4a"),
    Case("m4a-corrupt", upload(scribble(GOOD["m4a"], 0.2, 20000), "take.m4a"), 415, "take.m4a"),
    Case("multipart-truncated-flac", form(cut(GOOD["flac"]), "take.flac", "audio/flac"), 415, "FLAC"),
    Case("process-truncated-flac", process(cut(GOOD["flac"])), 415, "truncated"),
    Case("process-corrupt-flac", process(scribble(GOOD["flac"])), 415, "corrupt"),
    Case("process-corrupt-mp3", process(scribble(GOOD["mp3"])), 415, "corrupt"),
    # -- empty bodies --------------------------------------------------------------------
    Case("upload-empty-body", upload(b""), 422, "body"),
    Case("upload-empty-file-part", form(b"", "take.wav", "audio/wav"), 422, "file"),
    Case("process-empty-body", process(b""), 422, "body"),
    Case("chain-empty-body", post("/api/chains", content=b""), 400, "empty"),
    Case("render-empty-body", post("/api/renders", content=b"  "), 400, "empty"),
    Case("stream-empty-body", post("/api/streams", content=b""), 400, "empty"),
    # -- not audio, under an audio name ------------------------------------------------
    Case("html-named-wav", upload(NOT_AUDIO, headers={"content-type": "audio/wav"}), 415, "not audio"),
    Case("png-named-mp3-multipart", form(PNG, "take.mp3", "audio/mpeg"), 415, "not audio"),
    Case("json-named-flac", upload(b'{"audio": true}' * 50, "take.flac"), 415, "not audio"),
    Case("process-html", process(NOT_AUDIO), 415, "not audio"),
    # -- bodies over the limit -----------------------------------------------------------
    Case("upload-over-limit", upload(encode(tone(3.0), SR, "WAV")), 413, "limit"),
    Case("multipart-over-limit", form(encode(tone(3.0), SR, "WAV"), "big.wav", "audio/wav"), 413, "limit"),
    Case("process-over-limit", process(encode(tone(3.0), SR, "WAV")), 413, "limit"),
    Case(
        "stream-input-over-frame-limit",
        post("/api/streams/{stream}/input", content=bytes(MAX_FRAME + 8)),
        413,
        "larger",
    ),
    # -- absurd sample rates and channel counts --------------------------------------------
    Case("wav-header-rate-0", upload(wav_header(sample_rate=0)), 415, "take.wav"),
    Case("wav-header-rate-4e9", upload(wav_header(sample_rate=4_000_000_000)), 415, "take.wav"),
    Case("wav-header-0-channels", upload(wav_header(channels=0)), 415, "take.wav"),
    Case("wav-header-65535-channels", upload(wav_header(channels=65535)), 415, "take.wav"),
    Case(
        "transcode-rate-absurd",
        get("/api/assets/{asset}/audio", params={"sample_rate": "99999999"}),
        422,
        "sample_rate",
    ),
    Case(
        "transcode-rate-negative",
        get("/api/assets/{asset}/audio", params={"sample_rate": "-44100"}),
        422,
        "sample_rate",
    ),
    Case("process-rate-too-low", process(GOOD["wav"], sample_rate="5"), 422, "sample_rate"),
    Case(
        "render-rate-absurd",
        post("/api/renders", json={"asset": "{asset}", "chain": "hall", "output": {"sample_rate": 10**9}}),
        422,
        "output.sample_rate",
    ),
    Case(
        "stream-rate-absurd",
        post("/api/streams", json={"chain": "hall", "sample_rate": 10**12}),
        422,
        "sample_rate",
    ),
    Case(
        "stream-zero-channels", post("/api/streams", json={"chain": "hall", "channels": 0}), 422, "channels"
    ),
    Case(
        "stream-10000-channels",
        post("/api/streams", json={"chain": "hall", "channels": 10000}),
        422,
        "channels",
    ),
    Case("ws-start-rate-absurd", ws("/ws/process", {**START, "sample_rate": 1}), 1008, "sample_rate"),
    Case("ws-start-channels-absurd", ws("/ws/process", {**START, "channels": 4096}), 1008, "channels"),
    # -- NaN and Inf in PCM ------------------------------------------------------------------
    Case("float-wav-with-nan", upload(float_wav_with(np.nan)), 415, "NaN"),
    Case(
        "float-wav-with-inf-multipart",
        form(float_wav_with(np.inf), "inf.wav", "audio/wav"),
        415,
        "NaN or infinite",
    ),
    Case("process-float-wav-with-nan", process(float_wav_with(-np.inf)), 415, "frame 1000"),
    Case(
        "stream-input-nan", post("/api/streams/{stream}/input", content=pcm([0.0, np.nan] * 32)), 422, "NaN"
    ),
    Case("ws-process-inf-frame", ws("/ws/process", START, pcm([0.1, np.inf] * 64)), 1007, "NaN"),
    Case("ws-input-nan-frame", ws("/ws/streams/{stream}/input", pcm([np.nan] * 128)), 1007, "NaN"),
    # -- invalid UTF-8 -------------------------------------------------------------------------
    Case(
        "chain-json-bad-utf8",
        post("/api/chains", content=b'{"name": "x' + BAD_UTF8 + b'", "steps": []}'),
        400,
        "UTF-8",
    ),
    Case(
        "patch-json-bad-utf8-key",
        patch("/api/streams/{stream}/steps/0", content=b'{"room' + BAD_UTF8 + b'": 0.5}'),
        400,
        "UTF-8",
    ),
    Case(
        "render-json-bad-utf8",
        post("/api/renders", content=b'{"asset": "' + BAD_UTF8 + b'", "chain": "hall"}'),
        400,
        "UTF-8",
    ),
    Case(
        "ws-text-frame-bad-utf8",
        ws("/ws/process", START, TextBytes(b'{"type": "stats"' + BAD_UTF8 + b"}")),
        1007,
        "",
    ),
    # -- deeply nested JSON ----------------------------------------------------------------------
    Case(
        "patch-nested-100k",
        patch("/api/streams/{stream}/steps/0", content=nested(100_000).encode()),
        400,
        "nested too deeply",
    ),
    Case(
        "chain-params-nested",
        post(
            "/api/chains",
            content=b'{"name": "deep", "steps": [{"effect": "reverb", "params": '
            + nested(5000).encode()
            + b"}]}",
        ),
        400,
        "nested too deeply",
    ),
    Case(
        "ws-start-nested",
        ws(
            "/ws/process",
            '{"type": "start", "steps": [{"effect": "reverb", "params": ' + nested(5000) + "}]}",
        ),
        1008,
        "nested too deeply",
    ),
    Case(
        "ws-set-nested",
        ws("/ws/process", START, '{"type": "set", "step": 0, "params": ' + nested(5000) + "}"),
        STAYS_OPEN,
        "nested too deeply",
    ),
    # -- unknown fields and wrong types -------------------------------------------------------
    Case(
        "chain-unknown-field",
        post("/api/chains", json={"name": "x", "steps": REVERB, "colour": "red"}),
        422,
        "colour",
    ),
    Case(
        "chain-unknown-param",
        post("/api/chains", json={"name": "x", "steps": [{"effect": "reverb", "params": {"size": 1}}]}),
        422,
        "steps[0].params.size",
    ),
    Case(
        "chain-param-wrong-type",
        put("/api/chains/x", json={"steps": [{"effect": "reverb", "params": {"room_size": "big"}}]}),
        422,
        "steps[0].params.room_size",
    ),
    Case("chain-name-wrong-type", post("/api/chains", json={"name": 5, "steps": REVERB}), 422, "name"),
    Case(
        "render-unknown-output-field",
        post("/api/renders", json={"asset": "{asset}", "chain": "hall", "output": {"bitrate": 320}}),
        422,
        "output.bitrate",
    ),
    Case(
        "render-tail-wrong-type",
        post("/api/renders", json={"asset": "{asset}", "chain": "hall", "tail": "yes"}),
        422,
        "tail",
    ),
    Case(
        "render-unknown-format",
        post("/api/renders", json={"asset": "{asset}", "chain": "hall", "output": {"format": "exe"}}),
        422,
        "output.format",
    ),
    Case(
        "upload-unknown-query-field",
        post("/api/assets", params={"name": "a.wav", "colour": "red"}, content=GOOD["wav"]),
        422,
        "colour",
    ),
    Case("list-limit-wrong-type", get("/api/assets", params={"limit": "lots"}), 422, "limit"),
    Case(
        "spectrogram-fft-not-power-of-two",
        get("/api/assets/{asset}/spectrogram.png", params={"fft": "1000"}),
        422,
        "fft",
    ),
    Case(
        "waveform-width-huge",
        get("/api/assets/{asset}/waveform.png", params={"width": "100000"}),
        422,
        "width",
    ),
    Case("process-param-nan", process(GOOD["wav"], room_size="nan"), 422, "room_size"),
    Case(
        "process-chain-and-effect",
        post("/api/process", params={"chain": "hall", "effect": "reverb"}, content=GOOD["wav"]),
        422,
        "chain",
    ),
    Case(
        "stream-output-cursor-negative",
        get("/api/streams/{stream}/output", params={"cursor": "-1"}),
        422,
        "cursor",
    ),
    Case(
        "stream-output-cursor-beyond",
        get("/api/streams/{stream}/output", params={"cursor": str(10**30)}),
        422,
        "cursor",
    ),
    Case("patch-step-not-object", patch("/api/streams/{stream}/steps/0", json=[0.5]), 422, "Expected object"),
    Case(
        "patch-step-out-of-range",
        patch("/api/streams/{stream}/steps/0", json={"room_size": 7}),
        422,
        "params.room_size",
    ),
    Case("list-cursor-forged", get("/api/assets", params={"cursor": "eyJhIjoxfQ"}), 400, "cursor"),
    Case(
        "range-unsatisfiable",
        get("/api/assets/{asset}/audio", params={"format": "wav"}, headers={"range": "bytes=99999999-"}),
        416,
        "range",
    ),
    # -- path traversal, NUL bytes, overlong names ------------------------------------------
    Case("asset-name-nul", upload(GOOD["wav"], "a\x00b.wav"), 422, "name"),
    Case("asset-name-only-dots", upload(GOOD["wav"], "../.."), 422, "name"),
    Case("asset-name-traversal", upload(GOOD["wav"], "../../etc/passwd"), 422, "name"),
    Case("asset-name-backslash-traversal", upload(GOOD["wav"], "..\\..\\boot.ini"), 422, "name"),
    Case("asset-name-invalid-utf8", post("/api/assets?name=%ff%fe.wav", content=GOOD["wav"]), 400, "name"),
    Case("asset-list-prefix-invalid-utf8", get("/api/assets?prefix=%c3%28"), 400, "prefix"),
    Case("asset-name-overlong", upload(GOOD["wav"], "a" * 300 + ".wav"), 422, "name"),
    Case("multipart-filename-overlong", form(GOOD["wav"], "b" * 300 + ".wav", "audio/wav"), 422, "name"),
    Case(
        "multipart-name-field-control-chars",
        post(
            "/api/assets",
            files={"file": ("x.wav", GOOD["wav"], "audio/wav"), "name": (None, "bad\r\nname", None)},
        ),
        422,
        "name",
    ),
    Case(
        "chain-name-traversal",
        post("/api/chains", json={"name": "../../etc/passwd", "steps": REVERB}),
        422,
        "name",
    ),
    Case("chain-put-encoded-dots", put("/api/chains/%2e%2e", json={"steps": REVERB}), 422, "name"),
    Case("chain-put-nul", put("/api/chains/a%00b", json={"steps": REVERB}), 422, "name"),
    Case("chain-put-overlong", put("/api/chains/" + "c" * 300, json={"steps": REVERB}), 422, "name"),
    Case("asset-get-encoded-traversal", get("/api/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd"), 404, "nothing at"),
    Case("asset-audio-traversal-id", get("/api/assets/..%2f..%2ffxhost.db/audio"), 404, "nothing at"),
    Case("asset-id-nul", get("/api/assets/abc%00def"), 404, "no asset"),
    Case("ws-stream-id-traversal", ws("/ws/streams/%2e%2e/output"), 4404, "no stream"),
    # -- unknown and malformed ids -------------------------------------------------------------
    Case("asset-unknown-id", get(f"/api/assets/{ID}"), 404, ID),
    Case("asset-delete-unknown", delete(f"/api/assets/{ID}"), 404, ID),
    Case("asset-analysis-malformed-id", get("/api/assets/" + "z" * 5000 + "/analysis"), 404, "no asset"),
    Case("render-unknown-id", get(f"/api/renders/{ID}"), 404, ID),
    Case("render-events-malformed-id", get("/api/renders/'%20OR%201=1/events"), 404, "no render"),
    Case("render-of-unknown-asset", post("/api/renders", json={"asset": ID, "chain": "hall"}), 422, "asset"),
    Case(
        "render-unknown-chain",
        post("/api/renders", json={"asset": "{asset}", "chain": "no-such-chain"}),
        422,
        "chain",
    ),
    Case("chain-get-unknown", get("/api/chains/no-such-chain"), 404, "no-such-chain"),
    Case("chain-delete-read-only", delete("/api/chains/hall"), 409, "hall"),
    Case("stream-unknown-id", get("/api/streams/nope"), 404, "nope"),
    Case("stream-input-unknown-id", post("/api/streams/nope/input", content=bytes(64)), 404, "nope"),
    Case(
        "patch-step-unknown-index",
        patch("/api/streams/{stream}/steps/99", json={"room_size": 0.5}),
        404,
        "step 99",
    ),
    Case("ws-input-unknown-stream", ws("/ws/streams/nope/input", bytes(64)), 4404, "nope"),
    # -- WebSocket frames that break the protocol ------------------------------------------
    Case("ws-audio-before-start", ws("/ws/process", bytes(64)), 1003, "expected_start"),
    Case("ws-first-not-json", ws("/ws/process", "{start"), 1008, "invalid_start"),
    Case("ws-first-unknown-type", ws("/ws/process", {"type": "launch"}), 1008, "invalid_start"),
    Case("ws-first-is-stats", ws("/ws/process", {"type": "stats"}), 1008, "expected_start"),
    Case("ws-start-unknown-field", ws("/ws/process", {**START, "gain": 2}), 1008, "gain"),
    Case("ws-start-wrong-format", ws("/ws/process", {**START, "format": "f64le"}), 1008, "format"),
    Case(
        "ws-start-unknown-chain",
        ws("/ws/process", {**START, "chain": "no-such-chain"}),
        1008,
        "unknown_chain",
    ),
    Case("ws-start-chain-and-steps", ws("/ws/process", {**START, "steps": REVERB}), 1008, "chain"),
    Case("ws-partial-frame", ws("/ws/process", START, bytes(12)), 1007, "whole number of frames"),
    Case(
        "ws-s16-odd-bytes",
        ws("/ws/process", START_S16, bytes(6)),
        1007,
        "whole number of frames",
    ),
    Case("ws-oversize-frame", ws("/ws/process", START, bytes(MAX_FRAME + 8)), 1009, "too_big"),
    Case("ws-mid-session-bad-json", ws("/ws/process", START, "[1, 2"), STAYS_OPEN, "invalid_message"),
    Case(
        "ws-mid-session-unknown-type",
        ws("/ws/process", START, {"type": "rewind"}),
        STAYS_OPEN,
        "invalid_message",
    ),
    Case(
        "ws-set-unknown-step",
        ws("/ws/process", START, {"type": "set", "step": 5, "params": {}}),
        STAYS_OPEN,
        "step",
    ),
    Case(
        "ws-set-bad-param",
        ws("/ws/process", START, {"type": "set", "step": 0, "params": {"room_size": -3}}),
        STAYS_OPEN,
        "room_size",
    ),
    Case("ws-second-start", ws("/ws/process", START, START), STAYS_OPEN, "already_started"),
    Case("ws-input-text-not-audio", ws("/ws/streams/{stream}/input", "hello"), 1003, "expected_audio"),
    Case(
        "ws-input-partial-frame", ws("/ws/streams/{stream}/input", bytes(4)), 1007, "whole number of frames"
    ),
    Case("ws-input-oversize-frame", ws("/ws/streams/{stream}/input", bytes(MAX_FRAME + 8)), 1009, "too_big"),
    Case("stream-input-partial-frame", post("/api/streams/{stream}/input", content=bytes(7)), 422, "body"),
    Case("stream-input-empty", post("/api/streams/{stream}/input", content=b""), 422, "body"),
    # -- the command line ----------------------------------------------------------------------
    Case(
        "cli-render-truncated-flac",
        cli("render", "in.flac", "out.wav", "--chain", "hall", in_flac=cut(GOOD["flac"])),
        1,
        "truncated",
    ),
    Case(
        "cli-render-nan-wav",
        cli("render", "in.wav", "out.flac", "--effect", "reverb", in_wav=float_wav_with(np.nan)),
        1,
        "NaN",
    ),
    Case(
        "cli-render-html-named-mp3",
        cli("render", "in.mp3", "out.wav", "--chain", "hall", in_mp3=NOT_AUDIO),
        1,
        "not audio",
    ),
    Case(
        "cli-render-bad-param",
        cli(
            "render", "in.wav", "out.wav", "--effect", "reverb", "--set", "room_size=nan", in_wav=GOOD["wav"]
        ),
        1,
        "room_size",
    ),
    Case("cli-validate-unknown-effect", cli("validate", "../../etc/passwd"), 1, "passwd"),
]


# -- running a case -------------------------------------------------------------------


@dataclass
class Context:
    base: str
    root: Path
    http: httpx.Client
    ids: dict[str, str]


def snapshot(ctx: Context) -> dict[str, Any]:
    """What a case must not change: the files in the storage folders and, through the
    API (the same on SQLite and PostgreSQL), the rows behind assets, chains and renders."""
    stats = ctx.http.get("/api/audio/statistics").json()
    return {
        "uploads": sorted(p.name for p in (ctx.root / "uploads").iterdir()),
        "renders": sorted(p.name for p in (ctx.root / "renders").iterdir()),
        "assets": [a["id"] for a in ctx.http.get("/api/assets", params={"limit": 1000}).json()["items"]],
        "asset_rows": stats["assets"],
        "render_rows": stats["renders"],
        "chains": [c["name"] for c in ctx.http.get("/api/chains").json()],
        "streams": [s["id"] for s in ctx.http.get("/api/streams").json()],
    }


BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres", marks=pytest.mark.skipif(not PG_URL, reason="FXHOST_TEST_DATABASE_URL is not set")
    ),
]


@pytest.fixture(scope="module", params=BACKENDS)
def ctx(request, tmp_path_factory):
    env = {
        "FXHOST_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "FXHOST_MAX_FRAME_BYTES": str(MAX_FRAME),
        "FXHOST_RENDER_WORKERS": "1",
    }
    if request.param == "postgres":
        env["FXHOST_DATABASE_URL"] = fresh_postgres()
    server = start_server(tmp_path_factory.mktemp(f"hostile-{request.param}"), env)
    with server.client() as client:
        asset = client.post("/api/assets", params={"name": "take.wav"}, content=GOOD["wav"])
        stream = client.post("/api/streams", json={"chain": "hall", "sample_rate": SR, "channels": 2})
        assert asset.status_code == 201 and stream.status_code == 201
        yield Context(
            server.base, server.root, client, {"asset": asset.json()["id"], "stream": stream.json()["id"]}
        )
    server.stop()


def test_the_catalogue_is_big_and_its_ids_unique():
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_input_is_refused_cleanly(ctx, case):
    before = snapshot(ctx)
    outcome = case.send(ctx)
    assert outcome.status == case.expect, outcome
    if isinstance(outcome.status, int) and outcome.status < 1000 and not isinstance(case.send, Cli):
        assert 400 <= outcome.status < 500
    assert case.names in outcome.said, outcome
    assert ctx.http.get("/health").json() == {"status": "ok"}
    assert snapshot(ctx) == before


def test_deleting_an_asset_while_it_renders(ctx):
    """The delete is answered 204 at once. The render either finishes from what it had
    already opened (a deleted file still reads to the end), giving a result asset with
    its file, or fails saying the asset was deleted; never a server path, never a file
    or row without the other."""
    long_take = encode(tone(4.0, 8000, 1), 8000, "FLAC", "PCM_16")
    asset = ctx.http.post("/api/assets", params={"name": "doomed.flac"}, content=long_take).json()
    renders = [
        ctx.http.post("/api/renders", json={"asset": asset["id"], "chain": "ambient"}).json()["id"]
        for _ in range(3)
    ]
    assert ctx.http.delete(f"/api/assets/{asset['id']}").status_code == 204
    assert ctx.http.get(f"/api/assets/{asset['id']}").status_code == 404
    views = [wait_for_render(ctx, render_id) for render_id in renders]
    for view in views:
        if view["status"] == "failed":
            assert view["error"] == f"the asset {asset['id']} was deleted before the render could read it"
        else:
            result = ctx.http.get(f"/api/assets/{view['result']['id']}/audio")
            assert result.status_code == 200 and len(result.content) == view["result"]["size"]
            assert ctx.http.delete(f"/api/assets/{view['result']['id']}").status_code == 204
    state = snapshot(ctx)
    # every file has its row, and no temporary file is left
    assert not [name for name in state["uploads"] + state["renders"] if name.startswith(".")]
    assert sorted(state["uploads"] + state["renders"]) == sorted(state["assets"])
    assert ctx.http.get("/health").json() == {"status": "ok"}


def wait_for_render(ctx: Context, render_id: str) -> dict:
    with ctx.http.stream("GET", f"/api/renders/{render_id}/events") as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                view = json.loads(line.removeprefix("data: "))
                if view["status"] in ("done", "failed"):
                    return view
    raise AssertionError(f"the events of render {render_id} ended before it finished")
