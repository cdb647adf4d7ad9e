"""User-data processing: every format, every failure named with its part and line."""

from __future__ import annotations

import base64
import gzip
import time
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from metaboot.errors import UserDataError
from metaboot.guest.userdata import Options, process, process_vendor, sniff
from tests.guest.helpers import ServerState, dead_url, metadata_server, tree


def mime(*parts: tuple[str, str, str | None]) -> bytes:
    message = MIMEMultipart()
    for content, subtype, filename in parts:
        part = MIMEText(content, subtype, "utf-8")
        if filename:
            part.add_header("Content-Disposition", "attachment", filename=filename)
        message.attach(part)
    return message.as_bytes()


def test_sniffing_by_first_line() -> None:
    assert sniff(b"#cloud-config\na: 1") == "text/cloud-config"
    assert sniff(b"  #Cloud-Config\n") == "text/cloud-config"
    assert sniff(b"#cloud-config-archive\n") == "text/cloud-config-archive"
    assert sniff(b"#!/bin/bash\n") == "text/x-shellscript"
    assert sniff(b"#include-once\n") == "text/x-include-once-url"
    assert sniff(b"## template: jinja\n") == "text/jinja2"
    assert sniff(b"hello") == "text/x-not-multipart"


def test_cloud_config_parts_merge_later_wins() -> None:
    raw = mime(
        ("#cloud-config\nhostname: one\nruncmd: [a]\n", "cloud-config", None),
        ("#cloud-config\nhostname: two\n", "cloud-config", None),
        ("#!/bin/sh\necho hi\n", "x-shellscript", "hello.sh"),
        ("#!/bin/sh\necho every boot\n", "x-shellscript-per-boot", "boot.sh"),
        ("#cloud-boothook\n#!/bin/sh\necho early\n", "cloud-boothook", None),
    )
    out = process(raw, "user-data", Options())
    assert out.problems == []
    assert out.merged() == {"hostname": "two", "runcmd": ["a"]}
    scripts = [(s.name, s.kind, s.payload) for s in out.scripts]
    assert scripts == [
        ("hello.sh", "instance-part", b"#!/bin/sh\necho hi\n"),
        ("boot.sh", "per-boot", b"#!/bin/sh\necho every boot\n"),
        ("part-005", "boothook", b"#!/bin/sh\necho early\n"),
    ]
    assert [p.outcome for p in out.parts] == ["cloud-config"] * 2 + ["script"] * 2 + ["boothook"]


def test_gzip_base64_and_nested_multipart() -> None:
    inner = MIMEMultipart()
    inner.attach(MIMEText("#cloud-config\ntimezone: UTC\n", "cloud-config"))
    gz_part = MIMEBase("application", "gzip")
    gz_part.set_payload(gzip.compress(b"#cloud-config\nlocale: C.UTF-8\n"))
    from email import encoders

    encoders.encode_base64(gz_part)
    outer = MIMEMultipart()
    outer.attach(inner)
    outer.attach(gz_part)
    b64 = MIMEText("#!/bin/sh\necho b64\n", "x-shellscript", "utf-8")
    del b64["Content-Transfer-Encoding"]
    b64.set_payload(base64.b64encode(b"#!/bin/sh\necho b64\n").decode())
    b64["Content-Transfer-Encoding"] = "base64"
    outer.attach(b64)
    raw = gzip.compress(outer.as_bytes())
    out = process(raw, "user-data", Options())
    assert out.problems == []
    assert out.merged() == {"timezone": "UTC", "locale": "C.UTF-8"}
    assert [s.payload for s in out.scripts] == [b"#!/bin/sh\necho b64\n"]


def test_invalid_yaml_names_part_and_line_and_others_still_apply() -> None:
    raw = mime(
        ("#cloud-config\nhostname: ok\n", "cloud-config", None),
        ("#cloud-config\nusers:\n  - name: a\n   bad: indent\n", "cloud-config", "broken.yaml"),
        ("#cloud-config\n- a list\n", "cloud-config", None),
        ("#cloud-config\ntimezone: UTC\n", "cloud-config", None),
    )
    out = process(raw, "user-data", Options())
    assert out.merged() == {"hostname": "ok", "timezone": "UTC"}
    assert len(out.problems) == 2
    assert out.problems[0].startswith(
        "user-data part 2 (text/cloud-config, 'broken.yaml'): invalid YAML at line 4, column 4"
    )
    assert out.problems[1] == (
        "user-data part 3 (text/cloud-config): "
        "expected a mapping at the top level, got a list; ignored"
    )


