"""Per-context switches of the engine: recording on/off and anomaly detection.

Both live in one ``contextvars`` slot so the hot path reads a single value per operation,
and so threads and async tasks never see each other's settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, NamedTuple


class Mode(NamedTuple):
    grad_enabled: bool = True
    anomaly: bool = False
    jit: Any = None  # the program being recorded by gg.jit, if any


MODE: ContextVar[Mode] = ContextVar("glassgrad_mode", default=Mode())  # noqa: B039 - immutable


@contextlib.contextmanager
def _switch(**changes: Any) -> Iterator[None]:
    token = MODE.set(MODE.get()._replace(**changes))
    try:
        yield
    finally:
        MODE.reset(token)


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Record nothing on the eager tape inside the block (like ``torch.no_grad``).

    Functional transforms (``grad``, ``jvp``, ...) still work inside it: they own their
    own levels.

    >>> import glassgrad as gg
    >>> x = gg.tensor(2.0, requires_grad=True)
    >>> with gg.no_grad():
    ...     y = x * 3
    >>> y.requires_grad
    False
    """
    return _switch(grad_enabled=False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Record again inside a ``no_grad`` block."""
    return _switch(grad_enabled=True)


def anomaly_mode() -> contextlib.AbstractContextManager[None]:
    return _switch(anomaly=True)


def recording(program: Any) -> contextlib.AbstractContextManager[None]:
    return _switch(jit=program)
