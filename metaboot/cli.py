"""The one ``metaboot`` entry point.

Subcommands live with the part they drive and are imported only when asked for, so that
``metaboot init`` in a guest never loads the server side and ``metaboot --help`` stays instant.
Each target module exposes ``main(command: str, argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from metaboot import __version__
from metaboot.errors import MetabootError

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
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return int(module.main(command, rest))
    except MetabootError as err:
        print(f"metaboot {command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
