"""Clipping is reported, and a ceiling prevents it: the README's ``hall`` chain (plugins.toml)
on a -6 dBFS 440 Hz tone peaks over full scale. A render reports its output's peak and
clipped samples, ``/api/process`` sends them as headers, and ``output.ceiling_dbfs``
(``?ceiling_dbfs=``) keeps the true peak under the ceiling.

Oracles: the clipping figures are counted on pedalboard's own render of the chain; the
true peak is measured on the downloaded file with ``fxhost_sdk.meters.true_peak`` (the
ceiling's own definition: at most the ceiling + 0.01 dB, for the encoder's rounding) and
with scipy's ``resample_poly`` at 4x, a different interpolator (at most + 0.1 dB: two 4x
interpolators differ by up to about that on full-band audio)."""

import io

import numpy as np
import pedalboard
import pytest
import soundfile as sf
from fxhost_sdk.meters import true_peak
from restkit import decode, encode
from scipy.signal import resample_poly
from test_process_rest import reverb_tail, with_tail
from test_renders_rest import upload, wait

SR = 44100
#: plugins.toml's hall, the chain the README's examples use.
HALL = {"room_size": 0.9, "damping": 0.6, "wet_level": 0.35, "dry_level": 0.6, "width": 1.0}
CEILING = -1.0
METER_TOLERANCE_DB = 0.01
ORACLE_TOLERANCE_DB = 0.1


def minus_6_dbfs(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = 10 ** (-6 / 20) * np.sin(2 * np.pi * 440 * t)
    return np.stack([x, x]).astype(np.float32)


def hall(audio: np.ndarray) -> np.ndarray:
    return pedalboard.Reverb(**HALL).process(with_tail(audio, reverb_tail(SR, 2, **HALL)), SR)


def db(x: float) -> float:
    return 20 * np.log10(x)


def assert_under_ceiling(audio: np.ndarray, sample_rate: int, ceiling: float = CEILING) -> None:
    meter = db(max(true_peak(audio, sample_rate)))
    oversampled = resample_poly(audio.astype(np.float64), 4, 1, axis=1)
    oracle = db(max(np.abs(oversampled).max(), np.abs(audio).max()))
    assert meter <= ceiling + METER_TOLERANCE_DB, meter
    assert oracle <= ceiling + ORACLE_TOLERANCE_DB, oracle
    assert meter > ceiling - 1.0  # limited, not silenced


def expected_levels(audio: np.ndarray) -> tuple[float, int]:
    out = hall(audio)
    return db(np.abs(out).max()), int(np.count_nonzero(np.abs(out) >= 1.0))


def test_render_reports_clipping_and_a_ceiling_prevents_it(client):
    audio = minus_6_dbfs()
    peak, clipped = expected_levels(audio)
    assert clipped > 1000 and peak > 2.0  # the chain does clip this input
    asset = upload(client, audio)

    response = client.post(
        "/api/renders", json={"asset": asset["id"], "chain": "hall", "output": {"format": "flac"}}
    )
    assert response.status_code == 202, response.text
    assert response.json()["peak_dbfs"] is None and response.json()["clipped_samples"] is None  # not done yet
    done = wait(client, response.json()["id"])
    assert done["status"] == "done", done
    assert abs(done["clipped_samples"] - clipped) <= clipped // 1000, (done["clipped_samples"], clipped)
    assert done["peak_dbfs"] == pytest.approx(peak, abs=0.01)

    body = {"asset": asset["id"], "chain": "hall", "output": {"format": "flac", "ceiling_dbfs": CEILING}}
    done = wait(client, client.post("/api/renders", json=body).json()["id"])
    assert done["status"] == "done", done
    assert done["output"]["ceiling_dbfs"] == CEILING
    assert done["clipped_samples"] == 0 and CEILING - 0.5 < done["peak_dbfs"] <= CEILING
    out, rate = decode(client.get(f"/api/assets/{done['result']['id']}/audio").content)
    assert out.shape == hall(audio).shape  # the limiter keeps length and alignment
    assert_under_ceiling(out, rate)


def test_ceiling_is_the_last_step_after_resampling(client):
    asset = upload(client, minus_6_dbfs(1.0))
    output = {"format": "wav", "subtype": "FLOAT", "sample_rate": 96000, "ceiling_dbfs": -3.0}
    done = wait(
        client,
        client.post("/api/renders", json={"asset": asset["id"], "chain": "hall", "output": output}).json()[
            "id"
        ],
    )
    assert done["status"] == "done" and done["clipped_samples"] == 0, done
    out, rate = decode(client.get(f"/api/assets/{done['result']['id']}/audio").content)
    assert rate == 96000
    assert_under_ceiling(out, rate, -3.0)


def test_process_sends_levels_as_headers(client):
    audio = minus_6_dbfs()
    peak, clipped = expected_levels(audio)
    body = encode(audio, SR, "WAV", "FLOAT")
    response = client.post("/api/process", params={"chain": "hall", "format": "flac"}, content=body)
    assert response.status_code == 200, response.text
    assert abs(int(response.headers["x-clipped-samples"]) - clipped) <= clipped // 1000
    assert float(response.headers["x-peak-dbfs"]) == pytest.approx(peak, abs=0.01)

    params = {"chain": "hall", "format": "flac", "ceiling_dbfs": str(CEILING)}
    response = client.post("/api/process", params=params, content=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-clipped-samples"] == "0"
    assert CEILING - 0.5 < float(response.headers["x-peak-dbfs"]) <= CEILING
    assert sf.info(io.BytesIO(response.content)).subtype == "PCM_24"
    out, rate = decode(response.content)
    assert_under_ceiling(out, rate)


def test_silence_has_no_peak(client):
    silence = np.zeros((2, SR // 2), np.float32)
    params = {"effect": "gain", "gain_db": "6", "tail": "false"}
    response = client.post("/api/process", params=params, content=encode(silence, SR, "WAV", "PCM_16"))
    assert response.status_code == 200, response.text
    assert (response.headers["x-peak-dbfs"], response.headers["x-clipped-samples"]) == ("-inf", "0")
    done = wait(
        client,
        client.post("/api/renders", json={"asset": upload(client, silence)["id"], "chain": "hall"}).json()[
            "id"
        ],
    )
    assert (done["status"], done["peak_dbfs"], done["clipped_samples"]) == ("done", None, 0)


BAD_CEILINGS = [1.0, 0.5, -61.0, "nan", "inf", "-inf", "loud"]


@pytest.mark.parametrize("ceiling", BAD_CEILINGS)
def test_bad_ceiling_is_refused_naming_the_field(client, ceiling):
    asset = upload(client, minus_6_dbfs(0.2), name="bad-ceiling.wav")
    response = client.post(
        "/api/renders",
        json={"asset": asset["id"], "chain": "hall", "output": {"format": "wav", "ceiling_dbfs": ceiling}},
    )
    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["errors"]] == ["output.ceiling_dbfs"]

    body = encode(minus_6_dbfs(0.2), SR, "WAV", "PCM_16")
    response = client.post(
        "/api/process", params={"chain": "hall", "ceiling_dbfs": str(ceiling)}, content=body
    )
    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["errors"]] == ["ceiling_dbfs"]
