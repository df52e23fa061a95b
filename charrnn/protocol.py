"""What the layers under the model need of one, checked by duck typing.

Sampling, checkpoints and training take a model object and never import
:mod:`charrnn.model` (which imports them for its convenience methods), so they cannot ask
``isinstance(model, CharRNN)``; :func:`require_model` checks the attributes they use instead.
"""

from __future__ import annotations

# what sampling, checkpoints and training read of a model
MODEL_ATTRIBUTES = ("vocab", "hidden_size", "vocab_size", "cell", "num_layers", "dropout",
                    "state_size", "dtype", "seed", "layout", "theta", "grad", "params",
                    "num_params", "kernels", "workspace", "_lock")


def require_model(model) -> None:
    """Raise ``TypeError`` unless ``model`` has what a CharRNN has for the layers below it.

    Parameters
    ----------
    model : object
        The object given as a model.
    """
    if not all(hasattr(model, name) for name in MODEL_ATTRIBUTES):
        raise TypeError(f"model must be a CharRNN, not {type(model).__name__}")
