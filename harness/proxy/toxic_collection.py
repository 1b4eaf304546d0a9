"""A proxy's toxics: two ordered chains (upstream, downstream), mirrored onto every live link.

Request validation follows Toxiproxy's toxic_collection.go step by step, because the order
decides which error a bad request gets: body JSON, then stream, then default name, then type,
then duplicate name, then attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.proxy import errors
from harness.proxy.toxics.base import BadAttributes, Toxic, new_toxic

if TYPE_CHECKING:
    from harness.proxy.link import Link

STREAMS = ("upstream", "downstream")


@dataclass
class ToxicSpec:
    """One toxic as the API sees it (Toxiproxy's ToxicWrapper)."""

    name: str
    type: str
    stream: str
    toxicity: float
    toxic: Toxic

    def to_json(self) -> dict[str, Any]:
        # Go marshals float32 1.0 as 1: keep integral values integral
        tox: float | int = int(self.toxicity) if self.toxicity == int(self.toxicity) else self.toxicity
        return {"attributes": self.toxic.attributes(), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": tox}


def _string(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise errors.BAD_REQUEST_BODY.joined(
            f"json: cannot unmarshal {type(value).__name__} into Go struct field "
            f"ToxicWrapper.{key} of type string")
    return value


def _toxicity(body: dict[str, Any], default: float) -> float:
    value = body.get("toxicity", default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.BAD_REQUEST_BODY.joined(
            "json: cannot unmarshal into Go struct field ToxicWrapper.toxicity of type float32")
    return float(value)


class ToxicCollection:
    """The toxics of one proxy, and the links (one per direction per connection) they apply to."""

    def __init__(self) -> None:
        self.chains: dict[str, list[ToxicSpec]] = {s: [] for s in STREAMS}
        self.links: dict[str, set[Link]] = {s: set() for s in STREAMS}

    # -- queries ---------------------------------------------------------------------------
    def find(self, name: str) -> ToxicSpec | None:
        for stream in STREAMS:
            for spec in self.chains[stream]:
                if spec.name == name:
                    return spec
        return None

    def to_json(self) -> list[dict[str, Any]]:
        """Upstream chain first, then downstream, as Toxiproxy lists them."""
        return [spec.to_json() for stream in STREAMS for spec in self.chains[stream]]

    # -- links -----------------------------------------------------------------------------
    def attach(self, link: Link) -> None:
        """A new connection's link gets every toxic of its direction, in chain order."""
        self.links[link.stream].add(link)
        for spec in self.chains[link.stream]:
            link.add_stage(spec)

    def detach(self, link: Link) -> None:
        self.links[link.stream].discard(link)

    # -- changes ---------------------------------------------------------------------------
    def add(self, body: Any) -> ToxicSpec:
        if not isinstance(body, dict):
            raise errors.BAD_REQUEST_BODY.joined("json: cannot unmarshal into Go value of type "
                                                 "toxics.ToxicWrapper")
        stream = _string(body, "stream", "downstream")
        if stream not in STREAMS:
            raise errors.INVALID_STREAM
        toxic_type = _string(body, "type", "")
        name = _string(body, "name", "") or f"{toxic_type}_{stream}"
        toxicity = _toxicity(body, 1.0)
        toxic = new_toxic(toxic_type)
        if toxic is None:
            raise errors.INVALID_TOXIC_TYPE
        if self.find(name) is not None:
            raise errors.TOXIC_EXISTS
        try:
            toxic.set_attributes(body.get("attributes"))
        except BadAttributes as exc:
            raise errors.BAD_REQUEST_BODY.joined(str(exc)) from None
        spec = ToxicSpec(name=name, type=toxic_type, stream=stream, toxicity=toxicity, toxic=toxic)
        self.chains[stream].append(spec)
        for link in list(self.links[stream]):
            link.add_stage(spec)
        return spec

    def update(self, name: str, body: Any) -> ToxicSpec:
        spec = self.find(name)
        if spec is None:
            raise errors.TOXIC_NOT_FOUND
        if not isinstance(body, dict):
            raise errors.BAD_REQUEST_BODY.joined("json: cannot unmarshal into Go value")
        toxicity = _toxicity(body, spec.toxicity)
        try:
            spec.toxic.set_attributes(body.get("attributes"))
        except BadAttributes as exc:
            raise errors.BAD_REQUEST_BODY.joined(str(exc)) from None
        spec.toxicity = toxicity
        for link in list(self.links[spec.stream]):
            link.restart_stage(spec)
        return spec

    def remove(self, name: str) -> None:
        spec = self.find(name)
        if spec is None:
            raise errors.TOXIC_NOT_FOUND
        self.chains[spec.stream].remove(spec)
        for link in list(self.links[spec.stream]):
            link.remove_stage(spec)

    def reset(self) -> None:
        """Remove every toxic (POST /reset), first to last in each direction."""
        for stream in STREAMS:
            for spec in list(self.chains[stream]):
                self.remove(spec.name)
