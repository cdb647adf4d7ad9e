"""The target system behind a Root.

The agent never touches ``/`` directly. Every guest path goes through a :class:`Root`, so the
same code configures a live system (``Root("/")``), a mounted image or a test's temporary tree.
Paths are resolved the way ``chroot`` would see them: an absolute symlink inside the tree points
inside the tree, and ``..`` never climbs out of it. Writes are atomic (temporary file, fsync,
rename) and always set mode and ownership explicitly.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

_MAX_SYMLINKS = 40


class Root:
    """A filesystem tree seen as a system root."""

    def __init__(self, base: str | os.PathLike[str] = "/") -> None:
        self.base = Path(os.path.abspath(os.fspath(base)))

    def __repr__(self) -> str:
        return f"Root({str(self.base)!r})"

    @property
    def is_live(self) -> bool:
        """True when this Root is the running system itself."""
        return self.base == Path("/")

    # ---- paths -------------------------------------------------------------------------

    def path(self, guest_path: str | os.PathLike[str], *, follow: bool = False) -> Path:
        """Map an absolute guest path to a host path, following symlinks inside the root.

        Intermediate components are always followed; the last one only with ``follow`` (reads
        want the file a symlink names, writes replace the link itself), so a link to ``/etc/x``
        in an image resolves to the image's ``/etc/x``, never the host's.
        """
        parts = [p for p in PurePosixPath("/", os.fspath(guest_path)).parts[1:] if p != "."]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = self.base.joinpath(*resolved, part)
            if (parts or follow) and candidate.is_symlink():
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise OSError(f"too many levels of symbolic links in {guest_path}")
                target = os.readlink(candidate)
                new = [p for p in PurePosixPath(target).parts if p not in ("", ".")]
                if target.startswith("/"):
                    resolved = []
                    new = new[1:]
                parts = new + parts
                continue
            resolved.append(part)
        return self.base.joinpath(*resolved)

    def exists(self, guest_path: str) -> bool:
        return self.path(guest_path, follow=True).exists()

    def read_bytes(self, guest_path: str) -> bytes:
        return self.path(guest_path, follow=True).read_bytes()

    def read_text(self, guest_path: str, default: str | None = None) -> str:
        try:
            return self.path(guest_path, follow=True).read_text(encoding="utf-8")
        except FileNotFoundError:
            if default is None:
                raise
            return default

    def listdir(self, guest_path: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(guest_path, follow=True)))
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
    ) -> Path:
        """Create a directory and its missing parents; mode/owner apply to created ones."""
        target = self.path(guest_path)
        missing: list[Path] = []
        probe = target
        while not probe.exists() and probe != self.base:
            missing.append(probe)
            probe = probe.parent
        for directory in reversed(missing):
            directory.mkdir(mode=mode)
            os.chmod(directory, mode)
            self._chown(directory, owner, group)
        return target

    def write_file(
        self,
        guest_path: str,
        content: bytes | str,
        mode: int | None = 0o644,
        owner: str | int | None = None,
        group: str | int | None = None,
        append: bool = False,
    ) -> Path:
        """Write a file atomically; ``mode=None`` keeps an existing file's mode (else 0644)."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        target = self.path(guest_path)
        self.makedirs(str(PurePosixPath(os.fspath(guest_path)).parent))
        existing: os.stat_result | None
        try:
            existing = os.lstat(target)
        except FileNotFoundError:
            existing = None
        if append and existing is not None and stat.S_ISREG(existing.st_mode):
            data = target.read_bytes() + data
        if mode is None:
            mode = stat.S_IMODE(existing.st_mode) if existing is not None else 0o644
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            if owner is None and group is None and existing is not None:
                if (existing.st_uid, existing.st_gid) != (os.getuid(), os.getgid()):
                    self._chown_raw(Path(tmp), existing.st_uid, existing.st_gid)
            else:
                self._chown(Path(tmp), owner, group)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def remove(self, guest_path: str) -> bool:
        """Remove a file or symlink; True if something was removed."""
        try:
            self.path(guest_path).unlink()
            return True
        except FileNotFoundError:
            return False

    def chown(self, guest_path: str, owner: str | int | None, group: str | int | None) -> None:
        self._chown(self.path(guest_path), owner, group)

    def _chown(self, host_path: Path, owner: str | int | None, group: str | int | None) -> None:
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
    def _chown_raw(host_path: Path, uid: int, gid: int) -> None:
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
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        return subprocess.run(
            list(argv),
            input=input,
            env=full_env,
            check=check,
            capture_output=True,
            timeout=timeout,
        )
