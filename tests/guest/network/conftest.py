from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from metaboot.guest.system import Root
from tests.guest.network.netroot import install, make_sysfs


@pytest.fixture
def target(tmp_path: Path) -> Callable[..., Root]:
    def build(nics: Mapping[str, str], *programs: str) -> Root:
        root_dir = tmp_path / "root"
        make_sysfs(root_dir, nics)
        install(root_dir, *programs)
        return Root(root_dir)

    return build
