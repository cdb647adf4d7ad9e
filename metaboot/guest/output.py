"""What the agent tells people: the console summary, the once-only console, the log file.

The summary lines are computed from the status record (pure), so what is printed and what
``metaboot status`` reports cannot disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from metaboot.guest import layout, log
from metaboot.guest.status import summarize
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any, TextIO


def _found(record: dict[str, Any]) -> str:
    new = "new instance" if record.get("new_instance") else "known instance"
    return f"{record['source']} {record['subplatform']}: {record['instance_id']} ({new})"


def stage_lines(stage: str, record: dict[str, Any], *, found_here: bool) -> list[str]:
    """One line for the stage, then one per error and per warning."""
    data = record["stages"][stage]
    parts: list[str] = []
    if stage == "local":
        parts.append(_found(record) if record.get("source") else "no local source")
        net = record.get("network")
        if net and net.get("renderer"):
            parts.append(f"network: {net['renderer']} ({len(net['written'])} file(s) written)")
        elif net and net.get("skipped"):
            parts.append(f"network: {net['skipped']}")
    elif found_here and record.get("source"):
        parts.append(_found(record))
    modules = data["modules"]
    if modules:
        counts: dict[str, int] = {}
        for item in modules:
            counts[item["result"]] = counts.get(item["result"], 0) + 1
        tally = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        parts.append(f"{len(modules)} module(s): {tally}")
    parts.append(f"{data.get('duration', 0):.3f} s")
    lines = [f"metaboot {stage}: " + "; ".join(parts)]
    lines += [f"metaboot {stage}: ERROR: {e}" for e in data["errors"]]
    lines += [f"metaboot {stage}: warning: {w}" for w in data["recoverable_errors"]]
    return lines


def final_line(record: dict[str, Any], now: float | None = None) -> str:
    """cloud-init's final message, with what it added up to."""
    summary = summarize(record)
    changes = sum(
        len(m.get("changes", []))
        for s in record.get("stages", {}).values()
        for m in s.get("modules", [])
    )
    now = time.time() if now is None else now
    elapsed = now - record.get("boot_started", now)
    return (
        f"metaboot finished: instance {record.get('instance_id')} from {record.get('source')}; "
        f"{changes} change(s), {len(summary.errors)} error(s), "
        f"{len(summary.recoverable)} warning(s); {elapsed:.2f} s since the first stage "
        f"— status: {summary.extended} (details: metaboot status --long)"
    )


def make_console(root: Root, out: TextIO | None) -> Callable[[str], None]:
    """Lines shown once and never logged (RANDOM passwords): the system console on a live
    system, else the run's own output."""

    def write(line: str) -> None:
        if root.is_live:
            try:
                with open("/dev/console", "w", encoding="utf-8") as console:
                    console.write(line.rstrip("\n") + "\n")
                return
            except OSError:
                pass
        if out is not None:
            print(line.rstrip("\n"), file=out, flush=True)

    return write


def setup_logging(root: Root, debug: bool = False) -> log.LogFile | None:
    """Log to /var/log/metaboot.log inside the Root (0600: it may name users and files)."""
    try:
        root.makedirs("/var/log")
        return log.open_file(root.host_path(layout.LOG_FILE), debug=debug)
    except OSError:
        return None
