"""``metaboot analyze``: where the boot's time went, per stage, step and module.

Read from the status record (which times every step as it happens) rather than parsed back out
of a log, so the figures are exact and need no log format to stay stable.
"""

from __future__ import annotations

from metaboot.guest.status import STAGES

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any


def rows(record: dict[str, Any]) -> list[tuple[str, str, float, str]]:
    """(stage, step, seconds, outcome) for every timed step, in boot order."""
    out: list[tuple[str, str, float, str]] = []
    for stage in STAGES:
        data = record.get("stages", {}).get(stage)
        if not data:
            continue
        for event in data.get("events", []):
            out.append(
                (stage, event["name"], float(event.get("duration", 0.0)), event.get("detail", ""))
            )
        for module in data.get("modules", []):
            out.append(
                (
                    stage,
                    f"module {module['name']}",
                    float(module.get("duration", 0.0)),
                    module["result"],
                )
            )
    return out


def show(record: dict[str, Any]) -> str:
    lines: list[str] = []
    total = 0.0
    for stage in STAGES:
        data = record.get("stages", {}).get(stage)
        if not data:
            continue
        duration = float(data.get("duration") or 0.0)
        total += duration
        lines.append(f"stage {stage}: {duration:.4f} s")
        for st, step, seconds, outcome in rows(record):
            if st == stage:
                lines.append(
                    f"  {seconds:8.4f} s  {step}  ({outcome})"
                    if outcome
                    else f"  {seconds:8.4f} s  {step}"
                )
    count = len([s for s in STAGES if s in record.get("stages", {})])
    lines.append(f"total: {total:.4f} s in {count} stage(s)")
    return "\n".join(lines)


def blame(record: dict[str, Any]) -> str:
    ordered = sorted(rows(record), key=lambda r: r[2], reverse=True)
    return "\n".join(f"{seconds:8.4f} s  {stage}/{step}" for stage, step, seconds, _ in ordered)


def as_json(record: dict[str, Any]) -> dict[str, Any]:
    stages = {}
    for stage in STAGES:
        data = record.get("stages", {}).get(stage)
        if data:
            stages[stage] = {
                "duration": data.get("duration"),
                "steps": [
                    {"name": step, "seconds": seconds, "outcome": outcome}
                    for st, step, seconds, outcome in rows(record)
                    if st == stage
                ],
            }
    return {"stages": stages, "total": sum(float(s["duration"] or 0) for s in stages.values())}
