"""DocumentTree: one instance's documents, addressed the way both transports address them.

``lookup(url_path)`` answers an HTTP GET (listings included); ``drive_files()`` gives every file a
config drive holds. Both come from the same renderers, so a drive and the service never disagree.
Documents are rendered on first use and kept, so a tree costs only what guests actually read.
"""

from __future__ import annotations

import base64
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from metaboot.metadata import ec2, openstack
from metaboot.metadata import versions as v
from metaboot.metadata.instance import Instance
from metaboot.metadata.network import network_data

TEXT = "text/plain"
JSON = "application/json"
SEED_BYTES = 512
_MEMO_LIMIT = 1024  # raw-path aliases remembered per tree; guests ask for ~30 paths

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class Document:
    """A response body; ``seed_at`` marks where a fresh random_seed goes on every read."""

    body: bytes
    content_type: str = TEXT
    seed_at: int | None = None

    def render(self, random_bytes: RandomBytes) -> bytes:
        if self.seed_at is None:
            return self.body
        seed = base64.b64encode(random_bytes(SEED_BYTES))
        return self.body[: self.seed_at] + seed + self.body[self.seed_at :]


@dataclass(frozen=True)
class MetadataSettings:
    """Deployment-wide rendering choices."""

    dhcp_domain: str = ""  # nova's default is "novalocal"; ours adds no suffix unless asked
    # The StaticJSON vendor-data document; None switches that provider off (vendor_data.json
    # is still listed, as nova lists it, but answers 404).
    static_vendor_data: Mapping[str, Any] | None = field(default_factory=dict)
    # Versions dated after this day are left out of the /openstack listing; None lists all.
    today: date | None = None


def normalize(url_path: str) -> str:
    """``/openstack/latest/`` and ``//openstack/latest`` are ``/openstack/latest``."""
    return posixpath.normpath("/" + url_path.lstrip("/"))


def _split(norm: str) -> list[str]:
    tokens = norm.split("/")[1:]
    if tokens == [""]:
        return ["ec2"]
    if tokens[0] not in ("ec2", "openstack"):
        return ["ec2", *tokens]
    return tokens


