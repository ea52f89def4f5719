"""Running experiments: one run and many.

``system`` (devices, atomic files, sealed states, folder locks, provenance) -> ``data`` (real MNIST and
CIFAR-10, verified and encoded once) -> ``config`` (a run's configuration) -> ``training`` (an epoch,
an evaluation, the silencing measure) -> ``run`` (one resumable run and its sealed record) -> ``grid``
(grid files) -> ``notebook_task`` (one configuration through the papermill notebook, in a child process)
-> ``runner`` (a grid of them, resumably, side by side). Imports only
:mod:`snnlib.model` from the rest of snnlib.
"""
