"""The training objectives, one module per stage: what each stage's loss is, written as the equations.

Each is a task for the ``Trainer`` (``minifusion.training.tasks`` has the protocol):
``task.loss(model, batch, sample_indices, generators) -> scalar``, the mean over the samples of the
micro-batch, every random draw from the sample's own generator. The recipes
(``minifusion.training.recipes``) only orchestrate: data, model, trainer, files. Import each task from
its module, e.g. ``from minifusion.training.objectives.keyframes import KeyframesTask``.
"""
