"""Races the registry must settle in the database, not in one process's memory."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from metaboot.registry import Registry
from tests.registry.specs import instance

RACERS = 16


def test_password_set_once_has_exactly_one_winner_among_threads(registry: Registry) -> None:
    inst = instance("race")
    registry.add(inst)
    start = threading.Barrier(RACERS)

    def post(n: int) -> bool:
        start.wait()
        return registry.password_set_once(inst.uuid, f"password-{n}")

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(post, range(RACERS)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert registry.password_get(inst.uuid) == f"password-{winner}"
    assert registry.generation(inst.uuid) == 2


_POST = """
import sys, time
from metaboot.registry import Registry
url, uuid, n, go = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
reg = Registry.open(url)
reg.password_get(uuid)  # connect before the start line
time.sleep(max(0.0, go - time.time()))
print("won" if reg.password_set_once(uuid, "p-" + n) else "lost")
reg.close()
"""


def test_password_set_once_has_exactly_one_winner_among_processes(
    registry: Registry, db_url: str
) -> None:
    import time

    inst = instance("race")
    registry.add(inst)
    go = time.time() + 4.0  # every child is connected by then, even on a busy machine
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _POST, db_url, inst.uuid, str(n), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outcomes.append(out.strip())
    assert outcomes.count("won") == 1 and outcomes.count("lost") == 7
    assert registry.password_get(inst.uuid) == f"p-{outcomes.index('won')}"


def test_concurrent_adds_of_one_uuid_have_one_winner(registry: Registry) -> None:
    from metaboot.errors import ConflictError

    uuid = instance().uuid
    start = threading.Barrier(8)

    def add(n: int) -> str:
        start.wait()
        try:
            registry.add(instance(f"v{n}", uuid=uuid))
        except ConflictError:
            return "conflict"
        return f"v{n}"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(add, range(8)))
    winners = [r for r in results if r != "conflict"]
    assert len(winners) == 1
    assert registry.get(uuid).name == winners[0]


def test_concurrent_updates_serialise_with_generations(registry: Registry) -> None:
    from metaboot.registry import GenerationMismatch

    inst = instance("base")
    registry.add(inst)
    start = threading.Barrier(8)

    def update(n: int) -> bool:
        start.wait()
        try:
            registry.update(instance(f"u{n}", uuid=inst.uuid), expected_generation=1)
        except GenerationMismatch:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(update, range(8)))
    assert results.count(True) == 1
    assert registry.generation(inst.uuid) == 2
    assert registry.get(inst.uuid).name == f"u{results.index(True)}"
