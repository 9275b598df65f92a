"""Starts LocalStack (`python -m localstack.runtime.main`) with fixes of three races in
its Step Functions activities, which an activity worker under load otherwise hits.

1. In localstack-core 2026.3.0, GetActivityTask, SendTaskSuccess,
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

2. An answer that comes before the Task's state is waiting for it is lost. The state
logs `ActivityStarted` once a worker took the task, and only then sets up the endpoint
that SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat wake; it then waits for a
wake-up before it reads the outcome. A worker that answers at once (a step that fails
fast, such as a panic) can answer in between: the outcome is stored, nobody is woken,
and the state waits until `HeartbeatSeconds` runs out and fails with `States.Timeout`
(which the step Tasks' lost-worker retrier then retries: the step runs twice).
Reproduction: `callback.py`'s `CallbackEndpoint`: `notify(outcome)`, then
`setup_heartbeat_endpoint(1).clear_and_wait()` returns False after a second although
the outcome is there. In the differential test (CI, `retried("panic1:z3")`), a step
that panicked at once ran a second time, and its answer ended the run.

The fix wakes a heartbeat endpoint set up after the outcome came.

3. A task is put on the activity's queue before its endpoint is registered, so a worker
polling at that moment takes a task whose token no execution knows yet: GetActivityTask
fails with InvalidToken and the task is lost. The fix registers the endpoint first.
"""

import runpy

from localstack.aws.api.stepfunctions import (
    ActivityDoesNotExist,
    InvalidToken,
    SendTaskFailureOutput,
    TaskDoesNotExist,
    TaskTimedOut,
)
from localstack.services.stepfunctions import provider
from localstack.services.stepfunctions.asl.eval.callback.callback import (
    ActivityCallbackEndpoint,
    CallbackConsumerTimeout,
    CallbackEndpoint,
    CallbackNotifyConsumerError,
    CallbackOutcomeFailure,
    CallbackPoolManager,
)
from localstack.services.stepfunctions.backend.activity import ActivityTask

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


_setup_heartbeat_endpoint = CallbackEndpoint.setup_heartbeat_endpoint


def setup_heartbeat_endpoint(self, heartbeat_seconds):
    endpoint = _setup_heartbeat_endpoint(self, heartbeat_seconds)
    # `notify` stores the outcome before it looks for this endpoint: either it saw the
    # endpoint and woke it, or the outcome is visible here.
    if self.get_outcome() is not None:
        endpoint.notify()
    return endpoint


def add_activity_task(self, callback_id, activity_arn, activity_input):
    if callback_id in self._pool:
        raise ValueError("Duplicate callback token id value.")
    activity = self._activity_store.get(activity_arn)
    if activity is None:
        raise ActivityDoesNotExist()
    endpoint = ActivityCallbackEndpoint(callback_id=callback_id, activity_input=activity_input)
    self._pool[callback_id] = endpoint
    activity.add_task(ActivityTask(task_token=callback_id, task_input=activity_input))
    return endpoint


# GetActivityTask, SendTaskSuccess and SendTaskHeartbeat find executions through
# `_get_executions`; SendTaskFailure reads the store directly, so it is replaced by the
# same code over `_get_executions`.
Provider._get_executions = _started_executions
Provider.send_task_failure = send_task_failure
CallbackEndpoint.setup_heartbeat_endpoint = setup_heartbeat_endpoint
CallbackPoolManager.add_activity_task = add_activity_task
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
