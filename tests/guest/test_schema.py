"""The agent's JSON-schema subset and YAML error reporting."""

from __future__ import annotations

import pytest

from metaboot.errors import UserDataError
from metaboot.guest.schema import line_map, load_yaml, locate, validate

USERS = {
    "type": "object",
    "properties": {
        "users": {
            "type": "array",
            "items": {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "groups": {
                                "oneOf": [
                                    {"type": "string"},
                                    {"type": "array", "items": {"type": "string"}},
                                ]
                            },
                            "lock_passwd": {"type": "boolean"},
                            "uid": {"type": "integer", "minimum": 0},
                        },
                    },
                ]
            },
        },
        "ssh_pwauth": {"type": ["boolean", "string"]},
        "power_state": {
            "type": "object",
            "properties": {"mode": {"enum": ["poweroff", "reboot", "halt"]}},
        },
    },
}


def messages(value: object) -> list[str]:
    return [str(p) for p in validate(value, USERS)]


def test_valid_documents_pass() -> None:
    assert messages({"users": ["default", {"name": "ann", "groups": ["adm"], "uid": 1001}]}) == []
    assert messages({"ssh_pwauth": "unchanged", "other": [1, 2]}) == []


def test_type_errors_name_the_path_and_both_types() -> None:
    assert messages({"ssh_pwauth": 3}) == ["ssh_pwauth: expected a boolean or a string, got 3"]
    assert messages({"users": {"name": "x"}}) == ["users: expected a list, got a mapping"]


def test_one_of_reports_the_alternative_whose_type_matched() -> None:
    found = messages({"users": [{"name": "ann", "groups": 5}]})
    assert found == ["users[0].groups: expected a string or a list of strings, got 5"]
    found = messages({"users": [{"groups": "adm"}]})
    assert found == ["users[0]: missing required key 'name'"]
    found = messages({"users": [{"name": "ann", "colour": "blue"}]})
    assert found == ["users[0].colour: unknown key"]


def test_enum_minimum_and_booleans_are_not_integers() -> None:
    assert messages({"power_state": {"mode": "explode"}}) == [
        "power_state.mode: expected one of 'poweroff', 'reboot', 'halt', got 'explode'"
    ]
    assert messages({"users": [{"name": "a", "uid": -1}]}) == ["users[0].uid: must be at least 0"]
    assert messages({"users": [{"name": "a", "uid": True}]}) == [
        "users[0].uid: expected an integer, got True"
    ]


def test_lines_are_attached_from_the_yaml_text() -> None:
    text = "#cloud-config\nusers:\n  - default\n  - name: ann\n    groups: 5\nssh_pwauth: 3\n"
    data = load_yaml(text, "user-data")
    placed = locate(validate(data, USERS), line_map(text))
    assert [str(p) for p in placed] == [
        "users[1].groups: expected a string or a list of strings, got 5 (line 5)",
        "ssh_pwauth: expected a boolean or a string, got 3 (line 6)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb: [1, 2\n", "invalid YAML at line 3, column 1"),
        ("a: 1\n  b: 2\n", "invalid YAML at line 2, column 4: mapping values are not allowed"),
        ('key: "unterminated\n', "invalid YAML at line 2"),
        ("a: !!python/object:os.system ls\n", "invalid YAML at line 1"),
    ],
)
def test_yaml_errors_say_where(text: str, expected: str) -> None:
    with pytest.raises(UserDataError) as caught:
        load_yaml(text, "part 1")
    assert str(caught.value).startswith("part 1: ")
    assert expected in str(caught.value)
