"""ssh: host keys and authorized keys, with cloud-init's keys and defaults.

- ``ssh_deletekeys`` (true): the image's host keys are removed, so clones never share them;
- ``ssh_keys`` installs given host keys, otherwise ``ssh_genkeytypes`` (rsa, ecdsa, ed25519)
  are generated with ssh-keygen, all at once — or taken from the jobs the local stage started
  ahead on a first boot (:mod:`metaboot.guest.os.hostkeys`): this module waits for the fast
  types (ed25519, ecdsa) and, with ``ssh_defer_slow_keytypes`` (true, metaboot's own key),
  leaves an RSA or DSA key still in its prime search to its job, which installs it and reloads
  sshd when done (sshd starts with the others meanwhile);
- the metadata's public keys (``allow_public_ssh_keys``, true) and ``ssh_authorized_keys`` go to
  the default user; with ``disable_root`` (true) root gets the same keys behind
  ``disable_root_opts``, which print "log in as <default user>" and close the session.
"""

from __future__ import annotations

from metaboot.errors import ConfigError, MetabootError
from metaboot.guest.modules._cfg import get_bool, get_mapping, get_str_list
from metaboot.guest.modules._schemas import top
from metaboot.guest.modules._ssh import disable_user_options
from metaboot.guest.modules._users import default_user_name
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.os import accounts, hostkeys, hostnames, sshd

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_KEY_TYPES = list(hostkeys.DEFAULT_KEY_TYPES)
KEY_NAMES = frozenset(
    f"{kind}_{part}"
    for kind in sshd.HOST_KEY_TYPES
    for part in ("private", "public", "certificate")
)


def host_keys(ctx: ModuleContext) -> Callable[[], None]:
    """Replace the image's host keys; ssh-keygen runs while the caller goes on, and the
    function returned waits for it and reports."""
    if get_bool(ctx.cfg, "ssh_deletekeys", True):
        removed = sshd.delete_host_keys(ctx.root)
        if removed:
            ctx.report.changed(f"removed {len(removed)} host key file(s) the image came with")
    given = dict(get_mapping(ctx.cfg, "ssh_keys"))
    for name in [n for n in given if n not in KEY_NAMES]:
        ctx.report.warn(f"ssh_keys: unknown key {name!r} ignored")
        del given[name]
    if given:
        if not all(isinstance(v, str) for v in given.values()):
            raise ConfigError("ssh_keys: every value must be a key as text")
        files, certs = sshd.write_host_keys(ctx.root, {k: str(v) for k, v in given.items()})
        ctx.report.changed(f"installed host keys from ssh_keys: {', '.join(files)}")
        if certs:
            change = sshd.set_options(ctx.root, {"HostCertificate": certs})
            ctx.report.changed(f"HostCertificate set in {change.path}")
        hostkeys.discard(ctx.root)  # started ahead by the local stage, not wanted after all
        return lambda: None
    types = get_str_list(ctx.cfg, "ssh_genkeytypes", DEFAULT_KEY_TYPES)
    comment = f"root@{hostnames.current_hostname(ctx.root) or 'localhost'}"
    defer = get_bool(ctx.cfg, "ssh_defer_slow_keytypes", True)
    pending = sshd.start_host_keys(ctx.root, types, comment, defer=defer)

    def finish() -> None:
        keys = pending()
        if keys.made:
            ctx.report.changed(f"generated host keys: {', '.join(keys.made)}")
        if keys.deferred:
            ctx.report.changed(
                f"still being generated in the background: {', '.join(keys.deferred)} "
                "(installed, and sshd reloaded, when ssh-keygen is done; a failure is logged "
                "and shown by metaboot status)"
            )

    return finish


def authorized_keys(ctx: ModuleContext) -> None:
    keys: list[str] = []
    if get_bool(ctx.cfg, "allow_public_ssh_keys", True):
        keys += ctx.instance.public_keys
    keys += get_str_list(ctx.cfg, "ssh_authorized_keys")
    if not keys:
        return
    user = default_user_name(ctx.cfg)
    missing = None
    if user is None:
        ctx.report.warn("no default user: instance keys go to root only")
    elif not accounts.user_exists(ctx.root, user):
        missing = f"default user {user} does not exist: its keys were not installed"
    else:
        result = sshd.install_keys(ctx.root, user, keys)
        ctx.report.changed(f"{result.added} key(s) added to {result.path}")
        for line in result.rejected:
            ctx.report.warn(f"not an SSH public key, ignored: {line!r}…")
    if get_bool(ctx.cfg, "disable_root", True):
        options = disable_user_options(ctx.cfg, user or "NONE", "root")
        result = sshd.install_keys(ctx.root, "root", keys, options)
        ctx.report.changed(f"root login disabled for {len(keys)} key(s) in {result.path}")
    else:
        result = sshd.install_keys(ctx.root, "root", keys)
        ctx.report.changed(f"{result.added} key(s) added to {result.path} (disable_root false)")
    if missing is not None:
        raise ConfigError(missing)


def handle(ctx: ModuleContext) -> None:
    publish = get_mapping(ctx.cfg, "ssh_publish_hostkeys")
    if publish.get("enabled") is True:
        ctx.report.warn("ssh_publish_hostkeys: publishing host keys is not supported; ignored")
    finish = host_keys(ctx)
    # The keys of the users are written while ssh-keygen works (RSA takes a while).
    problems: list[str] = []
    try:
        authorized_keys(ctx)
    except MetabootError as err:
        problems.append(str(err))
    finally:
        try:
            finish()
        except MetabootError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError("; ".join(problems))


MODULE = Module(
    name="ssh",
    stage=Stage.NETWORK,
    frequency=Frequency.INSTANCE,
    keys=(),
    handle=handle,
    schema=top(
        {
            "ssh_deletekeys": {"type": "boolean"},
            "ssh_defer_slow_keytypes": {"type": "boolean"},
            "ssh_genkeytypes": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": ["dsa", "ecdsa", "ed25519", "rsa"]},
            },
            "ssh_keys": {
                "type": "object",
                "properties": {name: {"type": "string"} for name in sorted(KEY_NAMES)},
            },
            "ssh_authorized_keys": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "allow_public_ssh_keys": {"type": "boolean"},
            "disable_root": {"type": "boolean"},
            "disable_root_opts": {"type": "string"},
            "ssh_quiet_keygen": {"type": "boolean"},
            "ssh_publish_hostkeys": {
                "type": "object",
                "properties": {
                    "enabled": {"type": "boolean"},
                    "blacklist": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    ),
)
