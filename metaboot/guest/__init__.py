"""The guest agent: runs inside the VM; standard library plus PyYAML only.

Nothing under this package may import from ``metaboot.service``, ``metaboot.registry``,
``metaboot.proxy`` or ``metaboot.drive`` (a test enforces it), so the agent starts fast and
installs into an image with no server dependency.
"""
