"""Running user commands (bootcmd, runcmd, scripts, power_state conditions) inside the root.

The policy, made explicit because ``--root`` may point at someone's image:

- the root is the live system (``/``): commands run directly, as on any boot;
- any other root: commands run *inside* it with ``chroot`` (so ``/`` in a script is the
  root's ``/`` and its own binaries run), and only when that is possible: we are root, the
  root has an executable ``/bin/sh``, and ``root_commands`` is not ``skip``;
- otherwise they are skipped, and the caller reports that they were.

A user command is never run on the host against a root that is not the host. Output goes to
the root's ``/var/log/metaboot-output.log`` (like cloud-init-output.log), not to our log.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from metaboot.errors import ConfigError, MetabootError
from metaboot.guest.choices import Choices
from metaboot.guest.records import dataclass
from metaboot.guest.system import Root

OUTPUT_LOG = "/var/log/metaboot-output.log"
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class RootCommands(Choices):
    """The ``root_commands`` setting: what to do with user commands on a non-live root."""

    CHROOT = "chroot"
    SKIP = "skip"


class CommandSkipped(MetabootError):
    """A user command was not run because the policy does not allow it on this root."""


class CommandFailed(MetabootError):
    """A user command or script ran and exited non-zero (its output is in the output log)."""


def policy_from(cfg: Mapping[str, object]) -> RootCommands:
    value = cfg.get("root_commands", RootCommands.CHROOT.value)
    try:
        return RootCommands(str(value))
    except ValueError:
        raise ConfigError(f"root_commands: expected 'chroot' or 'skip', got {value!r}") from None


def cannot_enter(root: Root, policy: RootCommands) -> str | None:
    """Why user commands cannot run in ``root`` (None: they can)."""
    if root.is_live:
        return None
    if policy is RootCommands.SKIP:
        return f"root_commands is 'skip' and {root.base} is not the live system"
    if os.geteuid() != 0:
        return f"{root.base} is not the live system and entering it with chroot needs root"
    sh = root.path("/bin/sh")
    if not (sh.exists() and os.access(sh, os.X_OK)):
        return f"{root.base} is not the live system and has no /bin/sh to run commands with"
    import shutil  # with bz2 and lzma: only when a command must run in a chroot

    if shutil.which("chroot") is None:
        return f"{root.base} is not the live system and chroot is not installed"
    return None


@dataclass(frozen=True)
class CommandRunner:
    """Runs guest commands by the policy above; ``argv[0]`` and paths are guest paths."""

    root: Root
    policy: RootCommands = RootCommands.CHROOT
    output_log: str | None = OUTPUT_LOG

    def refusal(self) -> str | None:
        """Why commands cannot run in this root (None: they can)."""
        return cannot_enter(self.root, self.policy)

    def full_argv(self, argv: Sequence[str]) -> list[str]:
        """The host command line for guest ``argv``; raises CommandSkipped when not allowed."""
        reason = self.refusal()
        if reason is not None:
            raise CommandSkipped(reason)
        if self.root.is_live:
            return list(argv)
        return ["chroot", self.root.base_dir, *argv]

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        if self.root.is_live:
            env = dict(os.environ)
            env.setdefault("PATH", STANDARD_PATH)
        else:
            # Nothing of the host's environment leaks into someone else's system.
            env = {"PATH": STANDARD_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root"}
        env.update(extra or {})
        return env

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        label: str | None = None,
    ) -> int:
        """Run guest ``argv`` to completion; return its exit status (output to the output log)."""
        try:
            return self._run(argv, env=env, timeout=timeout, label=label)
        finally:
            self.root.forget_paths()  # the command may have changed the tree: Root._resolve

    def _run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        timeout: float | None,
        label: str | None,
    ) -> int:
        full = self.full_argv(argv)
        environment = self.environment(env)
        cwd = "/" if self.root.is_live else self.root.base_dir
        if self.output_log is None:
            proc = subprocess.run(
                full,
                env=environment,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
            return proc.returncode
        self.root.makedirs(os.path.dirname(self.output_log))
        log_path = self.root.path(self.output_log)
        # O_NOFOLLOW: a symlink planted in the root must not lead the log out of it.
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        except OSError as err:
            raise CommandFailed(f"cannot open {self.output_log}: {err.strerror}") from None
        with os.fdopen(fd, "ab") as log:
            log.write(f"--- {label or ' '.join(argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.run(
                    full,
                    env=environment,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
            except OSError as err:
                # As a shell would: the command could not be started at all.
                log.write(f"--- cannot run {argv[0]}: {err.strerror}\n".encode())
                return 127
            log.write(f"--- exit status {proc.returncode}\n".encode())
        return proc.returncode
