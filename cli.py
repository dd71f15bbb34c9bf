"""``python cli.py ...`` is ``wsi-ihc ...``: the thin entry the product card names.

The commands live in ``wsi_ihc/cli/``; this file only calls them, so a clone can be run
before (or without) installing the console script.
"""

from wsi_ihc.cli import main

if __name__ == "__main__":
    main()
