"""The host name files: ``/etc/hostname`` and ``/etc/hosts``.

Rendering and editing are pure functions over text; only :func:`write_hostname`,
:func:`write_hosts` and :func:`set_running_hostname` touch the root. The running kernel's host
name is changed only when the root is the live system.
"""

from __future__ import annotations

from metaboot.errors import ConfigError
from metaboot.guest.charsets import ASCII_ALNUM
from metaboot.guest.os.tools import run_tool
from metaboot.guest.system import Root

HOSTNAME_FILE = "/etc/hostname"
HOSTS_FILE = "/etc/hosts"
LOCAL_ADDRESS = "127.0.1.1"  # Debian's address for the machine's own name
_LABEL_CHARS = frozenset(ASCII_ALNUM + "-")


def _valid_label(label: str) -> bool:
    """An RFC 1123 label: 1-63 letters, digits or '-', not starting or ending with '-' (and,
    unlike the pattern this was, no line break at its end)."""
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c in _LABEL_CHARS for c in label)
    )


_MAX_HOSTNAME = 64  # HOST_NAME_MAX on Linux
_MAX_FQDN = 253


def check_hostname(name: str, what: str = "hostname") -> str:
    """Return ``name`` if it is a valid host name (RFC 1123 labels), else raise ConfigError."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what}: expected a non-empty string, got {name!r}")
    labels = name.rstrip(".").split(".")
    limit = _MAX_FQDN if what == "fqdn" else _MAX_HOSTNAME
    if len(name) > limit or not all(_valid_label(label) for label in labels):
        raise ConfigError(
            f"{what}: {name!r} is not a valid host name (labels of 1-63 letters, digits or '-', "
            f"not starting or ending with '-', {limit} characters at most)"
        )
    return name.rstrip(".")


def current_hostname(root: Root) -> str | None:
    text = root.read_text(HOSTNAME_FILE, default="")
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    return None


def write_hostname(root: Root, name: str) -> bool:
    """Write ``/etc/hostname``; False when it already held ``name``."""
    if current_hostname(root) == name:
        return False
    root.write_file(HOSTNAME_FILE, name + "\n", mode=0o644)
    return True


def set_running_hostname(root: Root, name: str) -> bool:
    """Change the running system's host name (only when the root is the live system)."""
    if not root.is_live:
        return False
    run_tool(root, ["hostname", name], purpose=f"set the running host name to {name}")
    return True


def _names(hostname: str, fqdn: str | None) -> list[str]:
    return [fqdn, hostname] if fqdn and fqdn != hostname else [hostname]


def render_hosts(hostname: str, fqdn: str | None) -> str:
    """A whole ``/etc/hosts`` for ``manage_etc_hosts: true`` (pure)."""
    names = " ".join(_names(hostname, fqdn))
    return (
        "# Written by metaboot on every boot (manage_etc_hosts: true): edits here are replaced.\n"
        "# To keep your own entries, set manage_etc_hosts to false or localhost.\n"
        f"{LOCAL_ADDRESS} {names}\n"
        "127.0.0.1 localhost\n"
        "\n"
        "# IPv6 hosts\n"
        "::1 localhost ip6-localhost ip6-loopback\n"
        "ff02::1 ip6-allnodes\n"
        "ff02::2 ip6-allrouters\n"
    )


def update_local_entry(text: str, hostname: str, fqdn: str | None) -> str:
    """``text`` with the machine's own line (127.0.1.1) naming ``fqdn hostname`` (pure).

    The names on an existing 127.0.1.1 line are replaced (they were the previous name) and its
    comment kept; without one, a line goes after the ``127.0.0.1`` line or at the top. All other
    lines are left exactly as they were.
    """
    names = " ".join(_names(hostname, fqdn))
    lines = text.splitlines()
    for i, line in enumerate(lines):
        body, _, comment = line.partition("#")
        fields = body.split()
        if fields and fields[0] == LOCAL_ADDRESS:
            new = f"{LOCAL_ADDRESS} {names}" + (f" #{comment}" if comment else "")
            lines[i] = new
            return "\n".join(lines) + "\n"
    at = 0
    for i, line in enumerate(lines):
        if line.split("#", 1)[0].split()[:1] == ["127.0.0.1"]:
            at = i + 1
            break
    lines[at:at] = [f"{LOCAL_ADDRESS} {names}"]
    return "\n".join(lines) + "\n"


def write_hosts(root: Root, text: str) -> bool:
    if root.read_text(HOSTS_FILE, default="") == text:
        return False
    # critical: every program resolving localhost reads it, from early boot on.
    root.write_file(HOSTS_FILE, text, mode=None, critical=True)
    return True
