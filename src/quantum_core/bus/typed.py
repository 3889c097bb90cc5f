"""Typed handlers: what a handler's first parameter asks for, and the validator built for it.

A handler whose first parameter is annotated with a pydantic model (or a ``TypedDict``, a
dataclass, anything pydantic validates) receives a validated instance; one annotated ``dict``
(or ``Mapping``, ``Any``, ``object``) or not annotated receives the payload dict, and costs
nothing more than before. The validator is built once, at ``subscribe``; the annotations are
resolved with ``typing.get_type_hints``, so ``from __future__ import annotations`` works.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_origin

from pydantic import TypeAdapter, ValidationError

__all__ = ["TypedPayload", "adapter_for", "typed_payload"]

_UNTYPED: tuple[object, ...] = (
    dict,
    collections.abc.Mapping,
    collections.abc.MutableMapping,
    typing.Any,
    object,
    inspect.Parameter.empty,
)


@dataclass(frozen=True, slots=True)
class TypedPayload:
    """What a typed handler takes: the annotation, and its validator (built once)."""

    annotation: Any
    adapter: TypeAdapter[Any]
    handler: str
    validate: Callable[[Any], Any] = field(init=False)  # the compiled validator: ~1 us

    def __post_init__(self) -> None:
        # TypeAdapter.validate_python, without its Python-level wrapper (0.7 us an event)
        object.__setattr__(self, "validate", self.adapter.validator.validate_python)

    @property
    def name(self) -> str:
        """The type's name, as the AsyncAPI document and the dead letters show it."""
        return getattr(self.annotation, "__name__", None) or repr(self.annotation)

    def invalid(self, error: Exception) -> ValueError:
        """The error a payload that failed validation is dead-lettered with: every reason.

        A validator of the model's own that raises something else than pydantic's
        ``ValidationError`` (a ``KeyError``...) fails the payload the same way.
        """
        if isinstance(error, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}"
                for e in error.errors(include_url=False)
            )
            what = f"{error.error_count()} error(s)): {problems}"
        else:
            what = f"its validation raised {type(error).__name__}: {_one_line(error)})"
        failure = ValueError(
            f"the payload is not a valid {self.name} for handler {self.handler!r} ({what}; "
            "retrying cannot fix it"
        )
        failure.__cause__ = error
        return failure


def typed_payload(handler: object, name: str) -> TypedPayload | None:
    """What ``handler``'s first parameter asks for, or None for a dict handler.

    Raises:
        TypeError: the annotation cannot be resolved, or pydantic cannot validate it; the
            message names the handler (``name``) and the annotation.
    """
    annotation = _first_annotation(handler, name)
    if annotation in _UNTYPED or get_origin(annotation) in _UNTYPED:
        return None
    adapter = adapter_for(
        annotation,
        f"handler {name!r}: its first parameter is annotated {_show(annotation)}, which "
        "pydantic cannot validate",
        "annotate it with a pydantic model, a TypedDict or a dataclass, or with dict for the "
        "payload dict",
    )
    return TypedPayload(annotation, adapter, name)


def adapter_for(model: Any, refusal: str, expected: str) -> TypeAdapter[Any]:
    """Pydantic's adapter of ``model``, or a TypeError: ``{refusal} ({why}); {expected}``."""
    try:
        return TypeAdapter(model)
    except Exception as exc:
        raise TypeError(f"{refusal} ({type(exc).__name__}: {_one_line(exc)}); {expected}") from None


def _first_annotation(handler: object, name: str) -> Any:
    try:
        parameters = list(inspect.signature(handler).parameters.values())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return inspect.Parameter.empty  # a builtin: it takes what it is given
    if not parameters or parameters[0].annotation is inspect.Parameter.empty:
        return inspect.Parameter.empty
    first = parameters[0]
    if not isinstance(first.annotation, str):
        return first.annotation
    try:
        hints = typing.get_type_hints(_annotated_function(handler))
    except Exception as exc:
        raise TypeError(
            f"handler {name!r}: the annotation {first.annotation!r} of its first parameter "
            f"cannot be resolved ({type(exc).__name__}: {exc}); define or import the type at "
            "module level"
        ) from None
    return hints.get(first.name, inspect.Parameter.empty)


def _annotated_function(handler: object) -> Any:
    """The function whose ``__annotations__`` hold ``handler``'s parameters."""
    while True:
        if isinstance(handler, functools.partial):
            handler = handler.func
        elif inspect.ismethod(handler):
            handler = handler.__func__
        elif inspect.isfunction(handler):
            return handler
        else:  # an object with an async __call__
            return type(handler).__call__


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _show(annotation: object) -> str:
    return getattr(annotation, "__qualname__", None) or repr(annotation)
