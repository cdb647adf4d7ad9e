"""The one ``metaboot`` entry point.

Subcommands live with the part they drive and are imported only when asked for, so that
``metaboot init`` in a guest never loads the server side and ``metaboot --help`` stays instant.
Each target module exposes ``main(command: str, argv: list[str]) -> int``.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

from metaboot import __version__
from metaboot.errors import MetabootError
from metaboot.imports import import_module

TYPE_CHECKING = False  # typing is for mypy only (it costs a guest boot its import)
if TYPE_CHECKING:
    from typing import NoReturn

# command -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("metaboot.service.cli", "run the metadata service (and its admin API)"),
    "instance": ("metaboot.registry.cli", "add, list, show, update, delete instances; passwords"),
    "router": ("metaboot.registry.cli", "map routers to the networks they serve"),
    "proxy": ("metaboot.proxy.cli", "run a per-network metadata proxy"),
    "drive": ("metaboot.drive.cli", "build and inspect config drives (ISO 9660, VFAT, NoCloud)"),
    "init": ("metaboot.guest.cli", "guest: find instance data and apply it (one or all stages)"),
    "status": ("metaboot.guest.cli", "guest: report what the agent did"),
    "query": ("metaboot.guest.cli", "guest: read a key of the instance data"),
    "analyze": ("metaboot.guest.cli", "guest: time taken per stage and per module"),
    "schema": ("metaboot.guest.cli", "guest: validate a user-data file"),
    "clean": ("metaboot.guest.cli", "guest: return the system to its never-booted state"),
    "image": ("metaboot.guest.image", "prepare an image root for the agent, or seal it"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: metaboot COMMAND [ARGS...]   (metaboot {__version__})", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run 'metaboot COMMAND --help' for a command's options."]
    return "\n".join(lines)


def _without_cycle_collector() -> None:
    """``init`` runs once per boot for a fraction of a second and frees what it drops by
    reference counting; the cyclic collector only re-scans the hundreds of thousands of objects
    its imports create, and once more at exit (together ~3% of a first boot's CPU). Its memory
    is bounded anyway: the user-data limits cap what a boot parses, and the process ends with
    the boot. ``main`` called as a function (a test) gets its collector back on return."""
    gc.disable()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        print(__version__)
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"metaboot: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    as_program = argv is None  # else a caller (a test) goes on in this process
    restore = not as_program and gc.isenabled()
    if command == "init":
        _without_cycle_collector()
        # Before any agent module imports json: its patterns compiled on first use (four of
        # its six serve only its pure-Python fallbacks; see metaboot.guest.lazyre).
        from metaboot.guest import lazyre

        lazyre.import_module("json")
    try:
        module = import_module(COMMANDS[command][0])
        code = int(module.main(command, rest))
        sys.stdout.flush()  # a reader that left shows here, not at interpreter exit
    except BrokenPipeError:
        code = _reader_left()
    except MetabootError as err:
        print(f"metaboot {command}: error: {err}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        if restore:
            gc.enable()
    if as_program and command == "init":
        _end_process(code)
    return code


def _reader_left() -> int:
    """``metaboot … | head``: the reader closed the pipe. Not an error of ours and no
    traceback; stdout goes to /dev/null so the interpreter's own flush at exit cannot fail
    again. 141 is what a shell reports for a process that SIGPIPE ended."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def _end_process(code: int) -> NoReturn:
    """End ``init`` without the interpreter's teardown: unloading ~200 modules and freeing
    every object one by one is ~8% of a first boot's instructions, and the kernel releases the
    same memory at once. What the teardown would do that matters is done first: the exit
    handlers (``logging.shutdown`` flushes and closes the log), then the standard streams."""
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not otherwise loaded on a boot
            stream.flush()
        except (OSError, ValueError):  # a reader that left, a closed stream
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
