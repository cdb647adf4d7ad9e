"""The authorized_keys options that turn a key into a "log in as X instead" message (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from metaboot.guest.modules._cfg import get_str

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

DISABLE_ROOT_OPTS = (
    "no-port-forwarding,no-agent-forwarding,no-X11-forwarding,"
    'command="echo \'Please login as the user \\"$USER\\" rather than the user '
    '\\"$DISABLE_USER\\".\';echo;sleep 10;exit 142"'
)


def disable_user_options(cfg: Mapping[str, Any], login_as: str, disabled: str) -> str:
    """``disable_root_opts`` (or its default) with $USER and $DISABLE_USER filled in."""
    template = get_str(cfg, "disable_root_opts") or DISABLE_ROOT_OPTS
    return template.replace("$USER", login_as).replace("$DISABLE_USER", disabled)
