"""Detections against point annotations: ``matching`` (one-to-one matching within a radius,
F1 tables), ``peak_tuning`` (threshold and minimum distance chosen on annotated images),
``baseline`` (a classical colour-deconvolution detector to compare with), ``run`` (one
``wsi-ihc evaluate``: images, detections, report) and ``outputs`` (its files)."""
