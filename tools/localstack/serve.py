"""Starts LocalStack (`python -m localstack.runtime.main`) with one fix of a race in
its Step Functions provider, which an activity worker under load otherwise hits.

The race, in localstack-core 2026.3.0: GetActivityTask, SendTaskSuccess,
SendTaskFailure and SendTaskHeartbeat look for the execution that owns a task token
among all executions, reading each one's `exec_worker.env`. An execution that is
being started (StartExecution, or a parent's `startExecution.sync:2`) has no worker or
no environment yet, so the lookup raises `'NoneType' object has no attribute
'callback_pool_manager'` and the call fails with 500 InternalError. For
GetActivityTask the task was already taken off the activity's queue: it is lost, and
its execution waits for it until the Task's heartbeat or timeout.

Reproduction: poll an activity with a few workers while starting executions of a
state machine whose first state is that activity's Task, a hundred at once; some
GetActivityTask and SendTaskSuccess calls fail with 500 (LocalStack's log shows the
error) and some executions never move on.

The fix skips the executions that have no environment yet, which cannot own a task.
"""

import runpy

from localstack.aws.api.stepfunctions import (
    InvalidToken,
    SendTaskFailureOutput,
    TaskDoesNotExist,
    TaskTimedOut,
)
from localstack.services.stepfunctions import provider
from localstack.services.stepfunctions.asl.eval.callback.callback import (
    CallbackConsumerTimeout,
    CallbackNotifyConsumerError,
    CallbackOutcomeFailure,
)

Provider = provider.StepFunctionsProvider
_get_executions = Provider._get_executions


def _started_executions(self, context, execution_status=None):
    return [
        e
        for e in _get_executions(self, context, execution_status)
        if e.exec_worker is not None and getattr(e.exec_worker, "env", None) is not None
    ]


def send_task_failure(self, context, task_token, error=None, cause=None, **kwargs):
    outcome = CallbackOutcomeFailure(callback_id=task_token, error=error, cause=cause)
    for execution in self._get_executions(context):
        try:
            if execution.exec_worker.env.callback_pool_manager.notify(
                callback_id=task_token, outcome=outcome
            ):
                return SendTaskFailureOutput()
        except CallbackNotifyConsumerError as consumer_error:
            if isinstance(consumer_error, CallbackConsumerTimeout):
                raise TaskTimedOut()
            raise TaskDoesNotExist()
    raise InvalidToken("Invalid token")


# GetActivityTask, SendTaskSuccess and SendTaskHeartbeat find executions through
# `_get_executions`; SendTaskFailure reads the store directly, so it is replaced by the
# same code over `_get_executions`.
Provider._get_executions = _started_executions
Provider.send_task_failure = send_task_failure
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
