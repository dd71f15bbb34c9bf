"""wsi-ihc: cell detection and classification in whole-slide IHC images."""

__version__ = "0.1.0"
