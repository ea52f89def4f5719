"""Reading the study's records: everything the README and the analysis chapters state.

``stats`` (tests, intervals, Holm; pure functions of numbers) and ``preregistration`` (the rules fixed
in advance) -> ``records`` (sealed run records as tables) -> ``progress`` (what has landed, reruns) and
``seal`` (sealing older files once) -> ``claims`` (C1-C3 tested) -> ``questions``, ``sites`` and
``neurons`` (the study's own questions and the chapters' sentences) -> ``evaluations`` and
``uncertainty_verdict`` (the uncertainty files and their verdict) -> ``plots`` and ``verdict_plots``
(figures) -> ``report`` (the README's findings). Imports :mod:`snnlib.model`, :mod:`snnlib.experiment`
and :mod:`snnlib.uncertainty`, never :mod:`snnlib.bench`.
"""
