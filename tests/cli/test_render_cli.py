"""``fxhost render`` as a user runs it: a real process, real files, compared with
pedalboard called directly."""

import json
import sys
from pathlib import Path

import numpy as np
import pedalboard
import pytest
import soundfile as sf
from clitools import REPO, run_fxhost, write_signal
from fxhost_pedalboard import Reverb
from procenv import child_env


def pedalboard_render(audio: np.ndarray, sample_rate: int, tail_frames: int, **params) -> np.ndarray:
    padded = np.concatenate([audio, np.zeros((audio.shape[0], tail_frames), np.float32)], axis=1)
    return pedalboard.Reverb(**params).process(padded, sample_rate)


def test_render_effect_matches_pedalboard_with_tail(tmp_path: Path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    audio = write_signal(src, 2.0, subtype="FLOAT")
    result = run_fxhost(
        "render", str(src), str(out), "--effect", "reverb", "--set", "room_size=0.8", "--set", "wet_level=0.5"
    )
    assert result.returncode == 0, result.stderr
    rendered, sr = sf.read(out, dtype="float32", always_2d=True)
    info = sf.info(out)
    assert (sr, info.channels, info.subtype) == (44100, 2, "FLOAT")  # float input stays float
    params = Reverb.check_params({"room_size": 0.8, "wet_level": 0.5})
    tail = int(np.ceil(Reverb(sr, 2, params).tail_seconds * sr))
    assert rendered.shape[0] == audio.shape[1] + tail
    expected = pedalboard_render(audio, sr, tail, room_size=0.8, wet_level=0.5)
    np.testing.assert_allclose(rendered.T, expected, atol=1e-6)


def test_render_no_tail_keeps_length_and_pcm16(tmp_path: Path):
    src, out = tmp_path / "in.wav", tmp_path / "out.flac"
    audio = write_signal(src, 1.0, sample_rate=48000, channels=1, subtype="PCM_16")
    result = run_fxhost("render", str(src), str(out), "--effect", "reverb", "--no-tail")
    assert result.returncode == 0, result.stderr
    info = sf.info(out)
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (
        "FLAC",
        "PCM_16",
        48000,
        1,
        audio.shape[1],
    )
    rendered, _ = sf.read(out, dtype="float32", always_2d=True)
    expected = pedalboard.Reverb().process(audio, 48000)
    np.testing.assert_allclose(rendered.T, expected, atol=2 / 32768)  # 16-bit quantisation


def test_render_chain_from_plugins_toml(tmp_path: Path):
    config = tmp_path / "fx.toml"
    config.write_text(
        '[chains.wide]\ndescription = "test"\n'
        'steps = [{ effect = "reverb", params = { room_size = 0.2, width = 0.5 } },\n'
        '         { effect = "reverb", params = { damping = 0.9, dry_level = 0.8 } }]\n'
    )
    src, out = tmp_path / "in.aiff", tmp_path / "out.wav"
    audio = write_signal(src, 1.0, subtype="PCM_24")
    result = run_fxhost("--config", str(config), "render", str(src), str(out), "--chain", "wide")
    assert result.returncode == 0, result.stderr
    rendered, sr = sf.read(out, dtype="float32", always_2d=True)
    assert sf.info(out).subtype == "PCM_24"
    tail = rendered.shape[0] - audio.shape[1]
    board = pedalboard.Pedalboard(
        [pedalboard.Reverb(room_size=0.2, width=0.5), pedalboard.Reverb(damping=0.9, dry_level=0.8)]
    )
    padded = np.concatenate([audio, np.zeros((2, tail), np.float32)], axis=1)
    expected = np.clip(board.process(padded, sr), -1, 1)
    np.testing.assert_allclose(rendered.T, expected, atol=2 / 2**23)
    # the tail is the sum of both reverbs' tails
    steps = [
        Reverb.check_params({"room_size": 0.2, "width": 0.5}),
        Reverb.check_params({"damping": 0.9, "dry_level": 0.8}),
    ]
    assert tail == int(np.ceil(sum(Reverb(sr, 2, p).tail_seconds for p in steps) * sr))


def test_shipped_chains_render(tmp_path: Path):
    listing = run_fxhost("chains", "--json")
    assert listing.returncode == 0, listing.stderr
    names = [chain["name"] for chain in json.loads(listing.stdout)]
    assert len(names) >= 3
    src = tmp_path / "in.wav"
    write_signal(src, 0.5)
    for name in names:
        out = tmp_path / f"{name}.ogg"
        result = run_fxhost("render", str(src), str(out), "--chain", name)
        assert result.returncode == 0, (name, result.stderr)
        data, _ = sf.read(out, dtype="float32")
        assert np.isfinite(data).all() and np.abs(data).max() > 0.01


def test_progress_bar_shown_on_request(tmp_path: Path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_signal(src, 1.0)
    result = run_fxhost("render", str(src), str(out), "--effect", "reverb", "--progress")
    assert result.returncode == 0, result.stderr
    assert "rendering" in result.stderr and "100%" in result.stderr


def _peak_rss_kib(args: list[str]) -> int:
    code = (
        "import resource, sys\n"
        "from fxhost.cli import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "finally:\n    print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stderr.rsplit("RSS", 1)[1].split()[0])


def test_memory_does_not_grow_with_file_length(tmp_path: Path):
    short, long_ = tmp_path / "short.wav", tmp_path / "long.wav"
    sr = 8000
    write_signal(short, 5, sample_rate=sr, channels=2, subtype="PCM_16")
    # 10 minutes of stereo: 38 MB as float32 if the render held the whole file.
    rng = np.random.default_rng(0)
    with sf.SoundFile(long_, "w", sr, 2, subtype="PCM_16") as f:
        for _ in range(60):
            f.write((rng.standard_normal((sr * 10, 2)) * 0.1).astype(np.float32))
    args = ["render", "--effect", "reverb", "--no-tail"]
    small = _peak_rss_kib([*args[:1], str(short), str(tmp_path / "o1.wav"), *args[1:]])
    big = _peak_rss_kib([*args[:1], str(long_), str(tmp_path / "o2.wav"), *args[1:]])
    assert sf.info(tmp_path / "o2.wav").frames == 600 * sr
    assert big - small < 15 * 1024, f"peak RSS grew from {small} KiB to {big} KiB"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["render", "{missing}", "{out}", "--effect", "reverb"], "no such file"),
        (["render", "{text}", "{out}", "--effect", "reverb"], "not audio"),
        (["render", "{wav}", "{out}", "--chain", "no-such-chain"], "unknown chain 'no-such-chain'"),
        (["render", "{wav}", "{out}", "--effect", "nope"], "unknown effect 'nope'"),
        (
            ["render", "{wav}", "{out}", "--effect", "reverb", "--set", "room_size=2"],
            "steps[0].params.room_size: Expected float <= 1.0",
        ),
        (
            ["render", "{wav}", "{out}", "--effect", "reverb", "--set", "size=0.2"],
            "steps[0].params.size: unknown",
        ),
        (["render", "{wav}", "{out}", "--effect", "reverb", "--set", "room_size"], "expected KEY=VALUE"),
        (["render", "{wav}", "{tmp}/out.xyz", "--effect", "reverb"], "unknown output format '.xyz'"),
        (["render", "{wav}", "{tmp}/no/such/dir/out.wav", "--effect", "reverb"], "No such file or directory"),
        (["render", "{wav}", "{out}"], "exactly one of --chain NAME or --effect NAME"),
        (["--config", "{tmp}/absent.toml", "chains"], "absent.toml: file not found"),
        (["--config", "{badtoml}", "chains"], "bad.toml:2:"),
        (
            ["--config", "{badchain}", "chains"],
            "chains.vocal.steps[0].params.room_size: Expected float <= 1.0",
        ),
        (["validate", "nope"], "unknown effect 'nope'"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, args: list[str], expected: str):
    wav = tmp_path / "in.wav"
    write_signal(wav, 0.2)
    (tmp_path / "notes.wav").write_text("this is not audio\n" * 50)
    (tmp_path / "bad.toml").write_text("[chains.vocal]\nsteps = [{effect = }]\n")
    (tmp_path / "badchain.toml").write_text(
        '[chains.vocal]\nsteps = [{effect = "reverb", params = {room_size = 1.5}}]\n'
    )
    fields = {
        "missing": tmp_path / "missing.wav",
        "out": tmp_path / "out.wav",
        "text": tmp_path / "notes.wav",
        "wav": wav,
        "tmp": tmp_path,
        "badtoml": tmp_path / "bad.toml",
        "badchain": tmp_path / "badchain.toml",
    }
    result = run_fxhost(*[a.format(**fields) for a in args])
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    # a failed render leaves no output and no partial file behind
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.startswith(".") or p.name.startswith("out")]
    assert leftovers == []


