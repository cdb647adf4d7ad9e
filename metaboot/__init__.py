"""metaboot: first-boot configuration for VMs made from private images."""

__version__ = "0.1.0"
