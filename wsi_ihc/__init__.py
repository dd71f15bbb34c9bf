"""wsi-ihc: cell detection and classification in whole-slide IHC images.

The packages follow one slide's data flow, each importing only those listed before it:
``io`` (files <-> arrays: slides, tissue, points, OME-Zarr, atomic writes, hashes),
``model`` (the network, checkpoints and their cards, device and precision, the built-in
models), ``infer`` (a slide to cells, numbers and pictures), ``evaluate`` (detections
against annotations), ``train`` and ``batch`` (which use them), and ``cli`` (the commands).
``stains`` unmixes haematoxylin and DAB (used by ``infer``'s measures and by ``synth``);
``synth`` renders synthetic slides with known cells; ``doctor`` reports on the machine.
"""

__version__ = "0.1.0"
