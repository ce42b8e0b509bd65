"""The top floor: the `dermedge` CLI (`cli.py`) and the command front ends it calls (predict,
evaluate, calibrate, benchmark, stream, the bundle tables). Installed as `dermedge.commands`;
nothing below imports it."""
