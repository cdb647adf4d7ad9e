"""Running the system's administration tools against a Root, with errors a person can act on.

The tools run on the machine running the agent and are pointed at the root with their own
``--root`` option, so the same call configures the live system, a mounted image or a test tree.
Standard input may carry secrets (``chpasswd``), so it never appears in an error message.
"""

from __future__ import annotations

from collections.abc import Sequence

from metaboot.errors import MetabootError
from metaboot.guest.system import Root


class ToolError(MetabootError):
    """A system tool is missing or refused the change; the message names the tool and why."""


def run_tool(
    root: Root,
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    purpose: str,
    timeout: float = 120,
) -> str:
    """Run ``argv``, return its standard output; on failure raise ToolError naming ``purpose``."""
    try:
        proc = root.run(argv, input=input, check=False, timeout=timeout)
    except FileNotFoundError as err:
        raise ToolError(f"cannot {purpose}: {argv[0]} is not installed on this system") from err
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise ToolError(f"cannot {purpose}: {argv[0]} failed: {detail}")
    return proc.stdout.decode("utf-8", "replace")
