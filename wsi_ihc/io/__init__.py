"""Files <-> arrays, and nothing about cells' meaning: ``slide`` opens whole-slide images
and plain images behind one API (``tiff_tiles`` decodes JPEG TIFF tiles directly),
``tissue`` masks the glass, ``points`` is the cell table and its CSV/GeoJSON formats (and
reads HoVer-Net ``.mat``), ``annotated_folder`` and ``annotated_slides`` read annotated
training and evaluation data, ``ngff`` writes OME-Zarr multiscales, ``atomic`` writes files
that are complete or absent, ``hashing`` names the exact model or slide a result came from."""
