"""The SSH server's files in a root: sshd_config (with its Includes), authorized_keys, host keys.

sshd takes the *first* value it reads for most keywords, reading ``Include`` files where the
directive stands. A setting therefore goes into our drop-in (``sshd_config.d/50-metaboot.conf``)
when the root's sshd_config includes that directory, else into sshd_config itself before any
``Match`` block; :func:`effective` then tells whether something read earlier still wins.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence

from metaboot.errors import ConfigError
from metaboot.guest.charsets import ASCII_ALNUM
from metaboot.guest.os import hostkeys
from metaboot.guest.os.accounts import group_exists
from metaboot.guest.os.tools import ToolError, run_tool
from metaboot.guest.records import dataclass
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    import subprocess

SSH_DIR = "/etc/ssh"
SSHD_CONFIG = f"{SSH_DIR}/sshd_config"
DROPIN = f"{SSH_DIR}/sshd_config.d/50-metaboot.conf"
HOST_KEY_TYPES = ("rsa", "ecdsa", "ed25519", "dsa")
_MAX_INCLUDE_DEPTH = 16
# Lines are read with string methods, not patterns: the two patterns this module had were
# compiled on every boot, at more cost than all the lines they were ever matched against.
_KEY_TYPE_CHARS = frozenset(ASCII_ALNUM + "@._-")
_BASE64_CHARS = frozenset(ASCII_ALNUM + "+/")

Value = str | Sequence[str]


@dataclass(frozen=True)
class Directive:
    keyword: str  # lower case, as sshd compares them
    value: str
    path: str  # guest path of the file it is in
    lineno: int
    in_match: bool


# ---- reading ---------------------------------------------------------------------------


def split_directive(line: str) -> tuple[str, str] | None:
    """``(keyword, value)`` of an sshd_config line (one of ``splitlines()``), or None when it
    holds no directive (pure). The keyword is ASCII letters and digits, starting with a letter;
    ``=`` or blanks separate it from the value; blanks around both are not part of them."""
    text = line.lstrip()
    end = 0
    while end < len(text) and text[end] in ASCII_ALNUM:
        end += 1
    keyword = text[:end]
    if not keyword or keyword[0].isdigit():
        return None
    rest = text[end:]
    after = rest.lstrip()
    if after.startswith("="):
        return keyword, after[1:].strip()
    if rest[:1].isspace():
        return keyword, after.rstrip()
    return None


def _include_targets(root: Root, value: str) -> list[str]:
    targets: list[str] = []
    for pattern in value.split():
        guest = pattern if pattern.startswith("/") else f"{SSH_DIR}/{pattern}"
        parent, name = posixpath.split(posixpath.normpath(guest))
        names = [n for n in root.listdir(parent) if fnmatch.fnmatchcase(n, name)]
        targets += [f"{parent}/{n}" for n in names]
    return targets


def read_config(root: Root, path: str = SSHD_CONFIG) -> list[Directive]:
    """Every directive sshd would read, in order, with Include files expanded in place."""
    out: list[Directive] = []

    def walk(guest_path: str, depth: int, in_match: bool) -> None:
        if depth > _MAX_INCLUDE_DEPTH:
            raise ConfigError(f"{guest_path}: sshd Include nesting is deeper than {depth}")
        local_match = in_match
        for lineno, line in enumerate(root.read_text(guest_path, default="").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            found = split_directive(line)
            if found is None:
                continue
            keyword, value = found[0].lower(), found[1]
            if keyword == "match":
                local_match = True
            out.append(Directive(keyword, value, guest_path, lineno, local_match))
            if keyword == "include":
                for target in _include_targets(root, value):
                    walk(target, depth + 1, local_match)

    walk(path, 0, False)
    return out


def effective(root: Root, keyword: str) -> Directive | None:
    """The directive that sets ``keyword`` for connections no Match block applies to."""
    keyword = keyword.lower()
    for directive in read_config(root):
        if directive.keyword == keyword and not directive.in_match:
            return directive
    return None


def dropin_included(root: Root, dropin: str = DROPIN) -> bool:
    """True when sshd_config includes ``dropin`` (outside any Match block)."""
    for directive in read_config(root):
        if directive.path != SSHD_CONFIG or directive.keyword != "include" or directive.in_match:
            continue
        for pattern in directive.value.split():
            guest = pattern if pattern.startswith("/") else f"{SSH_DIR}/{pattern}"
            if fnmatch.fnmatchcase(dropin, guest):
                return True
    return False


# ---- writing ---------------------------------------------------------------------------


def _lines_for(keyword: str, value: Value) -> list[str]:
    values = [value] if isinstance(value, str) else list(value)
    for item in values:
        if "\n" in item or not item.strip():
            raise ConfigError(f"invalid sshd value for {keyword}: {item!r}")
    return [f"{keyword} {item}" for item in values]


def apply_options(text: str, options: Mapping[str, Value]) -> str:
    """``text`` with each option set before any Match block, replacing earlier settings (pure).

    Every occurrence of a keyword outside Match blocks is replaced by the new line(s), placed
    where the first one stood; a keyword not present goes just before the first Match line.
    """
    lines = text.splitlines()
    wanted = {k.lower(): (k, v) for k, v in options.items()}
    out: list[str] = []
    placed: set[str] = set()
    in_match = False
    insert_at: int | None = None
    for line in lines:
        found = (
            split_directive(line) if line.strip() and not line.lstrip().startswith("#") else None
        )
        keyword = found[0].lower() if found else None
        if keyword == "match" and not in_match:
            in_match = True
            insert_at = len(out)
        if keyword in wanted and not in_match:
            if keyword not in placed:
                out += _lines_for(*wanted[keyword])
                placed.add(keyword)
            continue
        out.append(line)
    missing = [line for k, kv in wanted.items() if k not in placed for line in _lines_for(*kv)]
    if missing:
        if insert_at is None:
            if out and out[-1].strip():
                out.append("")
            out += missing
        else:
            out[insert_at:insert_at] = [*missing, ""]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class ConfigChange:
    path: str  # the file that holds the setting
    changed: bool  # False: it already said so


def set_options(root: Root, options: Mapping[str, Value], dropin: str = DROPIN) -> ConfigChange:
    """Set sshd options in the drop-in when sshd_config includes it, else in sshd_config."""
    if not root.exists(SSHD_CONFIG):
        raise ConfigError(
            f"{SSHD_CONFIG} does not exist in {root.base}: is openssh-server installed?"
        )
    target = dropin if dropin_included(root, dropin) else SSHD_CONFIG
    current = root.read_text(target, default="")
    if not current and target == dropin:
        current = "# Written by metaboot from instance configuration.\n"
    updated = apply_options(current, options)
    if updated == current:
        return ConfigChange(target, False)
    # critical: sshd reads it at its next start, whether or not the agent has run again by
    # then; an empty file after a crash would leave sshd on its defaults.
    if target == dropin:
        root.makedirs(posixpath.dirname(posixpath.normpath(dropin)))
        root.write_file(target, updated, mode=0o644, owner=0, group=0, critical=True)
    else:
        root.write_file(target, updated, mode=None, critical=True)
    return ConfigChange(target, True)


# ---- authorized keys -------------------------------------------------------------------


def _is_key_type(word: str) -> bool:
    prefix, dash, rest = word.partition("-")
    if (
        dash
        and prefix in ("ssh", "ecdsa", "sk")
        and rest
        and all(c in _KEY_TYPE_CHARS for c in rest)
    ):
        return True
    return word.startswith("ecdsa-sha2-nistp") and word[16:].isdecimal()


def _is_base64(word: str) -> bool:
    body = word.rstrip("=")
    return bool(body) and len(word) - len(body) <= 3 and all(c in _BASE64_CHARS for c in body)


def key_identity(line: str) -> tuple[str, str] | None:
    """(type, base64 blob) of an authorized_keys line, ignoring options and comment: the
    first word naming a key type (``ssh-…``, ``ecdsa-…``, ``sk-…``) followed by a base64 word
    (pure)."""
    words = line.split()
    for kind, blob in itertools.pairwise(words):
        if _is_key_type(kind) and _is_base64(blob):
            return kind, blob
    return None


def expand_tokens(text: str, home: str, user: str) -> str:
    """``text`` with sshd's ``%%``, ``%h`` and ``%u`` replaced; other ``%`` left as they are
    (pure)."""
    out: list[str] = []
    start = 0
    while (at := text.find("%", start)) >= 0:
        token = text[at + 1 : at + 2]
        if token in ("%", "h", "u"):
            out += [text[start:at], {"%": "%", "h": home, "u": user}[token]]
            start = at + 2
        else:
            out.append(text[start : at + 1])
            start = at + 1
    out.append(text[start:])
    return "".join(out)


def merge_keys(existing: str, new_lines: Sequence[str]) -> str:
    """``existing`` authorized_keys with ``new_lines`` added; a line for a key already present
    replaces it in place (so options change), everything else is kept (pure)."""
    lines = existing.splitlines()
    index = {key_identity(line): i for i, line in enumerate(lines) if key_identity(line)}
    for new in new_lines:
        ident = key_identity(new)
        if ident in index:
            lines[index[ident]] = new
        else:
            index[ident] = len(lines)
            lines.append(new)
    return "\n".join(lines) + "\n" if lines else ""


def authorized_keys_path(root: Root, user: str) -> str:
    """Guest path of ``user``'s authorized_keys per the root's AuthorizedKeysFile (first entry)."""
    home = root.home_of(user)
    setting = effective(root, "authorizedkeysfile")
    first = (
        setting.value.split()[0] if setting and setting.value.split() else ".ssh/authorized_keys"
    )
    if first.lower() == "none":
        raise ConfigError(f"{SSHD_CONFIG} sets AuthorizedKeysFile none: keys cannot be installed")
    expanded = expand_tokens(first, home, user)
    return expanded if expanded.startswith("/") else f"{home.rstrip('/')}/{expanded}"


@dataclass(frozen=True)
class KeysResult:
    path: str
    added: int
    rejected: list[str]


def install_keys(
    root: Root, user: str, keys: Sequence[str], options: str | None = None
) -> KeysResult:
    """Add ``keys`` (one per line, optionally prefixed by ``options``) to ``user``'s file."""
    path = authorized_keys_path(root, user)
    good: list[str] = []
    rejected: list[str] = []
    for key in keys:
        for raw in str(key).splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if key_identity(line) is None:
                rejected.append(line[:40])
                continue
            good.append(f"{options} {line}" if options else line)
    home = root.home_of(user)
    parent = posixpath.dirname(posixpath.normpath(path))
    if path.startswith(home.rstrip("/") + "/"):
        # ~/.ssh belongs to the user and is private, or sshd's StrictModes refuses the keys.
        if not root.exists(home):
            root.makedirs(home, mode=0o755, owner=user)
        root.makedirs(parent, mode=0o700, owner=user)
    else:
        root.makedirs(parent, mode=0o755)
    current = root.read_text(path, default="")
    merged = merge_keys(current, good)
    root.write_file(path, merged, mode=0o600, owner=user)
    return KeysResult(path, len(merged.splitlines()) - len(current.splitlines()), rejected)


