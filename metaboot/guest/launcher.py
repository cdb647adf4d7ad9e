"""The ``/usr/bin/metaboot`` script ``metaboot image prepare`` installs in an image.

It starts Debian's Python with ``-I -S`` (written ``-IS``: a kernel passes everything after
the interpreter on a ``#!`` line as one argument): ``-I`` keeps the environment and the user's
site directory out of a boot, ``-S`` skips the ``site`` module and its ``.pth`` files, a few
milliseconds of every start that the agent does not need — it needs the standard library plus
one directory, the system's site packages, where it and PyYAML are installed, and that
directory is put on ``sys.path`` by the script itself. The agent's own modules then come from
the bundle ``metaboot image prepare`` wrote beside them (:mod:`metaboot.guest.bundle`).
"""

from __future__ import annotations

INTERPRETER = "/usr/bin/python3"


def launcher_text(site_packages: str, *, prelude: str = "") -> str:
    """The script's text; ``site_packages`` is where metaboot is installed (Debian and Ubuntu:
    ``/usr/lib/python3/dist-packages``). ``prelude`` is code run before the agent is imported
    (the benchmark adds its network guard and the source tree there)."""
    if "\n" in site_packages or not site_packages.startswith("/"):
        raise ValueError(f"site packages must be an absolute path, not {site_packages!r}")
    return (
        f"#!{INTERPRETER} -IS\n"
        "# Installed by `metaboot image prepare`: the metaboot agent's command line.\n"
        "# -I: no environment or user site; -S: no site module (see metaboot.guest.launcher).\n"
        "import sys\n"
        "\n"
        f"sys.path.append({site_packages!r})\n"
        f"{prelude}"
        "from metaboot.guest import bundle  # noqa: E402\n"
        "\n"
        "bundle.install()  # the agent's byte-code from one file (metaboot.guest.bundle)\n"
        "from metaboot.cli import main  # noqa: E402\n"
        "\n"
        "sys.exit(main())\n"
    )
