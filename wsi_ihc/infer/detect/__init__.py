"""Slide -> probability maps -> cells.

``geometry`` places tiles and blocks, ``predict`` runs the model on tiles, ``pipeline``
streams blocks through it into Zarr with Dask, ``peaks`` finds cells as local maxima and
``block_peaks`` does it block by block with halos from the neighbours, ``cell_bands`` hands
the cells on in raster order, ``map_pyramid`` writes the OME-Zarr levels of the map, and
``engine`` ties them into the one path every command detects with (infer, evaluate,
tuning, validation).
"""
