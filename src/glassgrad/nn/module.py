"""``Module``: the base class of every layer and network, and ``functional_call``.

A module is plain data: its parameters are eager tensors with ``requires_grad=True`` held
as attributes, its sub-modules are modules held as attributes. Assigning either one as an
attribute registers it, in assignment order, so ``named_parameters()`` walks a network in
the order it was built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .._tensor import Tensor

__all__ = ["Module", "functional_call"]


class Module:
    """Base class of layers and networks: subclass it, assign parameters, write ``forward``.

    >>> import numpy as np, glassgrad as gg
    >>> class Scale(gg.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = gg.tensor([2.0], requires_grad=True)
    ...     def forward(self, x):
    ...         return x * self.w
    >>> m = Scale()
    >>> [name for name, _ in m.named_parameters()]
    ['w']
    >>> m(gg.tensor([3.0])).data
    array([6.])
    """

    training: bool = True  # class default, so subclasses need not call super().__init__()

    def __init__(self) -> None:
        self._registry()  # keeps members assigned before super().__init__()

    def _registry(self) -> dict[str, Any]:
        # Created lazily, so a subclass that forgets super().__init__() still works.
        members = self.__dict__.get("_members")
        if members is None:
            members = {}
            object.__setattr__(self, "_members", members)
        return members

    def __setattr__(self, name: str, value: Any) -> None:
        members = self._registry()
        if isinstance(value, Module) or (isinstance(value, Tensor) and value.requires_grad):
            members.pop(name, None)  # re-assignment moves the member to the end
            members[name] = value
        else:
            members.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._registry().pop(name, None)
        object.__delattr__(self, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # --- walking the tree --------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in self._registry().items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every sub-module, depth first, each once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child}" if name else child, m)
                        for child, m in module.named_children()]
            stack.extend(reversed(children))

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, tensor)`` pairs in assignment order, e.g. ``"layers.0.weight"``.

        A tensor shared by several modules is listed once, under its first name.
        """
        seen: set[int] = set()
        for name, owner, attr in self._slots():
            param = owner.__dict__[attr]
            if id(param) not in seen:
                seen.add(id(param))
                yield name, param

    def parameters(self) -> list[Tensor]:
        """Every parameter once, in ``named_parameters()`` order, as a list.

        A list rather than PyTorch's iterator: ``len(net.parameters())`` works, and it can be
        walked twice (handing it to an optimizer does not exhaust it).
        """
        return [param for _, param in self.named_parameters()]

    # --- buffers: arrays that are state but not parameters (running statistics) ---------
    def register_buffer(self, name: str, value: Any) -> None:
        """Keep ``value`` (an array) as state: saved in ``state_dict``, never trained.

        >>> import numpy as np, glassgrad as gg
        >>> m = gg.nn.Module()
        >>> m.register_buffer("count", np.zeros(()))
        >>> list(m.state_dict())
        ['count']
        """
        buffers = self._buffer_names()
        if name in self._registry():
            raise ValueError(f"{name!r} is already a parameter or sub-module")
        object.__setattr__(self, name, np.asarray(value))
        if name not in buffers:
            buffers.append(name)

    def _buffer_names(self) -> list[str]:
        names = self.__dict__.get("_buffers")
        if names is None:
            names = []
            object.__setattr__(self, "_buffers", names)
        return names

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(dotted name, array)`` for every buffer, e.g. ``"0.running_mean"``."""
        for prefix, module in self.named_modules():
            for name in module._buffer_names():
                yield (f"{prefix}.{name}" if prefix else name), module.__dict__[name]

    def _slots(self, prefix: str = "") -> Iterator[tuple[str, Module, str]]:
        """``(dotted name, owning module, attribute)`` for every parameter, in order."""
        for name, value in self._registry().items():
            full = f"{prefix}{name}"
            if isinstance(value, Module):
                yield from value._slots(full + ".")
            else:
                yield full, self, name

    # --- training helpers --------------------------------------------------------------
    def zero_grad(self) -> None:
        for param in self.parameters():
            param.grad = None

    def train(self, mode: bool = True) -> Module:
        for _, module in self.named_modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    # --- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's array and then every buffer's, keyed by dotted name."""
        state = {name: param.data.copy() for name, param in self.named_parameters()}
        state.update((name, buf.copy()) for name, buf in self.named_buffers())
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy ``state``'s arrays into the parameters and buffers in place.

        Everything is checked before anything is written, so a failure leaves the module
        as it was: missing or unexpected keys (unless ``strict=False``), shape mismatches,
        and values that would lose their kind (complex into real, float into an integer
        buffer) raise ``ValueError`` naming them. Float64 into float32 is a plain cast.
        """
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(self.named_buffers())
        values = {name: _as_state_array(name, v) for name, v in state.items()}
        if strict:
            missing = [name for name in targets if name not in values]
            unexpected = [name for name in values if name not in targets]
            if missing or unexpected:
                raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys "
                                 f"{unexpected} (the model has {list(targets)})")
        problems = [_mismatch(name, targets[name], v) for name, v in values.items()
                    if name in targets]
        problems = [p for p in problems if p]
        if problems:
            raise ValueError("load_state_dict: nothing was loaded: " + "; ".join(problems))
        for name, value in values.items():
            if name in targets:
                targets[name][...] = value

    # --- display -----------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


def _as_state_array(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value.data if isinstance(value, Tensor) else value)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"load_state_dict: {name!r} holds {array.dtype} data, not numbers")
    return array


def _mismatch(name: str, target: np.ndarray, value: np.ndarray) -> str | None:
    if target.shape != value.shape:
        return f"{name!r}: model {target.shape}, state {value.shape}"
    if not np.can_cast(value.dtype, target.dtype, casting="same_kind"):
        return (f"{name!r}: a {value.dtype} value cannot go into a {target.dtype} array "
                "without losing part of it (e.g. the imaginary part)")
    return None


def functional_call(module: Module, params: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``module`` with ``params`` (dotted name -> value) in place of its own parameters.

    The values may be arrays or traced values, so a network becomes a plain function of its
    parameters that ``gg.grad`` and ``gg.check_grad`` can differentiate. The module's own
    parameters are put back afterwards, even if the call raises.

    >>> import numpy as np, glassgrad as gg
    >>> layer = gg.nn.Linear(2, 1, bias=False)
    >>> gg.nn.functional_call(layer, {"weight": np.ones((2, 1))}, np.array([1.0, 2.0]))
    array([3.])
    """
    slots = {name: (owner, attr) for name, owner, attr in module._slots()}
    unknown = [name for name in params if name not in slots]
    if unknown:
        raise ValueError(f"functional_call: unknown parameter names {unknown} "
                         f"(the module has {list(slots)})")
    saved = []
    try:
        for name, value in params.items():
            owner, attr = slots[name]
            saved.append((owner, attr, owner.__dict__[attr]))
            object.__setattr__(owner, attr, value)  # bypasses registration on purpose
        return module(*args, **kwargs)
    finally:
        for owner, attr, old in reversed(saved):
            object.__setattr__(owner, attr, old)
