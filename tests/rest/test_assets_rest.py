"""Assets over real HTTP: upload in every format (raw and multipart), stored exactly as
received, listed from the AVL index with cursor pages, transcoded with Range support,
deleted with nothing left behind; and the size limit enforced while the body streams."""

import hashlib
import io
import socket
import time
from pathlib import Path
from urllib.parse import unquote

import av
import numpy as np
import pytest
import soundfile as sf
from restkit import STORAGE_BACKENDS, decode, encode, serve_backend, start_server, stored_names, tone


@pytest.fixture(scope="module", params=STORAGE_BACKENDS)
def server(request, tmp_path_factory):
    """A real server on SQLite, on PostgreSQL, and with its audio in an S3 bucket (moto)."""
    yield from serve_backend(request, tmp_path_factory)


SR = 44100


def m4a_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """AAC in an MP4 container, which libsndfile cannot read, encoded with PyAV."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="stereo")
        frame_size = 1024
        pts = 0
        for start in range(0, audio.shape[1], frame_size):
            chunk = np.ascontiguousarray(audio[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = sample_rate, pts
            pts += chunk.shape[1]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


FORMATS = {
    "take.wav": ("WAV", "PCM_16", lambda a: encode(a, SR, "WAV", "PCM_16")),
    "take-float.wav": ("WAV", "FLOAT", lambda a: encode(a, SR, "WAV", "FLOAT")),
    "take.flac": ("FLAC", "PCM_24", lambda a: encode(a, SR, "FLAC", "PCM_24")),
    "take.ogg": ("OGG", "VORBIS", lambda a: encode(a, SR, "OGG", "VORBIS")),
    "take.mp3": ("MP3", "MPEG_LAYER_III", lambda a: encode(a, SR, "MP3", "MPEG_LAYER_III")),
    "take.aiff": ("AIFF", "PCM_16", lambda a: encode(a, SR, "AIFF", "PCM_16")),
    "take.w64": ("W64", "PCM_24", lambda a: encode(a, SR, "W64", "PCM_24")),
    "take.rf64": ("RF64", "PCM_16", lambda a: encode(a, SR, "RF64", "PCM_16")),
    "take.m4a": ("M4A", None, lambda a: m4a_bytes(a, SR)),
}


@pytest.mark.parametrize("sent", ["C:\\Users\\me\\take one.wav", "/home/me/take one.wav"])
def test_multipart_file_name_with_the_clients_path_keeps_the_name(client, sent):
    """Some clients send the path the file had on their side; only its name is meant
    (RFC 7578). An explicit ?name= with a directory in it is refused instead."""
    data = encode(tone(0.1), SR, "WAV", "PCM_16")
    response = client.post("/api/assets", files={"file": (sent, data, "audio/wav")})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "take one.wav"
    refused = client.post("/api/assets", params={"name": sent}, content=data)
    assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "name"


@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_upload_every_format_stored_as_received(client, name, multipart):
    fmt, subtype, make = FORMATS[name]
    audio = tone(0.5)
    data = make(audio)
    if multipart:
        response = client.post("/api/assets", files={"file": (name, data, "application/octet-stream")})
    else:
        response = client.post("/api/assets", params={"name": name}, content=data)
    assert response.status_code == 201, response.text
    asset = response.json()
    assert asset["name"] == name and asset["format"] == fmt
    if subtype:
        assert asset["subtype"] == subtype
    assert (asset["sample_rate"], asset["channels"]) == (SR, 2)
    assert abs(asset["frames"] - audio.shape[1]) <= 1200  # lossy codecs pad a little
    assert asset["duration"] == pytest.approx(asset["frames"] / SR)
    assert asset["size"] == len(data) and asset["sha256"] == hashlib.sha256(data).hexdigest()
    stored = client.get(f"/api/assets/{asset['id']}/audio")
    assert stored.status_code == 200 and stored.content == data  # exactly as received
    assert stored.headers["content-type"].startswith("audio/")
    assert client.get(f"/api/assets/{asset['id']}").json() == asset


def test_format_is_recognised_by_content_not_name(client):
    data = encode(tone(0.3), SR, "FLAC", "PCM_16")
    asset = client.post("/api/assets", params={"name": "actually-flac.wav"}, content=data).json()
    assert asset["format"] == "FLAC"


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"this is not audio\n" * 100, 415, "not"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", 415, ""),
        (b"", 422, "empty"),
    ],
)
def test_non_audio_is_refused_and_nothing_stored(server, client, body, status, words):
    before = client.get("/api/audio/statistics").json()["assets"]["count"]
    response = client.post("/api/assets", params={"name": "x.wav"}, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]
    assert client.get("/api/audio/statistics").json()["assets"]["count"] == before
    assert [name for name in stored_names(server) if name.startswith(".part")] == []


def test_upload_needs_a_name(client):
    response = client.post("/api/assets", content=encode(tone(0.1), SR, "WAV"))
    assert response.status_code == 422 and response.json()["errors"][0]["path"] == "name"
    response = client.post("/api/assets", params={"name": "a/../../b/"}, content=encode(tone(0.1), SR, "WAV"))
    assert response.status_code == 422


def test_listing_pages_in_name_order_with_prefix(client):
    names = [f"list-{i:03d}.wav" for i in range(23)] + ["other.wav", "list-007.wav"]
    data = encode(tone(0.05), SR, "WAV")
    for name in names:
        assert client.post("/api/assets", params={"name": name}, content=data).status_code == 201
    seen, cursor = [], None
    while True:
        page = client.get(
            "/api/assets", params={"prefix": "list-", "limit": 5, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 5
        seen += [item["name"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(n for n in names if n.startswith("list-"))
    assert client.get("/api/assets", params={"cursor": "garbage!"}).status_code == 400
    assert client.get("/api/assets", params={"limit": 0}).status_code == 422
    assert client.get("/api/assets", params={"limit": "many"}).json()["errors"][0]["path"] == "limit"


def filename_of(response) -> str:
    """The file name a browser would save: Content-Disposition's ``filename*`` (RFC 8187)."""
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("inline; filename*=UTF-8''"), disposition
    return unquote(disposition.split("''", 1)[1])


