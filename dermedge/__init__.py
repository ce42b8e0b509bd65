"""dermedge: train, export and run a two-stage skin-lesion pipeline on edge devices."""

__version__ = "0.1.0"
