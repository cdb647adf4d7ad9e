"""Our user-data processing against Debian's cloud-init on the same blobs.

cloud-init's UserDataProcessor explodes the blob into typed parts, and its cloud-config part
handler merges them; we compare the part types, the script payloads and the merged config.
"""

from __future__ import annotations

import base64
import gzip
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest

from metaboot.guest.userdata import Options, process
from tests.reference import available, run_cloudinit, unbytes

pytestmark = pytest.mark.cloudinit


def _mime() -> bytes:
    message = MIMEMultipart()
    message.attach(MIMEText("#cloud-config\nhostname: one\nruncmd: [a, b]\n", "cloud-config"))
    second = MIMEText("#cloud-config\nruncmd: [c]\npackages: [x]\n", "cloud-config")
    second["Merge-Type"] = "list(append)+dict(no_replace,recurse_list)+str()"
    message.attach(second)
    message.attach(MIMEText("#!/bin/sh\necho mime\n", "x-shellscript"))
    message.attach(MIMEText("#cloud-config\nhostname: three\n", "plain"))
    message.attach(MIMEText("#cloud-boothook\n#!/bin/sh\necho hook\n", "plain"))
    return message.as_bytes()


BLOBS: dict[str, bytes] = {
    "plain cloud-config": b"#cloud-config\nhostname: h\nusers: [default]\n",
    "script": b"#!/bin/bash\necho hello\n",
    "gzip cloud-config": gzip.compress(b"#cloud-config\ntimezone: UTC\n"),
    "mime": _mime(),
    "gzip mime": gzip.compress(_mime()),
    "archive": (
        b"#cloud-config-archive\n"
        b"- type: text/cloud-config\n  content: 'locale: C.UTF-8'\n"
        b'- content: "#!/bin/sh\\necho arch\\n"\n'
        b'- "#cloud-config\\ntimezone: Etc/UTC\\n"\n'
    ),
    "merge_how in yaml": (
        b'Content-Type: multipart/mixed; boundary="B"\nMIME-Version: 1.0\n\n'
        b"--B\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd: [one]\n"
        b"--B\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd: [two]\n"
        b"merge_how: list(prepend)+dict(no_replace,recurse_list)+str()\n--B--\n"
    ),
    "base64 part": (
        b'Content-Type: multipart/mixed; boundary="B"\nMIME-Version: 1.0\n\n'
        b"--B\nContent-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(b"#!/bin/sh\necho b64\n")
        + b"\n--B--\n"
    ),
}

_SNIPPET = """
import base64, tempfile
from cloudinit import helpers, user_data, handlers
from cloudinit.handlers.cloud_config import CloudConfigPartHandler
blobs = {blobs!r}
result = {{}}
for name, encoded in blobs.items():
    tmp = tempfile.mkdtemp()
    paths = helpers.Paths({{"cloud_dir": tmp, "run_dir": tmp}})
    msg = user_data.UserDataProcessor(paths).process(base64.b64decode(encoded))
    handler = CloudConfigPartHandler(paths)
    handler.handle_part(None, handlers.CONTENT_START, None, None, None, None)
    parts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        payload = part.get_payload(decode=True)
        parts.append([ctype, payload])
        if ctype == "text/cloud-config":
            fname = part.get_filename() or "part"
            handler.handle_part(None, ctype, fname, payload.decode(), None, dict(part))
    result[name] = {{"parts": parts, "config": handler.cloud_buf or {{}}}}
"""


def theirs() -> dict[str, Any]:
    assert available(), "Debian's cloud-init is missing: run scripts/setup-system"
    encoded = {name: base64.b64encode(blob).decode() for name, blob in BLOBS.items()}
    return dict(unbytes(run_cloudinit(_SNIPPET.format(blobs=encoded))))


def test_same_parts_and_config_as_cloud_init(tmp_path: Path) -> None:
    reference = theirs()
    for name, blob in BLOBS.items():
        out = process(blob, "user-data", Options())
        assert out.problems == [], name
        expected = reference[name]
        kinds = {
            "text/cloud-config": "cloud-config",
            "text/x-shellscript": "script",
            "text/cloud-boothook": "boothook",
        }
        their_parts = [(kinds.get(ctype, ctype), payload) for ctype, payload in expected["parts"]]
        our_parts = [(p.outcome, p.content_type) for p in out.parts if p.outcome != "archive"]
        assert [k for k, _ in their_parts] == [k for k, _ in our_parts], name
        their_scripts = [p for k, p in their_parts if k == "script"]
        assert [s.payload for s in out.scripts if s.kind == "instance-part"] == their_scripts, name
        their_hooks = [p for k, p in their_parts if k == "boothook"]
        # cloud-init strips the #cloud-boothook line when it writes the hook; so do we.
        assert [s.payload for s in out.scripts if s.kind == "boothook"] == [
            h.split(b"\n", 1)[1] for h in their_hooks
        ], name
        assert out.merged() == expected["config"], name
