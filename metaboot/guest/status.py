"""The boot's status record (``/run/metaboot/status.json``) and what it adds up to.

One JSON document per boot, rewritten after every step, so ``metaboot status`` can be read while
the agent runs and survives a crash half-way. Errors are things the agent could not do (a module
failed, no source found, a broken agent config); recoverable errors are input it had to skip
(a malformed user-data part, an unknown key) — the same split as cloud-init's ``errors`` and
``recoverable_errors``, and the same exit codes for ``status``: 0 done, 1 error, 2 degraded.
"""

from __future__ import annotations

import json
import os
import time

from metaboot.guest import layout, volatile
from metaboot.guest.records import dataclass
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

STAGES = ("local", "network", "config", "final")
STATUS_VERSION = 1
SAVE_INTERVAL = 0.05


def new_record() -> dict[str, Any]:
    return {
        "version": STATUS_VERSION,
        "boot_started": time.time(),
        "stage": None,
        "source": None,
        "subplatform": None,
        "instance_id": None,
        "new_instance": None,
        "config": {"files": [], "problems": []},
        "stages": {},
    }


class StatusStore:
    """Reads and writes the record through the Root (a copy also goes under
    /var/lib/metaboot/data so a status survives a reboot for post-mortems)."""

    def __init__(self, root: Root) -> None:
        self.root = root
        self.record: dict[str, Any] = new_record()
        self.unsaved = False  # a stage's end not yet saved (see StageRecorder.finish)

    def begin_boot(self) -> None:
        """A fresh record for this boot. Not saved here: the first stage's start, a moment
        later, writes it (one rewrite of status.json fewer per boot)."""
        self.record = new_record()
        self.root.remove(layout.RESULT_FILE)

    def load(self) -> dict[str, Any]:
        loaded = read_record(self.root)
        self.record = loaded if loaded is not None else new_record()
        return self.record

    def save(self, *, persist: bool = False) -> None:
        """Rewrite the record in /run (tmpfs, cheap); ``persist`` also copies it to disk."""
        # Compact: only the C encoder is fast, and it does not indent. `status` pretty-prints.
        text = json.dumps(self.record, separators=(",", ":")) + "\n"
        self.root.makedirs(layout.RUN_DIR, mode=0o755)
        volatile.write(self.root, layout.STATUS_FILE, text, 0o644)
        if persist:
            self._copy_to_disk(layout.STATUS_COPY, text)
        self.unsaved = False

    def _copy_to_disk(self, guest_path: str, text: str) -> None:
        """Write a copy on disk; during a boot, behind the boot (see metaboot.guest.writebehind):
        made in the main thread while the boot's files are being fsynced, a rename waited
        behind their journal commits (a millisecond or more, four times per boot). The runner
        waits for the queue before the process ends; the copies stay in order."""
        behind = self.root.write_behind
        if behind is None:
            volatile.write(self.root, guest_path, text, 0o644)
            return
        target = self.root.host_path(guest_path)
        self.root.makedirs_host(os.path.dirname(target))
        behind.later(lambda: volatile.write_host(target, text, 0o644), f"copy of {guest_path}")

    def stage(self, name: str) -> StageRecorder:
        return StageRecorder(self, name)

    def write_result(self) -> None:
        summary = summarize(self.record)
        doc = {
            "v1": {
                "datasource": self.record.get("source"),
                "errors": summary.errors,
                "recoverable_errors": summary.recoverable,
            }
        }
        text = json.dumps(doc, indent=1) + "\n"
        volatile.write(self.root, layout.RESULT_FILE, text, 0o644)
        self._copy_to_disk(layout.RESULT_COPY, text)


