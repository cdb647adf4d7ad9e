"""The runtime half of :mod:`metaboot.guest.records`: dataclass-style classes without ``exec``.

``dataclasses`` writes each generated method as source text and compiles it: on Python 3.11
that is about 0.4 ms per class (0.8 ms frozen), plus ~8 ms to import ``dataclasses`` itself
(it pulls in ``inspect``). The agent defines some forty record classes on a first boot's path,
which came to a fifth of the whole boot. Here the methods are closures over the field list,
built without compiling anything. Only what the agent uses is supported: ``@dataclass`` and
``@dataclass(frozen=True)`` with plain defaults and ``field(default=…, default_factory=…)``;
anything else is refused loudly rather than half-supported.
"""

from __future__ import annotations

TYPE_CHECKING = False  # mypy takes it as true; at run time typing is not imported
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_MISSING: Any = object()
_IMMUTABLE = (str, int, float, bool, bytes, type(None))


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record (as ``dataclasses.FrozenInstanceError``)."""


class Field:
    __slots__ = ("default", "default_factory", "name")

    def __init__(self, default: Any = _MISSING, default_factory: Any = _MISSING) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory

    def __repr__(self) -> str:
        return f"Field(name={self.name!r})"


def field(*, default: Any = _MISSING, default_factory: Any = _MISSING) -> Any:
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory)


def dataclass(cls: type | None = None, /, *, frozen: bool = False) -> Any:
    def wrap(cls: type) -> type:
        return _process(cls, frozen)

    return wrap if cls is None else wrap(cls)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(text, str) and text.split("[", 1)[0] in ("ClassVar", "typing.ClassVar")


def _process(cls: type, frozen: bool) -> type:
    if any(hasattr(base, "__record_fields__") for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: records do not support inheriting fields")
    # Not inspect.get_annotations: inspect is what this module exists to avoid importing.
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    fields_: list[Field] = []
    seen_default = False
    for name, annotation in annotations.items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        spec = value if isinstance(value, Field) else Field(default=value)
        if isinstance(spec.default, list | dict | set):
            raise ValueError(
                f"mutable default {type(spec.default)} for field {name} is not allowed: "
                "use default_factory"
            )
        spec.name = name
        has_default = spec.default is not _MISSING or spec.default_factory is not _MISSING
        if seen_default and not has_default:
            raise TypeError(f"non-default argument {name!r} follows default argument")
        seen_default = seen_default or has_default
        if isinstance(value, Field):
            # As dataclasses does: the class attribute becomes the plain default, or goes.
            if spec.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
        fields_.append(spec)

    names = tuple(f.name for f in fields_)
    known = frozenset(names)
    qualname = cls.__qualname__
    assign: Callable[[Any, str, Any], None] = object.__setattr__ if frozen else setattr
    post_init = getattr(cls, "__post_init__", None)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # Every field given, all by position or all by keyword: the common case, assigned
        # straight (a boot makes a few hundred records).
        if not kwargs and len(args) == len(names):
            for name, value in zip(names, args, strict=True):
                assign(self, name, value)
            if post_init is not None:
                post_init(self)
            return
        if not args and len(kwargs) == len(names) and known.issuperset(kwargs):
            for name in names:
                assign(self, name, kwargs[name])
            if post_init is not None:
                post_init(self)
            return
        if len(args) > len(names):
            raise TypeError(
                f"{qualname}.__init__() takes {len(names) + 1} positional arguments "
                f"but {len(args) + 1} were given"
            )
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in known:
                raise TypeError(f"{qualname}.__init__() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{qualname}.__init__() got multiple values for argument {key!r}")
            values[key] = value
        for spec in fields_:
            name = spec.name
            if name in values:
                value = values[name]
            elif spec.default_factory is not _MISSING:
                value = spec.default_factory()
            elif spec.default is not _MISSING:
                value = spec.default
            else:
                raise TypeError(
                    f"{qualname}.__init__() missing 1 required positional argument: {name!r}"
                )
            assign(self, name, value)
        if post_init is not None:
            post_init(self)

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return all(getattr(self, name) == getattr(other, name) for name in names)
        return NotImplemented

    methods: dict[str, Any] = {"__init__": __init__, "__repr__": __repr__, "__eq__": __eq__}

    if frozen:

        def __setattr__(self: Any, name: str, value: Any) -> None:
            if type(self) is cls or name in known:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")
            object.__setattr__(self, name, value)

        def __delattr__(self: Any, name: str) -> None:
            if type(self) is cls or name in known:
                raise FrozenInstanceError(f"cannot delete field {name!r}")
            object.__delattr__(self, name)

        def __hash__(self: Any) -> int:
            return hash(tuple(getattr(self, name) for name in names))

        methods.update(__setattr__=__setattr__, __delattr__=__delattr__)
    for name, method in methods.items():
        if name not in cls.__dict__:
            method.__qualname__ = f"{qualname}.{name}"
            setattr(cls, name, method)
    # dataclasses' hashing rule for eq=True: frozen records hash by their fields, mutable ones
    # are unhashable, and a __hash__ written in the class body is kept.
    class_hash = cls.__dict__.get("__hash__", _MISSING)
    explicit_hash = not (
        class_hash is _MISSING or (class_hash is None and "__eq__" in cls.__dict__)
    )
    if not explicit_hash:
        cls.__hash__ = __hash__ if frozen else None  # type: ignore[assignment,method-assign]
    setattr(cls, "__match_args__", names)  # noqa: B010 (mypy refuses the plain assignment)
    setattr(cls, "__record_fields__", tuple(fields_))  # noqa: B010
    setattr(cls, "__dataclass_fields__", _StandardFields())  # noqa: B010
    return cls


class _StandardFields:
    """``__dataclass_fields__`` built on first use, so that the standard ``dataclasses``
    functions (``asdict``, ``fields``, ``replace``, ``is_dataclass``) work on records too —
    other parts of metaboot and its tests call them on the agent's InstanceData — while a boot
    that never calls them never imports ``dataclasses``."""

    def __get__(self, instance: object, owner: type) -> dict[str, Any]:
        import dataclasses

        marker = getattr(dataclasses, "_FIELD", None)
        built: dict[str, Any] = {}
        for spec in owner.__record_fields__:  # type: ignore[attr-defined]
            if spec.default_factory is not _MISSING:
                real = dataclasses.field(default_factory=spec.default_factory)
            elif spec.default is not _MISSING:
                real = dataclasses.field(default=spec.default)
            else:
                real = dataclasses.field()
            real.name = spec.name
            real.type = owner.__dict__.get("__annotations__", {}).get(spec.name)  # noqa: RUF063
            if marker is not None:
                real._field_type = marker
            built[spec.name] = real
        setattr(owner, "__dataclass_fields__", built)  # noqa: B010 - built once per class
        return built


def fields(obj: Any) -> tuple[Field, ...]:
    try:
        found: tuple[Field, ...] = obj.__record_fields__
    except AttributeError:
        raise TypeError("must be called with a record type or instance") from None
    return found


def replace(obj: Any, /, **changes: Any) -> Any:
    if not hasattr(type(obj), "__record_fields__"):
        raise TypeError("replace() should be called on record instances")
    values = {f.name: changes.pop(f.name, _MISSING) for f in obj.__record_fields__}
    for name, value in values.items():
        if value is _MISSING:
            values[name] = getattr(obj, name)
    return obj.__class__(**values, **changes)


def asdict(obj: Any) -> dict[str, Any]:
    if not hasattr(type(obj), "__record_fields__"):
        raise TypeError("asdict() should be called on record instances")
    result: dict[str, Any] = _copy(obj)
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, _IMMUTABLE):
        return value
    if hasattr(type(value), "__record_fields__"):
        return {f.name: _copy(getattr(value, f.name)) for f in value.__record_fields__}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*[_copy(v) for v in value])
    if isinstance(value, list | tuple):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return type(value)((_copy(k), _copy(v)) for k, v in value.items())
    import copy  # only for a type none of the above covers (copy loads weakref too)

    return copy.deepcopy(value)
