"""``fxhost render --out-dir`` as a user runs it: a real process rendering many real files
on worker processes, outputs compared with one-file renders and with pedalboard directly."""

from __future__ import annotations

import signal as signal_module
import subprocess
from pathlib import Path

import numpy as np
import pedalboard
import pytest
import soundfile as sf
from clitools import FXHOST, REPO, run_fxhost
from fxhost_pedalboard import Reverb
from procenv import child_env
from waiting import wait_until


def signal(path: Path, seconds: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0, **kw):
    """A test signal of its own for each seed (so that swapped outputs show), written with
    soundfile; returns what was written as float32 ``(channels, frames)``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * (110 + 50 * seed) * t)
    audio = np.stack([tone + 0.1 * rng.standard_normal(n) for _ in range(channels)]).astype(np.float32)
    sf.write(path, audio.T, sample_rate, **kw)
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def read(path: Path) -> np.ndarray:
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return data.T


def reverb(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """pedalboard's reverb at its defaults, with the tail fxhost appends."""
    tail = int(
        np.ceil(Reverb(sample_rate, audio.shape[0], Reverb.check_params({})).tail_seconds * sample_rate)
    )
    padded = np.concatenate([audio, np.zeros((audio.shape[0], tail), np.float32)], axis=1)
    return pedalboard.Reverb().process(padded, sample_rate)


