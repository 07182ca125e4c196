"""One output rule, wherever audio is written: ``fxhost render``, ``POST /api/process``,
transcoding (``GET /api/assets/{id}/audio?format=``) and renders write the same sample
type for the same input and request.

The rule (README, "The output rule"): the subtype asked for; else the input's where the
format has it (float stays float); else 24-bit for a float or 32-bit input where the
format has it; else the format's own. The expected subtypes below are that rule written
out by hand, not computed by fxhost's code.
"""

import io

import pytest
import soundfile as sf
from clitools import run_fxhost
from restkit import encode, tone
from waiting import wait_until

SR = 48000  # Opus (an explicit subtype for ogg below) takes only a few rates
INPUTS = {  # name -> (libsndfile format, subtype, file extension)
    "float32-wav": ("WAV", "FLOAT", ".wav"),
    "pcm32-wav": ("WAV", "PCM_32", ".wav"),
    "pcm16-wav": ("WAV", "PCM_16", ".wav"),
    "pcm24-flac": ("FLAC", "PCM_24", ".flac"),
}
#: What each input becomes in each format when no subtype is asked for.
DEFAULTS = {
    "float32-wav": {"flac": "PCM_24", "wav": "FLOAT", "ogg": "VORBIS"},
    "pcm32-wav": {"flac": "PCM_24", "wav": "PCM_32", "ogg": "VORBIS"},
    "pcm16-wav": {"flac": "PCM_16", "wav": "PCM_16", "ogg": "VORBIS"},
    "pcm24-flac": {"flac": "PCM_24", "wav": "PCM_24", "ogg": "VORBIS"},
}
#: An explicit subtype per format, one that is never the default above.
EXPLICIT = {"flac": "PCM_S8", "wav": "DOUBLE", "ogg": "OPUS"}
EXTENSIONS = {"flac": ".flac", "wav": ".wav", "ogg": ".ogg"}
STEPS = [{"effect": "gain", "params": {"gain_db": -1.0}}]

_assets: dict[tuple[str, str], str] = {}


def source_bytes(kind: str) -> bytes:
    fmt, subtype, _ext = INPUTS[kind]
    return encode(tone(0.3, SR), SR, fmt, subtype)


def asset_of(client, kind: str) -> str:
    key = (str(client.base_url), kind)
    if key not in _assets:
        response = client.post(
            "/api/assets", params={"name": f"{kind}{INPUTS[kind][2]}"}, content=source_bytes(kind)
        )
        assert response.status_code == 201, response.text
        assert response.json()["subtype"] == INPUTS[kind][1]
        _assets[key] = response.json()["id"]
    return _assets[key]


def subtype_of(data: bytes) -> tuple[str, str]:
    info = sf.info(io.BytesIO(data))
    return info.format, info.subtype


#: What ``fxhost render`` wrote, per (kind, format, subtype): the command line uses no server,
#: so it runs once per case, not once per server backend.
_cli_written: dict[tuple[str, str, str | None], tuple[str, str]] = {}


def via_cli(tmp_path, kind: str, fmt: str, subtype: str | None) -> tuple[str, str]:
    if (kind, fmt, subtype) not in _cli_written:
        _cli_written[kind, fmt, subtype] = _render_with_cli(tmp_path, kind, fmt, subtype)
    return _cli_written[kind, fmt, subtype]


def _render_with_cli(tmp_path, kind: str, fmt: str, subtype: str | None) -> tuple[str, str]:
    src = tmp_path / f"in{INPUTS[kind][2]}"
    src.write_bytes(source_bytes(kind))
    out = tmp_path / f"out{EXTENSIONS[fmt]}"
    args = ["render", str(src), str(out), "--effect", "gain", "--set", "gain_db=-1.0", "--no-tail"]
    result = run_fxhost(*args, *(["--subtype", subtype] if subtype else []))
    assert result.returncode == 0, result.stderr
    return subtype_of(out.read_bytes())


def via_process(client, kind: str, fmt: str, subtype: str | None) -> tuple[str, str]:
    params = {"effect": "gain", "gain_db": "-1.0", "format": fmt, **({"subtype": subtype} if subtype else {})}
    response = client.post("/api/process", params=params, content=source_bytes(kind))
    assert response.status_code == 200, response.text
    return subtype_of(response.content)


def via_transcode(client, kind: str, fmt: str, subtype: str | None) -> tuple[str, str]:
    params = {"format": fmt, **({"subtype": subtype} if subtype else {})}
    response = client.get(f"/api/assets/{asset_of(client, kind)}/audio", params=params)
    assert response.status_code == 200, response.text
    return subtype_of(response.content)


def via_render(client, kind: str, fmt: str, subtype: str | None) -> tuple[str, str]:
    output = {"format": fmt, **({"subtype": subtype} if subtype else {})}
    response = client.post(
        "/api/renders", json={"asset": asset_of(client, kind), "chain": STEPS, "output": output}
    )
    assert response.status_code == 202, response.text
    render_id = response.json()["id"]
    body = wait_until(
        lambda: (
            (view := client.get(f"/api/renders/{render_id}").json())["status"] in ("done", "failed") and view
        ),
        60,
        what="the render finishing",
    )
    assert body["status"] == "done", body
    data = client.get(f"/api/assets/{body['result']['id']}/audio").content
    assert body["result"]["subtype"] == subtype_of(data)[1]
    return subtype_of(data)


@pytest.mark.parametrize("explicit", [False, True], ids=["rule", "asked"])
@pytest.mark.parametrize("fmt", ["flac", "wav", "ogg"])
@pytest.mark.parametrize("kind", list(INPUTS))
def test_every_path_writes_the_same_subtype(server, client, tmp_path, kind, fmt, explicit):
    subtype = EXPLICIT[fmt] if explicit else None
    expected = (
        {"flac": "FLAC", "wav": "WAV", "ogg": "OGG"}[fmt],
        subtype if explicit else DEFAULTS[kind][fmt],
    )
    written = {
        "fxhost render": via_cli(tmp_path, kind, fmt, subtype),
        "/api/process": via_process(client, kind, fmt, subtype),
        "transcode": via_transcode(client, kind, fmt, subtype),
        "render": via_render(client, kind, fmt, subtype),
    }
    assert written == dict.fromkeys(written, expected)
