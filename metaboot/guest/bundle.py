"""The agent's byte-code in one file, read once when the agent starts.

A first boot imports some eighty agent modules. For each one, Python's path finder looks the
module up in its directory, stats the source to check the cached byte-code, then opens and
reads a ``.pyc``. That is about a tenth of the agent's own time. ``metaboot image prepare``
therefore also writes the byte-code of every module it installs into one file,
``metaboot/agent.bundle``, and the image's launcher serves the agent's modules from it
(:func:`install`).

The bundle never shadows an edit. It records each source file's size and modification time,
as a ``.pyc`` does, and a module whose source no longer matches is left to the ordinary
import system. A bundle written by another Python version (its byte-code magic differs) is
not used at all.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import CodeType, ModuleType
    from typing import Any

NAME = "agent.bundle"  # in the metaboot package directory
_FORMAT = 1


def _magic() -> bytes:
    # importlib.util.MAGIC_NUMBER, without importing importlib (see metaboot.imports).
    external: Any = sys.modules["_frozen_importlib_external"]
    magic: bytes = external.MAGIC_NUMBER
    return magic


def build(package_dir: str, *, ddir: str | None = None, prefix: str = "metaboot") -> bytes:
    """The bundle of every module under ``package_dir`` (the ``metaboot`` package as
    installed), its code naming the files under ``ddir`` (where the package will be: the
    image's path, as ``compileall``'s ``ddir``), else where they are."""
    modules: dict[str, tuple[bool, str, int, int, bytes]] = {}
    for directory, subdirs, files in os.walk(package_dir):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__" and not d.startswith("."))
        relative = os.path.relpath(directory, package_dir)
        parts = [] if relative == "." else relative.split(os.sep)
        for file in sorted(files):
            if not file.endswith(".py"):
                continue
            path = os.path.join(directory, file)
            package = file == "__init__.py"
            name = ".".join([prefix, *parts] + ([] if package else [file[:-3]]))
            with open(path, "rb") as handle:
                source = handle.read()
            info = os.stat(path)
            rel = os.path.relpath(path, package_dir)
            shown = os.path.join(ddir, rel) if ddir else path
            code = compile(source, shown, "exec", dont_inherit=True)
            modules[name] = (package, rel, info.st_mtime_ns, info.st_size, marshal.dumps(code))
    return marshal.dumps((_FORMAT, _magic(), modules))


def write(package_dir: str, *, ddir: str | None = None) -> str:
    """Write ``package_dir``'s bundle into it (see :func:`build`); returns its path."""
    path = os.path.join(package_dir, NAME)
    data = build(package_dir, ddir=ddir)
    with open(path + ".new", "wb") as handle:
        handle.write(data)
    os.replace(path + ".new", path)
    return path


class BundleFinder:
    """A meta path finder (and loader) for the modules of one bundle."""

    def __init__(self, package_dir: str, modules: dict[str, tuple[bool, str, int, int, bytes]]):
        self.package_dir = package_dir
        self.modules = modules

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> Any:
        entry = self.modules.get(name)
        if entry is None:
            return None
        package, rel, mtime_ns, size, _ = entry
        origin = os.path.join(self.package_dir, rel)
        try:
            info = os.stat(origin)
        except OSError:
            return None
        if (info.st_mtime_ns, info.st_size) != (mtime_ns, size):
            return None  # edited since the bundle was written: the ordinary import has it
        spec = sys.modules["_frozen_importlib"].ModuleSpec(
            name, self, origin=origin, is_package=package
        )
        if package:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        spec.has_location = True
        return spec

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        # Byte-code written by `image prepare` beside the sources: a .pyc's trust, no more.
        code: CodeType = marshal.loads(self.modules[module.__name__][4])  # noqa: S302
        exec(code, module.__dict__)  # noqa: S102

    def get_source(self, name: str) -> str | None:
        """For tracebacks and ``inspect``: the source the module came from."""
        entry = self.modules.get(name)
        if entry is None:
            return None
        with open(os.path.join(self.package_dir, entry[1]), encoding="utf-8") as handle:
            return handle.read()


def install(package_dir: str | None = None) -> bool:
    """Serve the agent's modules from the bundle beside the package, if there is one that
    this Python can run; True if it is now in use."""
    if package_dir is None:
        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(package_dir, NAME), "rb") as handle:
            form, magic, modules = marshal.loads(handle.read())  # noqa: S302 (see exec_module)
    except (OSError, ValueError, EOFError, TypeError):
        return False
    if form != _FORMAT or magic != _magic() or not isinstance(modules, dict):
        return False
    if any(isinstance(f, BundleFinder) for f in sys.meta_path):
        return True
    sys.meta_path.insert(0, BundleFinder(package_dir, modules))
    return True
