"""The agent's log, without the ``logging`` package.

``import logging`` brings traceback, tokenize, string, weakref and threading with it: about
25 M instructions, a ninth of a whole first boot, for what the agent uses of it — one line
per event appended to ``/var/log/metaboot.log``. This module writes the same lines, in the
format the log has always had (``logging``'s ``asctime``, pid, logger name, level, message).

When the standard ``logging`` is loaded anyway (the tests, a program that embeds the agent),
every record is also handed to it under the same logger name, so ``caplog`` and whatever
handlers that program configured see what the file sees. A boot never loads it.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import TextIO

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_LEVEL_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}

_sink: TextIO | None = None
_threshold = INFO


class Logger:
    """The four levels plus ``exception``, with ``logging``'s ``%``-style arguments."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, msg: str, *args: object) -> None:
        self._emit(DEBUG, msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._emit(INFO, msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._emit(WARNING, msg, args)

    def error(self, msg: str, *args: object) -> None:
        self._emit(ERROR, msg, args)

    def exception(self, msg: str, *args: object) -> None:
        """An error with the traceback of the exception being handled."""
        self._emit(ERROR, msg, args, with_traceback=True)

    def _emit(
        self, level: int, msg: str, args: tuple[object, ...], with_traceback: bool = False
    ) -> None:
        standard = sys.modules.get("logging")
        if standard is not None:
            standard.getLogger(self.name).log(level, msg, *args, exc_info=with_traceback)
        if level < _threshold or (_sink is None and (standard is not None or level < WARNING)):
            return
        text = _render(msg, args)
        if with_traceback:
            import traceback  # only on the error path

            text += "\n" + traceback.format_exc().rstrip("\n")
        if _sink is None:  # no log file: warnings and errors still reach someone
            sys.stderr.write(text + "\n")
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        millis = int(now * 1000) % 1000
        line = f"{stamp},{millis:03d} {os.getpid()} {self.name} {_LEVEL_NAMES[level]}: {text}\n"
        try:
            _sink.write(line)
            _sink.flush()
        except (OSError, ValueError):
            pass  # a full disk or a closed file must not stop the boot


def _render(msg: str, args: tuple[object, ...]) -> str:
    if not args:
        return str(msg)
    try:
        return str(msg) % args
    except (TypeError, ValueError):  # a bad format is reported, never raised into the boot
        return f"{msg!s} (arguments that did not fit: {args!r})"


def get(name: str) -> Logger:
    return Logger(name)


class LogFile:
    """The open log: ``close`` ends it (records after that go nowhere but ``logging``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def close(self) -> None:
        global _sink
        if _sink is self.stream:
            _sink = None
        try:  # noqa: SIM105 - contextlib is not otherwise loaded on a boot
            self.stream.close()
        except OSError:
            pass


def open_file(host_path: str, *, debug: bool = False) -> LogFile:
    """Append records to ``host_path`` (created 0600: it may name users and files)."""
    global _sink, _threshold
    fd = os.open(host_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    stream = open(fd, "a", encoding="utf-8")  # noqa: SIM115 - closed by LogFile.close
    _sink = stream
    _threshold = DEBUG if debug else INFO
    return LogFile(stream)