# ---- host keys -------------------------------------------------------------------------


def host_key_path(key_type: str) -> str:
    return f"{SSH_DIR}/ssh_host_{key_type}_key"


def delete_host_keys(root: Root) -> list[str]:
    """Remove every ``ssh_host_*key*`` file the image came with; returns what was removed."""
    removed = []
    for name in root.listdir(SSH_DIR):
        # The glob ssh_host_*key*, as plain string tests (fnmatch compiles it to a pattern).
        glob = name.startswith("ssh_host_") and "key" in name[len("ssh_host_") :]
        if glob and root.remove(f"{SSH_DIR}/{name}"):
            removed.append(f"{SSH_DIR}/{name}")
    return removed


def _private_key_mode(root: Root) -> tuple[int, int | str]:
    # Fedora/RHEL give private host keys to group ssh_keys (0640) for ssh-keysign.
    return (0o640, "ssh_keys") if group_exists(root, "ssh_keys") else (0o600, 0)


@dataclass
class HostKeys:
    made: list[str]  # in place now
    deferred: list[str]  # left to the job generating it, which installs it when done


def generate_host_keys(root: Root, key_types: Sequence[str], comment: str) -> list[str]:
    """Generate the missing host keys of ``key_types`` with ssh-keygen, all at once."""
    return start_host_keys(root, key_types, comment)().made