def upload_named(client, name: str, data: bytes):
    response = client.post("/api/assets", params={"name": name}, content=data)
    assert response.status_code == 201, response.text
    return response.json()


def test_names_with_folders_upload_list_and_download(server, client):
    """A sample library's folders are part of its names: kept as given, listed, and
    downloaded as the last segment, the file a browser saves (RFC 6266 has it strip any
    folders itself; the full name is in the JSON). Stored by id, never by name."""
    data = encode(tone(0.2), SR, "WAV", "PCM_16")
    kick = upload_named(client, "kit/drums/kick.wav", data)
    assert kick["name"] == "kit/drums/kick.wav"
    multipart = client.post(
        "/api/assets", data={"name": "kit/drums/snare é.wav"}, files={"file": ("x.wav", data, "audio/wav")}
    )
    assert multipart.status_code == 201 and multipart.json()["name"] == "kit/drums/snare é.wav"
    source = upload_named(client, "drums/kick", data)  # a 422 before
    assert source["name"] == "drums/kick"
    assert client.get(f"/api/assets/{kick['id']}").json()["name"] == "kit/drums/kick.wav"
    stored = client.get(f"/api/assets/{kick['id']}/audio")
    assert stored.status_code == 200 and stored.content == data
    assert filename_of(stored) == "kick.wav"
    flac = client.get(f"/api/assets/{kick['id']}/audio", params={"format": "flac"})
    assert filename_of(flac) == "kick.flac"
    snare = client.get(f"/api/assets/{multipart.json()['id']}/audio", params={"format": "wav"})
    assert filename_of(snare) == "snare é.wav"
    picture = client.get(f"/api/assets/{kick['id']}/waveform.png")
    assert picture.status_code == 200 and filename_of(picture) == "kick-waveform.png"
    listed = client.get("/api/assets", params={"prefix": "kit/drums/"}).json()
    assert [a["name"] for a in listed["items"]] == ["kit/drums/kick.wav", "kit/drums/snare é.wav"]
    assert listed["prefixes"] == []
    # stored under the id: no folder made on the server's disk
    stored = stored_names(server)
    assert kick["id"] in stored and not any("/" in name for name in stored)
    # a chain names a nested impulse response by its name, and a render lands in its folder
    render = client.post(
        "/api/renders",
        json={
            "asset": source["id"],
            "chain": [{"effect": "convolution", "params": {"impulse_response": "kit/drums/kick.wav"}}],
            "tail": False,
        },
    )
    assert render.status_code == 202, render.text
    deadline = time.monotonic() + 60
    while (done := client.get(f"/api/renders/{render.json()['id']}").json())["status"] not in (
        "done",
        "failed",
    ):
        assert time.monotonic() < deadline, done
        time.sleep(0.05)
    assert done["status"] == "done", done
    assert done["result"]["name"] == "drums/kick-render.wav"


