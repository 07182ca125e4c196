# syntax=docker/dockerfile:1
# The fxhost server, installed from uv.lock as uv's Docker guide lays out
# (docs.astral.sh/uv/guides/integration/docker, "Intermediate layers"): first the third-party
# dependencies, in a layer that only uv.lock and the members' pyproject.toml files decide,
# so that a change to the code does not reinstall numpy and pedalboard; then the workspace's
# own distributions. tests/deploy/test_dockerfile.py replays the COPY and uv steps of the
# build stage without Docker.
#
#   docker build -t fxhost .
#   docker run --rm -p 8000:8000 -v fxhost-data:/data fxhost

ARG PYTHON=3.12

FROM python:${PYTHON}-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/
# Bytecode compiled once here, not by every server start; copy from the cache mount
# (another file system: no hard links); the image's Python, never a downloaded one.
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=0
WORKDIR /app

# 1. Dependencies: the lock and EVERY workspace member's pyproject.toml (a member missing
#    here fails `--locked`), nothing else. Adding a member means adding its line.
COPY uv.lock pyproject.toml ./
COPY sdk/pyproject.toml sdk/
COPY host/pyproject.toml host/
COPY plugins/feedback-delay/pyproject.toml plugins/feedback-delay/
COPY plugins/mastering/pyproject.toml plugins/mastering/
COPY plugins/pedalboard/pyproject.toml plugins/pedalboard/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --no-editable

# 2. The workspace: fxhost, fxhost-sdk and the plugins, installed as wheels (not editable)
#    so that the environment alone runs without the sources.
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

FROM python:${PYTHON}-slim-bookworm
RUN useradd --system --create-home --uid 10001 fxhost \
    && mkdir /data && chown fxhost:fxhost /data
# Same path as in the build stage: the scripts' #! lines name /app/.venv/bin/python.
COPY --from=build /app/.venv /app/.venv
COPY plugins.toml /app/plugins.toml
# The database (SQLite by default) and the uploads and renders go to /data, a volume;
# FXHOST_DATABASE_URL and the other settings of the README's Deployment section apply.
ENV PATH="/app/.venv/bin:$PATH" \
    FXHOST_PLUGINS_CONFIG=/app/plugins.toml \
    FXHOST_HOST=0.0.0.0
WORKDIR /data
VOLUME /data
USER fxhost
EXPOSE 8000
CMD ["fxhost", "serve", "--host", "0.0.0.0"]
