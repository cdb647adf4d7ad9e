"""Sudo rules for the users the agent creates, in one file under ``/etc/sudoers.d``.

Each user has its own block in the file, replaced (not appended) when the user is configured
again, so a re-run on a new instance does not pile up duplicate rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from metaboot.errors import ConfigError
from metaboot.guest.system import Root

SUDOERS = "/etc/sudoers"
SUDOERS_DIR = "/etc/sudoers.d"
RULES_FILE = f"{SUDOERS_DIR}/90-metaboot-users"
_HEADER = "# Sudo rules for users created by metaboot from instance user-data.\n"
# Compiled on first use, through re's own cache: most boots give no user sudo rules.
_BLOCK = r"^# User rules for (\S+)$"
_INCLUDE = r"^[#@]includedir\s+(\S+)\s*$"


def render_block(user: str, rules: Sequence[str]) -> str:
    lines = [f"# User rules for {user}"]
    for rule in rules:
        if not isinstance(rule, str) or not rule.strip() or "\n" in rule or "\0" in rule:
            raise ConfigError(f"user {user}: invalid sudo rule {rule!r} (one line of text)")
        lines.append(f"{user} {rule.strip()}")
    return "\n".join(lines) + "\n"


def replace_block(text: str, user: str, block: str) -> str:
    """``text`` (the rules file) with ``user``'s block replaced by ``block`` (pure)."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        match = re.match(_BLOCK, line)
        if match:
            skipping = match.group(1) == user
        elif skipping and line.strip() and not line.startswith(f"{user} "):
            skipping = False
        if not skipping:
            kept.append(line)
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(x for x in kept if x != _HEADER.strip()))
    body = body.strip("\n")
    parts = [_HEADER.rstrip("\n")] + ([body] if body else []) + [block.rstrip("\n")]
    return "\n\n".join(parts) + "\n"


def includes_dir(sudoers_text: str, directory: str = SUDOERS_DIR) -> bool:
    for line in sudoers_text.splitlines():
        match = re.match(_INCLUDE, line.strip())
        if match and match.group(1).rstrip("/") == directory:
            return True
    return False


def write_rules(root: Root, user: str, rules: Sequence[str]) -> list[str]:
    """Write ``user``'s rules; returns warnings (e.g. sudo not installed in the root)."""
    warnings: list[str] = []
    block = render_block(user, rules)
    root.makedirs(SUDOERS_DIR, mode=0o750)
    current = root.read_text(RULES_FILE, default="")
    # critical: sudo reads these whenever it runs; /etc/sudoers empty would lock out root.
    text = replace_block(current, user, block)
    root.write_file(RULES_FILE, text, mode=0o440, owner=0, group=0, critical=True)
    if root.exists(SUDOERS):
        sudoers = root.read_text(SUDOERS)
        if not includes_dir(sudoers):
            addition = f"\n# Added by metaboot for {RULES_FILE}\n#includedir {SUDOERS_DIR}\n"
            root.write_file(SUDOERS, sudoers + addition, mode=None, critical=True)
    else:
        # Creating /etc/sudoers would clash with the sudo package's own file when it is
        # installed later; the rules wait in sudoers.d until then.
        warnings.append(f"sudo is not installed ({SUDOERS} missing); rules kept in {RULES_FILE}")
    return warnings
