"""``## template: jinja`` user-data parts, rendered when jinja2 is installed.

jinja2 is optional (the agent needs only the standard library and PyYAML); it is imported only
when a template part turns up. Templates run in jinja's sandbox — user-data comes from whoever
launched the VM, but the variables include instance data a template must not be able to abuse.
A missing variable renders as ``CI_MISSING_JINJA_VAR/<name>`` and is reported, as in cloud-init.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from metaboot.errors import UserDataError

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

MISSING_PREFIX = "CI_MISSING_JINJA_VAR/"


NOT_INSTALLED = "templates need jinja2, which is not installed (python3-jinja2)"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("jinja2") is not None


def make_renderer(
    variables: Callable[[], Mapping[str, Any]], warnings: list[str]
) -> Callable[[str], str]:
    """A function rendering template text; jinja2 and the variables are looked up only when
    a template part actually turns up (most boots have none).

    The text given is the part without its ``## template: jinja`` line, so line numbers in
    errors are shifted by one to match what the user wrote."""

    def render(text: str) -> str:
        # Imported by name: jinja2 is optional and has no place in the agent's type checking.
        try:
            jinja2: Any = importlib.import_module("jinja2")
            sandbox: Any = importlib.import_module("jinja2.sandbox")
        except ImportError:
            raise UserDataError(NOT_INSTALLED) from None

        class Missing(jinja2.Undefined):  # type: ignore[misc]
            def __str__(self) -> str:
                warnings.append(f"template variable {self._undefined_name!r} is not defined")
                return f"{MISSING_PREFIX}{self._undefined_name}"

        env = sandbox.SandboxedEnvironment(undefined=Missing, keep_trailing_newline=True)
        try:
            return str(env.from_string(text).render(**variables()))
        except jinja2.TemplateSyntaxError as err:
            raise UserDataError(
                f"template syntax error at line {err.lineno + 1}: {err.message}"
            ) from None
        except jinja2.TemplateError as err:
            raise UserDataError(f"template error: {err}") from None

    return render
