"""Numbers -> PNGs: ``overlay`` (the slide with its cells, tissue outline and hotspot,
painted block by block), ``heatmap`` (the heat-map panels), ``slide_pictures`` (both, for
one slide)."""
