"""How fast the network trains: ``step`` (the training step against a dense reference, snnTorch and
SpikingJelly; the scaling), ``limits`` (each part of the step against the machine's roofline) and
``command`` (``python -m snnlib bench``). Imports :mod:`snnlib.model` and :mod:`snnlib.experiment`.
"""
