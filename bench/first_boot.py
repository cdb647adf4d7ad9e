#!/usr/bin/env python3
"""A whole first boot with the metaboot agent, against cloud-init's import plus its crawl.

Both clients talk to the same ``metaboot serve`` on 127.0.0.1 (an ephemeral port; the instance
is bound to 127.0.0.1 so the service identifies them by source address), both run under
Debian's ``/usr/bin/python3`` as they would in a Debian guest, alternating run by run:

* **metaboot**: ``/usr/bin/metaboot init --root <fresh tree>`` as ``metaboot image prepare``
  installs it (``python3 -IS``, see metaboot.guest.launcher) — all four stages in one
  process: source detection (config drive and NoCloud looked for, then the OpenStack
  service), network rendering, user-data, every installed module (users, host keys, …),
  status and instance-data;
* **cloud-init**: ``import cloudinit.cmd.main`` plus ``MetadataReader(url).read_v2()`` — its
  OpenStack crawl, which includes the EC2 tree, aimed at the same loopback service (cloud-init
  would otherwise crawl EC2 at 169.254.169.254; ``tests/netguard`` is loaded into both
  processes so nothing can reach the link-local address). cloud-init's modules are not run:
  the comparison favours it.

Byte-code: as in a real Debian guest, both sides run with their byte-code compiled at install
(cloud-init's by its package's py3compile, ours by ``metaboot image prepare``, which also
writes the agent's one-file bundle, see metaboot.guest.bundle) and the standard library's
from Debian's own ``__pycache__`` (the agent reads the standard library and PyYAML modules a
boot imports from its bundle, which prepare fills from the image's Python, here Debian's own):
the bench copies cloud-init's package into a temporary site directory and compiles it there
with Debian's python3 (compileall), installs the agent into another with prepare's own
``install_package``, and runs with no PYTHONPYCACHEPREFIX (a prefix
cache costs every import extra path work, more for the side that imports more). This machine sets
PYTHONDONTWRITEBYTECODE=1; nothing needs writing. For reference it also times cloud-init's
import alone with its byte-code not cached (the unpacked package, never compiled), and, with
``--instructions``, counts each side's instructions once under callgrind (stable on a busy
machine, unlike the clock).

Prints wall time, CPU time and peak RSS per run (median and best), the ratios (also the median
of each of our boots against the cloud-init run right after it, which a slow phase of a shared
machine moves least), and the
targets: a whole first boot under 150 ms and 30 MB, at least 5x faster than cloud-init's import
plus crawl. The machine is shared: read the ratios; the lead records absolute figures on a
quiet machine.

    .venv/bin/python bench/first_boot.py --runs 5 [--instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from metaboot.guest import config  # noqa: E402
from metaboot.guest.image import install_package  # noqa: E402
from metaboot.guest.launcher import launcher_text  # noqa: E402
from metaboot.guest.system import Root  # noqa: E402
from metaboot.metadata import parse_spec  # noqa: E402
from metaboot.registry import Registry  # noqa: E402

PYTHON = "/usr/bin/python3"  # Debian's, as in a guest
CLOUDINIT = Path(os.environ.get("METABOOT_CLOUDINIT_DIR", "/opt/metaboot/reference/cloud-init"))
CLOUDINIT_PATH = CLOUDINIT / "usr/lib/python3/dist-packages"
NETGUARD = REPO / "tests" / "netguard"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyBenchKeyBenchKeyBenchKey bench@example"
USER_DATA = """#cloud-config
hostname: bench-vm
fqdn: bench-vm.example.internal
manage_etc_hosts: true
timezone: Etc/UTC
users:
  - default
  - name: deploy
    groups: [adm]
    shell: /bin/bash
    ssh_authorized_keys: [{key}]
write_files:
  - path: /etc/motd
    content: "bench\\n"
    permissions: "0644"
