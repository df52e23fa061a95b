"""The update rules the kernels implement: the one registry of their names, the state
arrays each keeps and the arguments each takes.

``<name>_update(w, g, *states, lr, *hypers, clip, scale)`` in both kernel modules, and
``train_step(..., rule, states, lr, hypers, clip, max_norm)``, take them in this order.
``charrnn.optim`` builds its optimizers from this table, with the defaults of
``charrnn.config``.
"""

from __future__ import annotations

from typing import NamedTuple


class Rule(NamedTuple):
    title: str                  # the name people know it by
    states: tuple[str, ...]     # the state arrays, shaped like the parameters
    hypers: tuple[str, ...]     # the arguments between lr and clip ("step" counts from 1)


RULES = {"sgd": Rule("SGD", (), ()),
         "adagrad": Rule("Adagrad", ("m",), ("eps",)),
         "rmsprop": Rule("RMSprop", ("v",), ("rho", "eps")),
         "adam": Rule("Adam", ("m", "v"), ("beta1", "beta2", "eps", "step"))}
