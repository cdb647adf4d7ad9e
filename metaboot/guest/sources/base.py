"""What every data source returns, whatever transport it read from."""

from __future__ import annotations

from metaboot.guest.records import dataclass, field

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any


@dataclass
class InstanceData:
    """One instance's data as a source found it; raw documents are kept for ``query``."""

    source: str  # "ConfigDrive", "OpenStack", "Ec2", "NoCloud"
    instance_id: str
    local_hostname: str | None = None
    public_keys: list[str] = field(default_factory=list)
    availability_zone: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # meta_data.json / EC2 / meta-data
    user_data: bytes | None = None
    vendor_data: Any = None  # vendor_data.json as parsed JSON (may carry a "cloud-init" key)
    vendor_data2: Any = None  # vendor_data2.json as parsed JSON
    network_data: dict[str, Any] | None = None  # OpenStack network_data.json
    network_config: dict[str, Any] | None = None  # NoCloud network-config (v1 or v2)
    ec2_metadata: dict[str, Any] | None = None
    platform: str = "openstack"
    subplatform: str = ""  # e.g. "config-disk (/dev/sr0)", "metadata (http://...)"
    # Base URL of the metadata service the data came from (None for drives and seeds): where a
    # generated password is POSTed back (`<service_url>/openstack/latest/password`).
    service_url: str | None = None
    # nova's injected files (meta_data.json ``files``): [{"path": ..., "content_base64": ...}]
    injected_files: list[dict[str, str]] = field(default_factory=list)
