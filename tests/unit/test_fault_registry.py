import pytest

from harness.errors import ChaosError
from harness.faults.registry import faults, parse


def test_catalogue_has_the_skeleton_faults_with_descriptions():
    names = set(faults())
    assert {"none", "broker-restart", "connection-cut", "reset-peer"} <= names
    for cls in faults().values():
        assert cls.description, cls


def test_spec_with_parameters_is_typed():
    f = parse("reset-peer:timeout_ms=250,target=consumer")
    assert f.params() == {"target": "consumer", "timeout_ms": 250, "stream": "downstream"}


@pytest.mark.parametrize(("spec", "problem", "fix"), [
    ("nope", "unknown fault 'nope'", "choose one of:"),
    ("reset-peer:bogus=1", "fault 'reset-peer' has no parameter 'bogus'", "its parameters: stream, target, timeout_ms"),
    ("reset-peer:timeout_ms=soon", "timeout_ms='soon' is not a valid int", "reset-peer:timeout_ms=1"),
    ("connection-cut:target=nobody", "target='nobody' is not one of all, publisher, consumer", "target=all"),
    ("connection-cut:target", "parameter 'target' has no value", "connection-cut:target=VALUE"),
])
def test_bad_specs_get_one_clear_error_with_a_fix(spec, problem, fix):
    with pytest.raises(ChaosError) as info:
        parse(spec)
    assert problem in info.value.problem
    assert fix in (info.value.fix or "")
