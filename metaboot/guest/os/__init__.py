"""What the config modules change on the target system, behind a Root.

Each file here does one kind of change (accounts, sshd, hostname files, sudoers, commands, power)
so that modules stay about configuration semantics and this package stays about the system.
Account changes use the system's own tools aimed at the root (``useradd --root`` …) so passwd,
shadow, group and gshadow stay consistent exactly as they would on a live system.
"""
