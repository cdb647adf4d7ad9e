"""How cloud-config parts combine: cloud-init's ``merge_how`` mergers, reimplemented small.

The default for user-data parts is ``dict(replace)+list()+str()``: a later part replaces an
earlier part's top-level keys whole, as if the YAML documents had been concatenated. A part can
ask for something else with ``merge_how``/``merge_type`` in its YAML or a ``Merge-Type`` MIME
header, e.g. ``list(append)+dict(no_replace,recurse_list)+str()``.
"""

from __future__ import annotations

import re

from metaboot.errors import UserDataError

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

Mergers = dict[str, set[str]]  # merger name ("dict", "list", "str") -> its options

DEFAULT: Mergers = {"dict": {"replace"}, "list": set(), "str": set()}
# Compiled on first use, through re's own cache: most user-data has no merge_how.
_SPEC = r"^([a-z_]+)\((.*)\)$"


def parse_spec(spec: Any) -> Mergers:
    """Parse ``merge_how`` (string form, or the list form ``[{name, settings}]``)."""
    mergers: Mergers = {}
    if isinstance(spec, str):
        for item in spec.split("+"):
            item = item.strip().lower().replace("-", "_")
            if not item:
                continue
            match = re.match(_SPEC, item)
            if not match:
                raise UserDataError(f"merge_how: {item!r} is not of the form name(options)")
            name, options = match.groups()
            mergers[name] = {o.strip() for o in options.split(",") if o.strip()}
    elif isinstance(spec, list):
        for item in spec:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                options = item.get("settings") or []
                mergers[item["name"].strip().replace("-", "_")] = {str(o) for o in options}
            elif isinstance(item, list | tuple) and item and isinstance(item[0], str):
                mergers[item[0]] = {str(o) for o in item[1:]}
            else:
                raise UserDataError(f"merge_how: cannot understand entry {item!r}")
    else:
        raise UserDataError("merge_how: expected a string or a list")
    unknown = set(mergers) - {"dict", "list", "str"}
    if unknown:
        raise UserDataError(f"merge_how: unknown merger(s) {', '.join(sorted(unknown))}")
    return mergers


def merge(value: Any, merge_with: Any, mergers: Mergers) -> Any:
    """Merge ``merge_with`` into ``value``; the merger is picked by the type of ``value``,
    and a type no merger handles keeps ``value`` (as cloud-init does)."""
    if isinstance(value, dict) and "dict" in mergers:
        return _on_dict(value, merge_with, mergers)
    if isinstance(value, list | tuple) and "list" in mergers:
        return _on_list(list(value), merge_with, mergers)
    if isinstance(value, str) and "str" in mergers:
        if not isinstance(merge_with, str) or "append" not in mergers["str"]:
            return merge_with
        return value + merge_with
    return value


def _recurse(old: Any, new: Any, options: set[str], mergers: Mergers, *, dicts: bool) -> Any | None:
    if isinstance(new, list | tuple) and options & {"recurse_array", "recurse_list"}:
        return merge(old, new, mergers)
    if isinstance(new, str) and "recurse_str" in options:
        return merge(old, new, mergers)
    if isinstance(new, dict) and (dicts or "recurse_dict" in options):
        return merge(old, new, mergers)
    return None


def _on_dict(value: dict[str, Any], merge_with: Any, mergers: Mergers) -> dict[str, Any]:
    if not isinstance(merge_with, dict):
        return value
    options = mergers["dict"]
    replace = "replace" in options
    out = dict(value)
    for key, new in merge_with.items():
        if key not in out:
            out[key] = new
        elif new is None and "allow_delete" in options:
            del out[key]
        elif replace:
            out[key] = new
        else:
            merged = _recurse(out[key], new, options, mergers, dicts=True)
            if merged is not None:
                out[key] = merged
    return out


def _on_list(value: list[Any], merge_with: Any, mergers: Mergers) -> Any:
    options = mergers["list"]
    method = next(
        (m for m in ("append", "prepend", "replace", "no_replace") if m in options), "replace"
    )
    if method == "replace" and not isinstance(merge_with, list | tuple):
        return merge_with
    if not isinstance(merge_with, list | tuple):
        return value
    if method == "append":
        return value + list(merge_with)
    if method == "prepend":
        return list(merge_with) + value
    out = list(value)
    for index in range(min(len(out), len(merge_with))):
        if method == "no_replace":
            continue
        merged = _recurse(out[index], merge_with[index], options, mergers, dicts=False)
        out[index] = merge_with[index] if merged is None else merged
    return out
