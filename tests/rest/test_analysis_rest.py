"""Analysis over real HTTP: levels and loudness of uploaded audio as JSON (the same
numbers fxhost.analysis gives for the decoded audio), waveform and spectrogram PNGs of
the requested size, quick for a minute of stereo, and the errors: unknown ids (404),
sizes and FFT lengths out of range (422 naming the parameter)."""

import io
import math
import os
import struct
import zlib
from pathlib import Path

import msgspec
import numpy as np
import pytest
from fxhost.audio.analysis import analyse
from restkit import encode, tone

SR = 48000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Where the pictures made here are kept for a person to look at.
PICTURES = Path(os.environ.get("FXHOST_TEST_PICTURES", "/tmp/fxhost-analysis-pictures"))


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk (checked by its CRC), then by PIL if installed."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(data[12:29]) == crc
    width, height = struct.unpack(">II", data[16:24])
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return width, height
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes every pixel: the file is whole
        assert image.size == (width, height)
    return width, height


def upload(client, audio: np.ndarray, name: str, sample_rate: int = SR, subtype: str = "FLOAT") -> dict:
    response = client.post(
        "/api/assets", params={"name": name}, content=encode(audio, sample_rate, "WAV", subtype)
    )
    assert response.status_code == 201, response.text
    return response.json()


def keep(name: str, data: bytes) -> None:
    PICTURES.mkdir(parents=True, exist_ok=True)
    (PICTURES / name).write_bytes(data)


@pytest.fixture(scope="module")
def stereo(server):
    """A 4 s stereo take with a clipped burst in the left channel, as 32-bit float WAV."""
    audio = tone(4.0, SR, 2) * np.float32(0.5)
    audio[0, SR : SR + 30] = 1.0
    with server.client() as client:
        return upload(client, audio, "take one.wav"), audio


def test_analysis_matches_the_decoded_audio(client, stereo):
    asset, audio = stereo
    response = client.get(f"/api/assets/{asset['id']}/analysis")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["sample_rate"], body["channels"], body["frames"]) == (SR, 2, 4 * SR)
    assert body["duration"] == pytest.approx(4.0)
    assert body["clip_threshold"] == 0.999
    left, right = body["per_channel"]
    assert left["peak"] == pytest.approx(1.0) and left["peak_dbfs"] == pytest.approx(0.0, abs=1e-6)
    assert (left["clipped_samples"], left["clip_runs"], left["longest_clip_run"]) == (30, 1, 30)
    assert right["clipped_samples"] == 0 and right["clip_runs"] == 0
    assert right["peak"] == pytest.approx(float(np.max(np.abs(audio[1]))), rel=1e-6)
    rms = float(np.sqrt(np.mean(np.square(audio[1], dtype=np.float64))))
    assert right["rms"] == pytest.approx(rms, rel=1e-6)
    assert right["rms_dbfs"] == pytest.approx(20 * math.log10(rms), abs=1e-6)
    assert body["overall"]["peak"] == left["peak"]
    assert body["overall"]["clipped_samples"] == 30
    assert -30 < body["integrated_lufs"] < 0 and body["loudness_range_lu"] >= 0
    assert body["true_peak_dbtp"] >= body["overall"]["peak_dbfs"]
    # the float WAV decodes to exactly the uploaded samples: the same numbers as locally
    assert body == msgspec.to_builtins(analyse(audio, SR))


def test_loudness_of_short_audio_is_null(client):
    asset = upload(client, tone(0.3, SR, 1), "short.wav", subtype="PCM_16")
    body = client.get(f"/api/assets/{asset['id']}/analysis").json()
    assert body["frames"] == int(0.3 * SR) and body["channels"] == 1
    assert body["integrated_lufs"] is None and body["loudness_range_lu"] is None
    assert body["overall"]["peak_dbfs"] < 0


def test_analysis_of_silence(client):
    asset = upload(client, np.zeros((2, SR), np.float32), "silence.wav", subtype="PCM_16")
    body = client.get(f"/api/assets/{asset['id']}/analysis").json()
    assert body["overall"]["peak"] == 0 and body["overall"]["peak_dbfs"] is None
    assert body["integrated_lufs"] is None and body["true_peak_dbtp"] is None


