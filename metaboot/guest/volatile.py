"""Atomic writes without fsync, for what need not survive a power cut.

``Root.write_file`` fsyncs every file, as configuration files deserve. The agent's own status
and instance-data live in /run (a tmpfs, gone at reboot anyway) and are rewritten after every
step: an fsync each time would only slow the boot (tens of milliseconds each on a busy disk).
They are still replaced atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import os

from metaboot.guest.system import Root, temporary_file


def write(root: Root, guest_path: str, content: bytes | str, mode: int = 0o644) -> None:
    """Replace ``guest_path`` atomically (temporary file beside it, renamed over it), with
    plain ``os`` calls on the descriptor: the agent writes some fifty of these per first boot,
    and a buffered file object or a path lookup per step is measurable there."""
    target = root.host_path(guest_path)
    root.makedirs_host(os.path.dirname(target))
    write_host(target, content, mode)


def write_host(target: str, content: bytes | str, mode: int = 0o644) -> None:
    """:func:`write` to a host path already mapped, in a directory that exists (for a write
    handed to another thread: the path is mapped where the Root is used)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = temporary_file(target)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:  # noqa: SIM105 - contextlib is not otherwise loaded on a boot
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
