"""What the HTTP sources share: candidate base URLs and waiting for the first to answer.

The candidates (IPv4 ``169.254.169.254`` and IPv6 ``fe80::a9fe:a9fe%<iface>``) are probed
"happy eyeballs" style — started 150 ms apart, first useful answer wins — so an unrouted
address costs nothing when the other one works. Probing repeats with a doubling pause until
``max_wait`` seconds have passed (``max_wait <= 0``: one round).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from metaboot.guest.http import RETRY_STATUSES, Response, TransportError, request, retry_after
from metaboot.guest.sources.detect import SourceContext
from metaboot.guest.system import Root

STAGGER = 0.15
MAX_RETRY_AFTER = 30.0  # a service asking for longer is treated as asking for this


def fallback_interface(root: Root) -> str | None:
    """The first non-loopback interface, preferring one that is up (for ``%IFACE`` URLs)."""
    names = [n for n in root.listdir("/sys/class/net") if n != "lo"]
    if not names:
        return None

    def is_up(name: str) -> bool:
        state = root.read_text(f"/sys/class/net/{name}/operstate", default="").strip()
        return state in ("up", "unknown")

    up = [n for n in names if is_up(n)]
    return (up or names)[0]


def candidate_urls(ctx: SourceContext) -> list[str]:
    urls: list[str] = []
    iface: str | None = ctx.interface
    for url in ctx.settings.get("metadata_urls", []):
        if "IFACE" in url:
            iface = iface or fallback_interface(ctx.root)
            if iface is None:
                continue
            url = url.replace("IFACE", iface)
        urls.append(url.rstrip("/"))
    return urls


def probe(
    urls: list[str],
    path: str,
    ctx: SourceContext,
    accept: Callable[[Response], bool],
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[str, Response] | None:
    """The first ``(base_url, response)`` for which ``accept`` holds, or None once max_wait
    is spent. A definite answer that is not accepted (say a 404) removes that URL; a busy one
    (503, 429…) is asked again after its ``Retry-After`` if it gave one."""
    if not urls:
        return None
    timeout = float(ctx.settings.get("timeout", 5.0))
    max_wait = float(ctx.settings.get("max_wait", 30.0))
    deadline = ctx.clock() + max_wait if max_wait > 0 else None
    pause = 0.1
    live = list(urls)
    while live:
        left = None if deadline is None else deadline - ctx.clock()
        round_timeout = timeout if left is None else max(0.05, min(timeout, left))
        outcome = _race(live, path, round_timeout, accept, method, headers, ctx)
        if outcome.winner is not None:
            return outcome.winner
        live = [u for u in live if u not in outcome.rejected]
        wait = min(outcome.retry_after, MAX_RETRY_AFTER) if outcome.retry_after else pause
        if deadline is None or not live or ctx.clock() + wait >= deadline:
            return None
        ctx.sleep(wait)
        pause = min(pause * 2, 2.0)
    return None


class _Round:
    def __init__(self) -> None:
        self.winner: tuple[str, Response] | None = None
        self.rejected: set[str] = set()
        self.retry_after: float | None = None

    def consider(self, base: str, response: Response, accept: Callable[[Response], bool]) -> bool:
        if accept(response):
            self.winner = (base, response)
            return True
        if response.status in RETRY_STATUSES:
            hinted = retry_after(response)
            if hinted is not None:
                self.retry_after = max(self.retry_after or 0.0, hinted)
        else:
            self.rejected.add(base)
        return False


def _race(
    urls: list[str],
    path: str,
    timeout: float,
    accept: Callable[[Response], bool],
    method: str,
    headers: dict[str, str] | None,
    ctx: SourceContext,
) -> _Round:
    """One round: every URL tried once, staggered, the first accepted answer wins."""
    outcome = _Round()
    if len(urls) == 1:
        answer = _try(urls[0], path, timeout, method, headers, ctx)
        if isinstance(answer, Response):
            outcome.consider(urls[0], answer, accept)
        return outcome
    import queue  # only when several URLs race
    import threading

    results: queue.Queue[tuple[str, Response | None]] = queue.Queue()

    def worker(base: str, delay: float) -> None:
        if delay:
            time.sleep(delay)
        answer = _try(base, path, timeout, method, headers, ctx)
        results.put((base, answer if isinstance(answer, Response) else None))

    for index, base in enumerate(urls):
        threading.Thread(target=worker, args=(base, index * STAGGER), daemon=True).start()
    for _ in urls:
        base, response = results.get()
        if response is not None and outcome.consider(base, response, accept):
            return outcome
    return outcome


def _try(
    base: str,
    path: str,
    timeout: float,
    method: str,
    headers: dict[str, str] | None,
    ctx: SourceContext,
) -> Response | TransportError:
    try:
        return request(method, base + path, headers=headers, timeout=timeout)
    except TransportError as err:
        ctx.log.debug("probe %s%s: %s", base, path, err)
        return err
