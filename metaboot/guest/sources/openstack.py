"""The OpenStack metadata service over HTTP (``<base>/openstack/<version>/…``)."""

from __future__ import annotations

from metaboot.errors import SourceError
from metaboot.guest.http import (
    RETRY_STATUSES,
    Response,
    RetryPolicy,
    TransportError,
    fetch,
    get_pipelined,
)
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.sources.detect import SourceContext
from metaboot.guest.sources.openstack_tree import DOCUMENTS, pick_version, read_tree
from metaboot.guest.sources.service import candidate_urls, probe


def read(ctx: SourceContext) -> InstanceData | None:
    found = probe(candidate_urls(ctx), "/openstack", ctx, lambda r: r.status == 200)
    if found is None:
        return None
    base, listing = found
    policy = RetryPolicy(
        timeout=float(ctx.settings.get("timeout", 5.0)),
        retries=int(ctx.settings.get("retries", 3)),
        sleep=ctx.sleep,
        clock=ctx.clock,
    )

    version = pick_version(listing.body.decode("utf-8", "replace").splitlines())
    # The documents read_tree asks for, in its order, asked for at once (one round trip);
    # what does not come back that way, or comes back asking to retry, is asked for again.
    early: dict[str, Response] = {}
    if ctx.settings.get("pipelining", True):
        early = get_pipelined(
            [f"{base}/openstack/{version}/{name}" for name in DOCUMENTS], timeout=policy.timeout
        )

    def get(path: str) -> bytes | None:
        url = f"{base}/{path}"
        response = early.pop(url, None)
        try:
            if response is None or response.status in RETRY_STATUSES:
                response = fetch("GET", url, policy)
        except TransportError as err:
            raise SourceError(str(err)) from None
        if response.status == 404:
            return None
        if not response.ok:
            raise SourceError(f"{url}: HTTP {response.status}")
        return response.body

    data = read_tree(
        get,
        version,
        source="OpenStack",
        subplatform=f"metadata ({base})",
        warnings=ctx.warnings,
        service_url=base,
    )
    if ctx.settings.get("crawl_ec2"):
        from metaboot.guest.sources.ec2 import crawl_metadata

        try:
            data.ec2_metadata = crawl_metadata(get, "latest")
        except SourceError as err:
            ctx.warnings.append(f"EC2 tree at {base}: {err}; ignored")
    return data
