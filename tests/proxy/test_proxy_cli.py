"""``metaboot proxy`` refuses contradictory or incomplete options with a message naming them."""

from __future__ import annotations

import pytest

from metaboot.errors import ConfigError
from metaboot.proxy.cli import build_context, build_parser, main
from metaboot.proxy.upstream import parse_upstream


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--upstream", "http://127.0.0.1:8775", "--upstream-ca", "/x"], "need an https://"),
        (["--upstream", "https://127.0.0.1", "--upstream-key", "/k"], "--upstream-key needs"),
        (["--upstream", "https://127.0.0.1", "--upstream-ca", "/nonexistent.pem"], "TLS files"),
        (["--upstream", "unix:relative.sock"], "absolute path"),
        (["--upstream", "http://h:8775/prefix"], "only scheme, host and port"),
        (["--upstream", "unix:/s", "--access-log", "/nonexistent-dir/a.log"], "--access-log"),
    ],
)
def test_bad_upstream_options(argv: list[str], message: str) -> None:
    args = build_parser().parse_args(["--network-id", "n", "--listen", "127.0.0.1:0", *argv])
    with pytest.raises(ConfigError, match=message):
        build_context(args)


def test_forwarded_for_belongs_to_stdio() -> None:
    with pytest.raises(ConfigError, match="--forwarded-for goes with --stdio"):
        main("proxy", ["--network-id", "n", "--listen", "127.0.0.1:0", "--upstream", "unix:/s",
                       "--forwarded-for", "10.0.0.5"])  # fmt: skip


def test_stdio_log_cannot_be_stderr() -> None:
    args = build_parser().parse_args(
        ["--router-id", "r", "--stdio", "--forwarded-for", "10.0.0.5", "--upstream", "unix:/s",
         "--access-log", "-"]
    )  # fmt: skip
    with pytest.raises(ConfigError, match="stderr is the guest's connection"):
        build_context(args)


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_timeouts_must_be_positive_numbers(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["--network-id", "n", "--listen", "127.0.0.1:0", "--upstream", "unix:/s",
             "--client-timeout", value]
        )  # fmt: skip
    assert "--client-timeout" in capsys.readouterr().err


def test_upstream_forms() -> None:
    assert str(parse_upstream("unix:/run/md.sock")) == "unix:/run/md.sock"
    assert str(parse_upstream("http://[::1]:8775")) == "http://[::1]:8775"
    assert str(parse_upstream("https://metadata.internal")) == "https://metadata.internal:443"
    assert str(parse_upstream("http://10.0.0.1")) == "http://10.0.0.1:80"
