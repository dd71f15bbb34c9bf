"""Cells + pixels -> numbers; nothing here draws.

``cell_measures`` measures each cell from the pixels its block read (deconvolved by
:mod:`wsi_ihc.stains`), ``intensity`` turns DAB into 0/1+/2+/3+ and H-score/Allred,
``counts`` gives counts, positive % and densities, ``hotspot`` finds the hot-spot circle,
``grids`` counts cells on heat-map squares (and writes ``heatmaps.zarr``), ``options``
checks the score options, and ``slide`` wires them into one slide's streaming pass.
"""
