"""Values the network parsers share: MAC addresses."""

from __future__ import annotations

import pytest

from metaboot.guest.network.model import normalise_mac


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("FA:16:3E:00:00:42", "fa:16:3e:00:00:42"),
        ("fa-16-3e-00-00-42", "fa:16:3e:00:00:42"),
        (" fa:16:3e:00:00:42\n", "fa:16:3e:00:00:42"),
    ],
)
def test_macs_are_normalised(given: str, expected: str) -> None:
    assert normalise_mac(given) == expected


@pytest.mark.parametrize(
    "given", ["fa:16:3e:00:00", "fa:16:3e:00:00:42:01", "fa:16:3e:0:00:42", "fa:16:3e:00:00:4g", ""]
)
def test_what_is_not_a_mac_is_refused_naming_it(given: str) -> None:
    with pytest.raises(ValueError, match="is not a MAC address"):
        normalise_mac(given)
    with pytest.raises(ValueError, match="is not a string"):
        normalise_mac(42)
