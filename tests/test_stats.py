"""snnlib.study.stats: the t-tests on runs that sit at one value."""

import math
import warnings

from snnlib.study import stats as S


def test_runs_nearly_at_one_value_are_tested_without_a_precision_warning():
    at_chance = [0.1, 0.1, 0.1, 0.1, math.nextafter(0.1, 1.0)]  # scipy warns of catastrophic cancellation here
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would fail the test
        one = S.one_sample(at_chance, 0.2)
        two = S.compare([0.2, 0.21, 0.22], at_chance)
    assert one.diff < 0 and one.welch_p < 0.05
    assert two.diff < 0 and two.n_base == 3 and two.n_variant == 5


def test_the_explorers_welch_test_is_quiet_on_runs_at_one_value_too():
    from snnlib.study.explorer import welch

    at_chance = [0.1, 0.1, 0.1, 0.1, math.nextafter(0.1, 1.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert welch([0.2, 0.21, 0.22], at_chance).diff < 0
