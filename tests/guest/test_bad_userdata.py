"""A corpus of bad user-data, each delivered by a real config drive directory or the HTTP
service: clear errors in status and log, never a crash, and every unaffected module applies."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from metaboot.guest import runner
from metaboot.guest.modules.base import Frequency, Stage
from metaboot.guest.status import summarize
from metaboot.guest.system import Root
from tests.guest.helpers import (
    Registry,
    ServerState,
    agent_config,
    http_only,
    make_root,
    metadata_server,
    recording_module,
    run_agent,
    runs,
    spec,
    status,
    tree,
    write_drive_dir,
)

STRING = {"type": "string"}


def registry() -> Registry:
    return Registry(
        [
            recording_module(
                "hostname_mod",
                Stage.NETWORK,
                keys=("hostname",),
                schema={"type": "object", "properties": {"hostname": STRING}},
            ),
            recording_module(
                "tz_mod",
                Stage.CONFIG,
                keys=("timezone",),
                schema={"type": "object", "properties": {"timezone": STRING}},
            ),
            recording_module("always_mod", Stage.NETWORK, Frequency.ALWAYS),
            recording_module("final_mod", Stage.FINAL),
        ]
    )


def mime(*parts: str, close: bool = True) -> bytes:
    body = 'Content-Type: multipart/mixed; boundary="==B=="\nMIME-Version: 1.0\n\n'
    for part in parts:
        body += f"--==B==\n{part}\n"
    if close:
        body += "--==B==--\n"
    return body.encode()


GOOD_TZ = "Content-Type: text/cloud-config\n\n#cloud-config\ntimezone: UTC\n"
BILLION = (
    "#cloud-config\n"
    + "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 10)}]\n" for i in range(1, 9))
)

# name -> (user-data, the message that must appear, modules that must still apply)
CORPUS: dict[str, tuple[bytes, str, set[str]]] = {
    "invalid yaml": (
        mime(GOOD_TZ, "Content-Type: text/cloud-config\n\n#cloud-config\nhostname: a\n  b: c\n"),
        "user-data part 2 (text/cloud-config): invalid YAML at line 3, column 4",
        {"tz_mod", "always_mod", "final_mod"},
    ),
    "wrong type": (
        b"#cloud-config\ntimezone: UTC\nhostname: {name: web}\n",
        "module hostname_mod: user-data part 1 (text/cloud-config): hostname: expected a string, "
        "got a mapping (line 3); not run",
        {"tz_mod", "always_mod", "final_mod"},
    ),
    "unknown keys": (
        b"#cloud-config\nhostname: h\ntimezone: UTC\napt_sources: []\n",
        "user-data part 1 (text/cloud-config): key 'apt_sources' (line 4) is not supported",
        {"hostname_mod", "tz_mod", "always_mod", "final_mod"},
    ),
    "broken mime": (
        mime(
            GOOD_TZ,
            "Content-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n\n%%%bad%%%",
            "Content-Type: text/cloud-config\n\n#cloud-config\nhostname: [unterminated",
            close=False,
        ),
        "MIME problem",
        {"tz_mod", "always_mod", "final_mod"},
    ),
    "gzip bomb": (
        gzip.compress(b"#cloud-config\nhostname: x\n" + b"#" * (64 * 1024 * 1024), 9),
        "user-data: gzip data expands beyond the 1048576-byte limit",
        {"always_mod", "final_mod"},
    ),
    "binary junk": (
        bytes(range(256)) * 8,
        "user-data part 1 (text/x-not-multipart): unrecognised content (binary data starting 00 01",
        {"always_mod", "final_mod"},
    ),
    "ten megabytes": (
        b"#cloud-config\nhostname: big\nruncmd:\n" + b"  - echo " + b"y" * 10 * 1024 * 1024 + b"\n",
        "user-data: more than 1048576 bytes of data in total",
        {"always_mod", "final_mod"},
    ),
    "not utf-8": (
        mime(GOOD_TZ) + b"",
        "",
        {"tz_mod"},
    ),
    "alias bomb": (
        BILLION.encode(),
        "user-data part 1 (text/cloud-config): the document expands to more than 200000 values",
        {"always_mod", "final_mod"},
    ),
    "deep nesting": (
        b"#cloud-config\nhostname: h\nx: " + b"[" * 200 + b"]" * 200 + b"\n",
        "nested more than 64 levels deep",
        {"always_mod", "final_mod"},
    ),
    "scalar document": (
        b"#cloud-config\njust a string\n",
        "user-data part 1 (text/cloud-config): expected a mapping at the top level, got a string",
        {"always_mod", "final_mod"},
    ),
    "dates and odd keys": (
        b"#cloud-config\nhostname: h\n2024-01-01: 5\n7: seven\nwhen: 2024-05-06\n",
        "key 7 (line 4) is not supported",
        {"hostname_mod", "always_mod", "final_mod"},
    ),
}
CORPUS["not utf-8"] = (
    b"#cloud-config\nhostname: caf\xe9\n",
    "user-data part 1 (text/cloud-config): not UTF-8 text (byte 27, line 2)",
    {"always_mod", "final_mod"},
)


def boot(root: Root) -> tuple[int, str]:
    handler = runner.setup_logging(root)
    try:
        code, out, _ = run_agent(root, registry())
    finally:
        if handler is not None:
            handler.close()
    return code, out


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_user_data_on_a_config_drive(tmp_path: Path, name: str) -> None:
    user_data, message, applied = CORPUS[name]
    root = make_root(tmp_path)
    docs = tree(spec(user_data=user_data), user_data_limit=32 * 1024 * 1024)
    write_drive_dir(root, "/var/lib/metaboot/seed/config_drive", docs)
    code, out = boot(root)
    record = status(root)
    summary = summarize(record)
    everything = summary.errors + summary.recoverable
    assert any(message in line for line in everything), everything
    assert message in out  # on the console
    assert message in root.read_text("/var/log/metaboot.log")  # and in the log
    ran = {n for n in ("hostname_mod", "tz_mod", "always_mod", "final_mod") if runs(root, n)}
    assert applied <= ran
    assert summary.status in ("done", "error")  # finished: nothing crashed half-way
    assert record["stages"]["final"]["end"] is not None
    assert not [e for e in summary.errors if "internal error" in e]
    assert code in (0, 1)


def test_bad_user_data_over_http(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    user_data = mime(GOOD_TZ, "Content-Type: text/cloud-config\n\n#cloud-config\n: :\n")
    state = ServerState(tree(spec(user_data=user_data)))
    with metadata_server(state) as (url, _):
        agent_config(root, http_only(url))
        boot(root)
    summary = summarize(status(root))
    assert summary.extended == "degraded done"
    assert any(
        "user-data part 2 (text/cloud-config): invalid YAML" in r for r in summary.recoverable
    )
    assert runs(root, "tz_mod")[0]["values"] == {"timezone": "UTC"}
