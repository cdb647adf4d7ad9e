"""Syntax never drifts from cloud-init: the cloud-config in docs/agent.md and the valid
documents these tests use validate against the schema in Debian's cloud-init package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from metaboot.guest.userdata import Options, process
from tests.reference import available, run_cloudinit

pytestmark = pytest.mark.cloudinit

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent.md"

# The cloud-config the agent's tests rely on being valid (the deliberately broken ones live in
# test_bad_userdata.py and are meant to fail).
TEST_DOCUMENTS = [
    "#cloud-config\nhostname: from-user-data\n",
    "#cloud-config\nhostname: web-1\ntimezone: UTC\n",
    "#cloud-config\nhostname: h\n\npackages: [nginx]\n",
    "#cloud-config\nhostname: vendor\ntimezone: Europe/Paris\n",
    "#cloud-config\nhostname: user\nvendor_data: {enabled: false}\n",
    "#cloud-config\ntimezone: Europe/Paris\nlocale: fr_FR.UTF-8\n",
    "#cloud-config\nruncmd: [date]\n",
    "#cloud-config\nchpasswd:\n  users:\n    - {name: root, password: x, type: text}\n",
    "#cloud-config\nruncmd: [one]\nmerge_how: list(prepend)+dict(no_replace,recurse_list)+str()\n",
]


def documents() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    return [b for b in blocks if b.startswith("#cloud-config")] + TEST_DOCUMENTS


def test_docs_have_cloud_config_examples() -> None:
    assert len(documents()) > len(TEST_DOCUMENTS)


def test_every_document_validates_against_cloud_inits_schema() -> None:
    assert available(), "Debian's cloud-init is missing: run scripts/setup-system"
    docs = documents()
    result = run_cloudinit(
        """
import yaml
from cloudinit.config.schema import validate_cloudconfig_schema, get_schema, SchemaValidationError
schema = get_schema()
result = []
for text in json.loads(DOCS):
    try:
        validate_cloudconfig_schema(yaml.safe_load(text), schema, strict=True)
        result.append(None)
    except SchemaValidationError as err:
        result.append(str(err))
""".replace("DOCS", repr(json.dumps(docs)))
    )
    assert dict(zip(docs, result, strict=True)) == {d: None for d in docs}


def test_every_document_is_read_cleanly_by_the_agent() -> None:
    for text in documents():
        out = process(text.encode(), "doc", Options())
        assert out.problems == [] and out.configs, text
