"""The server-side docs stay true: their examples parse, their option tables name the options
the commands have, with the defaults the commands use."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from metaboot.metadata.instance import instance_to_spec, parse_spec
from metaboot.proxy.cli import build_parser as proxy_parser
from metaboot.service.cli import build_parser as serve_parser
from metaboot.service.config import _SCHEMA, _check_shape

DOCS = Path(__file__).resolve().parents[1] / "docs"


def blocks(doc: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", (DOCS / doc).read_text(), flags=re.S | re.M)


def table_rows(doc: str, heading: str) -> list[list[str]]:
    """The rows of the first table after ``heading``, as lists of cell texts."""
    text = (DOCS / doc).read_text()
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings if s.startswith("--")}


def test_the_instance_spec_example_is_a_valid_spec_and_its_canonical_form_reads_back() -> None:
    (example,) = blocks("instance-spec.md", "yaml")
    instance = parse_spec(yaml.safe_load(example))
    assert instance.name == "Web Server 1" and instance.hostname == "web-1.example.internal"
    canonical = instance_to_spec(instance)
    assert instance_to_spec(parse_spec(canonical)) == canonical


@pytest.mark.parametrize("doc", ["service.md", "proxy.md"])
def test_toml_examples_use_only_known_keys(doc: str) -> None:
    examples = blocks(doc, "toml")
    assert examples
    for text in examples:
        _check_shape(tomllib.loads(text), doc)  # raises on an unknown section or key


def test_the_configuration_reference_shows_every_key() -> None:
    reference = tomllib.loads(blocks("service.md", "toml")[0])
    shown = {(section, key) for section, body in reference.items() for key in body}
    # a key and its *_file twin are alternatives: the example shows one, its comment the other
    twins = {("service", "admin_token"), ("identify", "shared_secret")}
    assert {(s, k) for s, keys in _SCHEMA.items() for k in keys} - shown == twins
    text = (DOCS / "service.md").read_text()
    for _section, key in twins:
        assert f"or {key} = " in text


def test_the_serve_option_table_matches_the_command() -> None:
    documented = {row[0].strip("`").split()[0] for row in table_rows("service.md", "| option |")}
    assert documented == set(options(serve_parser("serve"))) - {"--help"}


def test_the_proxy_bounds_table_has_the_commands_defaults() -> None:
    have = options(proxy_parser())
    rows = table_rows("proxy.md", "## Bounds and timeouts")
    assert rows
    for option, default, _ in rows:
        name = option.strip("`")
        number = float(default.split()[0])
        assert have[name].default == number, name
    documented = {row[0].strip("`") for row in rows}
    bounds_and_timeouts = {
        name
        for name, action in have.items()
        if isinstance(action.default, int | float) and not isinstance(action.default, bool)
    }
    assert documented == bounds_and_timeouts
