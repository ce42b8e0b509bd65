"""`dermedge.export`: trained Keras models -> pruned / quantized TFLite and Core ML variants -> a bundle.

Each transformation is one function from model to model (`optimize.py`), each format one
converter (`formats.py` lists them all), and every exported file is checked against its Keras
original (`validate.py`) before it is written into the bundle's manifest (`bundle.py`).
"""
