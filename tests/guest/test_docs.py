"""Syntax never drifts from cloud-init: the cloud-config in docs/agent.md and
docs/cloud-config.md and the valid documents these tests use validate against the schema in
Debian's cloud-init package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from metaboot.guest.userdata import Options, process
from tests.reference import available, run_cloudinit

pytestmark = pytest.mark.cloudinit

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
DOC_FILES = [DOCS_DIR / "agent.md", DOCS_DIR / "cloud-config.md"]

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


DEPRECATIONS_ONLY = "Cloud config schema deprecations:"  # no "schema errors:" before it


def doc_examples(doc: Path) -> list[str]:
    """Every ``#cloud-config`` example in a doc's fenced blocks, whatever the fence's language."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", doc.read_text(), flags=re.S)
    return [b for b in blocks if b.startswith("#cloud-config")]


def documents() -> list[str]:
    return [text for doc in DOC_FILES for text in doc_examples(doc)] + TEST_DOCUMENTS


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda d: d.name)
def test_docs_have_cloud_config_examples(doc: Path) -> None:
    assert doc_examples(doc)


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
    # An example the doc shows as deprecated ("# deprecated" in it) must be valid but for
    # cloud-init's deprecation notice; every other one must validate strictly.
    verdicts = {
        d: None if r is not None and "# deprecated" in d and r.startswith(DEPRECATIONS_ONLY) else r
        for d, r in zip(docs, result, strict=True)
    }
    assert verdicts == {d: None for d in docs}


def test_every_document_is_read_cleanly_by_the_agent() -> None:
    for text in documents():
        out = process(text.encode(), "doc", Options())
        assert out.problems == [] and out.configs, text
