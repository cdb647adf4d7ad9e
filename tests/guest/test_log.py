"""The agent's own log writer: the lines /var/log/metaboot.log always had, without ``logging``.

The file path is checked in a child process with a fresh interpreter (the agent's situation:
``logging`` not loaded); in this process pytest has loaded it, which is the other path —
records are handed to ``logging`` as well, so ``caplog`` sees them.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from metaboot.guest import log

REPO = Path(__file__).resolve().parents[2]

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<pid>\d+) (?P<name>\S+) (?P<level>[A-Z]+): "
)

CHILD = """
import sys
from metaboot.guest import log
sink = log.open_file(sys.argv[1], debug=sys.argv[2] == "debug")
one = log.get("metaboot.test")
one.debug("debug %d", 1)
one.info("info %s", "two")
one.warning("a bad format %d", "three")
try:
    raise ValueError("four")
except ValueError:
    one.exception("it failed: %s", "five")
sink.close()
one.error("after close")
assert "logging" not in sys.modules, "logging was imported"
assert "traceback" in sys.modules  # only because exception() ran
"""


def run_child(path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    code = f"import sys; sys.path.insert(0, {str(REPO)!r})\n{CHILD}"
    argv = [sys.executable, "-I", "-c", code, str(path), mode]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_lines_in_the_logging_format_without_loading_logging(tmp_path: Path) -> None:
    path = tmp_path / "metaboot.log"
    proc = run_child(path, "info")
    assert proc.returncode == 0, proc.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    records = [
        (m.group("name"), m.group("level"), line[m.end() :])
        for line in lines
        if (m := LINE.match(line))
    ]
    assert records == [
        ("metaboot.test", "INFO", "info two"),
        ("metaboot.test", "WARNING", "a bad format %d (arguments that did not fit: ('three',))"),
        ("metaboot.test", "ERROR", "it failed: five"),
    ]
    # The traceback follows its record. After close an error goes to stderr, as with no log.
    error_at = next(i for i, line in enumerate(lines) if "it failed: five" in line)
    assert lines[error_at + 1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: four"
    assert proc.stderr == "after close\n"


def test_debug_threshold(tmp_path: Path) -> None:
    path = tmp_path / "metaboot.log"
    assert run_child(path, "debug").returncode == 0
    assert " metaboot.test DEBUG: debug 1" in path.read_text()


def test_without_a_log_file_warnings_go_to_stderr() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from metaboot.guest import log\n"
        "log.get('x').info('quiet')\n"
        "log.get('x').warning('loud %s', 1)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert proc.stderr == "loud 1\n"


def test_records_reach_logging_when_it_is_loaded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    one = log.get("metaboot.forwarded")
    one.debug("d %s", "x")
    one.warning("w")
    try:
        raise KeyError("k")
    except KeyError:
        one.exception("boom %d", 3)
    got = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert got == [
        ("metaboot.forwarded", logging.DEBUG, "d x"),
        ("metaboot.forwarded", logging.WARNING, "w"),
        ("metaboot.forwarded", logging.ERROR, "boom 3"),
    ]
    assert caplog.records[-1].exc_info is not None