""".replace("{key}", KEY)
SPEC = {
    "uuid": "5d2e7a4c-1b3f-4c6d-8e9a-0b1c2d3e4f50",
    "name": "bench-vm",
    "hostname": "bench-vm",
    "availability_zone": "zone-a",
    "keys": [{"name": "bench", "type": "ssh", "data": KEY}],
    "meta": {"role": "bench"},
    "user_data": USER_DATA,
    "ports": [
        {
            "network_id": "bench",
            "mac": "fa:16:3e:00:00:42",
            "fixed_ips": ["127.0.0.1"],
            "subnets": [{"cidr": "127.0.0.0/8", "gateway": "127.0.0.254", "dns": ["127.0.0.53"]}],
        }
    ],
}

SITE_PACKAGES = "/usr/lib/python3/dist-packages"  # Debian's: PyYAML, and the agent in an image
GUARD_PRELUDE = "sys.path[:0] = [{guard!r}, {site!r}]\nimport sitecustomize  # the net guard\n"
CLOUDINIT_IMPORT = "import cloudinit.cmd.main\n"
CLOUDINIT_SNIPPET = """
import cloudinit.cmd.main
from cloudinit.sources.helpers import ec2, openstack
original = ec2.get_instance_metadata
def aimed(*args, **kwargs):
    kwargs["metadata_address"] = URL
    return original(*args, **kwargs)
ec2.get_instance_metadata = aimed
result = openstack.MetadataReader(URL, ssl_details=None, timeout=5, retries=1).read_v2()
assert result["metadata"]["instance-id"], result
print("@@", len(result["ec2-metadata"]), "ec2 keys")
"""


# The floor under any Python agent here: the interpreter as the launcher starts it, plus the
# standard library and PyYAML modules a boot leaves loaded (listed by the warm-up boot), read
# from the bundle and PyYAML imported the way the agent does both. Only the agent's own
# modules and its work are missing.
LISTING_PRELUDE = (
    "import atexit as _atexit\n"
    "_atexit.register(lambda: open({listing!r}, 'w').write('\\n'.join(sorted(sys.modules))))\n"
)
FLOOR_SNIPPET = """import sys
sys.path[:0] = [{guard!r}, {site!r}]
sys.path.append({packages!r})
import sitecustomize  # the net guard, as in the launcher
from metaboot.guest import bundle
bundle.install()
for name in {names!r}:
    __import__(name)
from metaboot.guest import pyyaml
pyyaml.module()
"""


def floor_modules(listing: str) -> list[str]:
    """The standard library and PyYAML modules in a boot's sys.modules, importable by name."""
    # cython_runtime: a stand-in module libyaml's Cython binding registers when it loads.
    skip = ("metaboot", "yaml", "sitecustomize", "__main__", "_frozen_importlib", "cython_runtime")
    builtin = sys.builtin_module_names
    return [n for n in listing.split() if not n.startswith(skip) and n not in builtin]


MOUNTS: list[Path] = []  # the tmpfs /run of each fresh image, unmounted at the end