def files_under(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden ones included (a leftover temporary file shows)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def summary(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if " done, " in line)


def test_several_files_match_one_file_renders_and_pedalboard(tmp_path: Path):
    ins = tmp_path / "in"
    ins.mkdir()
    made = {
        "a.wav": (signal(ins / "a.wav", 1.5, 44100, 2, seed=1, subtype="FLOAT"), 44100),
        "b.flac": (signal(ins / "b.flac", 1.0, 48000, 1, seed=2, subtype="PCM_24"), 48000),
        "c.aiff": (signal(ins / "c.aiff", 0.7, 22050, 2, seed=3, subtype="PCM_16"), 22050),
    }
    out = tmp_path / "out"
    result = run_fxhost(
        "render",
        *(str(ins / name) for name in made),
        "--out-dir",
        str(out),
        "--effect",
        "reverb",
        "--jobs",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert "fxhost: 3 done, 0 failed, in " in summary(result.stderr)
    # each output is named after its input, in the input's format and sample type
    assert files_under(out) == ["a.wav", "b.flac", "c.aiff"]
    assert [sf.info(out / n).subtype for n in made] == ["FLOAT", "PCM_24", "PCM_16"]
    for name, (audio, rate) in made.items():
        assert f"{out / name}: " in result.stderr  # a line per output
        np.testing.assert_allclose(read(out / name), reverb(audio, rate), atol=2 / 2**15, err_msg=name)
    # sample for sample what the one-file form writes
    for name in ("a.wav", "c.aiff"):
        single = tmp_path / f"single-{name}"
        one = run_fxhost("render", str(ins / name), str(single), "--effect", "reverb")
        assert one.returncode == 0, one.stderr
        assert np.array_equal(read(out / name), read(single)), name


def test_a_folder_by_extension_and_recursively_keeping_sub_folders(tmp_path: Path):
    ins = tmp_path / "takes"
    (ins / "day1").mkdir(parents=True)
    (ins / ".cache").mkdir()
    a = signal(ins / "a.wav", 0.5, seed=1)
    b = signal(ins / "B.WAV", 0.5, seed=2)
    c = signal(ins / "day1" / "c.aiff", 0.5, 48000, 1, seed=3)
    signal(ins / ".hidden.wav", 0.2, seed=4)  # hidden: left alone
    signal(ins / ".cache" / "d.wav", 0.2, seed=5)  # in a hidden folder: left alone
    (ins / "notes.txt").write_text("not named as audio: not taken\n")
    flat = tmp_path / "new" / "flat"  # made, with its parent
    result = run_fxhost("render", str(ins), "--out-dir", str(flat), "--chain", "ambient", "--no-tail")
    assert result.returncode == 0, result.stderr
    assert files_under(flat) == ["B.wav", "a.wav"]  # not the sub-folder's
    assert "2 done, 0 failed" in summary(result.stderr)

    # recursively, into a folder inside the input folder (not itself an input), as FLAC
    deep = ins / "rendered"
    args = ["render", "-r", str(ins), "--out-dir", str(deep), "--effect", "reverb", "--format", "flac"]
    result = run_fxhost(*args)
    assert result.returncode == 0, result.stderr
    assert files_under(deep) == ["B.flac", "a.flac", "day1/c.flac"]
    for name, audio, rate in (("a.flac", a, 44100), ("B.flac", b, 44100), ("day1/c.flac", c, 48000)):
        assert sf.info(deep / name).format == "FLAC"
        np.testing.assert_allclose(read(deep / name), reverb(audio, rate), atol=2 / 2**15, err_msg=name)
    # run again with --overwrite: the outputs inside the input folder are not inputs
    again = run_fxhost(*args, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert "3 done, 0 failed" in summary(again.stderr)
    assert files_under(deep) == ["B.flac", "a.flac", "day1/c.flac"]


def test_a_broken_file_fails_alone(tmp_path: Path):
    """Files that cannot be read (not audio; NaN samples found halfway through the
    render) are named with their reason; the others are done; the exit status is 1; the
    failed ones leave nothing, not even a temporary file."""
    ins = tmp_path / "in"
    ins.mkdir()
    good = {n: signal(ins / n, 0.8, seed=i) for i, n in enumerate(["one.wav", "three.wav"])}
    (ins / "two.wav").write_text("this is not audio\n" * 100)
    nan = signal(ins / "nan.wav", 3.0, seed=9, subtype="FLOAT")
    nan[:, 100_000] = np.nan  # past the first blocks: the render has started when it is read
    sf.write(ins / "nan.wav", nan.T, 44100, subtype="FLOAT")
    out = tmp_path / "out"
    result = run_fxhost("render", str(ins), "--out-dir", str(out), "--effect", "reverb")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"fxhost: {ins / 'two.wav'}: not audio") for line in lines), lines
    assert any(line.startswith(f"fxhost: {ins / 'nan.wav'}: ") and "NaN" in line for line in lines), lines
    assert summary(result.stderr).startswith("fxhost: 2 done, 2 failed, in ")
    assert summary(result.stderr).endswith(f"failed: {ins / 'two.wav'}, {ins / 'nan.wav'}") or summary(
        result.stderr
    ).endswith(f"failed: {ins / 'nan.wav'}, {ins / 'two.wav'}")
    assert files_under(out) == ["one.wav", "three.wav"]
    for name, audio in good.items():
        np.testing.assert_allclose(read(out / name), reverb(audio, 44100), atol=2 / 2**15)


PLUGINS_TOML = f"""
[plugins]
paths = ["{REPO / "tests" / "support"}"]
modules = ["broken_effects"]

[chains.crawl]
steps = [{{ effect = "broken_slow", params = {{ seconds = 0.3 }} }}]
"""


def test_a_hung_effect_is_killed_at_the_time_limit_and_named(tmp_path: Path):
    """An effect slower than the time limit on one (long) file: that file fails naming the
    step and the effect, the killed worker leaves no file, and the short ones, rendered
    after it by its replacement (one worker), are done."""
    config = tmp_path / "fx.toml"
    config.write_text(PLUGINS_TOML)
    ins = tmp_path / "in"
    ins.mkdir()
    short = {n: signal(ins / n, 0.5, 8000, 1, seed=i) for i, n in enumerate(["a.wav", "b.wav"])}
    signal(ins / "0-long.wav", 60.0, 8000, 1, seed=3)  # 59 blocks of 8192 frames: 18 s at 0.3 s a block
    out = tmp_path / "out"
    result = run_fxhost(
        "--config",
        str(config),
        "render",
        str(ins),
        "--out-dir",
        str(out),
        "--chain",
        "crawl",
        "--no-tail",
        "--jobs",
        "1",
        env={"FXHOST_RENDER_TIMEOUT_SECONDS": "4"},
    )
    assert result.returncode == 1, result.stderr
    expected = f"fxhost: {ins / '0-long.wav'}: steps[0] (broken_slow): exceeded the time limit of 4 s"
    assert expected in result.stderr.splitlines(), result.stderr
    assert summary(result.stderr).startswith("fxhost: 2 done, 1 failed")
    assert files_under(out) == ["a.wav", "b.wav"]
    for name, audio in short.items():
        assert np.array_equal(read(out / name), audio)  # broken_slow passes audio through


def test_interrupted_leaves_whole_outputs_only(tmp_path: Path):
    """Ctrl-C (SIGINT) while files render: the command stops with 130, the workers are
    killed, their temporary files removed, and every output there is whole."""
    config = tmp_path / "fx.toml"
    config.write_text(PLUGINS_TOML)
    ins, out = tmp_path / "in", tmp_path / "out"
    ins.mkdir()
    audios = {f"{i}.wav": signal(ins / f"{i}.wav", 4.0, 8000, 1, seed=i) for i in range(6)}  # 4 blocks
    args = [
        "--config",
        str(config),
        "render",
        str(ins),
        "--out-dir",
        str(out),
        "--chain",
        "crawl",
        "--no-tail",
    ]
    process = subprocess.Popen([FXHOST, *args], env=child_env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: out.is_dir() and any(p.name.endswith(".part") for p in out.iterdir()), 60)
        process.send_signal(signal_module.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.rstrip().endswith("fxhost: aborted"), stderr
    written = files_under(out)
    assert all(not name.startswith(".") for name in written), written
    assert len(written) < len(audios), written  # it stopped before the end
    for name in written:
        assert np.array_equal(read(out / name), audios[name]), name


def test_existing_outputs_are_refused_unless_overwrite(tmp_path: Path):
    src = tmp_path / "in.wav"
    audio = signal(src, 0.5, seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "in.wav").write_bytes(b"an earlier output")
    refused = run_fxhost("render", str(src), "--out-dir", str(out), "--effect", "reverb")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"fxhost: {out / 'in.wav'} exists already; pass --overwrite to replace it, "
        "or choose another --out-dir"
    )
    assert (out / "in.wav").read_bytes() == b"an earlier output"
    replaced = run_fxhost("render", str(src), "--out-dir", str(out), "--effect", "reverb", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    np.testing.assert_allclose(read(out / "in.wav"), reverb(audio, 44100), atol=2 / 2**15)
    assert files_under(out) == ["in.wav"]


def test_convolution_assets_reach_the_workers(tmp_path: Path):
    """An asset parameter (an impulse response file) is loaded in each worker process."""
    ir = np.zeros((2, 1500), np.float32)
    ir[:, 0], ir[:, 600] = 1.0, 0.4
    sf.write(tmp_path / "ir.wav", ir.T, 44100, subtype="FLOAT")
    inputs = [tmp_path / "x.wav", tmp_path / "y.wav"]
    audios = [signal(p, 0.5, seed=i, subtype="FLOAT") for i, p in enumerate(inputs)]
    out = tmp_path / "out"
    setting = f'impulse_response="{tmp_path / "ir.wav"}"'
    args = ["render", *map(str, inputs), "--out-dir", str(out), "--effect", "convolution", "--set", setting]
    result = run_fxhost(*args, "--no-tail")
    assert result.returncode == 0, result.stderr
    for path, audio in zip(inputs, audios, strict=True):
        expected = pedalboard.Convolution(ir, sample_rate=44100).process(audio, 44100)
        np.testing.assert_allclose(read(out / path.name), expected, atol=1e-5)


def test_one_progress_bar_for_the_batch(tmp_path: Path):
    inputs = [tmp_path / f"{n}.wav" for n in "abc"]
    for i, path in enumerate(inputs):
        signal(path, 0.3, seed=i)
    result = run_fxhost(
        "render", *map(str, inputs), "--out-dir", str(tmp_path / "out"), "--effect", "reverb", "--progress"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("rendering 3 files") == 1 and "100%" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["{wav}", "--out-dir", "{tmp}/o", "--effect", "reverb", "--format", "xyz"],
            "--format: 'xyz' is not an",
        ),
        (
            ["{wav}", "--out-dir", "{tmp}/o", "--effect", "reverb", "--format", "flac", "--subtype", "FLOAT"],
            "--subtype: 'FLOAT' is not available for flac",
        ),
        (
            ["{wav}", "--out-dir", "{tmp}/o", "--effect", "reverb", "--ceiling-dbfs", "3"],
            "--ceiling-dbfs: ",
        ),
        (
            ["{wav}", "--out-dir", "{tmp}/o", "--effect", "reverb", "--jobs", "0"],
            "Invalid value for '--jobs'",
        ),
        (
            ["{wav}", "{tmp}/o.flac", "--effect", "reverb", "--format", "flac"],
            "--format only applies with --out-dir",
        ),
        (
            ["{wav}", "{tmp}/o.wav", "--effect", "reverb", "--jobs", "2", "-r"],
            "--recursive, --jobs only apply with --out-dir",
        ),
        (["{wav}", "{wav}", "{tmp}/o.wav", "--effect", "reverb"], "expected INPUT OUTPUT, got 3 path(s)"),
        (["{tmp}/in", "{tmp}/o.wav", "--effect", "reverb"], "INPUT: {tmp}/in is a folder"),
        (["--out-dir", "{tmp}/o", "--effect", "reverb"], "give the files or folders to render"),
        (["{wav}", "--out-dir", "{wav}", "--effect", "reverb"], "Invalid value for '--out-dir'"),
        (["{tmp}/empty", "--out-dir", "{tmp}/o", "--effect", "reverb"], "no audio files in {tmp}/empty"),
        (["{wav}", "--out-dir", "{tmp}/o", "--chain", "nope"], "unknown chain 'nope'"),
        (
            ["{wav}", "{tmp}/in/a.flac", "--out-dir", "{tmp}/o", "--effect", "reverb", "--format", "wav"],
            "would both be written to {tmp}/o/a.wav",
        ),
        (
            ["{tmp}/in", "--out-dir", "{tmp}/in", "--effect", "reverb", "--overwrite"],
            "replaced by its own output",
        ),
    ],
)
def test_bad_options_are_clear_errors_and_write_nothing(tmp_path: Path, args: list[str], expected: str):
    (tmp_path / "in").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio here\n")
    signal(tmp_path / "in" / "a.wav", 0.2)
    signal(tmp_path / "in" / "a.flac", 0.2)
    fields = {"tmp": tmp_path, "wav": tmp_path / "in" / "a.wav"}
    before = files_under(tmp_path)
    result = run_fxhost("render", *[a.format(**fields) for a in args])
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr
    assert expected.format(**fields) in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
    assert files_under(tmp_path) == before and not (tmp_path / "o").exists()
