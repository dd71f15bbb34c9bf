"""Many slides on a Dask cluster: ``discovery`` finds them and names their outputs,
``cluster`` connects to workers (``jobqueue``: as SLURM/PBS jobs), ``task`` is what a worker
does for one slide, ``run`` submits, skips and records, ``table`` writes
``batch.csv``/``batch.json``."""
