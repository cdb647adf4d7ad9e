"""Atomic writes without fsync, for what need not survive a power cut.

``Root.write_file`` fsyncs every file, as configuration files deserve. The agent's own status
and instance-data live in /run (a tmpfs, gone at reboot anyway) and are rewritten after every
step: an fsync each time would only slow the boot (tens of milliseconds each on a busy disk).
They are still replaced atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

from metaboot.guest.system import Root, temporary_file


def write(root: Root, guest_path: str, content: bytes | str, mode: int = 0o644) -> Path:
    data = content.encode("utf-8") if isinstance(content, str) else content
    target = root.path(guest_path)
    root.makedirs_host(os.path.dirname(target))
    fd, tmp = temporary_file(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
