"""Whether a process of this host still runs: what decides that a temporary file a writer
left is an orphan to remove, not a write in progress."""

from __future__ import annotations

import os


def running(pid: int) -> bool:
    """True while process ``pid`` exists (this process included; one of another user's
    counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
