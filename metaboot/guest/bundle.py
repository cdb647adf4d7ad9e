"""The agent's byte-code in one file, opened once when the agent starts.

A first boot imports some eighty agent modules. For each one, Python's path finder looks the
module up in its directory, stats the source to check the cached byte-code, then opens and
reads a ``.pyc``. That is about a tenth of the agent's own time. ``metaboot image prepare``
therefore also writes the byte-code of every module it installs into one file,
``metaboot/agent.bundle``, and the image's launcher serves the agent's modules from it
(:func:`install`): one open file, its index read at start, each module's code read when the
module is imported.

The same holds for the standard library and PyYAML modules a first boot imports
(:data:`LIBRARY`): a first boot spends as long again finding and reading their ``.pyc`` files
one by one. The bundle holds them too, under the paths the image has them at, so the
launcher opens one file where it opened some seventy.

The bundle never shadows an edit. It records each source file's size and modification time,
as a ``.pyc`` does, and a module whose source no longer matches is left to the ordinary
import system: an upgraded ``python3`` or ``python3-yaml`` package is imported from its own
files until the next ``image prepare``. A bundle written by another Python version (its
byte-code magic differs) is not used at all.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import CodeType, ModuleType
    from typing import Any

    # package?, path (relative to the package directory, or absolute), source mtime_ns and
    # size, offset and length of the code
    Entry = tuple[bool, str, int, int, int, int]

NAME = "agent.bundle"  # in the metaboot package directory
_FORMAT = 2

# The standard library and PyYAML modules a first boot imports that the interpreter has not
# loaded before the agent starts; tests/guest/test_boot_imports.py keeps the list exact.
LIBRARY = (
    "__future__",
    "base64",
    "collections",
    "collections.abc",
    "copyreg",
    "datetime",
    "enum",
    "fnmatch",
    "functools",
    "json",
    "json.decoder",
    "json.encoder",
    "json.scanner",
    "keyword",
    "operator",
    "re",
    "re._casefix",
    "re._compiler",
    "re._constants",
    "re._parser",
    "reprlib",
    "struct",
    "types",
    "yaml",
    "yaml.composer",
    "yaml.constructor",
    "yaml.cyaml",
    "yaml.dumper",
    "yaml.emitter",
    "yaml.error",
    "yaml.events",
    "yaml.loader",
    "yaml.nodes",
    "yaml.parser",
    "yaml.reader",
    "yaml.representer",
    "yaml.resolver",
    "yaml.scanner",
    "yaml.serializer",
    "yaml.tokens",
)


def library_sources(
    exists: Callable[[str], bool], search: Sequence[str], names: Sequence[str] = LIBRARY
) -> dict[str, tuple[str, bool]]:
    """Where each of the ``names`` (:data:`LIBRARY`) has its source, as the guest's import
    would find it: the first of the ``search`` directories (in ``sys.path`` order) holding it
    as a module or a package, by ``exists`` (a guest path test). A module that is built in or
    frozen in this Python, or that no directory has as source (an extension module), is left
    out: the ordinary import serves it. Returns ``{name: (guest path, is package)}``."""
    found: dict[str, tuple[str, bool]] = {}
    imp: Any = sys.modules["_imp"]
    for name in names:
        if imp.is_builtin(name) or imp.is_frozen(name):
            continue
        relative = name.replace(".", "/")
        for directory in search:
            package = f"{directory}/{relative}/__init__.py"
            if exists(package):
                found[name] = (package, True)
                break
            module = f"{directory}/{relative}.py"
            if exists(module):
                found[name] = (module, False)
                break
    return found


def _magic() -> bytes:
    # importlib.util.MAGIC_NUMBER, without importing importlib (see metaboot.imports).
    external: Any = sys.modules["_frozen_importlib_external"]
    magic: bytes = external.MAGIC_NUMBER
    return magic


def build(
    package_dir: str,
    *,
    ddir: str | None = None,
    prefix: str = "metaboot",
    library: Mapping[str, tuple[str, str, bool]] | None = None,
) -> bytes:
    """The bundle of every module under ``package_dir`` (the ``metaboot`` package as
    installed), its code naming the files under ``ddir`` (where the package will be: the
    image's path, as ``compileall``'s ``ddir``), else where they are; and of the ``library``
    modules, ``{name: (path to read, guest path, is package)}`` (see
    :func:`library_sources`).

    The layout: four bytes giving the index's length, the index (marshal), then each module's
    marshalled code. The launcher reads the index and, for each module it imports, that
    module's code alone: reading and unmarshalling the whole file at once (2 MB) cost about
    as much as the library reads it saves, most of it in page faults on this kind of VM."""
    modules: dict[str, tuple[bool, str, int, int, bytes]] = {}
    for name, (path, guest, package) in (library or {}).items():
        with open(path, "rb") as handle:
            source = handle.read()
        info = os.stat(path)
        code = compile(source, guest, "exec", dont_inherit=True)
        # An absolute path: os.path.join(package_dir, guest) in find_spec is the guest path.
        modules[name] = (package, guest, info.st_mtime_ns, info.st_size, marshal.dumps(code))
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
    index: dict[str, Entry] = {}
    offset = 0
    for name, (package, rel, mtime_ns, size, blob) in modules.items():
        index[name] = (package, rel, mtime_ns, size, offset, len(blob))
        offset += len(blob)
    header = marshal.dumps((_FORMAT, _magic(), index, offset))
    return b"".join([len(header).to_bytes(4, "little"), header, *(m[4] for m in modules.values())])


def write(
    package_dir: str,
    *,
    ddir: str | None = None,
    library: Mapping[str, tuple[str, str, bool]] | None = None,
) -> str:
    """Write ``package_dir``'s bundle into it (see :func:`build`); returns its path."""
    path = os.path.join(package_dir, NAME)
    data = build(package_dir, ddir=ddir, library=library)
    with open(path + ".new", "wb") as handle:
        handle.write(data)
    os.replace(path + ".new", path)
    return path


