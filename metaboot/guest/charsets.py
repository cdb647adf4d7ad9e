"""Character sets the agent's name checks are built from (``string`` is not imported on a boot:
``import string`` costs more than every check that uses these)."""

from __future__ import annotations

ASCII_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # string.ascii_letters
ASCII_ALNUM = ASCII_LETTERS + "0123456789"  # string.ascii_letters + string.digits
