"""cloud-config parts merge as cloud-init merges them (checked against cloud-init itself)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from metaboot.errors import UserDataError
from metaboot.guest import merging
from tests.reference import available, run_cloudinit

# Each case: a list of cloud-config parts (dicts, possibly with merge_how), merged in order.
CASES: list[list[dict[str, Any]]] = [
    [{"a": 1, "runcmd": ["x"], "users": ["default"]}, {"runcmd": ["y"], "b": 2}],
    [{"d": {"x": 1, "y": 1}}, {"d": {"y": 2, "z": 3}}],
    [
        {"runcmd": ["one"], "d": {"x": 1}},
        {
            "runcmd": ["two"],
            "d": {"y": 2},
            "merge_how": "list(append)+dict(no_replace,recurse_list)+str()",
        },
    ],
    [
        {"packages": ["a"], "s": "abc"},
        {
            "packages": ["b", "c"],
            "s": "def",
            "merge_how": "dict(recurse_array,recurse_str)+list(prepend)+str(append)",
        },
    ],
    [
        {"l": [{"k": 1}, 2, 3], "n": 5},
        {
            "l": [{"j": 2}],
            "n": None,
            "merge_how": "dict(allow_delete,no_replace,recurse_list)+list(recurse_dict)",
        },
    ],
    [
        {"write_files": [{"path": "/a"}]},
        {
            "write_files": [{"path": "/b"}],
            "merge_how": [
                {"name": "list", "settings": ["append"]},
                {"name": "dict", "settings": ["no_replace", "recurse_list"]},
            ],
        },
    ],
]


def ours(parts: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for part in parts:
        part = dict(part)
        spec = part.pop("merge_how", None)
        mergers = merging.parse_spec(spec) if spec is not None else merging.DEFAULT
        result = merging.merge(result, part, mergers)
    return result


@pytest.mark.cloudinit
def test_same_result_as_cloud_init() -> None:
    assert available(), "Debian's cloud-init is missing: run scripts/setup-system"
    theirs = run_cloudinit(
        f"""
import copy
from cloudinit import mergers
from cloudinit.handlers.cloud_config import DEF_MERGERS
cases = {json.dumps(CASES)!r}
import json as _j
result = []
for parts in _j.loads(cases):
    buf = {{}}
    for part in parts:
        part = copy.deepcopy(part)
        found = mergers.dict_extract_mergers(part) or DEF_MERGERS
        buf = mergers.construct(found).merge(buf, part)
    result.append(buf)
"""
    )
    assert [ours(parts) for parts in CASES] == theirs


def test_default_is_later_keys_replace_whole() -> None:
    assert ours(CASES[0]) == {"a": 1, "runcmd": ["y"], "users": ["default"], "b": 2}
    assert ours(CASES[1]) == {"d": {"y": 2, "z": 3}}


def test_bad_merge_spec_is_a_clear_error() -> None:
    with pytest.raises(UserDataError, match="merge_how: 'list' is not of the form"):
        merging.parse_spec("list+dict()")
    with pytest.raises(UserDataError, match="unknown merger"):
        merging.parse_spec("tuple(append)")
