"""Character sets the agent's name checks are built from (``string`` is not imported on a boot:
``import string`` costs more than every check that uses these)."""

from __future__ import annotations

# string.ascii_letters + string.digits
ASCII_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
