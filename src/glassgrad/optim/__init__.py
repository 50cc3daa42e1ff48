"""Optimizers (``SGD``, ``Adam``, ``AdamW``, ``RMSprop``) and ``lr_scheduler``.

Each matches its ``torch.optim`` namesake step for step. ``step()`` reads each
parameter's ``.grad`` and updates its ``.data`` in place (``p.data -= ...``), so the
engine sees the write; a parameter whose gradient is ``None`` is skipped. Scratch buffers
are made once, so a step allocates little: it sits on the hot path of per-sample training.

>>> import glassgrad as gg
>>> w = gg.tensor([1.0], requires_grad=True)
>>> opt = gg.optim.AdamW([w], lr=0.1)
>>> sched = gg.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
>>> (w * w).sum().backward(); opt.step(); sched.step()
>>> round(opt.lr, 3), round(float(w.data[0]), 4)
(0.05, 0.899)
"""

from . import lr_scheduler
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
