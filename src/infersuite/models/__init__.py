"""Models under test: the offline zoo and local checkpoints."""

from infersuite.models.loader import LoadedModel, ModelLoadError, load_model
from infersuite.models.zoo import UnknownModelError, ZooEntry, get_entry, list_zoo

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "UnknownModelError",
    "ZooEntry",
    "get_entry",
    "list_zoo",
    "load_model",
]