def start_host_keys(
    root: Root,
    key_types: Sequence[str],
    comment: str,
    *,
    staged_timeout: float = 300.0,
    defer: bool = False,
) -> Callable[[], HostKeys]:
    """Start ssh-keygen for the missing host keys of ``key_types`` (one process per type, side
    by side); the function returned waits for them, sets owners and modes, and returns the
    keys made (ToolError if one failed). The caller may do other work in between.

    A type the local stage already started in the background (:mod:`hostkeys`) is taken from
    there instead, waiting at most ``staged_timeout`` seconds (``hostkeys.FAST_TIMEOUT`` for
    ed25519 and ecdsa); if that job failed or is late, the error is reported and the key is
    generated here after all. With ``defer``, a slow type (RSA, DSA) whose job is still running
    is not waited for: the job installs it when done (``HostKeys.deferred``). Staged types
    nobody wants (not in ``key_types``, or the key exists) are thrown away."""
    for key_type in key_types:
        if key_type not in HOST_KEY_TYPES:
            raise ConfigError(f"unknown SSH host key type {key_type!r} (use rsa, ecdsa, ed25519)")
    root.makedirs(SSH_DIR)
    staged = set(hostkeys.staged_types(root))
    wanted: list[str] = []
    for key_type in dict.fromkeys(key_types):
        path = host_key_path(key_type)
        if os.path.islink(root.host_path(path)):
            # ssh-keygen would write through it, possibly out of the root.
            root.remove(path)
        elif root.exists(path):
            continue
        wanted.append(key_type)
    hostkeys.discard(root, sorted(staged - set(wanted)))
    jobs = [(t, _keygen(root, t, comment)) for t in wanted if t not in staged]

    def finish() -> HostKeys:
        made: list[str] = []
        deferred: list[str] = []
        errors: list[str] = []
        mode, group = _private_key_mode(root)
        late: list[tuple[str, subprocess.Popen[bytes]]] = []
        # The fast types first: by the time they are in place a slow one may be done too.
        for key_type in sorted(
            (t for t in wanted if t in staged), key=lambda t: t in hostkeys.SLOW_TYPES
        ):
            path = host_key_path(key_type)
            slow = key_type in hostkeys.SLOW_TYPES
            group_name = str(group) if mode != 0o600 else ""
            if defer and slow and hostkeys.defer(root, key_type, path, comment, group_name):
                deferred.append(path)
                continue
            try:
                timeout = staged_timeout if slow else min(staged_timeout, hostkeys.FAST_TIMEOUT)
                hostkeys.take(root, key_type, path, comment, timeout)
            except ToolError as err:
                errors.append(f"{err}; generated again")
                late.append((key_type, _keygen(root, key_type, comment)))
                continue
            _set_modes(root, key_type, mode, group)
            made.append(path)
        for key_type, proc in jobs + late:
            _, stderr = proc.communicate()
            if proc.returncode != 0:
                errors.append(f"{key_type}: {stderr.decode('utf-8', 'replace').strip()}")
                continue
            _set_modes(root, key_type, mode, group)
            made.append(host_key_path(key_type))
        if not deferred:
            hostkeys.discard(root, [])  # the staging directory, once empty
        if errors:
            if deferred:
                errors.append(f"still being generated in the background: {', '.join(deferred)}")
            raise ToolError("cannot generate SSH host keys: " + "; ".join(errors))
        order = {host_key_path(t): i for i, t in enumerate(wanted)}
        return HostKeys(
            sorted(made, key=order.__getitem__), sorted(deferred, key=order.__getitem__)
        )

    return finish


