"""The SRM network of the paper, equation by equation: pure functions and thin modules.

``params`` (typed, validated parameters) -> ``kernels`` (eq 2, the first-spike input coding) ->
``functional`` (eqs 1 and 3 event by event, the threshold and its surrogate gradient) -> ``dropout``
(eqs 4-8: the dropout family on ``(T, N, F)`` tensors) -> ``layers`` (one SRM layer) -> ``network``
(input, hidden layer, readout, and where dropout acts) -> ``stack`` (S networks of one architecture as one
computation along a stack axis, each with its own numbers). Imports nothing else from snnlib.
"""