def test_merge_how_in_a_part_and_in_a_mime_header() -> None:
    second = MIMEText("#cloud-config\nruncmd: [b]\n", "cloud-config")
    second["Merge-Type"] = "list(append)+dict(no_replace,recurse_list)+str()"
    message = MIMEMultipart()
    message.attach(MIMEText("#cloud-config\nruncmd: [a]\n", "cloud-config"))
    message.attach(second)
    message.attach(
        MIMEText(
            "#cloud-config\nruncmd: [c]\nmerge_how: list(prepend)+dict(no_replace,recurse_list)\n",
            "cloud-config",
        )
    )
    assert process(message.as_bytes(), "user-data", Options()).merged() == {
        "runcmd": ["c", "a", "b"]
    }


def test_unknown_binary_and_unsupported_parts_are_reported() -> None:
    out = process(b"\x89PNG\r\n\x1a\n\x00\x00binary", "user-data", Options())
    assert out.problems == [
        "user-data part 1 (text/x-not-multipart): unrecognised content "
        "(binary data starting 89 50 4e 47 0d 0a 1a 0a 00 00 62 69); ignored"
    ]
    out = process(b"hello world\n", "user-data", Options())
    assert "first line starts 'hello world', no known header" in out.problems[0]
    out = process(b"#part-handler\ndef list_types(): pass\n", "user-data", Options())
    assert out.problems == [
        "user-data part 1 (text/part-handler): "
        "part handlers (#part-handler) are not supported; ignored"
    ]
    out = process(b"#cloud-config\nkey: \xff\xfe\n", "user-data", Options())
    assert out.problems == [
        "user-data part 1 (text/cloud-config): not UTF-8 text (byte 19, line 2); ignored"
    ]


