"""Write-behind durability: a boot's fsyncs overlap its work, in an order that keeps it safe.

A first boot writes some twenty configuration files. Fsyncing each before it replaces the old
one cost a quarter of a first boot's time here, and each is a cache flush on the host on
cloud block storage. cloud-init never fsyncs; we want the files on disk before anything says
they are. What makes a crash safe is the order, not the fsync before the rename:
a module's semaphore ("done, do not run again") must never reach the disk before the files
the module wrote. If it does not, a crash can only make the module run again on the next
boot, and write its files again.

So, while a boot runs, :meth:`Root.write_file <metaboot.guest.system.Root.write_file>` renames
a new file into place at once and hands its descriptor to this queue. A thread fsyncs the
queued files in order while the boot goes on. A semaphore is queued as an action behind them:
the thread creates it only after every file queued before it is durable, and never after an
fsync failed. The runner waits for the queue before the process ends (:meth:`WriteBehind.wait`).

Files that other programs read before the agent runs again (``/etc/passwd`` and its
siblings, sshd's configuration, sudoers) are still fsynced before they replace the old ones:
a crash there must leave the old file or the new one, never an empty one, on every
filesystem.

One thread, from ``_thread`` (``threading`` is a larger import than this whole module), and
started only when there is something to sync.
"""

from __future__ import annotations

import _thread
import os

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable


class WriteBehind:
    """A FIFO of fsyncs and actions, worked through by one background thread."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()  # guards everything below
        self._wake = _thread.allocate_lock()  # released to wake the worker
        self._wake.acquire()
        self._drained = _thread.allocate_lock()  # held while anything is queued or running
        # (a descriptor to fsync, or an action; what it is; whether an action vouches for
        # the files before it, and so must not run after a failed fsync)
        self._queue: list[tuple[int | Callable[[], None], str, bool]] = []
        self._pending = 0
        self._started = False
        self._failed = False
        self._errors: list[str] = []

    def fsync(self, fd: int, path: str) -> None:
        """Take ``fd``, a file already in place at ``path``: fsync it, then close it."""
        self._put((fd, path, True))

    def then(self, action: Callable[[], None], what: str) -> None:
        """Run ``action`` (``what`` names it in messages) once everything queued before it is
        durable; never, if an fsync failed: what it would vouch for may not be on the disk.
        What it raises is reported by :meth:`wait`."""
        self._put((action, what, True))

    def later(self, action: Callable[[], None], what: str) -> None:
        """Run ``action`` in turn, behind what is queued, whether or not an fsync failed: for
        writes that vouch for nothing (a copy of the status record on disk), which the boot
        need not wait for."""
        self._put((action, what, False))

    def wait(self) -> list[str]:
        """Block until everything queued has been done; the problems met since the last call
        (an fsync or an action that failed, the actions skipped after it)."""
        with self._drained:
            pass
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def _put(self, item: tuple[int | Callable[[], None], str, bool]) -> None:
        with self._lock:
            if not self._started:
                try:
                    _thread.start_new_thread(self._work, ())
                    self._started = True
                except RuntimeError:  # no thread to be had: do it here and now, in order
                    pass
            if self._started:
                if self._pending == 0:
                    self._drained.acquire()  # free: only the worker releases it, at zero
                self._pending += 1
                self._queue.append(item)
                if self._wake.locked():
                    self._wake.release()
                return
        self._do(item)

    def _work(self) -> None:
        while True:
            self._wake.acquire()
            while True:
                with self._lock:
                    if not self._queue:
                        break
                    item = self._queue.pop(0)
                self._do(item)
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._drained.release()

    def _do(self, item: tuple[int | Callable[[], None], str, bool]) -> None:
        target, what, vouches = item
        if isinstance(target, int):
            try:
                os.fsync(target)
            except OSError as err:
                self._failed = True
                self._note(f"cannot fsync {what}: {err.strerror or err}")
            finally:
                os.close(target)
            return
        if self._failed and vouches:
            self._note(f"{what}: not written, an earlier file did not reach the disk")
            return
        try:
            target()
        except Exception as err:  # reported by wait(), as the caller's own would have been
            self._note(f"{what}: {type(err).__name__}: {err}")

    def _note(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)
