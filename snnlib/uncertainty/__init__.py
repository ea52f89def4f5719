"""Uncertainty of trained networks: ``metrics`` (NLL, Brier, ECE, AUROC, temperature; pure functions),
``predict`` (deterministic, MC dropout and single-pass predictions), ``shift`` (shifted and
out-of-distribution sets), ``evaluate`` (a run's or an ensemble's sealed ``uncertainty.json``) and
``command`` (``python -m snnlib uncertainty``). Imports :mod:`snnlib.model` and :mod:`snnlib.experiment`.
"""
