"""Name -> class registries for scores, with Keras-style ``get(identifier)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keras_forget.errors import InvalidArgumentError


class Configurable:
    """``get_config`` / ``from_config`` / ``fresh`` for objects built from keyword arguments."""

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, so ``type(s).from_config(s.get_config())`` copies it."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        return cls(**config)

    def fresh(self) -> Any:
        """A new, unbound object with the same configuration."""
        return type(self).from_config(self.get_config())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Resolver:
    """Registers score classes by name and resolves names, configs and instances.

    Args:
        kind: what is resolved, for messages (``"score"``, ``"unit score"``).
        base: the base class whose instances are returned as they are.
    """

    def __init__(self, kind: str, base: type) -> None:
        self.kind, self.base = kind, base
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> None:
        """Registers ``cls`` under ``cls.name``."""
        self._classes[cls.name] = cls

    def names(self) -> list[str]:
        """Names of the registered classes."""
        return sorted(self._classes)

    def get(self, identifier: Any) -> Any:
        """An instance from a name, ``{"class_name": ..., "config": ...}`` or an instance.

        Raises:
            InvalidArgumentError: unknown name or unsupported identifier.
        """
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, Mapping):
            cls = self._lookup(identifier.get("class_name"))
            return cls.from_config(identifier.get("config", {}))
        if isinstance(identifier, str):
            return self._lookup(identifier)()
        raise InvalidArgumentError(
            f"`method` must be a {self.kind} name, a config dict or a {self.base.__name__} "
            f"instance; got {type(identifier).__name__}."
        )

    def _lookup(self, name: Any) -> type:
        valid = self.names()
        if name not in self._classes:
            raise InvalidArgumentError(
                f"Unknown {self.kind} `method` {name!r}; valid: {', '.join(valid)}."
            )
        return self._classes[name]

    @staticmethod
    def serialize(score: Any) -> dict[str, Any]:
        """The config dict that :meth:`get` turns back into an equal object."""
        return {"class_name": score.name, "config": score.get_config()}
