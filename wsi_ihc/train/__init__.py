"""The paper's multi-task training from point annotations: ``config`` (the recipe),
``dataset`` (annotated images and slides, split), ``augment`` and ``batches`` (crops and
their targets from ``masks``), ``losses``, ``loop`` (epochs, resumable), ``stages`` (the
prior model, then the main one), ``validate`` (F1 through infer's engine), ``run`` (one
training run)."""
