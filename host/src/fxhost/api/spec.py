"""The one :class:`~fxhost.api.openapi.Api` every route module declares its routes on."""

from importlib.metadata import version

from fxhost.api.openapi import Api

api = Api(
    title="fxhost",
    version=version("fxhost"),
    description="An audio effects host: upload audio, render it through effect chains, "
    "stream it live. Errors are application/problem+json (RFC 9457).",
    security_schemes={
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`fxhost keys create`, or the FXHOST_API_KEYS setting), needed by "
            "every /api and /ws route when the server has any. WebSockets may instead send "
            '`{"type": "auth", "token": KEY}` as their first message. With no keys the server runs open.',
        }
    },
    security=[{"apiKey": []}],
)
for tag, text in [
    ("meta", "Health, statistics and what is loaded."),
    ("effects", "Installed plugins and their effects, with parameter schemas."),
    ("chains", "Named effect chains: from plugins.toml (read-only) and saved through the API."),
    ("assets", "Uploaded and rendered audio."),
    ("process", "Audio in, processed audio out, in one request."),
    ("renders", "Offline renders of assets through chains, with progress."),
    ("live", "Live audio: one client over /ws/process, or shared streams with producers and consumers."),
]:
    api.tag(tag, text)
