"""Handing a generated password back to the platform, encrypted, as nova's password API wants.

``POST <service>/openstack/latest/password`` with the base64 RSA ciphertext as the body; nova
keeps it (once: a second POST is refused with 409) and ``nova get-password`` / ``metaboot
instance password ID --private-key FILE`` decrypt it with the key pair's private key.
"""

from __future__ import annotations

from functools import cache

from metaboot.errors import ConfigError, MetabootError

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    import urllib.request

PASSWORD_PATH = "/openstack/latest/password"
MAX_BODY = 1020  # nova stores at most 4 x 255 characters
TIMEOUT = 10.0


@cache
def _opener() -> urllib.request.OpenerDirector:
    """urllib, loaded only when a password is published (it costs ~20 ms to import). The
    metadata service is link-local: never through an HTTP proxy from the environment."""
    import urllib.request

    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PasswordPostError(MetabootError):
    """The metadata service did not take the encrypted password."""


def password_url(service_url: str) -> str:
    if not service_url.startswith(("http://", "https://")):
        raise ConfigError(f"metadata service URL {service_url!r} is not http(s)")
    return service_url.rstrip("/") + PASSWORD_PATH


def platform_holds_password(service_url: str, timeout: float = TIMEOUT) -> bool:
    """True when the service already holds a password for this instance."""
    import urllib.error

    url = password_url(service_url)
    try:
        with _opener().open(url, timeout=timeout) as response:
            return bool(response.read(MAX_BODY + 1).strip())
    except urllib.error.HTTPError as err:
        if err.code == 404:
            raise PasswordPostError(
                f"{url}: the metadata service has no password API (404)"
            ) from None
        raise PasswordPostError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise PasswordPostError(f"{url}: {getattr(err, 'reason', err)}") from None


def post_password(service_url: str, ciphertext_b64: str, timeout: float = TIMEOUT) -> None:
    import urllib.error
    import urllib.request

    url = password_url(service_url)
    body = ciphertext_b64.encode("ascii")
    if len(body) > MAX_BODY:
        raise ConfigError(
            f"the encrypted password is {len(body)} bytes, more than the {MAX_BODY} nova keeps: "
            "use an RSA key of 4096 bits or less"
        )
    request = urllib.request.Request(  # noqa: S310 - password_url() admits http(s) only
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    try:
        with _opener().open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as err:
        if err.code == 409:
            raise PasswordPostError(f"{url}: the platform already holds a password (409)") from None
        raise PasswordPostError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise PasswordPostError(f"{url}: {getattr(err, 'reason', err)}") from None
