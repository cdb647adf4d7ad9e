"""Validating cloud-config documents with Debian's cloud-init, in one long-lived process.

The child runs Debian's python3 with cloud-init importable and checks each document with
cloud-init's own ``validate_cloudconfig_schema(strict=True)`` against the schema shipped in
the package (errors and deprecations apart), and also against metaboot's combined module
schema with jsonschema, so the two never drift apart for the keys the agent supports.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import reference

_WORKER = r"""
import json, sys
import jsonschema
from cloudinit.config.schema import SchemaValidationError, get_schema, validate_cloudconfig_schema
schema = get_schema()
ours = jsonschema.Draft4Validator(json.loads(sys.stdin.readline()))
for line in sys.stdin:
    doc = json.loads(line)
    result = {"errors": [], "deprecations": []}
    try:
        validate_cloudconfig_schema(doc, schema, strict=True, log_details=False)
    except SchemaValidationError as err:
        result["errors"] = [f"{p}: {m}" for p, m in (err.schema_errors or ())]
        result["deprecations"] = [f"{p}: {m}" for p, m in (err.schema_deprecations or ())]
    result["ours"] = [
        ".".join(str(p) for p in e.absolute_path) + ": " + e.message
        for e in ours.iter_errors(doc)
    ]
    print(json.dumps(result), flush=True)
"""


@dataclass(frozen=True)
class Verdict:
    errors: list[str]  # cloud-init's schema
    deprecations: list[str]  # cloud-init's schema: deprecated syntax
    ours: list[str]  # metaboot's combined module schema


class SchemaChecker:
    def __init__(self, our_schema: dict[str, Any]) -> None:
        if not reference.available():
            raise AssertionError(
                f"Debian's cloud-init is not unpacked under {reference.CLOUDINIT_DIR}; "
                "run scripts/setup-system"
            )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(reference.__file__).parent / "netguard"), str(reference.CLOUDINIT_PATH)]
        )
        env.pop("PYTHONHOME", None)
        self.proc = subprocess.Popen(
            [reference.DEBIAN_PYTHON, "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._send(our_schema)

    def _send(self, value: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(value) + "\n")
        self.proc.stdin.flush()

    def check(self, doc: Any) -> Verdict:
        self._send(doc)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the cloud-init schema checker died")
        data = json.loads(line)
        return Verdict(data["errors"], data["deprecations"], data["ours"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
