"""Every registered task evaluator follows the evaluator contract (harness.core.task_result)."""
import inspect
import typing

import pytest

from harness.core.registry import TASKS
from harness.core.task_result import Metric, TaskResult, metrics_in

TASKS.import_from_location()


@pytest.mark.parametrize('name', sorted(TASKS.module_dict))
def test_registered_evaluators_take_the_contract_arguments_and_return_a_task_result(name):
    evaluator = TASKS.get(name)
    parameters = inspect.signature(evaluator).parameters
    assert list(parameters)[:2] == ['model', 'dataset'], name
    for keyword in ('device', 'work_dir', 'cache_key'):
        assert keyword in parameters, f'{name} does not take {keyword}='
        assert parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY, (name, keyword)
    assert typing.get_type_hints(evaluator)['return'] is TaskResult, name


def test_task_result_keeps_units_and_directions():
    result = TaskResult(metrics={**metrics_in({'TR@1': 20.0}, '%'),
                                 'MdR': Metric(2.0, 'rank', higher_is_better=False)})
    assert result.values() == {'TR@1': 20.0, 'MdR': 2.0}
    assert result.units() == {'TR@1': '%', 'MdR': 'rank'}
    assert result.directions() == {'TR@1': True, 'MdR': False}
