"""One slide from pixels to cells, numbers and pictures.

``run`` (``infer_slide``) is the one orchestrator: it opens the slide, checks its pixel
size (``pixel_size_check`` with the ``nuclei_ruler``), runs ``detect`` (slide ->
probability maps -> cells), feeds each block's pixels and cells to ``scores`` (cells +
pixels -> numbers), hands the numbers to ``pictures`` (numbers -> PNGs), and writes the
folder atomically. ``allocator`` keeps glibc's per-thread heaps from growing peak memory.
"""
