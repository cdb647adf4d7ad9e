"""Where the agent keeps the scripts the script modules run (guest paths).

The runner stores user-data ``#!`` parts in ``<state_dir>/scripts/`` and vendor-data ones in
``<state_dir>/scripts/vendor/``; runcmd writes ``<state_dir>/scripts/runcmd``. Scripts placed in
the image for every boot / instance / once live in ``/var/lib/metaboot/scripts/per-*/``, and
cloud-init's ``/var/lib/cloud/scripts/per-*/`` are run too so images made for cloud-init keep
working.
"""

from __future__ import annotations

import posixpath

from metaboot.guest.modules.base import ModuleContext

STATE_BASE = "/var/lib/metaboot"
CLOUD_INIT_BASE = "/var/lib/cloud"


def state_base(ctx: ModuleContext) -> str:
    """The agent's state directory: the parent of ``instances/<id>`` when the state dir is one."""
    parent = posixpath.dirname(posixpath.normpath(ctx.state_dir))
    if posixpath.basename(parent) == "instances":
        return posixpath.dirname(parent)
    return STATE_BASE


def user_scripts_dir(ctx: ModuleContext) -> str:
    return f"{ctx.state_dir}/scripts"


def vendor_scripts_dir(ctx: ModuleContext) -> str:
    return f"{ctx.state_dir}/scripts/vendor"


def runcmd_script(ctx: ModuleContext) -> str:
    return f"{user_scripts_dir(ctx)}/runcmd"


def per_frequency_dirs(ctx: ModuleContext, which: str) -> list[str]:
    """Script directories for ``which`` in ``boot``, ``instance``, ``once``, run in this order."""
    return [f"{CLOUD_INIT_BASE}/scripts/per-{which}", f"{state_base(ctx)}/scripts/per-{which}"]
