"""``Choices``: the agent's string enumerations (stages, frequencies, IPv6 modes, …).

mypy checks them as ``enum.StrEnum`` (the ``TYPE_CHECKING`` branch), so every use is typed
exactly as an enumeration. At run time they come from a small metaclass instead: ``enum``
builds each ``StrEnum`` class through its own machinery (member descriptors, lookup tables,
``__init_subclass__`` hooks), some 0.2 ms per class, and a first boot defines several. What
the agent uses behaves the same: the members are instances of their class and of ``str``,
equal to and hashing as their value, ``.value`` and ``.name``, lookup by value (``Stage("local")``,
``ValueError`` for anything else), iteration in definition order, ``str()``, ``format()`` and
``repr()`` as ``StrEnum`` gives them. ``tests/guest/test_choices.py`` holds each to
``StrEnum``. Guest code takes ``Choices`` from here, never ``enum`` (``re`` loads ``enum``
anyway; its classes are what cost).
"""

from __future__ import annotations

TYPE_CHECKING = False  # mypy takes it as true; at run time typing is not imported
if TYPE_CHECKING:
    from enum import StrEnum as Choices
else:

    class _ChoicesType(type):
        """Makes each public string attribute of a class body a member of the class."""

        def __new__(mcs, name, bases, namespace):
            members = {
                key: value
                for key, value in namespace.items()
                if not key.startswith("_") and isinstance(value, str)
            }
            body = {key: value for key, value in namespace.items() if key not in members}
            cls = super().__new__(mcs, name, bases, body)
            by_value = {}
            for key, value in members.items():
                member = str.__new__(cls, value)
                member._name_ = key
                setattr(cls, key, member)
                by_value.setdefault(value, member)  # a repeated value is an alias, as in enum
            cls._by_value_ = by_value
            return cls

        def __call__(cls, value):
            try:
                return cls._by_value_[value]
            except (KeyError, TypeError):
                raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

        def __iter__(cls):
            return iter(list(cls._by_value_.values()))

        def __len__(cls):
            return len(cls._by_value_)

        def __repr__(cls):
            return f"<enum {cls.__name__!r}>"

    class Choices(str, metaclass=_ChoicesType):
        """The base of the agent's string enumerations (see the module docstring)."""

        @property
        def value(self):
            return str.__str__(self)

        @property
        def name(self):
            return self._name_

        def __str__(self):
            return str.__str__(self)

        def __format__(self, spec):
            return str.__format__(str.__str__(self), spec)

        def __repr__(self):
            return f"<{type(self).__name__}.{self._name_}: {str.__repr__(self)}>"

        def __reduce__(self):
            return type(self), (str.__str__(self),)


__all__ = ["Choices"]
