"""schemathesis hooks of tests/fuzz/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

A JSON Schema can say that a body is bytes, not that the bytes are audio: a fuzzer left
to itself sends random bytes, which the server refuses (415), and never gets an asset to
render. These strategies give the binary media types of the document bytes that are what
the server reads, the way a real client's would be:

- ``audio/*`` (uploads, ``/api/process``, a form's file part): a small WAV file, of 1 or 2
  channels, at one of four rates, as 16-bit, 24-bit or float samples;
- ``application/octet-stream`` (a stream's input, and raw uploads without a media type):
  PCM of 840 float32 samples a block: a whole number of frames for a stream of 1 to 8
  channels in either format (840 is the least common multiple of 1..8), finite values.

The document stays what an outside fuzzer reads: it still gets a 415 for random bytes,
and the server's answer is checked the same way.
"""

from __future__ import annotations

import io
import json

import numpy as np
import schemathesis
import soundfile as sf
from hypothesis import strategies as st

#: Samples a PCM block holds: whole frames for 1 to 8 channels.
PCM_BLOCK = 840


@st.composite
def wav_files(draw: st.DrawFn) -> bytes:
    channels = draw(st.integers(1, 2))
    rate = draw(st.sampled_from([8000, 22050, 44100, 48000]))
    frames = draw(st.integers(64, 4096))
    subtype = draw(st.sampled_from(["PCM_16", "PCM_24", "FLOAT"]))
    seed = draw(st.integers(0, 2**32 - 1))
    audio = 0.5 * np.random.default_rng(seed).uniform(-1.0, 1.0, (frames, channels))
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


@st.composite
def pcm_blocks(draw: st.DrawFn) -> bytes:
    blocks = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, blocks * PCM_BLOCK)
    return samples.astype("<f4").tobytes()


schemathesis.openapi.media_type("audio/wav", wav_files())
schemathesis.openapi.media_type("application/octet-stream", pcm_blocks())


@schemathesis.hook
def map_query(ctx, query):
    """A signed link's ``sig`` and ``exp`` are for clients that cannot send a key: a client
    with one sends neither. Drawn at random they are (nearly) always present and wrong, so
    a keyed run answered every request for a link-following operation 403 and never
    reached it (the render's events, once the document grew). Half of the drawn queries
    that carry a ``sig`` lose both, by the parity of its length; the other half still fuzz
    the signature's checks."""
    if query and "sig" in query and len(str(query["sig"])) % 2:
        query = {name: value for name, value in query.items() if name not in ("sig", "exp")}
    return query


#: A chain of the repository's plugins.toml, which the fuzzed servers load.
CONFIGURED_CHAIN = "hall"


@schemathesis.hook.apply_to(method="POST", path="/api/renders")
def map_body(ctx, body):
    """A render names a chain of the server's file, its steps, or a recorded chain. Drawn at
    random, a name is almost never one the server has and steps rarely pass the effects'
    rules, so in one keyed set-up five renders of some seven hundred were accepted (202),
    and the links out of an accepted render (its status, events and cancel) were followed
    only if those few happened to choose them: the cancel link was missed once in CI. Half
    of the drawn bodies, by the parity of the drawn chain's length as JSON, name a chain
    of plugins.toml, as most clients' renders do; the other half still fuzz the chain."""
    if isinstance(body, dict) and "chain" in body and len(json.dumps(body["chain"])) % 2:
        body = {**body, "chain": CONFIGURED_CHAIN}
    return body