@pytest.mark.parametrize(
    ("kind", "params", "size"),
    [
        ("waveform", {}, (1200, 400)),
        ("waveform", {"width": 640, "height": 333}, (640, 333)),
        ("waveform", {"width": 200, "height": 100}, (200, 100)),
        ("spectrogram", {}, (1200, 400)),
        ("spectrogram", {"width": 900, "height": 500, "fft": 512, "scale": "linear"}, (900, 500)),
        ("spectrogram", {"width": 4000, "height": 2000, "fft": 8192}, (4000, 2000)),
    ],
)
def test_pictures_have_the_requested_size(client, stereo, kind, params, size):
    asset, _ = stereo
    response = client.get(f"/api/assets/{asset['id']}/{kind}.png", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert "take%20one-" in response.headers["content-disposition"]
    assert png_size(response.content) == size
    if not params:
        keep(f"{kind}.png", response.content)


def test_a_minute_of_stereo_is_analysed_and_drawn(client):
    """60 s of 48 kHz stereo through all three endpoints (their speed is for bench/, not here)."""
    rng = np.random.default_rng(7)
    t = np.arange(60 * SR) / SR
    chirp = 0.3 * np.sin(2 * np.pi * (50 * t + (12000 - 50) / 120 * t * t))
    audio = tone(60.0, SR, 2) * 0.8 + np.stack([chirp, 0.02 * rng.standard_normal(len(t))])
    asset = upload(client, audio.astype(np.float32), "a minute of stereo.wav", subtype="PCM_24")
    base = f"/api/assets/{asset['id']}"
    for path in ("analysis", "waveform.png", "spectrogram.png"):
        response = client.get(f"{base}/{path}")
        assert response.status_code == 200
        if path.endswith(".png"):
            keep(f"minute-{path}", response.content)
            assert png_size(response.content) == (1200, 400)
        else:
            assert response.json()["duration"] == pytest.approx(60.0)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("path", ["analysis", "waveform.png", "spectrogram.png"])
def test_unknown_asset_is_404(client, path):
    response = client.get(f"/api/assets/no-such-asset/{path}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "no-such-asset" in response.json()["detail"]


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("waveform", {"width": 199}, "width"),
        ("waveform", {"width": 4001}, "width"),
        ("waveform", {"height": 99}, "height"),
        ("waveform", {"height": 2001}, "height"),
        ("waveform", {"width": "wide"}, "width"),
        ("waveform", {"fft": 1024}, "fft"),  # the waveform has no FFT
        ("spectrogram", {"height": 5000}, "height"),
        ("spectrogram", {"fft": 1000}, "fft"),  # not a power of two
        ("spectrogram", {"fft": 128}, "fft"),
        ("spectrogram", {"fft": 16384}, "fft"),
        ("spectrogram", {"scale": "mel"}, "scale"),
    ],
)
def test_bad_query_is_422_naming_the_field(client, stereo, kind, params, field):
    asset, _ = stereo
    response = client.get(f"/api/assets/{asset['id']}/{kind}.png", params=params)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["path"] for e in problem["errors"]] == [field]
    assert field in problem["detail"]


def test_the_routes_are_documented(client):
    doc = client.get("/openapi.json").json()
    analysis = doc["paths"]["/api/assets/{id}/analysis"]["get"]
    assert analysis["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Analysis"
    }
    assert "0.999" in doc["components"]["schemas"]["Levels"]["properties"]["clipped_samples"]["description"]
    spectrogram = doc["paths"]["/api/assets/{id}/spectrogram.png"]["get"]
    assert "image/png" in spectrogram["responses"]["200"]["content"]
    params = {p["name"]: p for p in spectrogram["parameters"]}
    assert params["width"]["schema"]["minimum"] == 200 and params["width"]["schema"]["maximum"] == 4000
    assert params["fft"]["schema"]["anyOf"][0]["enum"] == [256, 512, 1024, 2048, 4096, 8192]
    assert {"422", "404", "503"} <= set(spectrogram["responses"])


# --------------------------------------------------------------------------- content


