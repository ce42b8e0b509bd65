"""dermedge: train, export and run a two-stage skin-lesion pipeline on edge devices.

This folder is the shared floor that training, export and the commands stand on: errors, dataset
readers and label tables, lesion-grouped splits, metrics and plots. It imports only
`edge_runtime`. `dermedge.train`, `dermedge.export` and `dermedge.commands` are installed from the
repository's `train/`, `export/` and `commands/` folders (pyproject's package-dir).
"""

__version__ = "0.1.0"
