from __future__ import annotations

from pathlib import Path

import pytest

from metaboot.registry.paths import default_db_url, sqlalchemy_url


def test_default_db_url_prefers_the_environment() -> None:
    env = {"METABOOT_DB": "postgresql://db/x", "HOME": "/home/u"}
    assert default_db_url(env, euid=0) == "postgresql://db/x"


def test_default_db_url_for_root_and_for_users() -> None:
    assert default_db_url({}, euid=0) == "sqlite:////var/lib/metaboot/registry.db"
    assert (
        default_db_url({"HOME": "/home/u"}, euid=1000)
        == "sqlite:////home/u/.local/state/metaboot/registry.db"
    )
    assert (
        default_db_url({"HOME": "/home/u", "XDG_STATE_HOME": "/s"}, euid=1000)
        == "sqlite:////s/metaboot/registry.db"
    )


def test_sqlalchemy_url_spellings() -> None:
    assert sqlalchemy_url("/tmp/r.db") == "sqlite:////tmp/r.db"
    assert sqlalchemy_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert sqlalchemy_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert sqlalchemy_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


def test_open_without_a_url_uses_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metaboot.registry import Registry

    monkeypatch.setenv("METABOOT_DB", str(tmp_path / "default.db"))
    with Registry.open() as reg:
        assert reg.url.endswith("default.db")
    assert (tmp_path / "default.db").exists()