def test_failed_render_midway_leaves_no_partial_file(tmp_path: Path):
    """A write that fails after the render started (Opus refuses 44.1 kHz) leaves nothing."""
    src, out = tmp_path / "in.wav", tmp_path / "out.opus"
    write_signal(src, 0.5)
    result = run_fxhost("render", str(src), str(out), "--effect", "reverb")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_render_offline_only_effect_and_preset(tmp_path: Path):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    audio = write_signal(src, 1.0, subtype="FLOAT") * 0.25
    sf.write(src, audio.T, 44100, subtype="FLOAT")
    result = run_fxhost("render", str(src), str(out), "--effect", "peak_normalize", "--set", "target_db=-3")
    assert result.returncode == 0, result.stderr
    rendered, _ = sf.read(out, dtype="float32")
    assert 20 * np.log10(np.abs(rendered).max()) == pytest.approx(-3, abs=1e-3)
    preset = run_fxhost(
        "render", str(src), str(tmp_path / "p.wav"), "--effect", "reverb", "--preset", "hall", "--no-tail"
    )
    assert preset.returncode == 0, preset.stderr
    unknown = run_fxhost(
        "render", str(src), str(tmp_path / "q.wav"), "--effect", "reverb", "--preset", "nope"
    )
    assert (
        unknown.returncode == 1 and "steps[0].preset" in unknown.stderr and "Traceback" not in unknown.stderr
    )