REFUSED_NAMES = [
    "/kit/kick.wav",
    "/",
    "kit//kick.wav",
    "kit/",
    "kit/drums/",
    "..",
    ".",
    "../kick.wav",
    "kit/../../etc/passwd",
    "kit/./kick.wav",
    "kit\\kick.wav",
    "kick\x00.wav",
    "kick\n.wav",
    "kick\x1b[31m.wav",
    "kick\x7f.wav",
    "kick\x85.wav",
    "x" * 256,
]


@pytest.mark.parametrize("name", REFUSED_NAMES, ids=repr)
@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_ambiguous_names_are_refused_and_nothing_stored(server, client, name, multipart):
    before = client.get("/api/audio/statistics").json()["assets"]["count"]
    files_before = stored_names(server)
    data = encode(tone(0.05), SR, "WAV")
    if multipart:
        response = client.post(
            "/api/assets", data={"name": name}, files={"file": ("take.wav", data, "audio/wav")}
        )
    else:
        response = client.post("/api/assets", params={"name": name}, content=data)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["path"] for e in response.json()["errors"]] == ["name"]
    assert client.get("/api/audio/statistics").json()["assets"]["count"] == before
    assert stored_names(server) == files_before


def test_the_name_rule_is_in_the_openapi_document(client):
    from fxhost.store.assets import NAME_PATTERN

    document = client.get("/openapi.json").json()
    upload = document["paths"]["/api/assets"]["post"]
    (name,) = [p for p in upload["parameters"] if p["name"] == "name"]
    schemas = [name["schema"], *name["schema"].get("anyOf", [])]
    assert NAME_PATTERN.pattern in [s.get("pattern") for s in schemas], name
    listing = document["paths"]["/api/assets"]["get"]
    assert "delimiter" in [p["name"] for p in listing["parameters"]]
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]
    ref = page.get("$ref", "").rsplit("/", 1)[-1]
    schema = document["components"]["schemas"][ref]
    assert schema["properties"]["prefixes"]["type"] == "array" and "prefixes" in schema["required"]