def run_on_tmpfs(base: Path) -> bool:
    """A booted guest has /run on a tmpfs (systemd mounts it before any unit starts); the
    agent's status record and instance data go there. Give the image one too when this runs
    as root; otherwise /run stays on disk, which costs the agent a little more."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    target = base / "run"
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    if proc.returncode == 0:
        MOUNTS.append(target)
    return proc.returncode == 0


def unmount_all() -> None:
    while MOUNTS:
        subprocess.run(["umount", "-l", str(MOUNTS.pop())], capture_output=True, check=False)


def fresh_image(base: Path, url: str) -> None:
    """What a freshly built image holds that the agent touches (accounts, os-release, a NIC,
    networkd, sshd), plus an agent config aiming the HTTP sources at the loopback service;
    /run on a tmpfs where this may mount one (see :func:`run_on_tmpfs`)."""
    run_on_tmpfs(base)
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
        "etc/group": "root:x:0:\nadm:x:4:\nsudo:x:27:\nusers:x:100:\n",
        "etc/shadow": "root:*:19000:0:99999:7:::\n",
        "etc/gshadow": "root:*::\nadm:*::\nsudo:*::\nusers:*::\n",
        "etc/hostname": "localhost\n",
        "etc/hosts": "127.0.0.1 localhost\n",
        "etc/os-release": 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
        "etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\n",
        "sys/class/net/eth0/address": "fa:16:3e:00:00:42\n",
        "sys/class/net/eth0/operstate": "up\n",
        "sys/class/net/eth0/carrier": "1\n",
        "lib/systemd/systemd-networkd": "",
        "etc/metaboot/agent.yaml": json.dumps(
            {
                "datasource": {
                    "OpenStack": {"metadata_urls": [url], "max_wait": 10, "timeout": 5},
                    "Ec2": {"metadata_urls": [url], "max_wait": 10, "timeout": 5},
                },
                "users": ["default"],
                "system_info": {"default_user": {"name": "debian", "groups": ["adm", "sudo"]}},
                # One host key type: RSA generation alone costs about a second of CPU, which
                # says nothing about the agent (and cloud-init's side runs no modules at all).
                "ssh_genkeytypes": ["ed25519"],
            }
        ),
    }
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (base / "etc/shadow").chmod(0o640)
    # Debian's account policy and skeleton, as every Debian image has them (this machine runs
    # Debian 12 too): useradd, or the agent's own account editor, reads them.
    for name in ("etc/login.defs", "etc/default/useradd"):
        if Path("/", name).is_file():
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path("/", name), base / name)
    if Path("/etc/skel").is_dir():
        shutil.copytree("/etc/skel", base / "etc/skel", symlinks=True, dirs_exist_ok=True)
    zone = Path("/usr/share/zoneinfo/Etc/UTC")
    if zone.exists():  # the image's tzdata, for the timezone module
        (base / "usr/share/zoneinfo/Etc").mkdir(parents=True, exist_ok=True)
        shutil.copy2(zone, base / "usr/share/zoneinfo/Etc/UTC")
    # As `metaboot image prepare` leaves it: the agent config's parse, keyed by its bytes.
    config.prime(Root(base))
    # A booting image's files are on its disk already. Without this, the boot's first fsyncs
    # (the journal commits ext4 makes for them) would also write out everything the bench
    # wrote since the last commit: this image, the boots before it.
    os.sync()


def start_service(tmp: Path) -> tuple[subprocess.Popen[str], str]:
    db = f"sqlite:///{tmp / 'registry.db'}"
    with Registry.open(db) as registry:
        registry.add(parse_spec(SPEC))
    config = tmp / "metaboot.toml"
    config.write_text("[rate_limit]\nrequests = 0\n")
    argv = [sys.executable, "-m", "metaboot.cli", "serve", "--db", db, "--listen", "127.0.0.1:0"]
    argv += ["--config", str(config), "--log-level", "warning"]
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"metadata listening on (http://\S+)", line)
        if match:
            url = match.group(1)
            for _ in range(200):
                try:
                    import urllib.request

                    with urllib.request.urlopen(url + "/openstack", timeout=5):
                        return proc, url
                except OSError:
                    time.sleep(0.05)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("metaboot serve did not start")


class Sample:
    def __init__(self, wall: float, cpu: float, rss: float, out: str) -> None:
        self.wall, self.cpu, self.rss, self.out = wall, cpu, rss, out


def timed(argv: list[str], env: dict[str, str], scratch: Path) -> Sample:
    """Wall seconds, CPU seconds (user + system, children included), peak RSS (MiB) and
    stdout of one child. CPU and RSS come from /usr/bin/time (a child forked from this big
    process would report our RSS as its own)."""
    rss_file = scratch / "rss"
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_file), *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    rss_kib, user, system = rss_file.read_text().split()[-3:]
    return Sample(wall, float(user) + float(system), int(rss_kib) / 1024, proc.stdout)


def instructions(argv: list[str], env: dict[str, str]) -> int | None:
    """Instructions the process itself executes (callgrind; its children are not counted)."""
    if shutil.which("valgrind") is None:
        return None
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    return int(found.group(1)) if found else None


def install_compiled(source: Path, target: Path) -> int:
    """Copy a package (or a directory of modules) and compile it with Debian's python3, as a
    package install does; returns how many modules were compiled."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    code = (
        "import compileall, sys; sys.exit(0 if compileall.compile_dir(sys.argv[1], quiet=1) else 1)"
    )
    subprocess.run([PYTHON, "-c", code, str(target)], check=True)
    return sum(1 for _ in target.rglob("__pycache__/*.cpython-*.pyc"))