def read_index(fd: int) -> tuple[int, bytes, dict[str, Entry], int]:
    """The bundle's format, byte-code magic, index and where its code starts, from an open
    bundle; ValueError if the file is not one whole bundle of this format."""
    head = os.pread(fd, 4, 0)
    length = int.from_bytes(head, "little")
    try:
        form, magic, index, total = marshal.loads(os.pread(fd, length, 4))  # noqa: S302
    except (EOFError, TypeError, ValueError) as err:
        raise ValueError(f"not a bundle: {err}") from None
    base = 4 + length
    if len(head) != 4 or not isinstance(index, dict) or not isinstance(total, int):
        raise ValueError("not a bundle")
    if os.fstat(fd).st_size != base + total:
        raise ValueError("not a whole bundle")
    return form, magic, index, base


class BundleFinder:
    """A meta path finder (and loader) for the modules of one bundle, read from its open
    file (which stays open, close-on-exec, for the life of the process)."""

    def __init__(self, package_dir: str, index: dict[str, Entry], fd: int, base: int) -> None:
        self.package_dir = package_dir
        self.modules = index
        self._fd = fd
        self._base = base

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> Any:
        entry = self.modules.get(name)
        if entry is None:
            return None
        package, rel, mtime_ns, size, _, _ = entry
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
        *_, offset, length = self.modules[module.__name__]
        data = os.pread(self._fd, length, self._base + offset)
        if len(data) != length:
            raise ImportError(f"{module.__name__}: the bundle ends early", name=module.__name__)
        # Byte-code written by `image prepare` beside the sources: a .pyc's trust, no more.
        code: CodeType = marshal.loads(data)  # noqa: S302
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
    if any(isinstance(f, BundleFinder) for f in sys.meta_path):
        return True
    if package_dir is None:
        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        fd = os.open(os.path.join(package_dir, NAME), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        form, magic, index, base = read_index(fd)
    except (OSError, ValueError):
        os.close(fd)
        return False
    if form != _FORMAT or magic != _magic():
        os.close(fd)
        return False
    sys.meta_path.insert(0, BundleFinder(package_dir, index, fd, base))
    return True
