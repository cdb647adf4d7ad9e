"""nova's file injection, done by the agent: the files meta_data.json lists (``files``:
``{path, content_path}``) written once per instance, before the modules run.

nova once wrote them into the image's disk itself (libguestfs) before the first boot; since it
stopped, cloud-init writes them from the config drive on an instance's first boot. The agent
does the same from the drive or the service: the content as is, mode 0660 and root's, as
cloud-init's ``write_injected_files``; a path that is not absolute is taken from ``/``. One
file that cannot be written is reported and the others are still written.
"""

from __future__ import annotations

import base64
import binascii
import posixpath

from metaboot.guest.system import Root

MODE = 0o660


def write(root: Root, files: list[dict[str, str]]) -> tuple[list[str], list[str]]:
    """Write the injected files; returns (paths written, problems)."""
    written: list[str] = []
    problems: list[str] = []
    for entry in files:
        raw_path = entry.get("path", "")
        path = posixpath.normpath("/" + raw_path.lstrip("/"))
        try:
            content = base64.b64decode(entry.get("content_base64", ""), validate=True)
        except (binascii.Error, ValueError):
            problems.append(f"injected file {raw_path}: content is not valid base64; not written")
            continue
        if path == "/" or raw_path.endswith("/"):
            problems.append(f"injected file {raw_path!r}: not a file path; not written")
            continue
        try:
            root.write_file(path, content, mode=MODE, owner=0, group=0)
        except (OSError, ValueError) as err:
            problems.append(f"injected file {path}: {err}; not written")
            continue
        written.append(path)
    return written, problems