def test_render_convolution_with_an_impulse_response_file(tmp_path: Path):
    src, ir_path, out = tmp_path / "in.wav", tmp_path / "ir.wav", tmp_path / "out.wav"
    audio = write_signal(src, 0.5, subtype="FLOAT")
    ir = np.zeros((2, 2000), np.float32)
    ir[:, 0], ir[:, 700] = 1.0, 0.5
    sf.write(ir_path, ir.T, 44100, subtype="FLOAT")
    result = run_fxhost(
        "render",
        str(src),
        str(out),
        "--effect",
        "convolution",
        "--set",
        f'impulse_response="{ir_path}"',
        "--no-tail",
    )
    assert result.returncode == 0, result.stderr
    rendered, _ = sf.read(out, dtype="float32", always_2d=True)
    expected = pedalboard.Convolution(ir, sample_rate=44100).process(audio, 44100)
    np.testing.assert_allclose(rendered.T, expected, atol=1e-5)
    missing = run_fxhost(
        "render", str(src), str(out), "--effect", "convolution", "--set", "impulse_response=nope.wav"
    )
    assert missing.returncode == 1 and "steps[0].params.impulse_response" in missing.stderr


def test_render_reports_clipping_and_warns_then_ceiling_holds(tmp_path: Path):
    """The README's hall chain on a -6 dBFS tone clips: the summary line gives the peak
    and the clipped samples, a one-line warning follows; --ceiling-dbfs -1 prevents it."""
    from fxhost_sdk.meters import true_peak

    t = np.arange(2 * 44100) / 44100
    tone = 10 ** (-6 / 20) * np.sin(2 * np.pi * 440 * t)
    src = tmp_path / "in.wav"
    sf.write(src, np.stack([tone, tone]).T.astype(np.float32), 44100, subtype="FLOAT")
    result = run_fxhost("render", str(src), str(tmp_path / "out.flac"), "--chain", "hall")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    warnings = [line for line in lines if "warning" in line]
    assert len(warnings) == 1 and "clipped" in warnings[0] and "--ceiling-dbfs" in warnings[0], lines
    rendered, _ = sf.read(tmp_path / "out.flac", dtype="float32")
    clipped = int(np.count_nonzero(np.abs(rendered) >= 32767 / 32768))  # clipped to full scale by the encoder
    summary = next(line for line in lines if "clipped samples" in line)
    reported = int(summary.rsplit(",", 1)[1].split()[0])
    assert reported > 1000 and abs(reported - clipped) <= reported // 1000, summary
    assert "peak 2." in summary

    out = tmp_path / "limited.flac"
    result = run_fxhost("render", str(src), str(out), "--chain", "hall", "--ceiling-dbfs", "-1")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr and ", 0 clipped samples" in result.stderr, result.stderr
    limited, sr = sf.read(out, dtype="float32", always_2d=True)
    assert 20 * np.log10(max(true_peak(limited.T, sr))) <= -1.0 + 0.01


@pytest.mark.parametrize("value", ["1", "nan", "-61"])
def test_render_refuses_a_bad_ceiling(tmp_path: Path, value: str):
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_signal(src, 0.2)
    result = run_fxhost("render", str(src), str(out), "--effect", "gain", f"--ceiling-dbfs={value}")
    assert result.returncode == 1 and not out.exists()
    assert result.stderr.startswith("fxhost: --ceiling-dbfs: ") and len(result.stderr.splitlines()) == 1
