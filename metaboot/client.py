"""This VM's own metadata, for programs that run inside it.

Two ways in, cheapest first:

* :func:`instance_data` and :func:`get` read what the agent recorded this boot
  (``/run/metaboot/instance-data*.json``): no network, no drive, the same document
  ``metaboot query`` prints (cloud-init's ``instance-data.json`` shape, so ``v1.instance_id``,
  ``v1.local_hostname``, ``ds.meta_data.meta.<key>`` … all work). Root gets the full document;
  anyone else the copy with secrets redacted, as the files' own modes decide.
* :func:`read` asks the sources themselves — config drive, NoCloud seed, OpenStack or EC2
  service — with the agent's readers and the agent's settings, for a program that runs where
  the agent did not or that wants the data as the platform has it now (metadata changed since
  boot).

It sits on the guest side of the house: standard library plus PyYAML (only when an agent
config or a NoCloud seed must be parsed); nothing from the service imports here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from metaboot.errors import MetabootError
from metaboot.guest import instancedata, layout
from metaboot.guest.sources import detect
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

__all__ = ["InstanceData", "NotAvailable", "get", "instance_data", "read"]

DEFAULT_SOURCES = ("ConfigDrive", "NoCloud", "OpenStack", "Ec2")
_RAISE: Any = object()


class NotAvailable(MetabootError):
    """The data asked for is not there: the agent has not run, or no source answered."""


def instance_data(root: str | os.PathLike[str] = "/", *, path: str | None = None) -> dict[str, Any]:
    """The instance-data document the agent wrote this boot.

    The full document when this process may read it (root), else the redacted one: what a
    caller sees is decided by file permissions, never by asking who it is. ``path`` reads a
    given file instead (a copy taken from another machine, a test).
    """
    if path is not None:
        candidates = [(path, Path(path))]
    else:
        base = Root(str(root))
        candidates = [
            (name, base.path(name))
            for name in (layout.INSTANCE_DATA_SENSITIVE, layout.INSTANCE_DATA)
        ]
    for label, file in candidates:
        try:
            raw = file.read_bytes()
        except (FileNotFoundError, PermissionError):
            continue
        try:
            doc = json.loads(raw)
        except ValueError as err:
            raise MetabootError(f"{label}: not valid JSON ({err})") from None
        if not isinstance(doc, dict):
            raise MetabootError(f"{label}: not a JSON object")
        return doc
    raise NotAvailable(f"no instance data at {candidates[-1][0]} (has 'metaboot init' run?)")


def get(
    key: str,
    default: Any = _RAISE,
    *,
    root: str | os.PathLike[str] = "/",
    path: str | None = None,
) -> Any:
    """One value by dotted key, as ``metaboot query KEY`` finds it: ``v1.instance_id``,
    ``instance_id`` (a ``v1`` key at the top), ``ds.meta_data.meta.role``,
    ``v1.public_ssh_keys.0``. A missing key raises :class:`NotAvailable` naming the first
    missing part, unless ``default`` is given."""
    doc = instance_data(root, path=path)
    try:
        return instancedata.lookup(doc, key)
    except KeyError as err:
        if default is not _RAISE:
            return default
        raise NotAvailable(f"{key}: {err.args[0]}") from None


def read(
    sources: Sequence[str] | None = None,
    *,
    root: str | os.PathLike[str] = "/",
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> InstanceData:
    """The instance's data straight from the first source that has it.

    ``sources`` defaults to the agent's ``datasource_list`` (then ConfigDrive, NoCloud,
    OpenStack, Ec2); ``settings`` overrides the agent config's ``datasource.<Name>`` entries,
    e.g. ``{"OpenStack": {"metadata_urls": ["http://127.0.0.1:8775"], "max_wait": 2}}``.
    Reading a config drive by label may need root (mount), as it does for the agent.
    """
    from metaboot.guest import config
    from metaboot.guest import log as logger

    base = Root(str(root))
    agent_cfg = config.load(base).cfg
    listed = list(sources) if sources is not None else list(agent_cfg.get("datasource_list") or ())
    names = [name for name in listed if name != "None"] or list(DEFAULT_SOURCES)
    configured = agent_cfg.get("datasource", {})
    overrides = settings or {}
    log = logger.get("metaboot.client")

    def make_context(name: str) -> detect.SourceContext:
        chosen = overrides.get(name)
        if chosen is None:
            found = configured.get(name) if isinstance(configured, Mapping) else None
            chosen = found if isinstance(found, Mapping) else {}
        return detect.SourceContext(
            root=base,
            settings=dict(chosen),
            log=logger.get(f"metaboot.source.{name}"),
            pinned=len(names) == 1,
        )

    data, attempts, _warnings = detect.find(names, make_context, log)
    if data is None:
        tried = "; ".join(
            f"{a.source}: {a.outcome}" + (f" ({a.detail})" if a.detail else "") for a in attempts
        )
        raise NotAvailable(f"no source has this instance's data ({tried or 'none known'})")
    return data