def row(label: str, samples: list[Sample]) -> str:
    wall = statistics.median(s.wall for s in samples) * 1000
    best = min(s.wall for s in samples) * 1000
    cpu = statistics.median(s.cpu for s in samples) * 1000
    cpu_best = min(s.cpu for s in samples) * 1000
    rss = max(s.rss for s in samples)
    return f"{label:38}{wall:9.1f}{best:9.1f}{cpu:9.1f}{cpu_best:9.1f}{rss:9.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (default 5)")
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (callgrind)"
    )
    args = parser.parse_args()
    if not (Path(PYTHON).exists() and (CLOUDINIT_PATH / "cloudinit").is_dir()):
        raise SystemExit("Debian's python3 and cloud-init are needed: run scripts/setup-system")
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time is needed (Debian package 'time')")

    tmp = Path(tempfile.mkdtemp(prefix="metaboot-bench-"))
    service, url = start_service(tmp)
    try:
        ours_site, theirs_site, guard = tmp / "site-metaboot", tmp / "site-cloudinit", tmp / "guard"
        # As `metaboot image prepare` installs it: the guest parts, their byte-code and the
        # one-file bundle the launcher reads (metaboot.guest.bundle).
        guest = subprocess.run(
            [PYTHON, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        same = tuple(map(int, guest)) == sys.version_info[:2]  # as prepare decides
        # Debian's python3 is the guest's Python here: its library goes into the bundle.
        install_package(
            Root(tmp),
            f"/{ours_site.name}",
            sys.version_info[:2] if same else None,
            library_root=Root("/"),
        )
        ours_compiled = sum(1 for _ in ours_site.rglob("__pycache__/*.cpython-*.pyc"))
        theirs_compiled = install_compiled(CLOUDINIT_PATH / "cloudinit", theirs_site / "cloudinit")
        install_compiled(NETGUARD, guard)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONPYCACHE")}
        # Ours: the image's launcher (python3 -IS ignores the environment); its prelude puts
        # the net guard and the compiled agent first on sys.path.
        launcher = tmp / "metaboot"
        prelude = GUARD_PRELUDE.format(guard=str(guard), site=str(ours_site))
        launcher.write_text(launcher_text(SITE_PACKAGES, prelude=prelude))
        launcher.chmod(0o755)
        ours_env = dict(base_env)
        theirs_env = dict(base_env, PYTHONPATH=os.pathsep.join([str(guard), str(theirs_site)]))
        # The reference run: the unpacked package, which has no byte-code, and none written.
        uncached_env = dict(
            base_env,
            PYTHONPATH=os.pathsep.join([str(guard), str(CLOUDINIT_PATH)]),
            PYTHONDONTWRITEBYTECODE="1",
        )
        snippet = CLOUDINIT_SNIPPET.replace("URL", repr(url))
        theirs_argv = [PYTHON, "-c", snippet]
        import_argv = [PYTHON, "-c", CLOUDINIT_IMPORT]

        def ours_argv(index: int | str) -> list[str]:
            root = tmp / f"root-{index}"
            fresh_image(root, url)
            return [str(launcher), "init", "--root", str(root)]

        def ours_staged(index: int) -> Sample:
            """The same boot as the systemd units run it: one process per stage."""
            root = tmp / f"staged-{index}"
            fresh_image(root, url)
            parts = [
                timed([str(launcher), "init", "--root", str(root), "--stage", stage], ours_env, tmp)
                for stage in ("local", "network", "config", "final")
            ]
            return Sample(
                sum(p.wall for p in parts),
                sum(p.cpu for p in parts),
                max(p.rss for p in parts),
                "".join(p.out for p in parts),
            )

        # The warm-up boot (page cache, the service's cache) also lists the modules it loaded.
        listing = tmp / "modules.txt"
        listing_launcher = tmp / "metaboot-listing"
        listing_launcher.write_text(
            launcher_text(
                SITE_PACKAGES, prelude=prelude + LISTING_PRELUDE.format(listing=str(listing))
            )
        )
        listing_launcher.chmod(0o755)
        warm = ours_argv("warm")
        timed([str(listing_launcher), *warm[1:]], ours_env, tmp)
        names = floor_modules(listing.read_text())
        floor_code = FLOOR_SNIPPET.format(
            guard=str(guard), site=str(ours_site), packages=SITE_PACKAGES, names=names
        )
        start_argv = [PYTHON, "-IS", "-c", "pass"]
        floor_argv = [PYTHON, "-IS", "-c", floor_code]
        subprocess.run(floor_argv, env=ours_env, check=True)  # every module imports (exit 0)
        timed(theirs_argv, theirs_env, tmp)
        ours: list[Sample] = []
        theirs: list[Sample] = []
        uncached: list[Sample] = []
        started: list[Sample] = []
        floor: list[Sample] = []
        staged: list[Sample] = []
        for index in range(args.runs):
            ours.append(timed(ours_argv(index), ours_env, tmp))
            theirs.append(timed(theirs_argv, theirs_env, tmp))
            uncached.append(timed(import_argv, uncached_env, tmp))
            staged.append(ours_staged(index))
            started.append(timed(start_argv, ours_env, tmp))
            floor.append(timed(floor_argv, ours_env, tmp))
        counts = {}
        if args.instructions:
            counts["ours"] = instructions(ours_argv("counted"), ours_env)
            counts["theirs"] = instructions(theirs_argv, theirs_env)
            counts["floor"] = instructions(floor_argv, ours_env)

        last = tmp / f"root-{args.runs - 1}"
        record = json.loads((last / "run/metaboot/status.json").read_text())
        modules = [m for s in record["stages"].values() for m in s["modules"]]
        ran = [m["name"] for m in modules if m["result"] in ("changed", "ok")]
        errors = [e for s in record["stages"].values() for e in s["errors"]]
        print(f"service: {url} (metaboot serve, SQLite registry)")
        print(
            f"metaboot first boot: source {record['source']}, {len(modules)} module(s) listed, "
            f"{len(ran)} ran: {', '.join(ran) or '-'}; {len(errors)} error(s)"
        )
        for line in ours[-1].out.splitlines():
            if "ERROR" in line or "warning" in line:
                print(f"  {line}")
        analyze = subprocess.run(
            [str(launcher), "analyze", "--root", str(last)],
            env=ours_env,
            capture_output=True,
            text=True,
            check=False,
        )
        print("last run, as `metaboot analyze` shows it:")
        print("\n".join("  " + line for line in analyze.stdout.splitlines()))
        print()
        run_fs = "a tmpfs, as in a booted guest" if MOUNTS else "disk (not root: no tmpfs)"
        print(f"the fresh images' /run (status record, instance data): {run_fs}")
        print(
            f"condition: Debian's {PYTHON}; both sides compiled at install, as in a Debian "
            f"guest ({ours_compiled} metaboot and {theirs_compiled} cloud-init modules, "
            "standard library from Debian's own byte-code (ours: from the bundle), no "
            "PYTHONPYCACHEPREFIX); one "
            "warm-up run each; runs alternate."
        )
        print(f"{'':38}{'wall ms':>9}{'best':>9}{'CPU ms':>9}{'best':>9}{'RSS MiB':>9}")
        print(row("metaboot init (whole first boot)", ours))
        print(row("cloud-init import + crawl", theirs))
        print(row("cloud-init import alone, uncached *", uncached))
        print(row("metaboot as 4 stage processes *", staged))
        print(row("floor: python3 -IS start *", started))
        print(row(f"floor: + {len(names)} stdlib/PyYAML modules *", floor))
        print("  * reference only: cloud-init's byte-code not cached (the stdlib's is); the")
        print("    same first boot as the systemd units run it, one process per stage (sums);")
        print("    the interpreter alone, then with the standard library and PyYAML modules")
        print("    the boot loaded (net guard included): what a Python agent pays before its code")
        ours_wall = statistics.median(s.wall for s in ours)
        ours_rss = max(s.rss for s in ours)
        ratio = statistics.median(s.wall for s in theirs) / ours_wall
        best_ratio = min(s.wall for s in theirs) / min(s.wall for s in ours)
        cpu_ratio = statistics.median(s.cpu for s in theirs) / statistics.median(
            s.cpu for s in ours
        )
        # Each of our boots against the cloud-init run right after it: a slow phase of this
        # shared machine then weighs on both sides of a ratio, not on one side's median.
        paired = statistics.median(t.wall / o.wall for o, t in zip(ours, theirs, strict=True))
        print()
        print(
            f"cloud-init / metaboot: {ratio:.2f}x (wall medians), {best_ratio:.2f}x (best walls), "
            f"{paired:.2f}x (median of the paired runs' ratios), {cpu_ratio:.2f}x (CPU medians)"
        )
        if counts.get("ours") and counts.get("theirs"):
            mine, other = counts["ours"], counts["theirs"]
            assert mine is not None and other is not None
            print(
                f"instructions (callgrind, the Python process only): metaboot {mine / 1e6:.0f}M, "
                f"cloud-init {other / 1e6:.0f}M, ratio {other / mine:.2f}x"
            )
            if counts.get("floor"):
                base = counts["floor"]
                assert base is not None
                print(
                    f"  floor (interpreter + stdlib/PyYAML modules) {base / 1e6:.0f}M: "
                    f"cloud-init / floor {other / base:.2f}x; 5x needs metaboot <= "
                    f"{other / 5e6:.0f}M"
                )
        floor_wall = statistics.median(s.wall for s in floor)
        theirs_wall = statistics.median(s.wall for s in theirs)
        print(
            f"5x needs a boot of {theirs_wall / 5 * 1000:.1f} ms; the floor alone is "
            f"{floor_wall * 1000:.1f} ms ({theirs_wall / floor_wall:.2f}x), leaving "
            f"{(theirs_wall / 5 - floor_wall) * 1000:.1f} ms for the agent's own modules and work "
            f"(they take {(ours_wall - floor_wall) * 1000:.1f} ms now)"
        )
        print("targets:")
        verdict = "met" if ours_wall < 0.150 else "NOT met"
        print(f"  whole first boot < 150 ms : {ours_wall * 1000:7.1f} ms   {verdict}")
        rss_verdict = "met" if ours_rss < 30 else "NOT met"
        print(f"  peak RSS < 30 MB          : {ours_rss:7.1f} MiB  {rss_verdict}")
        print(
            f"  >= 5x faster (wall)       : {ratio:7.2f}x     {'met' if ratio >= 5 else 'NOT met'}"
        )
        load = os.getloadavg()
        print(
            f"(load average {load[0]:.2f} on {os.cpu_count()} CPUs; on a busy machine read the "
            "ratios, not the absolute figures)"
        )
    finally:
        unmount_all()
        service.terminate()
        try:
            service.wait(10)
        except subprocess.TimeoutExpired:
            service.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