def test_gzip_bomb_is_refused_quickly() -> None:
    bomb = gzip.compress(b"#cloud-config\n" + b"a" * (200 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 300_000
    start = time.monotonic()
    out = process(bomb, "user-data", Options(max_bytes=1024 * 1024))
    assert time.monotonic() - start < 2
    assert out.configs == []
    assert out.problems == [
        "user-data: gzip data expands beyond the 1048576-byte limit (user_data.max_bytes); ignored"
    ]


def test_broken_gzip_and_oversized_input() -> None:
    out = process(b"\x1f\x8b\x08\x00garbage", "user-data", Options())
    assert out.problems[0].startswith("user-data: not valid gzip data")
    big = b"#cloud-config\n" + b"#" * (2 * 1024 * 1024)
    out = process(big, "user-data", Options(max_bytes=1024 * 1024))
    assert out.problems == [
        "user-data: more than 1048576 bytes of data in total (the configured "
        "user_data.max_bytes); the rest is ignored"
    ]


def test_broken_mime_keeps_what_it_can() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="XYZ"\nMIME-Version: 1.0\n\n'
        b"--XYZ\nContent-Type: text/cloud-config\n\n#cloud-config\nhostname: kept\n"
        b"--XYZ\nContent-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n\n"
        b"!!notbase64!!\n"
    )
    out = process(raw, "user-data", Options())
    assert out.merged() == {"hostname": "kept"}
    assert any("MIME problem" in p for p in out.problems)
    no_parts = b'Content-Type: multipart/mixed; boundary="Q"\nMIME-Version: 1.0\n\njust text\n'
    out = process(no_parts, "user-data", Options())
    assert out.configs == [] and out.problems


def test_include_fetches_over_http_and_stops_at_first_failure() -> None:
    docs = tree()
    state = ServerState(
        docs,
        extra={
            "/a.yaml": (200, b"#cloud-config\nhostname: included\n"),
            "/b.sh": (200, b"#!/bin/sh\necho included\n"),
            "/nested": (200, b"#include\n/a.yaml\n"),
        },
    )
    with metadata_server(state) as (url, _):
        from metaboot.guest import http

        def fetch(target: str) -> bytes:
            response = http.fetch("GET", target, http.RetryPolicy(retries=0))
            if not response.ok:
                raise UserDataError(f"HTTP {response.status}")
            return response.body

        raw = f"#include\n# a comment\n{url}/a.yaml\n{url}/b.sh\n".encode()
        out = process(raw, "user-data", Options(fetch=fetch))
        assert out.problems == []
        assert out.merged() == {"hostname": "included"}
        assert [s.payload for s in out.scripts] == [b"#!/bin/sh\necho included\n"]

        raw = f"#include\n{url}/missing\n{url}/a.yaml\n".encode()
        out = process(raw, "user-data", Options(fetch=fetch))
        assert out.configs == []
        assert out.problems == [
            f"user-data part 1 (text/x-include-url): include {url}/missing failed: HTTP 404; "
            "later URLs skipped"
        ]
        out = process(
            f"#include\nfile:///etc/shadow\n{dead_url()}\n".encode(),
            "user-data",
            Options(fetch=fetch),
        )
        assert "only http(s) URLs are fetched" in out.problems[0]


def test_include_depth_is_limited() -> None:
    def fetch(url: str) -> bytes:
        return f"#include\n{url}\n".encode()

    out = process(
        b"#include\nhttp://127.0.0.1:9/loop\n", "user-data", Options(fetch=fetch, include_depth=3)
    )
    assert any("includes nested more than 3 deep" in p for p in out.problems)


def test_archive_parts() -> None:
    raw = (
        b"#cloud-config-archive\n"
        b"- type: text/cloud-config\n  content: 'hostname: arch'\n"
        b'- content: "#!/bin/sh\\necho a\\n"\n  filename: a.sh\n'
        b"- type: text/x-shellscript\n  encoding: b64\n  content: "
        + base64.b64encode(b"#!/bin/sh\necho b\n")
        + b"\n"
        b"- 42\n"
    )
    out = process(raw, "user-data", Options())
    assert out.merged() == {"hostname": "arch"}
    assert [(s.name, s.payload) for s in out.scripts] == [
        ("a.sh", b"#!/bin/sh\necho a\n"),
        ("part-004", b"#!/bin/sh\necho b\n"),
    ]
    assert out.problems == [
        "user-data part 1 (text/cloud-config-archive) item 4: "
        "expected a string or a mapping; ignored"
    ]


def test_jinja_without_jinja2_is_a_clear_error() -> None:
    raw = b"## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}\n"
    out = process(raw, "user-data", Options(render=None))
    assert out.problems == [
        "user-data part 1 (text/jinja2): templates need jinja2, which is not installed "
        "(python3-jinja2); ignored"
    ]


def test_jinja_rendering_with_a_renderer() -> None:
    def render(text: str) -> str:
        return text.replace("{{ v1.local_hostname }}", "web-7")

    raw = mime(
        ("## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}\n", "jinja2", None),
        ("#cloud-config\ntimezone: UTC\n", "cloud-config", None),
    )
    out = process(raw, "user-data", Options(render=render))
    assert out.problems == []
    assert out.merged() == {"hostname": "web-7", "timezone": "UTC"}


def test_vendor_data_cloud_init_keys() -> None:
    vendor = {
        "cloud-init": "#cloud-config\ntimezone: Europe/Paris\nlocale: fr_FR.UTF-8\n",
        "other": 1,
    }
    vendor2 = {
        "static": {"cloud-init": "#cloud-config\nlocale: de_DE.UTF-8\n"},
        "dynamic": {"not-for-us": True},
    }
    out = process_vendor(vendor, vendor2, Options())
    assert out.problems == []
    assert out.merged() == {"timezone": "Europe/Paris", "locale": "de_DE.UTF-8"}
    listed = process_vendor(
        {"cloud-init": ["#cloud-config\na: 1\n", {"content": "#!/bin/sh\n"}]}, None, Options()
    )
    assert listed.merged() == {"a": 1} and len(listed.scripts) == 1
    bad = process_vendor({"cloud-init": {"nested": "dict"}}, None, Options())
    assert bad.problems == [
        "vendor_data.json: the cloud-init entry must be a string or a list, not dict"
    ]


def test_ten_megabyte_document_is_refused_with_a_reason() -> None:
    doc = (
        b"#cloud-config\nwrite_files:\n" + b"  - path: /x\n    content: aaaaaaaaaaaaaaa\n" * 250_000
    )
    assert len(doc) > 10_000_000
    start = time.monotonic()
    out = process(doc, "user-data", Options())
    assert time.monotonic() - start < 1
    assert out.configs == [] and "more than 1048576 bytes" in out.problems[0]


def test_empty_user_data_is_nothing_not_an_error() -> None:
    for raw in (None, b"", b"  \n"):
        out = process(raw, "user-data", Options())
        assert out.parts == [] and out.problems == []
    out = process(b"#cloud-config\n", "user-data", Options())
    assert out.problems == [] and out.merged() == {}


@pytest.mark.parametrize("header", [b"#cloud-config-jsonp\n[]\n"])
def test_jsonp_is_reported_unsupported(header: bytes) -> None:
    out = process(header, "user-data", Options())
    assert "not supported" in out.problems[0]


def test_script_file_names_keep_only_safe_characters() -> None:
    """A part's file name becomes a file in the instance's scripts directory: its last path
    component, anything but ASCII letters, digits, '.', '_' and '-' replaced, no leading dot;
    nothing left gives part-NNN."""
    raw = mime(
        ("#!/bin/sh\necho 1\n", "x-shellscript", "../../etc/cron.d/we ird$ñame.sh"),
        ("#!/bin/sh\necho 2\n", "x-shellscript", "..hidden"),
        ("#!/bin/sh\necho 3\n", "x-shellscript", "sub/..."),
        ("#!/bin/sh\necho 4\n", "x-shellscript", "ok-name_1.sh"),
    )
    out = process(raw, "user-data", Options())
    assert out.problems == []
    assert [s.name for s in out.scripts] == [
        "we_ird__ame.sh",
        "hidden",
        "part-003",
        "ok-name_1.sh",
    ]