class DocumentTree:
    def __init__(
        self,
        instance: Instance,
        settings: MetadataSettings,
        vendor_data2_dynamic: Mapping[str, Any],
    ) -> None:
        self.instance = instance
        self.settings = settings
        self._dynamic = dict(vendor_data2_dynamic)
        self._memo: dict[str, Document | None] = {}
        self._ec2_trees: dict[str, dict[str, Any]] = {}

    # ---- HTTP ----------------------------------------------------------------------------

    def lookup(self, url_path: str) -> Document | None:
        """The document at a URL path (query string already removed), or None for 404."""
        memo = self._memo
        if url_path in memo:
            return memo[url_path]
        doc = self._resolve(_split(normalize(url_path)))
        if len(memo) < _MEMO_LIMIT:
            memo[url_path] = doc
        return doc

    def is_password_path(self, url_path: str) -> str | None:
        """The resolved version when ``url_path`` is a password endpoint, else None."""
        tokens = _split(normalize(url_path))
        if len(tokens) != 3 or tokens[0] != "openstack" or tokens[2] != openstack.PASSWORD:
            return None
        version = v.resolve_openstack(tokens[1])
        if version is None or not v.since(version, v.GRIZZLY):
            return None
        return version

    def _resolve(self, tokens: list[str]) -> Document | None:
        if len(tokens) == 1:
            if tokens[0] == "openstack":
                return _listing(v.listed_openstack_versions(self.settings.today or date.max))
            return _listing((*v.EC2_VERSIONS, v.LATEST))
        if tokens[0] == "openstack":
            return self._openstack(tokens[1:])
        return self._ec2(tokens[1:])

    def _openstack(self, tokens: list[str]) -> Document | None:
        if tokens[0] == openstack.CONTENT_DIR:
            return self._content(tokens[1:])
        version = v.resolve_openstack(tokens[0])
        if version is None:
            return None
        if len(tokens) == 1:
            return _listing(openstack.version_listing(self.instance, version))
        name = "/".join(tokens[1:])
        if name not in openstack.version_listing(self.instance, version):
            return None
        canonical = f"/openstack/{version}/{name}"
        if canonical not in self._memo:
            self._memo[canonical] = self._openstack_document(version, name)
        return self._memo[canonical]

    def _openstack_document(self, version: str, name: str) -> Document | None:
        instance = self.instance
        if name == openstack.META_DATA:
            body, seed_at = openstack.meta_data(
                instance, version, dhcp_domain=self.settings.dhcp_domain
            )
            return Document(body, JSON, seed_at)
        if name == openstack.USER_DATA:
            assert instance.user_data is not None
            return Document(instance.user_data)
        if name == openstack.VENDOR_DATA:
            static = self._static_vendor_data()
            return None if static is None else Document(openstack.dumps(static), JSON)
        if name == openstack.NETWORK_DATA:
            return Document(openstack.dumps(network_data(instance)))
        if name == openstack.VENDOR_DATA2:
            doc = openstack.vendor_data2(self._static_vendor_data(), self._dynamic)
            return Document(openstack.dumps(doc), JSON)
        return None  # the password endpoint belongs to the service

    def _static_vendor_data(self) -> dict[str, Any] | None:
        static = self.settings.static_vendor_data
        return None if static is None else openstack.vendor_data(static, self.instance)

    def _content(self, tokens: list[str]) -> Document | None:
        if len(tokens) != 1:
            return None  # no listing of /openstack/content, nothing below an entry
        for index, injected in enumerate(self.instance.files):
            if openstack.content_key(index) == tokens[0]:
                return Document(injected.content)
        return None

    def _ec2_tree(self, version: str) -> dict[str, Any]:
        tree = self._ec2_trees.get(version)
        if tree is None:
            tree = ec2.ec2_tree(self.instance, version, dhcp_domain=self.settings.dhcp_domain)
            self._ec2_trees[version] = tree
        return tree

    def _ec2(self, tokens: list[str]) -> Document | None:
        version = v.resolve_ec2(tokens[0])
        if version is None:
            return None
        node = ec2.find(self._ec2_tree(version), tokens[1:])
        return None if node is None else Document(ec2.render(node))

    # ---- config drive --------------------------------------------------------------------

    def drive_files(
        self, random_bytes: RandomBytes, admin_pass: str | None = None
    ) -> dict[str, bytes]:
        """Every config-drive file, path -> bytes, as nova lays a drive out (all OpenStack
        versions, future ones included; EC2 2009-04-04 and latest; no password file)."""
        files: dict[str, bytes] = {}
        instance = self.instance
        for label in (*v.OPENSTACK_VERSIONS, v.LATEST):
            version = v.resolve_openstack(label)
            assert version is not None
            for name in openstack.files_in(version, instance, drive=True):
                if name == openstack.META_DATA:
                    body, seed_at = openstack.meta_data(
                        instance,
                        version,
                        dhcp_domain=self.settings.dhcp_domain,
                        admin_pass=admin_pass,
                    )
                    doc: Document | None = Document(body, JSON, seed_at)
                else:
                    doc = self.lookup(f"/openstack/{version}/{name}")
                if doc is not None:
                    files[f"openstack/{label}/{name}"] = doc.render(random_bytes)
        for index, injected in enumerate(instance.files):
            files[f"openstack/{openstack.CONTENT_DIR}/{openstack.content_key(index)}"] = (
                injected.content
            )
        for label in v.EC2_DRIVE_VERSIONS:
            version = v.resolve_ec2(label)
            assert version is not None
            tree = self._ec2_tree(version)
            files[f"ec2/{label}/meta-data.json"] = openstack.dumps(ec2.drive_meta_data(tree))
            if "user-data" in tree:
                files[f"ec2/{label}/user-data"] = tree["user-data"]
        return files


def _listing(names: Any) -> Document:
    return Document("\n".join(names).encode("utf-8"))


def build_tree(
    instance: Instance,
    settings: MetadataSettings | None = None,
    vendor_data2_dynamic: Mapping[str, Any] | None = None,
) -> DocumentTree:
    """The document tree for one instance; ``vendor_data2_dynamic`` holds the dynamic
    vendor-data targets' answers (name -> JSON), in configured order."""
    return DocumentTree(instance, settings or MetadataSettings(), vendor_data2_dynamic or {})
