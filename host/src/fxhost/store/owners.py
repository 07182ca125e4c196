"""Which process owns a render or a temporary file, and whether it is still alive, so
that what a crashed process left behind can be told from work in progress."""

from __future__ import annotations

import os
import socket


def owner_id() -> str:
    """This process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool | None:
    """True/False for a process on this host; None when it runs on another host (or the
    id is not one of ours), where only a heartbeat can tell."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
