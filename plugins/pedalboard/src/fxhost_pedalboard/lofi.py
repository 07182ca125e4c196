"""Lo-fi: MP3 and GSM codec artefacts, and resampling down and back up.

These plugins hold audio back (a codec frame, a resampler's filter), so their output
lags; and they have internal framing (MP3 frames of 1152, GSM frames of 160 at 8 kHz, a
resampler's phase), which priming with silence would shift. How each one is streamed:

* ``mp3_compressor`` and ``resample``: fixed internal blocks of 256 frames. The plugin's
  output, joined up, is exactly its whole-signal output (whatever the blocks it is fed:
  LAME is fed 32 frames at a time internally, the resamplers keep their phase), so the
  effect's output is pedalboard's whole-signal output delayed by :attr:`latency` = 256 +
  the most the plugin holds back (measured on silence: 3481 frames for MP3; for the
  resampler, plus 16 frames of margin for its rounding).
* ``gsm_full_rate_compressor``: cannot be streamed (see its docstring); it runs as
  crossfaded segments, each a whole pedalboard call.

A change of ``vbr_quality`` or of the resampler's ``target_sample_rate`` or ``quality``
restarts the effect (pedalboard applies them by re-initialising the codec or
resamplers), as does :meth:`reset`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import fxhost_sdk
import pedalboard
from fxhost_sdk import FieldError, param

from fxhost_pedalboard.base import PedalboardEffect

Quality = Literal[
    "ZeroOrderHold",
    "Linear",
    "CatmullRom",
    "Lagrange",
    "WindowedSinc",
    "WindowedSinc256",
    "WindowedSinc128",
    "WindowedSinc64",
    "WindowedSinc32",
    "WindowedSinc16",
    "WindowedSinc8",
]


def quality_param(what: str) -> Any:
    return param(
        description=f"Resampling algorithm {what}: ZeroOrderHold, Linear, CatmullRom, Lagrange "
        "and WindowedSinc (100 zero-crossings) alias when downsampling; WindowedSinc8 to "
        "WindowedSinc256 do not (more zero-crossings: cleaner and slower)."
    )


def quality_value(name: str) -> Any:
    return pedalboard.Resample.Quality.__members__[name]


#: The sample rates LAME encodes.
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


class MP3Compressor(PedalboardEffect):
    """``pedalboard.MP3Compressor``: LAME encodes the audio to VBR MP3 and it is decoded
    straight back, for its artefacts. Mono or stereo (wider signals run as stereo pairs);
    only the sample rates MP3 has (8 kHz to 48 kHz, see ``MP3_SAMPLE_RATES``).

    Exact: the output is pedalboard's whole-signal output delayed by :attr:`latency`
    (3737 frames: 256 for the internal blocks, 3481 the codec holds back: encoder delay,
    padding and a frame)."""

    name = "mp3_compressor"
    version = "1.0.0"
    summary = "MP3 (LAME VBR) encode and decode, for its compression artefacts (pedalboard)."
    plugin_class = pedalboard.MP3Compressor
    silence_is_neutral = False  # MP3 frames: priming would shift them
    holds_back_audio = True
    restart_fields = ("vbr_quality",)
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "transparent": {"vbr_quality": 0.0},
        "fm-radio": {"vbr_quality": 4.0},
        "streaming-lofi": {"vbr_quality": 7.0},
        "worst": {"vbr_quality": 9.999},
    }

    class Params(fxhost_sdk.Params):
        vbr_quality: Annotated[
            float,
            param(
                description="LAME variable-bit-rate quality: 0 best (about 245 kbps) to 9.999 "
                "worst (about 65 kbps).",
                ge=0.0,
                le=9.999,
            ),
        ] = 2.0

    def prepare(self) -> None:
        if self.sample_rate not in MP3_SAMPLE_RATES:
            rates = ", ".join(f"{rate:g}" for rate in MP3_SAMPLE_RATES)
            raise FieldError("sample_rate", f"MP3 supports {rates} Hz, not {self.sample_rate:g} Hz")
        super().prepare()

    @property
    def tail_seconds(self) -> float:
        # A decoded MP3 frame overlaps the next (MDCT): the input's last frames ring
        # into up to two more.
        return 2 * 1152 / self.sample_rate


class Resample(PedalboardEffect):
    """``pedalboard.Resample``: resamples to ``target_sample_rate`` and back with JUCE's
    interpolators, for the aliasing and band-limiting of a lower (or higher) rate.

    Exact: the output is pedalboard's whole-signal output delayed by :attr:`latency` (256
    + what the two resamplers hold back + 16 frames of margin: 452 + 16 frames at 48 kHz
    for the defaults, up to about 0.5 s for WindowedSinc256 down to 1 kHz)."""

    name = "resample"
    version = "1.0.0"
    summary = "Downsample to a target rate and back up, for lo-fi aliasing (JUCE interpolators, pedalboard)."
    plugin_class = pedalboard.Resample
    silence_is_neutral = False  # the resamplers' phase: priming would shift it
    holds_back_audio = True
    # What it holds back settles within a second or two, give or take 3 frames of float
    # rounding (44.1 kHz to 8 kHz: 420 frames after 1 s, 423 from 3 s to 300 s).
    held_back_margin = 16
    restart_fields = ("target_sample_rate", "quality")
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "telephone": {"target_sample_rate": 8000.0, "quality": "WindowedSinc32"},
        "am-radio": {"target_sample_rate": 11025.0, "quality": "WindowedSinc32"},
        "sampler-12k": {"target_sample_rate": 12000.0, "quality": "ZeroOrderHold"},
    }

    class Params(fxhost_sdk.Params):
        target_sample_rate: Annotated[
            float,
            param(
                description="Sample rate the audio passes through; half of it is the highest frequency kept.",
                ge=1000.0,
                le=192000.0,
                unit="Hz",
                scale="log",
            ),
        ] = 8000.0
        quality: Annotated[Quality, quality_param("both ways")] = "WindowedSinc32"

    def plugin_values(self, params: fxhost_sdk.Params) -> dict[str, Any]:
        return {"target_sample_rate": params.target_sample_rate, "quality": quality_value(params.quality)}

    @property
    def tail_seconds(self) -> float:
        # The resamplers' filters reach as far after a frame as they hold back before it.
        held = self._held_back(self.plugin_values(self.params))[1]
        return held / self.sample_rate


class GSMFullRateCompressor(PedalboardEffect):
    """``pedalboard.GSMFullRateCompressor``: resampled to 8 kHz, GSM 06.10 ("full rate")
    encoded and decoded in frames of 160 samples, resampled back: a 2G phone call. Mono:
    a stereo input is mixed down and the result copied to both channels.

    **Not exact.** pedalboard cannot stream this plugin: its "prime with silence" delay
    line is cleared on every ``process`` call, dropping the last 20 ms given to it, and
    the codec never re-converges after that. So the effect cuts the stream into segments
    of 0.1 s, runs each (with the 0.02 s before it) through one whole pedalboard call, and
    crossfades consecutive segments over those 0.02 s. The output is exactly that (for
    any block pattern), delayed by :attr:`latency` = 0.12 s; but each segment starts the
    codec afresh, so it differs from one whole-signal call: by about as much as that call
    differs from itself when the signal starts 5 ms later (relative STFT-magnitude
    distance 0.10 vs 0.11 on a voice-like signal; the codec itself changes the spectrum
    by 0.51). The segments are aligned with the codec's 20 ms frames."""

    name = "gsm_full_rate_compressor"
    version = "1.0.0"
    summary = "GSM full-rate codec at 8 kHz, for the sound of a 2G phone call (pedalboard)."
    plugin_class = pedalboard.GSMFullRateCompressor
    segment_seconds = 0.1
    crossfade_seconds = 0.02

    class Params(fxhost_sdk.Params):
        quality: Annotated[Quality, quality_param("to 8 kHz and back")] = "WindowedSinc8"

    def plugin_values(self, params: fxhost_sdk.Params) -> dict[str, Any]:
        return {"quality": quality_value(params.quality)}

    @property
    def tail_seconds(self) -> float:
        # A codec frame (20 ms at 8 kHz) and the resamplers' filters.
        return 0.05