class StageRecorder:
    """Collects one stage's events; every change is saved at once."""

    def __init__(self, store: StatusStore, name: str) -> None:
        self.store = store
        self.name = name
        self.data: dict[str, Any] = {
            "start": time.time(),
            "end": None,
            "errors": [],
            "recoverable_errors": [],
            "modules": [],
            "events": [],
        }
        self._t0 = self._saved = time.perf_counter()
        store.record["stages"][name] = self.data
        store.record["stage"] = name
        # After a stage this process finished without saving, this save stands for its end too.
        store.save(persist=store.unsaved)

    def error(self, message: str) -> None:
        self.data["errors"].append(message)
        self.store.save()

    def recoverable(self, message: str) -> None:
        self.data["recoverable_errors"].append(message)
        self._save_soon()

    def event(self, name: str, duration: float, detail: str = "") -> None:
        entry: dict[str, Any] = {"name": name, "duration": round(duration, 6)}
        if detail:
            entry["detail"] = detail
        self.data["events"].append(entry)

    def module(self, result: dict[str, Any]) -> None:
        self.data["modules"].append(result)
        self._save_soon()

    def _save_soon(self) -> None:
        """Progress is saved at most every SAVE_INTERVAL (errors and stage ends at once):
        ``status --wait`` sees a running boot move, without a rewrite per module."""
        now = time.perf_counter()
        if now - self._saved >= SAVE_INTERVAL:
            self.store.save()
            self._saved = now

    def finish(self, *, save: bool = True) -> None:
        """The stage's end, saved (and copied to disk) at once — or, with ``save=False`` when
        the same process starts the next stage right away, by that stage's start, which
        writes the same record plus the new stage (``--stage all`` saves three times less)."""
        self.data["end"] = time.time()
        self.data["duration"] = round(time.perf_counter() - self._t0, 6)
        self.store.record["stage"] = None
        if save:
            self.store.save(persist=True)
        else:
            self.store.unsaved = True


def read_record(root: Root) -> dict[str, Any] | None:
    try:
        record = json.loads(root.read_bytes(layout.STATUS_FILE))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


@dataclass
class Summary:
    status: str  # "not started", "running", "done", "error", "disabled"
    extended: str  # adds "degraded done" / "degraded running"
    errors: list[str]
    recoverable: list[str]
    last_stage: str | None
    detail: str

    @property
    def exit_code(self) -> int:
        if self.status == "error":
            return 1
        if self.extended.startswith("degraded"):
            return 2
        return 0


def summarize(
    record: dict[str, Any] | None, *, disabled: bool = False, late: Sequence[str] = ()
) -> Summary:
    """What ``metaboot status`` says about a record (pure). ``late``: problems found after the
    stages ended (a host key a background job failed to make), reported as recoverable."""
    if disabled:
        return Summary("disabled", "disabled", [], [], None, "disabled by /etc/metaboot/disabled")
    if not record:
        return Summary(
            "not started", "not started", [], [], None, "the agent has not run this boot"
        )
    errors: list[str] = [f"config: {p}" for p in record.get("config", {}).get("problems", [])]
    recoverable: list[str] = []
    stages = record.get("stages", {})
    last = None
    running = record.get("stage") is not None
    for name in STAGES:
        stage = stages.get(name)
        if not stage:
            continue
        last = name
        errors += [f"{name}: {e}" for e in stage.get("errors", [])]
        recoverable += [f"{name}: {e}" for e in stage.get("recoverable_errors", [])]
        if stage.get("end") is None:
            running = True
    recoverable += [f"ssh: {p}" for p in late]
    finished = bool(stages.get("final", {}).get("end")) and not running
    if errors and (finished or not running):
        status = "error"
    elif finished:
        status = "done"
    else:
        status = "running"
    extended = status
    if recoverable and status in ("done", "running"):
        extended = f"degraded {status}"
    source = record.get("source")
    if source:
        detail = f"{source} {record.get('subplatform') or ''}".strip()
    elif errors:
        detail = errors[0]
    else:
        detail = "no data source found yet"
    return Summary(status, extended, errors, recoverable, last, detail)