def test_listing_with_a_delimiter_pages_folders_and_items_together(client):
    names = [
        "lib/kit/drums/kick.wav",
        "lib/kit/drums/snare.wav",
        "lib/kit/bass.wav",
        "lib/kit.wav",
        "lib/kits/a.wav",
        "lib/loops/120/a.wav",
        "lib/loops/90/b.wav",
        "lib/one.wav",
        "lib/one.wav",  # names may repeat; ids tell them apart
        "lib/zz/deep/er/x.wav",
    ]
    data = encode(tone(0.05), SR, "WAV")
    for name in names:
        upload_named(client, name, data)
    whole = client.get("/api/assets", params={"prefix": "lib/", "delimiter": "/"}).json()
    assert [a["name"] for a in whole["items"]] == ["lib/kit.wav", "lib/one.wav", "lib/one.wav"]
    assert whole["prefixes"] == ["lib/kit/", "lib/kits/", "lib/loops/", "lib/zz/"]
    assert whole["next_cursor"] is None
    # in key order, items and prefixes together: what a page of `limit` holds
    expected = ["lib/kit.wav", "lib/kit/", "lib/kits/", "lib/loops/", "lib/one.wav", "lib/one.wav", "lib/zz/"]
    for limit in range(1, len(expected) + 1):
        seen, cursor, pages = [], None, 0
        while True:
            params = {"prefix": "lib/", "delimiter": "/", "limit": limit}
            page = client.get("/api/assets", params={**params, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            body = page.json()
            pages += 1
            assert len(body["items"]) + len(body["prefixes"]) <= limit
            seen += sorted([a["name"] for a in body["items"]] + body["prefixes"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == expected and pages == -(-len(expected) // limit), limit
    nested = client.get("/api/assets", params={"prefix": "lib/loops/", "delimiter": "/"}).json()
    assert nested["items"] == [] and nested["prefixes"] == ["lib/loops/120/", "lib/loops/90/"]
    for bad in ["", "x" * 17]:
        refused = client.get("/api/assets", params={"delimiter": bad})
        assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "delimiter"


def test_transcode_resample_and_range(client):
    audio = tone(1.0)
    asset = client.post(
        "/api/assets", params={"name": "tx.wav"}, content=encode(audio, SR, "WAV", "FLOAT")
    ).json()
    url = f"/api/assets/{asset['id']}/audio"
    flac = client.get(url, params={"format": "flac", "sample_rate": 22050, "subtype": "PCM_24"})
    assert flac.status_code == 200, flac.text
    assert flac.headers["content-type"] == "audio/flac"
    assert int(flac.headers["content-length"]) == len(flac.content)
    info = sf.info(io.BytesIO(flac.content))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_24", 22050, 2)
    assert abs(info.frames - 22050) <= 1
    whole = client.get(url, params={"format": "wav"}).content
    part = client.get(url, params={"format": "wav"}, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == whole[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(whole)}"
    tail = client.get(url, params={"format": "wav"}, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole[-10:]
    assert (
        client.get(url, params={"format": "wav"}, headers={"Range": f"bytes={len(whole)}-"}).status_code
        == 416
    )
    original = client.get(url, headers={"Range": "bytes=0-43"})  # the stored file, by Starlette
    assert original.status_code == 206 and original.content[:4] == b"RIFF"
    decoded, _rate = decode(whole)
    np.testing.assert_allclose(decoded, audio, atol=1e-6)
    for params, path in [
        ({"format": "xyz"}, "format"),
        ({"format": "flac", "subtype": "FLOAT"}, "subtype"),
        ({"format": "opus"}, "sample_rate"),
        ({"sample_rate": 5}, "sample_rate"),
    ]:
        bad = client.get(url, params=params)
        assert bad.status_code == 422, (params, bad.text)
        assert bad.json()["errors"][0]["path"] == path


def test_delete_removes_row_and_file(server, client):
    asset = client.post(
        "/api/assets", params={"name": "gone.wav"}, content=encode(tone(0.1), SR, "WAV")
    ).json()
    files_before = stored_names(server)
    assert client.delete(f"/api/assets/{asset['id']}").status_code == 204
    assert client.get(f"/api/assets/{asset['id']}").status_code == 404
    assert client.get(f"/api/assets/{asset['id']}/audio").status_code == 404
    assert client.delete(f"/api/assets/{asset['id']}").status_code == 404
    assert stored_names(server) == files_before - {asset["id"]}
    assert "gone.wav" not in [
        a["name"] for a in client.get("/api/assets", params={"prefix": "gone"}).json()["items"]
    ]


def test_size_limit_enforced_while_streaming(tmp_path):
    server = start_server(tmp_path / "small", {"FXHOST_MAX_UPLOAD_BYTES": "100000"})
    try:
        with server.client() as client:
            big = encode(tone(2.0), SR, "WAV")  # ~350 kB
            declared = client.post("/api/assets", params={"name": "big.wav"}, content=big)
            assert (
                declared.status_code == 413 and declared.headers["content-type"] == "application/problem+json"
            )

            def chunks():  # no Content-Length: the limit must bite mid-stream
                for i in range(0, len(big), 8192):
                    yield big[i : i + 8192]

            streamed = client.post("/api/assets", params={"name": "big.wav"}, content=chunks())
            assert streamed.status_code == 413
            assert client.get("/api/audio/statistics").json()["assets"]["count"] == 0
        # 413 arrives before the whole body is sent: the server answers after ~100 kB of 50 MB
        host, port = server.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /api/assets?name=x.wav HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            sent = 0
            sock.settimeout(0.05)
            reply = b""
            while sent < 50_000_000 and not reply:
                piece = b"\0" * 65536
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                    sent += len(piece)
                    reply = sock.recv(4096)
                except (TimeoutError, BlockingIOError):
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
            assert sent < 5_000_000, f"sent {sent} bytes before the server refused"
        leftovers = [p for p in (Path(server.root) / "uploads").iterdir()]
        assert leftovers == []
    finally:
        server.stop()
