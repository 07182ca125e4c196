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
    assert {"422", "404"} <= set(spectrogram["responses"])
