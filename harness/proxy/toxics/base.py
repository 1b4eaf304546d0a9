"""What a toxic is, and the registry every toxic module adds itself to.

A toxic is a dataclass whose fields are its Toxiproxy ``attributes`` (same names, same JSON types:
``int`` fields refuse 1.5 or "1" as Go's decoder does) and an ``async pipe(stage)`` that moves
bytes from the stage's input to its output. One instance is shared by every connection of its
proxy (attributes are read live, so a PATCH takes effect at once); per-connection state lives on
the stage (``new_state``). Modules in this package register themselves with ``@register``;
``load_all()`` imports them all, so adding a toxic touches only its own file.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import typing
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from harness.proxy.stage import EOF

if TYPE_CHECKING:
    from harness.proxy.stage import Stage


class BadAttributes(ValueError):
    """Attributes that Toxiproxy's JSON decoder would refuse (the API answers 400)."""


@dataclasses.dataclass
class Toxic:
    """Base class; subclasses are dataclasses with a ``type_name`` and a ``pipe``."""

    type_name: ClassVar[str] = ""
    #: False for toxics that real Toxiproxy does not have (ours: ``hold``).
    in_toxiproxy: ClassVar[bool] = True

    async def pipe(self, stage: Stage) -> None:
        """Pass everything through unchanged (Toxiproxy's noop); EOF closes."""
        while True:
            item = await stage.take()
            assert item is not None
            if item[1] is EOF:
                stage.close()
                return
            stage.emit()

    def new_state(self) -> Any:
        """Per-connection state kept on the stage across restarts (Toxiproxy StatefulToxic)."""
        return None

    def on_remove(self, stage: Stage) -> None:
        """Called on each connection's stage as the toxic is removed, before what it holds is
        forwarded. A toxic that closes the connection on removal (timeout) does it here."""

    # -- attributes ------------------------------------------------------------------------
    def attributes(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def set_attributes(self, raw: Any) -> None:
        """Apply JSON ``attributes`` as Go's json.Decode into the toxic struct would: unknown
        keys ignored, null leaves a field unchanged, wrong types refused. All or nothing."""
        if raw is None:
            return
        if not isinstance(raw, dict):
            raise BadAttributes(f"json: cannot unmarshal {_json_kind(raw)} into Go struct field "
                                f"ToxicWrapper.attributes of type toxics.{type(self).__name__}")
        hints = typing.get_type_hints(type(self))
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name not in raw or raw[f.name] is None:
                continue
            value, kind = raw[f.name], hints[f.name]
            ok = (not isinstance(value, bool)) and (
                isinstance(value, int) if kind is int else isinstance(value, int | float))
            if not ok:
                go_type = "int64" if kind is int else "float64"
                raise BadAttributes(f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                                    f".attributes.{f.name} of type {go_type}")
            changes[f.name] = kind(value)
        for name, value in changes.items():
            setattr(self, name, value)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


REGISTRY: dict[str, type[Toxic]] = {}

T = TypeVar("T", bound=type[Toxic])


def register(cls: T) -> T:
    """Class decorator: make the toxic available under its ``type_name``."""
    if not cls.type_name:
        raise ValueError(f"{cls.__name__} has no type_name")
    REGISTRY[cls.type_name] = cls
    return cls


def new_toxic(type_name: str) -> Toxic | None:
    """A fresh toxic of that type with default attributes, or None if the type is unknown."""
    load_all()
    cls = REGISTRY.get(type_name)
    return cls() if cls is not None else None


_loaded = False


def load_all() -> None:
    """Import every module of this package once, so each registers itself."""
    global _loaded
    if _loaded:
        return
    package = importlib.import_module("harness.proxy.toxics")
    for mod in pkgutil.iter_modules(package.__path__):
        if mod.name != "base":
            importlib.import_module(f"harness.proxy.toxics.{mod.name}")
    _loaded = True
