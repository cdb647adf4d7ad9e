"""Fixtures for the real-VM tests: an SSH key, the metadata service and the pool of boots.

At session start the pool is handed every scenario the session selected, so boots run in the
background (a few at a time) while earlier tests check their results.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.e2e_fleet import Fleet, lazy_service
from tests.e2e.e2e_scenarios import Scenario


@pytest.fixture(scope="session")
def public_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh key pair: the instance's key, which the default user must accept."""
    directory = tmp_path_factory.mktemp("ssh")
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "e2e@metaboot",
            "-f",
            str(directory / "id"),
        ],
        check=True,
    )
    return (directory / "id.pub").read_text().strip()


def _selected_scenarios(session: pytest.Session) -> list[Scenario]:
    found: list[Scenario] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        scenario = callspec.params.get("scenario") if callspec is not None else None
        skipped = any(m.name == "skip" for m in item.iter_markers())
        if isinstance(scenario, Scenario) and scenario not in found and not skipped:
            found.append(scenario)
    return found


@pytest.fixture(scope="session")
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, public_key: str
) -> Iterator[Fleet]:
    workdir: Path = tmp_path_factory.mktemp("vms")
    with lazy_service(workdir / "service") as service:
        pool = Fleet(workdir, public_key, service)
        try:
            for scenario in _selected_scenarios(request.session):
                pool.submit(scenario)
            yield pool
        finally:
            pool.close()
