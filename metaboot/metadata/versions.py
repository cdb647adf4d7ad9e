"""Metadata versions as data: which OpenStack and EC2 versions exist and what each one adds.

A version gate is a comparison of dates (EC2's ``1.0`` sorts first), so "since X" is
``version >= X`` on these strings; ``latest`` is resolved to the newest entry before comparing.
"""

from __future__ import annotations

from datetime import date

# OpenStack metadata versions, oldest first, with what each adds (nova's base.py constants).
FOLSOM = "2012-08-10"  # meta_data.json, user_data
GRIZZLY = "2013-04-04"  # random_seed; password
HAVANA = "2013-10-17"  # vendor_data.json
LIBERTY = "2015-10-15"  # project_id; network_data.json
NEWTON_ONE = "2016-06-30"  # devices
NEWTON_TWO = "2016-10-06"  # vendor_data2.json
OCATA = "2017-02-22"  # vlan on nic devices
ROCKY = "2018-08-27"  # vf_trusted on nic devices
VICTORIA = "2020-10-14"  # dedicated_cpus
EPOXY = "2025-04-04"  # share devices

OPENSTACK_VERSIONS: tuple[str, ...] = (
    FOLSOM,
    GRIZZLY,
    HAVANA,
    LIBERTY,
    NEWTON_ONE,
    NEWTON_TWO,
    OCATA,
    ROCKY,
    VICTORIA,
    EPOXY,
)

EC2_VERSIONS: tuple[str, ...] = (
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
)

# EC2 versions a config drive carries (nova's default config_drive_skip_versions skips the rest).
EC2_DRIVE_VERSIONS: tuple[str, ...] = ("2009-04-04", "latest")

LATEST = "latest"


def resolve_openstack(version: str) -> str | None:
    """The concrete OpenStack version a path segment names, or None if it names none."""
    if version == LATEST:
        return OPENSTACK_VERSIONS[-1]
    return version if version in OPENSTACK_VERSIONS else None


def resolve_ec2(version: str) -> str | None:
    """The concrete EC2 version a path segment names, or None if it names none."""
    if version == LATEST:
        return EC2_VERSIONS[-1]
    return version if version in EC2_VERSIONS else None


def since(version: str, introduced: str) -> bool:
    """True when ``version`` (already resolved) has what ``introduced`` added."""
    return version >= introduced


def listed_openstack_versions(today: date) -> tuple[str, ...]:
    """The ``/openstack`` listing: versions dated after today stay hidden (nova inherited this
    from EC2) but remain servable when asked for by name."""
    cutoff = today.isoformat()
    return (*(v for v in OPENSTACK_VERSIONS if v <= cutoff), LATEST)
