"""Instance identity and run frequencies, kept as small files under /var/lib/metaboot.

Identity is the instance-id the source reported, compared with the one stored at the last boot:
a different id (a cloned image, a rebuilt VM) is a new instance, and every per-instance step
runs again. Frequencies are cloud-init's: a per-instance step leaves
``instances/<iid>/sem/<name>``, a once step leaves ``sem/<name>.once``, an always step nothing.
A semaphore is written whether the step succeeded or failed — as cloud-init does — so a failing
script is not re-run on every boot; ``metaboot clean`` or a new instance-id resets them.
"""

from __future__ import annotations

import base64
import json
import os
import time

from metaboot.guest import layout, volatile
from metaboot.guest.modules.base import Frequency
from metaboot.guest.records import asdict, fields
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

_FREQUENCY_ALIASES = {
    "always": Frequency.ALWAYS,
    "per-always": Frequency.ALWAYS,
    "per-boot": Frequency.ALWAYS,
    "boot": Frequency.ALWAYS,
    "once-per-instance": Frequency.INSTANCE,
    "per-instance": Frequency.INSTANCE,
    "instance": Frequency.INSTANCE,
    "once": Frequency.ONCE,
    "per-once": Frequency.ONCE,
}


def parse_frequency(text: str) -> Frequency | None:
    return _FREQUENCY_ALIASES.get(str(text).strip().lower().replace("_", "-"))


class State:
    def __init__(self, root: Root) -> None:
        self.root = root
        self._unsynced: set[str] = set()  # semaphore directories written since the last sync
        self._queued: set[str] = set()  # semaphores the write-behind queue has yet to write

    # ---- identity ----------------------------------------------------------------------

    def stored_instance_id(self) -> str | None:
        text = self.root.read_text(layout.INSTANCE_ID_FILE, default="").strip()
        return text or None

    def adopt(self, data: InstanceData) -> bool:
        """Make ``data``'s instance the current one; True if it is a new instance."""
        previous = self.stored_instance_id()
        new = previous != data.instance_id
        if new:
            if previous is not None:
                self.root.write_file(layout.PREVIOUS_INSTANCE_ID_FILE, previous + "\n")
            self.root.write_file(layout.INSTANCE_ID_FILE, data.instance_id + "\n")
        if self.root.read_text(layout.SOURCE_FILE, default="") != data.source + "\n":
            volatile.write(self.root, layout.SOURCE_FILE, data.source + "\n")
        self.root.makedirs(self.instance_dir(data.instance_id), mode=0o700)
        return new

    @staticmethod
    def instance_dir(instance_id: str) -> str:
        return layout.instance_dir(instance_id)

    # ---- frequencies -------------------------------------------------------------------

    def _semaphore(self, name: str, frequency: Frequency, instance_id: str) -> str | None:
        canonical = layout.semaphore_name(name)
        if frequency == Frequency.INSTANCE:
            return f"{self.instance_dir(instance_id)}/{layout.SEM}/{canonical}"
        if frequency == Frequency.ONCE:
            return f"{layout.ONCE_SEM_DIR}/{canonical}.once"
        return None

    def has_run(self, name: str, frequency: Frequency, instance_id: str) -> bool:
        path = self._semaphore(name, frequency, instance_id)
        return path is not None and (path in self._queued or self.root.exists(path))

    def mark(self, name: str, frequency: Frequency, instance_id: str, result: str) -> None:
        """Leave the semaphore (made durable by :meth:`sync`).

        A semaphore only says "done": nothing reads what it holds, its name is the answer. It
        must never reach the disk before the files the module wrote, and no later: so under
        the root's write-behind it is created by the queue, after their fsyncs (see
        :mod:`metaboot.guest.writebehind`); without one, those files were fsynced before
        they were renamed into place, and it is created now. Either way it is written in
        place, as cloud-init writes its own, with no temporary file to rename, and gets no
        fsync of its own: :meth:`sync` makes every semaphore of a process durable at once,
        one fsync per directory. A crash before that can only make a module run again, as it
        would had the crash come a moment earlier (cloud-init never syncs its semaphores at
        all); a crash during the write leaves a semaphore whose text is cut short, which says
        "done" all the same."""
        path = self._semaphore(name, frequency, instance_id)
        if path is None:
            return
        record = {"time": time.time(), "result": result}
        host = self.root.host_path(path)
        directory = os.path.dirname(host)
        self.root.makedirs_host(directory)
        text = (json.dumps(record) + "\n").encode()
        self._unsynced.add(path.rsplit("/", 1)[0])
        behind = self.root.write_behind
        if behind is None:
            _write_semaphore(host, text)
            return
        self._queued.add(path)
        behind.then(lambda: _write_semaphore(host, text), f"semaphore {path}")

    def sync(self) -> list[str]:
        """Make the semaphores written since the last call durable: first whatever the
        write-behind queue still holds (files, then the semaphores behind them), then one
        fsync per directory, which commits their names (a file whose content did not reach
        the disk still exists, which is all a semaphore has to say). Returns the problems: files
        that could not be synced, semaphores not written, directories not synced."""
        problems = self.root.write_behind.wait() if self.root.write_behind is not None else []
        self._queued.clear()
        for directory in sorted(self._unsynced):
            try:
                fd = os.open(self.root.host_path(directory), os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as err:
                problems.append(f"cannot sync {directory}: {err.strerror or err}")
        self._unsynced.clear()
        return problems

    # ---- the instance found this boot (shared by the stage processes) ------------------

    def save_boot_instance(self, data: InstanceData, new_instance: bool) -> None:
        doc = {"new_instance": new_instance, "data": encode_instance(data)}
        text = json.dumps(doc, default=str)  # NoCloud YAML may hold dates
        volatile.write(self.root, layout.BOOT_INSTANCE_FILE, text, 0o600)

    def load_boot_instance(self) -> tuple[InstanceData, bool] | None:
        try:
            doc = json.loads(self.root.read_bytes(layout.BOOT_INSTANCE_FILE))
            return decode_instance(doc["data"]), bool(doc.get("new_instance"))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _write_semaphore(host: str, text: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(host, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text)
    finally:
        os.close(fd)


def encode_instance(data: InstanceData) -> dict[str, Any]:
    """InstanceData as JSON-able data; bytes become ``{"base64": ...}``."""
    return {k: _encode(v) for k, v in asdict(data).items()}


def decode_instance(doc: dict[str, Any]) -> InstanceData:
    known = {f.name for f in fields(InstanceData)}
    values = {k: _decode(v) for k, v in doc.items() if k in known}
    return InstanceData(**values)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        return base64.b64decode(value["base64"])
    return value
