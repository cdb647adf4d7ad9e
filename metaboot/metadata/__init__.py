"""The metadata core: pure functions from an Instance to nova-compatible documents.

No I/O, no clock, no randomness unless injected: the service and the drive writers are the
transports, this package is the single source of every byte they hand out.
"""

from metaboot.metadata.instance import Instance, instance_to_spec, load_spec, parse_spec
from metaboot.metadata.tree import Document, DocumentTree, MetadataSettings, build_tree

__all__ = [
    "Document",
    "DocumentTree",
    "Instance",
    "MetadataSettings",
    "build_tree",
    "instance_to_spec",
    "load_spec",
    "parse_spec",
]
