#!/usr/bin/env python3
"""A whole first boot with the metaboot agent, against cloud-init's import plus its crawl.

Both clients talk to the same ``metaboot serve`` on 127.0.0.1 (an ephemeral port; the instance
is bound to 127.0.0.1 so the service identifies them by source address), both run under
Debian's ``/usr/bin/python3`` as they would in a Debian guest, with byte-code cached for both
(``PYTHONPYCACHEPREFIX``; one warm-up run each), alternating run by run:

* **metaboot**: ``metaboot init --root <fresh tree>`` — all four stages in one process:
  source detection (config drive and NoCloud looked for, then the OpenStack service),
  network rendering, user-data, every installed module, status and instance-data;
* **cloud-init**: ``import cloudinit.cmd.main`` plus ``MetadataReader(url).read_v2()`` — its
  OpenStack crawl, which includes the EC2 tree, aimed at the same loopback service (cloud-init
  would otherwise crawl EC2 at 169.254.169.254; ``tests/netguard`` is loaded into both
  processes so nothing can reach the link-local address). cloud-init's modules are not run:
  the comparison favours it.

Prints wall time and peak RSS per run (median and best), the ratio, and the targets: a whole
first boot under 150 ms and 30 MB, at least 5x faster than cloud-init's import plus crawl. The
machine is shared: read the ratio; the lead records absolute figures on a quiet machine.

    .venv/bin/python bench/first_boot.py --runs 5
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


def fresh_image(base: Path, url: str) -> None:
    """What a freshly built image holds that the agent touches (accounts, os-release, a NIC,
    networkd, sshd), plus an agent config aiming the HTTP sources at the loopback service."""
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
    """Wall seconds, CPU seconds (user + system), peak RSS (MiB) and stdout of one child.
    CPU and RSS come from /usr/bin/time (a child forked from this big process would report
    our RSS as its own)."""
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (default 5)")
    args = parser.parse_args()
    if not (Path(PYTHON).exists() and (CLOUDINIT_PATH / "cloudinit").is_dir()):
        raise SystemExit("Debian's python3 and cloud-init are needed: run scripts/setup-system")
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time is needed (Debian package 'time')")

    tmp = Path(tempfile.mkdtemp(prefix="metaboot-bench-"))
    service, url = start_service(tmp)
    try:
        cache = tmp / "pycache"
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base_env["PYTHONPYCACHEPREFIX"] = str(cache)
        ours_env = dict(base_env, PYTHONPATH=os.pathsep.join([str(NETGUARD), str(REPO)]))
        theirs_env = dict(
            base_env, PYTHONPATH=os.pathsep.join([str(NETGUARD), str(CLOUDINIT_PATH)])
        )
        snippet = CLOUDINIT_SNIPPET.replace("URL", repr(url))
        theirs_argv = [PYTHON, "-c", snippet]

        def ours_once(index: int) -> Sample:
            root = tmp / f"root-{index}"
            fresh_image(root, url)
            argv = [PYTHON, "-m", "metaboot.cli", "init", "--root", str(root)]
            return timed(argv, ours_env, tmp)

        ours_once(-1)  # warm the byte-code caches and the service's
        timed(theirs_argv, theirs_env, tmp)
        ours: list[Sample] = []
        theirs: list[Sample] = []
        for index in range(args.runs):
            ours.append(ours_once(index))
            theirs.append(timed(theirs_argv, theirs_env, tmp))
        last = tmp / f"root-{args.runs - 1}"
        record = json.loads((last / "run/metaboot/status.json").read_text())
        modules = [m for s in record["stages"].values() for m in s["modules"]]
        ran = [m["name"] for m in modules if m["result"] in ("changed", "ok")]
        print(f"service: {url} (metaboot serve, SQLite registry)")
        print(
            f"metaboot first boot: source {record['source']}, {len(modules)} module(s) listed, "
            f"{len(ran)} ran: {', '.join(ran) or '-'}"
        )
        for line in ours[-1].out.splitlines():
            if "ERROR" in line or "warning" in line:
                print(f"  {line}")
        analyze = subprocess.run(
            [PYTHON, "-m", "metaboot.cli", "analyze", "--root", str(last)],
            env=ours_env,
            capture_output=True,
            text=True,
            check=False,
        )
        print("last run, as `metaboot analyze` shows it:")
        print("\n".join("  " + line for line in analyze.stdout.splitlines()))
        print()
        header = f"{'':34}{'wall median':>12}{'wall best':>11}{'CPU median':>12}{'peak RSS':>11}"
        print(header)
        rows = (("metaboot init (whole first boot)", ours), ("cloud-init import + crawl", theirs))
        for label, samples in rows:
            wall = statistics.median(s.wall for s in samples) * 1000
            best = min(s.wall for s in samples) * 1000
            cpu = statistics.median(s.cpu for s in samples) * 1000
            rss = max(s.rss for s in samples)
            print(f"{label:34}{wall:10.1f}ms{best:9.1f}ms{cpu:10.1f}ms{rss:7.1f} MiB")
        ours_wall = statistics.median(s.wall for s in ours)
        ratio = statistics.median(s.wall for s in theirs) / ours_wall
        best_ratio = min(s.wall for s in theirs) / min(s.wall for s in ours)
        cpu_ratio = statistics.median(s.cpu for s in theirs) / statistics.median(
            s.cpu for s in ours
        )
        ours_rss = max(s.rss for s in ours)
        print()
        print(
            f"cloud-init / metaboot: {ratio:.2f}x (wall medians), {best_ratio:.2f}x (best walls), "
            f"{cpu_ratio:.2f}x (CPU medians)"
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
        service.terminate()
        try:
            service.wait(10)
        except subprocess.TimeoutExpired:
            service.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
