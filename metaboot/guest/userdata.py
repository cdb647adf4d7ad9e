"""User-data and vendor-data: from raw bytes to cloud-config, scripts and boothooks.

Understands what cloud-init does: ``#cloud-config`` YAML, ``#!`` scripts, ``#cloud-boothook``,
``#include``/``#include-once`` URLs, ``#cloud-config-archive``, ``## template: jinja``, MIME
multipart (with base64 or gzip parts), and gzip. Pure apart from the two callables it is given
(fetching an include, rendering a template), so every rule here is tested without a network.

Nothing in one part can stop another part from applying: each problem is recorded with the part
it came from (and the line, for YAML) and processing moves on. Sizes are bounded: decoded and
decompressed data beyond ``max_bytes`` is refused, so a gzip bomb costs a few milliseconds.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from metaboot.errors import MetabootError, UserDataError
from metaboot.guest import merging
from metaboot.guest.charsets import ASCII_ALNUM
from metaboot.guest.records import dataclass, field
from metaboot.guest.schema import load_yaml

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

GZIP_MAGIC = b"\x1f\x8b"

# First-line headers, longest first (cloud-init's INCLUSION_TYPES_MAP, lower-cased).
_STARTS = (
    ("#cloud-config-archive", "text/cloud-config-archive"),
    ("#cloud-config-jsonp", "text/cloud-config-jsonp"),
    ("#cloud-config", "text/cloud-config"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#include-once", "text/x-include-once-url"),
    ("#include", "text/x-include-url"),
    ("#part-handler", "text/part-handler"),
    ("## template: jinja", "text/jinja2"),
    ("#!", "text/x-shellscript"),
)
_SNIFFED = {"text/plain", "text/x-not-multipart", "application/octet-stream", ""}
_GZIP_TYPES = {"application/gzip", "application/x-gzip", "application/x-gzip-compressed"}
_SCRIPT_TYPES = {
    "text/x-shellscript": "instance-part",
    "text/x-shellscript-per-boot": "per-boot",
    "text/x-shellscript-per-instance": "per-instance",
    "text/x-shellscript-per-once": "per-once",
}
_UNSUPPORTED = {
    "text/cloud-config-jsonp": "JSON-patch cloud-config (#cloud-config-jsonp) is not supported",
    "text/part-handler": "part handlers (#part-handler) are not supported",
}
_SAFE_NAME = frozenset(ASCII_ALNUM + "._-")  # other characters of a script name become "_"


@dataclass
class Script:
    """A script to store: ``kind`` is ``instance-part`` (run by scripts_user), ``per-boot``,
    ``per-instance``, ``per-once`` (the shared scripts dirs), or ``boothook``."""

    name: str
    payload: bytes
    kind: str
    origin: str


@dataclass
class PartInfo:
    label: str
    content_type: str
    size: int
    outcome: str  # "cloud-config", "script", "boothook", "include", "ignored", "error"


@dataclass
class ConfigPart:
    label: str
    config: dict[str, Any]
    mergers: merging.Mergers
    text: str  # kept to find line numbers when a key turns out to be wrong

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        from metaboot.guest.schema import line_map

        lines = line_map(self.text)
        if path and not isinstance(path[0], str):
            # A top-level key YAML read as a number or a date: the text has it as a string.
            path = (str(path[0]), *path[1:])
        for cut in range(len(path), 0, -1):
            if path[:cut] in lines:
                return lines[path[:cut]]
        return None


@dataclass
class Processed:
    configs: list[ConfigPart] = field(default_factory=list)
    scripts: list[Script] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    parts: list[PartInfo] = field(default_factory=list)

    def merged(self) -> dict[str, Any]:
        """All cloud-config parts merged in order, each with its own merge rules."""
        result: dict[str, Any] = {}
        for part in self.configs:
            result = merging.merge(result, part.config, part.mergers)
        return result

    def origin_of(self, path: tuple[str | int, ...]) -> tuple[str, int | None] | None:
        """Which part set the (top-level) key of ``path`` last, and on which line."""
        for part in reversed(self.configs):
            if path and path[0] in part.config:
                return part.label, part.line_of(path)
        return None


@dataclass
class Options:
    max_bytes: int = 1024 * 1024
    include_depth: int = 5
    fetch: Callable[[str], bytes] | None = None  # #include URL -> body (raises on failure)
    render: Callable[[str], str] | None = None  # jinja template text -> rendered text
    render_missing: str = "templates need jinja2, which is not installed (python3-jinja2)"


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int, what: str) -> None:
        self.used += size
        if self.used > self.limit:
            raise UserDataError(
                f"{what}: more than {self.limit} bytes of data in total (the configured "
                "user_data.max_bytes); the rest is ignored"
            )


def process(raw: bytes | None, origin: str, options: Options) -> Processed:
    """Process one blob of user-data or vendor-data (``origin`` names it in messages)."""
    out = Processed()
    if raw is None or not raw.strip():
        return out
    walker = _Walker(origin, options, out)
    try:
        walker.budget.take(len(raw), origin)
    except UserDataError as err:
        out.problems.append(str(err))
        out.parts.append(PartInfo(origin, "", len(raw), "error"))
        return out
    walker.walk(raw, origin, "", None, 0)
    return out


def process_items(items: list[Any], origin: str, options: Options) -> Processed:
    """A list of parts (vendor-data's list form, or an archive): strings or
    ``{type, content, filename}`` mappings."""
    out = Processed()
    walker = _Walker(origin, options, out)
    walker.archive_items(items, origin, 0)
    return out


class _Walker:
    def __init__(self, origin: str, options: Options, out: Processed) -> None:
        self.origin = origin
        self.options = options
        self.out = out
        self.budget = _Budget(options.max_bytes)
        self.counter = 0

    def _label(self, ctype: str, filename: str | None) -> str:
        self.counter += 1
        name = f", {filename!r}" if filename else ""
        return f"{self.origin} part {self.counter} ({ctype}{name})"

    def problem(self, info: PartInfo, message: str) -> None:
        info.outcome = "error"
        self.out.problems.append(message)

    def walk(self, data: bytes, where: str, ctype: str, filename: str | None, depth: int) -> None:
        """``where`` names the container for messages; ``ctype`` is a declared type or ''."""
        if depth > 20:
            self.out.problems.append(f"{where}: nested too deeply; ignored")
            return
        if data.startswith(GZIP_MAGIC) or ctype in _GZIP_TYPES:
            try:
                data = self.gunzip(data, where)
            except UserDataError as err:
                self.out.problems.append(str(err))
                self.out.parts.append(
                    PartInfo(where, ctype or "application/gzip", len(data), "error")
                )
                return
            ctype = "" if ctype in _GZIP_TYPES else ctype
        if ctype in _SNIFFED or ctype.startswith("multipart/"):
            if ctype.startswith("multipart/") or _looks_like_mime(data):
                self.mime(data, where, depth)
                return
            ctype = sniff(data)
        self.part(data, ctype, filename, depth)

    def gunzip(self, data: bytes, where: str) -> bytes:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        room = self.budget.limit - self.budget.used
        try:
            result = inflater.decompress(data, max(room, 0) + 1)
        except zlib.error as err:
            raise UserDataError(f"{where}: not valid gzip data ({err})") from None
        if not inflater.eof and not inflater.unconsumed_tail and len(result) <= room:
            raise UserDataError(f"{where}: not valid gzip data (truncated)")
        if len(result) > room or inflater.unconsumed_tail:
            raise UserDataError(
                f"{where}: gzip data expands beyond the {self.budget.limit}-byte limit "
                "(user_data.max_bytes); ignored"
            )
        self.budget.take(len(result), where)
        return result

    def mime(self, data: bytes, where: str, depth: int) -> None:
        import email.parser
        import email.policy

        try:
            message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
        except Exception as err:  # the email parser promises not to raise, but be sure
            self.out.problems.append(f"{where}: broken MIME message ({err}); ignored")
            return
        for defect in message.defects:
            self.out.problems.append(f"{where}: MIME problem: {_defect_text(defect)}")
        if not message.is_multipart():
            if message.get_content_maintype() == "multipart":
                self.out.problems.append(f"{where}: multipart message without parts; ignored")
                return
            payload = message.get_payload(decode=True)
            if isinstance(payload, bytes):
                self.mime_leaf(message, payload, where, depth)
            return
        for sub in message.walk():
            if sub.is_multipart():
                for defect in sub.defects if sub is not message else ():
                    self.out.problems.append(f"{where}: MIME problem: {_defect_text(defect)}")
                continue
            payload = sub.get_payload(decode=True)
            if not isinstance(payload, bytes):
                continue
            for defect in sub.defects:
                self.out.problems.append(f"{where}: MIME problem: {_defect_text(defect)}")
            self.mime_leaf(sub, payload, where, depth)

    def mime_leaf(self, sub: Any, payload: bytes, where: str, depth: int) -> None:
        ctype = sub.get_content_type().lower()
        filename = sub.get_filename()
        merge_header = sub.get("Merge-Type") or sub.get("X-Merge-Type")
        if ctype in _GZIP_TYPES or payload.startswith(GZIP_MAGIC):
            self.walk(payload, f"{where} ({filename or ctype})", ctype, filename, depth + 1)
            return
        if ctype in _SNIFFED:
            ctype = sniff(payload)
        self.part(payload, ctype, filename, depth + 1, merge_header=merge_header)

    def part(
        self,
        data: bytes,
        ctype: str,
        filename: str | None,
        depth: int,
        *,
        merge_header: str | None = None,
    ) -> None:
        label = self._label(ctype or "unknown", filename)
        info = PartInfo(label, ctype, len(data), "ignored")
        self.out.parts.append(info)
        try:
            self.handle(data, ctype, filename, label, info, depth, merge_header)
        except UserDataError as err:
            self.problem(info, str(err))
        except MetabootError as err:
            self.problem(info, f"{label}: {err}")

    def handle(
        self,
        data: bytes,
        ctype: str,
        filename: str | None,
        label: str,
        info: PartInfo,
        depth: int,
        merge_header: str | None,
    ) -> None:
        if ctype == "text/cloud-config":
            text = _decode(data, label)
            config, mergers = self.cloud_config(text, label, merge_header)
            self.out.configs.append(ConfigPart(label, config, mergers, text))
            info.outcome = "cloud-config"
        elif ctype in _SCRIPT_TYPES:
            name = self.script_name(filename)
            self.out.scripts.append(Script(name, data, _SCRIPT_TYPES[ctype], label))
            info.outcome = "script"
        elif ctype == "text/cloud-boothook":
            body = (
                _strip_first_line(data)
                if data.lstrip().lower().startswith(b"#cloud-boothook")
                else data
            )
            self.out.scripts.append(Script(self.script_name(filename), body, "boothook", label))
            info.outcome = "boothook"
        elif ctype in ("text/x-include-url", "text/x-include-once-url"):
            info.outcome = "include"
            self.include(data, label, depth)
        elif ctype == "text/cloud-config-archive":
            items = load_yaml(data, label)
            if not isinstance(items, list):
                raise UserDataError(f"{label}: expected a YAML list of parts")
            info.outcome = "archive"
            self.archive_items(items, label, depth + 1)
        elif ctype == "text/jinja2":
            info.outcome = "template"
            self.template(data, label, filename, depth)
        elif ctype in _UNSUPPORTED:
            raise UserDataError(f"{label}: {_UNSUPPORTED[ctype]}; ignored")
        elif ctype.startswith("multipart/"):
            self.mime(data, label, depth + 1)
        else:
            raise UserDataError(f"{label}: unrecognised content {_preview(data)}; ignored")

    def script_name(self, filename: str | None) -> str:
        if filename:
            base = filename.rsplit("/", 1)[-1]
            clean = "".join(c if c in _SAFE_NAME else "_" for c in base).lstrip(".")
            if clean:
                return clean
        return f"part-{self.counter:03d}"

    def cloud_config(
        self, text: str, label: str, merge_header: str | None
    ) -> tuple[dict[str, Any], merging.Mergers]:
        config = load_yaml(text, label)
        if config is None:
            return {}, merging.DEFAULT
        if not isinstance(config, dict):
            raise UserDataError(
                f"{label}: expected a mapping at the top level, got {_kind(config)}; ignored"
            )
        check_shape(config, label)
        spec = config.pop("merge_how", None)
        if spec is None:
            spec = config.pop("merge_type", None)
        if spec is None:
            spec = merge_header
        mergers = merging.parse_spec(spec) if spec is not None else merging.DEFAULT
        if spec is not None and not mergers:
            mergers = merging.DEFAULT
        return config, mergers

    def include(self, data: bytes, label: str, depth: int) -> None:
        if depth >= self.options.include_depth + 1:
            raise UserDataError(
                f"{label}: includes nested more than {self.options.include_depth} deep"
            )
        urls = [
            line.strip()
            for line in _decode(data, label).splitlines()[1:]
            if line.strip() and not line.strip().startswith("#")
        ]
        for url in urls:
            if not url.lower().startswith(("http://", "https://")):
                raise UserDataError(
                    f"{label}: cannot include {url!r}: only http(s) URLs are fetched"
                )
            if self.options.fetch is None:
                raise UserDataError(
                    f"{label}: cannot include {url}: fetching is not available here"
                )
            try:
                body = self.options.fetch(url)
            except MetabootError as err:
                # cloud-init stops at the first failing include; so do we.
                raise UserDataError(
                    f"{label}: include {url} failed: {err}; later URLs skipped"
                ) from None
            self.budget.take(len(body), f"{label}: include {url}")
            self.walk(body, f"{label} -> {url}", "", None, depth + 1)

    def archive_items(self, items: list[Any], where: str, depth: int) -> None:
        for index, item in enumerate(items):
            if isinstance(item, str):
                data, ctype, filename = item.encode("utf-8"), "", None
            elif isinstance(item, dict) and isinstance(item.get("content", ""), str):
                data = item.get("content", "").encode("utf-8")
                ctype = str(item.get("type") or "")
                filename = item.get("filename") if isinstance(item.get("filename"), str) else None
                encoding = str(item.get("encoding") or "").lower()
                if encoding:
                    try:
                        data = _decode_transfer(data, encoding)
                    except UserDataError as err:
                        self.out.problems.append(f"{where} item {index + 1}: {err}; ignored")
                        continue
            else:
                self.out.problems.append(
                    f"{where} item {index + 1}: expected a string or a mapping; ignored"
                )
                continue
            self.walk(data, f"{where} item {index + 1}", ctype.lower(), filename, depth)

    def template(self, data: bytes, label: str, filename: str | None, depth: int) -> None:
        body = _strip_first_line(data)
        if self.options.render is None:
            raise UserDataError(f"{label}: {self.options.render_missing}; ignored")
        try:
            rendered = self.options.render(_decode(body, label)).encode("utf-8")
        except UserDataError as err:
            raise UserDataError(f"{label}: {err}; ignored") from None
        self.budget.take(len(rendered), label)
        if not rendered.strip():
            return
        self.walk(rendered, f"{label} (rendered)", "", filename, depth + 1)


MAX_NODES = 200_000
MAX_DEPTH = 64


def check_shape(value: Any, label: str) -> None:
    """Refuse YAML whose aliases expand it past MAX_NODES values ("billion laughs") or that
    nests deeper than MAX_DEPTH: both would exhaust memory or the stack further down."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise UserDataError(
                f"{label}: the document expands to more than {MAX_NODES} values "
                "(YAML aliases?); ignored"
            )
        if depth > MAX_DEPTH:
            raise UserDataError(f"{label}: nested more than {MAX_DEPTH} levels deep; ignored")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def sniff(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    for prefix, ctype in _STARTS:
        if head.startswith(prefix.encode()):
            return ctype
    return "text/x-not-multipart"


def _looks_like_mime(data: bytes) -> bool:
    head = data[:4096].lower()
    return head.lstrip().startswith(b"content-type:") or b"mime-version:" in head


def _decode(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserDataError(
            f"{label}: not UTF-8 text (byte {err.start}, line {line}); ignored"
        ) from None


def _decode_transfer(data: bytes, encoding: str) -> bytes:
    import base64
    import binascii

    steps = encoding.replace("gzip", "gz").replace("base64", "b64").split("+")
    for step in reversed(steps):
        if step == "b64":
            try:
                data = base64.b64decode(data, validate=False)
            except (binascii.Error, ValueError) as err:
                raise UserDataError(f"invalid base64 ({err})") from None
        elif step == "gz":
            continue  # handled by walk() through the magic bytes
        else:
            raise UserDataError(f"unknown encoding {encoding!r}")
    return data


def _strip_first_line(data: bytes) -> bytes:
    return data.lstrip().split(b"\n", 1)[1] if b"\n" in data.lstrip() else b""


def _preview(data: bytes) -> str:
    head = data[:24]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        lines = [line for line in head.decode("ascii").splitlines() if line.strip()]
        first = lines[0] if lines else ""
        return f"(first line starts {first!r}, no known header such as #cloud-config or #!)"
    return f"(binary data starting {head[:12].hex(' ')})"


def _kind(value: Any) -> str:
    return {
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
    }.get(type(value), type(value).__name__)


def _defect_text(defect: Any) -> str:
    text = type(defect).__name__
    detail = str(defect)
    return f"{text} ({detail})" if detail and detail != text else text


# ---- vendor-data --------------------------------------------------------------------------


def vendor_payloads(vendor_data: Any, vendor_data2: Any) -> list[tuple[str, Any]]:
    """What to process from vendor_data.json and vendor_data2.json, in order (later wins).

    vendor_data.json: its ``cloud-init`` key (a NoCloud vendor-data file is taken whole).
    vendor_data2.json: a top-level ``cloud-init`` key, then each provider entry's one."""
    found: list[tuple[str, Any]] = []
    if isinstance(vendor_data, bytes | str):
        found.append(("vendor-data", vendor_data))
    elif isinstance(vendor_data, dict) and "cloud-init" in vendor_data:
        found.append(("vendor_data.json", vendor_data["cloud-init"]))
    elif isinstance(vendor_data, list):
        found.append(("vendor-data", vendor_data))
    if isinstance(vendor_data2, dict):
        if "cloud-init" in vendor_data2:
            found.append(("vendor_data2.json", vendor_data2["cloud-init"]))
        for name, entry in vendor_data2.items():
            if isinstance(entry, dict) and "cloud-init" in entry:
                found.append((f"vendor_data2.json[{name}]", entry["cloud-init"]))
    return [(where, value) for where, value in found if value]


def process_vendor(vendor_data: Any, vendor_data2: Any, options: Options) -> Processed:
    out = Processed()
    for where, value in vendor_payloads(vendor_data, vendor_data2):
        if isinstance(value, str):
            part = process(value.encode("utf-8"), where, options)
        elif isinstance(value, bytes):
            part = process(value, where, options)
        elif isinstance(value, list):
            part = process_items(value, where, options)
        else:
            out.problems.append(
                f"{where}: the cloud-init entry must be a string or a list, not {_kind(value)}"
            )
            continue
        out.configs += part.configs
        out.scripts += part.scripts
        out.problems += part.problems
        out.parts += part.parts
    return out
