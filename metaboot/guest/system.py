"""The target system behind a Root.

The agent never touches ``/`` directly. Every guest path goes through a :class:`Root`, so the
same code configures a live system (``Root("/")``), a mounted image or a test's temporary tree.
Paths are resolved the way ``chroot`` would see them: an absolute symlink inside the tree points
inside the tree, and ``..`` never climbs out of it. Writes are atomic (temporary file, fsync,
rename) and always set mode and ownership explicitly; while a boot runs, the fsync of most files
comes after the rename, on a background thread (see :mod:`metaboot.guest.writebehind`).

Paths are plain strings inside: ``pathlib`` (which loads ``urllib.parse`` too) is imported only
by code that asks for a ``Path`` (:meth:`Root.path`, :attr:`Root.base`), not by a boot stage
that never needs one.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from metaboot.guest.writebehind import WriteBehind

_MAX_SYMLINKS = 40
# lstat errors that mean "not a symlink here" (pathlib's is_symlink() answers False for them).
_NOT_THERE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _exists(host_path: str) -> bool:
    """``Path.exists()`` without a Path: follows symlinks; a permission error still raises."""
    try:
        os.stat(host_path)
    except OSError as err:
        if err.errno not in _NOT_THERE:
            raise
        return False
    return True


def temporary_file(target: str | os.PathLike[str]) -> tuple[int, str]:
    """A new, private (0600) file beside ``target`` to be renamed over it: what
    ``tempfile.mkstemp(prefix=".NAME.", dir=...)`` gives, without importing tempfile (and with
    it shutil, random and the compression modules) on every boot. The name is unguessable and
    the file is created with O_EXCL|O_NOFOLLOW, so nothing planted in the directory is used."""
    directory, name = os.path.split(os.fspath(target))
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        candidate = os.path.join(directory, f".{name}.{os.urandom(6).hex()}")
        try:
            return os.open(candidate, flags, 0o600), candidate
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no usable temporary file name", directory)


class Root:
    """A filesystem tree seen as a system root."""

    def __init__(self, base: str | os.PathLike[str] = "/") -> None:
        self._base = os.path.normpath(os.path.abspath(os.fspath(base)))
        self._prefix = "" if self._base == "/" else self._base
        # Set by the runner for a boot: files are fsynced behind it (see write_file).
        self.write_behind: WriteBehind | None = None
        # Guest directories seen to exist with no symlink on the way: see _resolve.
        self._plain: set[str] = set()

    def __repr__(self) -> str:
        return f"Root({self._base!r})"

    @property
    def base(self) -> Path:
        """The tree's top, as a host path."""
        from pathlib import Path

        return Path(self._base)

    @property
    def base_dir(self) -> str:
        """:attr:`base` as a plain string."""
        return self._base

    @property
    def is_live(self) -> bool:
        """True when this Root is the running system itself."""
        return self._base == "/"

    # ---- paths -------------------------------------------------------------------------

    def path(self, guest_path: str | os.PathLike[str], *, follow: bool = False) -> Path:
        """Map an absolute guest path to a host path, following symlinks inside the root.

        Intermediate components are always followed; the last one only with ``follow`` (reads
        want the file a symlink names, writes replace the link itself), so a link to ``/etc/x``
        in an image resolves to the image's ``/etc/x``, never the host's.
        """
        from pathlib import Path

        return Path(self._resolve(os.fspath(guest_path), follow))

    def host_path(self, guest_path: str | os.PathLike[str], *, follow: bool = False) -> str:
        """:meth:`path` as a plain string, for code that hands it straight to ``os``: the
        agent maps a few hundred paths per boot, and a Path object each is measurable."""
        return self._resolve(os.fspath(guest_path), follow)

    def forget_paths(self) -> None:
        """Forget which directories were seen free of symlinks (see :meth:`_resolve`): called
        whenever something other than the agent's own writes may have changed the tree (a
        command ran)."""
        self._plain.clear()

    def _resolve(self, guest_path: str, follow: bool) -> str:
        # Plain strings and one lstat per component: the agent maps a few hundred paths per
        # boot, and building a pathlib object per component cost more than the system calls.
        # A directory whose every component was seen to exist and not be a symlink maps to
        # itself under the root, and is remembered: later paths in it need no lstat but their
        # last component's (none at all when it is not followed). The agent's own writes never
        # turn a directory into a symlink (a rename onto a directory fails); anything else
        # that might, a command the agent ran, is followed by forget_paths() (Root.run and
        # CommandRunner call it; the background host-key job only moves files).
        parts = [p for p in guest_path.split("/") if p and p != "."]
        if parts and ".." not in parts:
            parent = "/".join(parts[:-1])
            if not parent or parent in self._plain:
                host = self._prefix + "/" + "/".join(parts)
                if not follow:
                    return host
                try:
                    if not stat.S_ISLNK(os.lstat(host).st_mode):
                        return host
                except OSError as err:
                    if err.errno not in _NOT_THERE:
                        raise
                    return host
        parts.reverse()  # a stack: the next component is at the end
        prefix = self._prefix
        resolved: list[str] = []
        missing = 0  # >0: resolved[missing - 1] does not exist, so nothing below it can be a link
        hops = 0
        while parts:
            part = parts.pop()
            if part == "..":
                if resolved:
                    resolved.pop()
                if len(resolved) < missing:
                    missing = 0
                continue
            if (parts or follow) and not missing:
                candidate = prefix + "/" + "/".join((*resolved, part))
                seen = False
                try:
                    is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
                    seen = True
                except OSError as err:
                    if err.errno not in _NOT_THERE:
                        raise
                    is_link = False
                    if err.errno in (errno.ENOENT, errno.ENOTDIR):
                        missing = len(resolved) + 1
                if is_link:
                    hops += 1
                    if hops > _MAX_SYMLINKS:
                        raise OSError(f"too many levels of symbolic links in {guest_path}")
                    target = os.readlink(candidate)
                    if target.startswith("/"):
                        resolved = []
                        missing = 0
                    new = [p for p in target.split("/") if p and p != "."]
                    parts.extend(reversed(new))
                    continue
                if seen and not hops and parts:
                    self._plain.add("/".join((*resolved, part)))
            resolved.append(part)
        if not resolved:
            return prefix or "/"
        return prefix + "/" + "/".join(resolved)

    def exists(self, guest_path: str) -> bool:
        return _exists(self._resolve(guest_path, True))

    def read_bytes(self, guest_path: str) -> bytes:
        with open(self._resolve(guest_path, True), "rb") as handle:
            return handle.read()

    def read_text(self, guest_path: str, default: str | None = None) -> str:
        try:
            with open(self._resolve(guest_path, True), encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            if default is None:
                raise
            return default

    def listdir(self, guest_path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._resolve(guest_path, True)))
        except FileNotFoundError:
            return []

    # ---- identities (read from the root's own files, never the host's) -------------------

    def _table(self, name: str) -> dict[str, list[str]]:
        rows: dict[str, list[str]] = {}
        for line in self.read_text(f"/etc/{name}", default="").splitlines():
            if line and not line.startswith("#"):
                columns = line.split(":")
                rows[columns[0]] = columns
        return rows

    def uid_of(self, user: str | int) -> int:
        if isinstance(user, int) or str(user).isdigit():
            return int(user)
        row = self._table("passwd").get(str(user))
        if row is None:
            raise KeyError(f"no user {user!r} in {self.base}/etc/passwd")
        return int(row[2])

    def gid_of(self, group: str | int) -> int:
        if isinstance(group, int) or str(group).isdigit():
            return int(group)
        row = self._table("group").get(str(group))
        if row is None:
            raise KeyError(f"no group {group!r} in {self.base}/etc/group")
        return int(row[2])

    def primary_gid_of(self, user: str | int) -> int:
        if isinstance(user, int) or str(user).isdigit():
            for entry in self._table("passwd").values():
                if entry[2] == str(user):
                    return int(entry[3])
            return int(user)
        row = self._table("passwd").get(str(user))
        if row is None:
            raise KeyError(f"no user {user!r} in {self.base}/etc/passwd")
        return int(row[3])

    def home_of(self, user: str) -> str:
        row = self._table("passwd").get(user)
        if row is None:
            raise KeyError(f"no user {user!r} in {self.base}/etc/passwd")
        return row[5]

    # ---- writes ------------------------------------------------------------------------

    def makedirs(
        self,
        guest_path: str,
        mode: int = 0o755,
        owner: str | int | None = None,
        group: str | int | None = None,
    ) -> str:
        """Create a directory and its missing parents; mode/owner apply to created ones.
        Returns the host path."""
        target = self._resolve(guest_path, False)
        self.makedirs_host(target, mode, owner, group)
        return target

    def makedirs_host(
        self,
        host_dir: str,
        mode: int = 0o755,
        owner: str | int | None = None,
        group: str | int | None = None,
    ) -> None:
        """``makedirs`` for a host path already mapped by :meth:`path` (saves mapping twice)."""
        missing: list[str] = []
        probe = host_dir
        top = self._prefix or "/"
        while probe != top and not _exists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(missing):
            os.mkdir(directory, mode)
            os.chmod(directory, mode)
            self._chown(directory, owner, group)

    def write_file(
        self,
        guest_path: str,
        content: bytes | str,
        mode: int | None = 0o644,
        owner: str | int | None = None,
        group: str | int | None = None,
        append: bool = False,
        critical: bool = False,
    ) -> str:
        """Write a file atomically; ``mode=None`` keeps an existing file's mode (else 0644).
        Returns the host path.

        With :attr:`write_behind` set, the file replaces the old one at once and is fsynced
        behind the boot, before any semaphore queued after it; a crash before then can leave
        it empty, and the module that wrote it runs again. ``critical`` files, which other
        programs read before the agent could run again, are fsynced before they replace the
        old file whatever the mode."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        target = self._resolve(os.fspath(guest_path), False)
        self.makedirs_host(os.path.dirname(target))
        existing: os.stat_result | None
        try:
            existing = os.lstat(target)
        except FileNotFoundError:
            existing = None
        if append and existing is not None and stat.S_ISREG(existing.st_mode):
            with open(target, "rb") as handle:
                data = handle.read() + data
        if mode is None:
            mode = stat.S_IMODE(existing.st_mode) if existing is not None else 0o644
        behind = None if critical else self.write_behind
        fd, tmp = temporary_file(target)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if behind is None:
                    os.fsync(fd)
                os.fchmod(fd, mode)
                if owner is None and group is None and existing is not None:
                    if (existing.st_uid, existing.st_gid) != (os.getuid(), os.getgid()):
                        self._chown_raw(tmp, existing.st_uid, existing.st_gid)
                else:
                    self._chown(tmp, owner, group)
                os.replace(tmp, target)
            except BaseException:
                os.close(fd)
                raise
            if behind is None:
                os.close(fd)
            else:
                behind.fsync(fd, guest_path)
        except BaseException:
            try:  # noqa: SIM105 - contextlib is not otherwise loaded on a boot
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return target

    def remove(self, guest_path: str) -> bool:
        """Remove a file or symlink; True if something was removed."""
        try:
            os.unlink(self._resolve(os.fspath(guest_path), False))
            return True
        except FileNotFoundError:
            return False

    def chown(self, guest_path: str, owner: str | int | None, group: str | int | None) -> None:
        self._chown(self._resolve(os.fspath(guest_path), False), owner, group)

    def _chown(
        self, host_path: str | Path, owner: str | int | None, group: str | int | None
    ) -> None:
        if owner is None and group is None:
            return
        uid = self.uid_of(owner) if owner is not None else -1
        if group is not None:
            gid = self.gid_of(group)
        elif owner is not None:
            gid = self.primary_gid_of(owner)
        else:
            gid = -1
        self._chown_raw(host_path, uid, gid)

    @staticmethod
    def _chown_raw(host_path: str | Path, uid: int, gid: int) -> None:
        try:
            os.chown(host_path, uid, gid, follow_symlinks=False)
        except PermissionError:
            if os.geteuid() == 0:
                raise
            # An unprivileged test run cannot give files away; the mode is still exact.

    # ---- commands ----------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a host command (tools that take ``--root``/``-R`` are given ``self.base``
        by their callers); output is captured so it can be reported, not printed."""
        import subprocess  # not on a boot that runs no such tool (metaboot.guest.os.spawn)

        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        try:
            return subprocess.run(
                list(argv),
                input=input,
                env=full_env,
                check=check,
                capture_output=True,
                timeout=timeout,
            )
        finally:
            self.forget_paths()
