"""Training: the loop and everything a run needs besides the model and the data.

=================  ==========================================================
``step``           :class:`Stepper`: one training step (the trainer's and the benchmark's)
``report``         console output: header, progress lines or a tqdm bar, footer
``result``         :class:`TrainResult`: what a call of ``train`` did
``loop``           :class:`Trainer`: the fit loop, evaluation, checkpoints, Ctrl-C
``run``            :func:`train`: a run assembled for a model, and the resume policy
=================  ==========================================================

These modules take a model object and never import :mod:`charrnn.model`, which imports
them for ``CharRNN.fit``. The state they advance, :class:`~charrnn.train_state.TrainState`,
lies below them, beside the checkpoint format that stores it; this file imports nothing.
"""
