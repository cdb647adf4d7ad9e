from __future__ import annotations

UUID = "d0f2a1c2-5b1e-4a8e-9a55-2f1f4f6c9e01"
KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaKeKeYoNe alice@example"
KEY2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCkeyTwo bob@example"
