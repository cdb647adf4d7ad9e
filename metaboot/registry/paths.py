"""Where the registry lives when nobody says, and how a database URL is spelt.

The service (``metaboot serve``) and the CLI (``metaboot instance``) must agree on the default so
that an operator who runs both without ``--db`` edits the database the service reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SYSTEM_DB_PATH = Path("/var/lib/metaboot/registry.db")


def default_db_url(environ: Mapping[str, str] | None = None, *, euid: int | None = None) -> str:
    """``$METABOOT_DB``; else the system path for root; else a per-user state file.

    Root gets ``/var/lib/metaboot/registry.db`` (the packaged service runs as root or a system
    user with that directory); anybody else ``$XDG_STATE_HOME/metaboot/registry.db`` (default
    ``~/.local/state``), so trying metaboot out never needs root.
    """
    env = os.environ if environ is None else environ
    if env.get("METABOOT_DB"):
        return env["METABOOT_DB"]
    uid = os.geteuid() if euid is None else euid
    if uid == 0:
        return f"sqlite:///{SYSTEM_DB_PATH}"
    state = env.get("XDG_STATE_HOME") or str(
        Path(env.get("HOME", "~")).expanduser() / ".local/state"
    )
    return f"sqlite:///{Path(state) / 'metaboot' / 'registry.db'}"


def sqlalchemy_url(url: str) -> str:
    """Accept what an operator would type and return what SQLAlchemy wants.

    A bare path (no ``://``) is a SQLite file; ``postgres://`` and ``postgresql://`` use psycopg 3,
    the driver we ship, rather than SQLAlchemy's default psycopg2.
    """
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().absolute()}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return url
