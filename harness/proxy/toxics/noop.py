"""noop: passes everything through. Toxiproxy registers it too, so ``type: noop`` is accepted."""

from __future__ import annotations

from dataclasses import dataclass

from harness.proxy.toxics.base import Toxic, register


@register
@dataclass
class NoopToxic(Toxic):
    type_name = "noop"
