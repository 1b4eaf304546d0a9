"""One module per toxic, each registering itself (see ``base.py``)."""

from harness.proxy.toxics.base import REGISTRY, Toxic, load_all, new_toxic, register

__all__ = ["REGISTRY", "Toxic", "load_all", "new_toxic", "register"]