def rgb(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def ink_columns(image: np.ndarray) -> np.ndarray:
    """x of every column holding the waveform's min/max or RMS colour."""
    fill = np.all(image == (0x9E, 0xC5, 0xE8), axis=2) | np.all(image == (0x2A, 0x6F, 0xB0), axis=2)
    return np.flatnonzero(fill.any(axis=0))


def test_the_waveform_draws_the_signal(client):
    """A tone loud for 2 s then silent for 2 s is inked over the first half of the plot
    only; the same tone for all 4 s spans the plot (which finds its edges)."""
    t = np.arange(4 * SR) / SR
    loud = (0.8 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)
    half = loud.copy()
    half[:, 2 * SR :] = 0.0
    whole = ink_columns(
        rgb(client.get(f"/api/assets/{upload(client, loud, 'loud.wav')['id']}/waveform.png").content)
    )
    png = client.get(f"/api/assets/{upload(client, half, 'half.wav')['id']}/waveform.png").content
    keep("half-silent-waveform.png", png)
    first = ink_columns(rgb(png))
    left, right = whole.min(), whole.max()
    assert right - left > 1000  # the plot of a 1200-pixel picture
    middle = (left + right) / 2
    assert abs(first.min() - left) <= 2 and abs(first.max() - middle) <= 3
    assert len(first) >= (middle - left) - 2  # no gap: every column of the loud half is inked


def test_the_spectrogram_puts_a_sine_on_its_row(client):
    """3, 6 and 12 kHz, a third of the time each, on a linear axis: the brightest row of a
    column in each third rises in proportion to the frequency, from the plot's bottom."""
    t = np.arange(6 * SR) / SR
    freq = np.where(t < 2, 3000.0, np.where(t < 4, 6000.0, 12000.0))
    audio = (0.5 * np.sin(2 * np.pi * np.cumsum(freq) / SR))[None].astype(np.float32)
    asset = upload(client, audio, "steps.wav")
    png = client.get(f"/api/assets/{asset['id']}/spectrogram.png", params={"scale": "linear"}).content
    keep("steps-spectrogram.png", png)
    image = rgb(png)
    width = image.shape[1]
    rows = []
    for x in (int(0.2 * width), int(0.5 * width), int(0.78 * width)):
        column = image[:, x]
        coloured = ~np.all(column > 250, axis=1)  # not the white margins
        # the plot: the longest run of coloured rows (titles and labels are short runs)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], coloured.astype(int), [0]))))
        starts, ends = edges[::2], edges[1::2]
        longest = int(np.argmax(ends - starts))
        top, bottom = int(starts[longest]), int(ends[longest]) - 1
        assert bottom - top > 250
        inside = column[top + 3 : bottom - 2]  # not the frame's anti-aliased lines
        rows.append(top + 3 + int(np.argmax(inside.sum(axis=1))))
    y3, y6, y12 = rows
    assert y12 < y6 < y3  # higher is up
    per_khz = (y6 - y12) / 6
    assert abs((y3 - y6) - 3 * per_khz) <= 2
    # 0 Hz is the bottom of the plot, 24 kHz its top, within half a kHz (the frame's lines)
    assert abs((y6 + 6 * per_khz) - bottom) <= per_khz / 2
    assert abs((y6 - 18 * per_khz) - top) <= per_khz / 2


def test_whole_file_work_leaves_the_cache_alone(client):
    """Analysis, pictures and transcoding read the asset in blocks: nothing is decoded
    whole into the LRU cache (before, each of them loaded the asset into it)."""
    asset = upload(client, tone(20.0, SR, 2), "not cached.wav", subtype="PCM_16")
    before = client.get("/api/audio/statistics").json()["cache"]
    base = f"/api/assets/{asset['id']}"
    for path in ("analysis", "waveform.png", "spectrogram.png"):
        assert client.get(f"{base}/{path}").status_code == 200
    assert client.get(f"{base}/audio", params={"format": "flac"}).status_code == 200
    after = client.get("/api/audio/statistics").json()["cache"]
    assert (after["loads"], after["entries"], after["bytes"]) == (
        before["loads"],
        before["entries"],
        before["bytes"],
    )


def test_transcoding_streams_the_same_samples(client):
    """A 44.1 kHz float WAV of an awkward length fetched as 48 kHz float WAV: block by
    block through soxr's stream, the same samples as soxr on the whole array (1e-6)."""
    from fxhost.audio.resample import resample
    from restkit import decode

    audio = tone(7.3, 44100, 2) + np.float32(0.01)
    audio = audio[:, : audio.shape[1] - 17]
    asset = upload(client, audio, "to resample.wav", sample_rate=44100)
    response = client.get(
        f"/api/assets/{asset['id']}/audio", params={"format": "wav", "subtype": "FLOAT", "sample_rate": 48000}
    )
    assert response.status_code == 200 and response.headers["content-length"] == str(len(response.content))
    got, rate = decode(response.content)
    want = resample(audio, 44100, 48000)
    assert rate == 48000 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_a_busy_server_answers_503_with_retry_after(tmp_path):
    """One whole-file slot and no line: requests that arrive while it is taken are refused
    at once with 503, Retry-After and a problem; the others are answered."""
    from concurrent.futures import ThreadPoolExecutor

    from restkit import start_server

    server = start_server(
        tmp_path, {"FXHOST_ANALYSIS_CONCURRENCY": "1", "FXHOST_ANALYSIS_QUEUE_SECONDS": "0"}
    )
    try:
        with server.client() as client:
            asset = upload(client, tone(60.0, SR, 2), "minute.wav", subtype="PCM_16")

            def get(path: str):
                with server.client() as c:
                    return c.get(f"/api/assets/{asset['id']}/{path}")

            paths = ["analysis", "spectrogram.png", "analysis", "waveform.png", "analysis", "analysis"]
            with ThreadPoolExecutor(len(paths)) as pool:
                responses = list(pool.map(get, paths))
        statuses = sorted(r.status_code for r in responses)
        assert 200 in statuses and 503 in statuses and set(statuses) == {200, 503}, statuses
        for response in responses:
            if response.status_code == 503:
                assert response.headers["content-type"] == "application/problem+json"
                assert int(response.headers["retry-after"]) >= 1
                assert "busy" in response.json()["detail"]
    finally:
        server.stop()