def _keygen(root: Root, key_type: str, comment: str) -> subprocess.Popen[bytes]:
    import subprocess  # only when a key is made here, not adopted from the local stage's job

    path = host_key_path(key_type)
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", root.host_path(path)]
    try:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError as err:
        raise ToolError("cannot generate SSH host keys: ssh-keygen is not installed") from err


def _set_modes(root: Root, key_type: str, mode: int, group: int | str) -> None:
    path = host_key_path(key_type)
    root.chown(path, 0, group)
    os.chmod(root.host_path(path), mode)
    root.chown(f"{path}.pub", 0, 0)
    os.chmod(root.host_path(f"{path}.pub"), 0o644)


def write_host_keys(root: Root, ssh_keys: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Install host keys given in cloud-config ``ssh_keys``; returns (files, certificate paths)."""
    written: list[str] = []
    certs: list[str] = []
    mode, group = _private_key_mode(root)
    names = {f"{t}_{part}" for t in HOST_KEY_TYPES for part in ("private", "public", "certificate")}
    for name in ssh_keys:
        if name not in names:
            raise ConfigError(
                f"ssh_keys.{name}: expected <rsa|ecdsa|ed25519|dsa>_<private|public|certificate>"
            )
    for key_type in HOST_KEY_TYPES:
        private = ssh_keys.get(f"{key_type}_private")
        public = ssh_keys.get(f"{key_type}_public")
        cert = ssh_keys.get(f"{key_type}_certificate")
        path = host_key_path(key_type)
        if private:
            root.write_file(path, _with_newline(private), mode=mode, owner=0, group=group)
            written.append(path)
            if not public:
                public = run_tool(
                    root,
                    ["ssh-keygen", "-y", "-f", root.host_path(path)],
                    purpose=f"derive the {key_type} host public key",
                )
        if public:
            root.write_file(f"{path}.pub", _with_newline(public), mode=0o644, owner=0, group=0)
            written.append(f"{path}.pub")
        if cert:
            root.write_file(f"{path}-cert.pub", _with_newline(cert), mode=0o644, owner=0, group=0)
            written.append(f"{path}-cert.pub")
            certs.append(f"{path}-cert.pub")
    return written, certs


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
