"""Config drives: the service's documents on an ISO 9660 or VFAT disk labelled ``config-2``,
or a NoCloud ``cidata`` seed, built in user space (no mount, no root, no subprocess).

    from metaboot.drive import DriveOptions, write_drive_file
    write_drive_file(instance, "disk.config", DriveOptions(build_time=when, format="vfat"))

The writers also take any file set (``iso.write_iso``, ``vfat.write_vfat``).
"""

from metaboot.drive.build import (
    FORMATS,
    DriveOptions,
    build_drive,
    drive_files,
    write_atomic,
    write_drive,
    write_drive_file,
    write_image,
)

__all__ = [
    "FORMATS",
    "DriveOptions",
    "build_drive",
    "drive_files",
    "write_atomic",
    "write_drive",
    "write_drive_file",
    "write_image",
]
