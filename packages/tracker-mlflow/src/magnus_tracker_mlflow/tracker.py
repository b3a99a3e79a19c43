"""The ``mlflow`` experiment tracker: every magnus run, step and map element visible in MLflow.

Mapping (see the README for the user's view):

* one magnus run -> one MLflow **parent run**, named after the magnus run id, in the experiment
  ``experiment_name`` (default: the run's tag, else ``Default``); its tags say which run, code,
  pipeline and dag it was, and its status once the run ends; the run's initial parameters are
  its params;
* each leaf step (each map element's steps too) -> a **child run** (``mlflow.parentRunId``)
  named after the step's resolved internal name, in the same experiment, when ``nested_runs``
  is on; its params are what the step produced, its metrics what it tracked, at their steps;
* the run log records the ids: ``run_config.experiment_tracker.mlflow`` (experiment and parent
  run) and ``mlflow_run_id`` on each step log.

Processes: the parent run is created where the run starts (``before_run``) and its id is
recorded in ``run_config`` (see :mod:`.runs`), which every process running a branch or a step
reads; so parallel branches and map elements in other processes add their child runs to the
same parent.

Failures: MLflow calls are bounded and an unreachable server is left alone for a while (see
:mod:`.client`). Metrics that cannot be published fail the step only when the tracker is
``strict``; the run log keeps them either way.

``mlflow`` is imported only where it is used: ``import magnus`` and ``magnus --help`` stay fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, PrivateAttr, model_validator

from magnus.executors.ending import interrupted
from magnus.tracking import BaseExperimentTracker, ExperimentTrackerError
from magnus_tracker_mlflow import values
from magnus_tracker_mlflow.client import (
    BACKOFF_FACTOR,
    BACKOFF_VARIABLE,
    RETRIES_VARIABLE,
    TIMEOUT_VARIABLE,
    TRACKING_URI_VARIABLE,
    BoundedClient,
    MLflowUnavailableError,
    environment,
    fluent_tracking_uri,
    hide_password,
    quiet,
)
from magnus_tracker_mlflow.publishing import (
    METRICS_ARTIFACT,
    PARAMETERS_ARTIFACT,
    artifact_path,
    log_split,
)
from magnus_tracker_mlflow.runs import (
    FINAL_STATUS,
    KIND_TAG,
    RUN_ID_TAG,
    STATUS_TAG,
    STEP_LOG_FIELD,
    RunState,
    ensure_experiment,
    record_ids,
    recorded_ids,
    run_tags,
    step_tags,
)

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.nodes import BaseNode
    from magnus.runlog.models import RunLog, StepLog

__all__ = ["MLflowTracker", "MLflowUnavailableError"]

# Under "magnus" so that ``--log-level`` and magnus' console handler apply to these messages.
logger = logging.getLogger("magnus.mlflow")


class MLflowTracker(BaseExperimentTracker):
    """Sends runs, steps, parameters and metrics to an MLflow tracking server.

    Configuration::

        experiment_tracker:
          type: mlflow
          config:
            tracking_uri: http://127.0.0.1:5000   # or server_url (magnus 0.5's name)
            experiment_name: churn                # default: the run's tag, else Default
            nested_runs: true                     # a child run per step
            autolog: false                        # mlflow.autolog() inside the client context
            request_timeout: 10                   # seconds per HTTP request
            max_retries: 2                        # retries per request
            strict: false                         # true: a step whose metrics fail fails
    """

    service_name: ClassVar[str] = "mlflow"

    tracking_uri: str | None = Field(
        default=None,
        description="The tracking server; without it, MLFLOW_TRACKING_URI. 0.5: server_url.",
    )
    experiment_name: str | None = Field(
        default=None, description="The MLflow experiment; default: the run's tag, else Default."
    )
    nested_runs: bool = Field(default=True, description="A child run per step and map element.")
    autolog: bool = Field(
        default=False, description="Enable mlflow.autolog (no models) inside the client context."
    )
    request_timeout: int = Field(
        default=10, ge=1, description="Seconds an HTTP request to MLflow may take."
    )
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of an MLflow request that failed."
    )

    _state: RunState | None = PrivateAttr(default=None)
    _bounded: BoundedClient | None = PrivateAttr(default=None)
    _autolog_enabled: bool = PrivateAttr(default=False)

    # ------------------------------------------------------------------ configuration

    @model_validator(mode="before")
    @classmethod
    def _accept_server_url(cls, data: Any) -> Any:
        """magnus 0.5 called the tracking URI ``server_url``: accept it, but not both at once."""
        if isinstance(data, Mapping) and "server_url" in data:
            data = dict(data)
            server_url = data.pop("server_url")
            if data.get("tracking_uri") not in (None, server_url):
                raise ValueError("give tracking_uri or its 0.5 name server_url, not both")
            data["tracking_uri"] = server_url
        return data

    @model_validator(mode="after")
    def _require_a_tracking_uri(self) -> MLflowTracker:
        # MLflow's own fallback (a sqlite file in the working directory) would scatter runs
        # over every folder a step runs in, and needs the full mlflow: refuse it up front.
        if not self.uri:
            raise ValueError(
                f"no tracking server: set tracking_uri (or server_url) or {TRACKING_URI_VARIABLE}"
            )
        return self

    @property
    def uri(self) -> str:
        """The tracking URI in use: the configured one, else ``MLFLOW_TRACKING_URI``."""
        return self.tracking_uri or os.environ.get(TRACKING_URI_VARIABLE, "")

    def record(self) -> dict[str, Any]:
        """The public configuration, with any password in the tracking URI masked."""
        recorded = super().record()
        if recorded.get("tracking_uri"):
            recorded["tracking_uri"] = hide_password(recorded["tracking_uri"])
        return recorded

    def _http_settings(self) -> dict[str, str]:
        """The MLflow HTTP settings for this tracker's calls.

        A value set in the configuration wins; otherwise a value the user exported wins over
        this tracker's defaults, which are much shorter than MLflow's (7 retries with backoff 2
        and 120 s timeouts make an unreachable server cost four minutes per call).
        """
        settings: dict[str, str] = {}
        chosen = self.model_fields_set
        for variable, option, value in (
            (TIMEOUT_VARIABLE, "request_timeout", self.request_timeout),
            (RETRIES_VARIABLE, "max_retries", self.max_retries),
            (BACKOFF_VARIABLE, "", BACKOFF_FACTOR),
        ):
            if option in chosen or variable not in os.environ:
                settings[variable] = str(value)
        return settings

    # ------------------------------------------------------------------ MLflow calls

    @property
    def _server(self) -> BoundedClient:
        """The bounded client of this tracker's server (never the fluent API's global URI)."""
        if self._bounded is None:
            self._bounded = BoundedClient(self.uri, self._http_settings)
        return self._bounded

    # ------------------------------------------------------------------ run bookkeeping

    def _state_for(self, magnus_run_id: str) -> RunState:
        """This process' state of ``magnus_run_id`` (a tracker instance serves one run)."""
        if self._state is None or self._state.magnus_run_id != magnus_run_id:
            self._state = RunState(magnus_run_id)
        return self._state

    @staticmethod
    def _current_run() -> RunContext | None:
        from magnus.context import current_run

        return current_run.get()

    def _parent_run(
        self,
        context: RunContext | None,
        parameters: Mapping[str, Any] | None = None,
        create: bool = True,
        search: bool = True,
    ) -> str | None:
        """The MLflow parent run of the current magnus run: known, recorded, found or new.

        A process running branches finds it in ``run_config``. When no process recorded one
        (the server was down when the run started, or an orchestrator started the run in a
        step's own process), a run tagged with the magnus run id is searched for (unless the
        run has just started: there is none), and only then is one created and recorded.
        """
        magnus_run_id = context.run_id if context else f"standalone-{uuid.uuid4().hex[:12]}"
        if context is None and self._state is not None:
            magnus_run_id = self._state.magnus_run_id  # the standalone run made earlier
        state = self._state_for(magnus_run_id)
        if state.parent_run_id is not None:
            return state.parent_run_id
        if context is not None:
            recorded = recorded_ids(context)
            if recorded.get("parent_run_id"):
                state.experiment_id = str(recorded["experiment_id"])
                state.parent_run_id = str(recorded["parent_run_id"])
                return state.parent_run_id
        experiment = self.experiment_name or (context.tag if context else "") or "Default"
        experiment_id = ensure_experiment(self._server, state, experiment)
        if context is not None and search:
            found = self._server.call(
                "find the run's parent run",
                "search_runs",
                [experiment_id],
                filter_string=(
                    f"tags.`{RUN_ID_TAG}` = '{magnus_run_id}' and tags.`{KIND_TAG}` = 'run'"
                ),
                max_results=1,
            )
            if found:
                state.parent_run_id = str(found[0].info.run_id)
                record_ids(context, state, self.uri)
                return state.parent_run_id
        if not create:
            return None
        run = self._server.call(
            "create the run's parent run",
            "create_run",
            experiment_id,
            run_name=magnus_run_id,
            tags=run_tags(context, magnus_run_id),
        )
        state.parent_run_id = str(run.info.run_id)
        if context is not None:
            record_ids(context, state, self.uri)
            if parameters is None:
                # Created late, by a step: the parameters as they are now are the best record.
                parameters = context.run_log_store.get_parameters(context.run_id)
        if parameters:
            split = values.split_parameters(parameters)
            log_split(self._server, state, state.parent_run_id, split, PARAMETERS_ARTIFACT)
        return state.parent_run_id

    def _step_run(
        self, step_name: str, context: RunContext | None, node: BaseNode | None = None
    ) -> str:
        """The run a step logs to: its child run (created if need be), or the parent run."""
        parent = self._parent_run(context)
        assert parent is not None and self._state is not None
        state = self._state
        if not self.nested_runs:
            return parent
        if step_name in state.step_runs:
            return state.step_runs[step_name]
        tags = step_tags(step_name, parent, state.magnus_run_id, context, node)
        assert state.experiment_id is not None
        # The experiment is given explicitly: MLflow's nested runs do not inherit the parent's.
        run = self._server.call(
            f"create the run of step {step_name!r}",
            "create_run",
            state.experiment_id,
            run_name=step_name,
            tags=tags,
        )
        state.step_runs[step_name] = str(run.info.run_id)
        return state.step_runs[step_name]

    # ------------------------------------------------------------------ the tracker contract

    def publish_data(self, metrics: Mapping[str, Any], step_internal_name: str) -> None:
        """Log a step's tracked values to its run: numbers as metrics at their step.

        Other scalars become params, the rest ``metrics.json`` (see :mod:`.values`).
        """
        if not metrics:
            return
        context = self._current_run()
        run_id = self._step_run(step_internal_name, context)
        assert self._state is not None
        artifact = artifact_path(step_internal_name, METRICS_ARTIFACT, self.nested_runs)
        log_split(self._server, self._state, run_id, values.split_metrics(metrics), artifact)

    @property
    def client_context(self) -> contextlib.AbstractContextManager[Any]:
        """MLflow's active run for user code: the step's child run (or the parent run).

        Inside the block ``mlflow.active_run()`` is that run and the fluent API
        (``mlflow.log_metric``, ``mlflow.log_artifact``...) writes to this tracker's server;
        both are put back as they were when the block ends. The run stays open: magnus closes
        it when the step ends. When the server cannot be reached the block gets ``None``
        (a warning is logged) unless the tracker is ``strict``.
        """
        return self._client_context()

    @contextlib.contextmanager
    def _client_context(self) -> Iterator[Any]:
        import mlflow

        with environment(self._http_settings()), fluent_tracking_uri(self.uri):
            if self.autolog and not self._autolog_enabled:
                mlflow.autolog(log_models=False, silent=True)
                self._autolog_enabled = True
            active = mlflow.active_run()
            run_id = ""
            started = None
            problem: Exception | None = None
            try:
                run_id = self._run_for_user()
                if active is None or active.info.run_id != run_id:
                    started = self._resume(run_id, nested=active is not None)
            except Exception as exc:
                problem = exc
            if problem is not None:
                message = f"The MLflow run for user code could not be started: {problem}"
                if self.strict:
                    raise ExperimentTrackerError(message) from problem
                logger.warning(message)
                yield None
                return
            try:
                yield started or active
            finally:
                if started is not None:
                    self._release(run_id)

    def _run_for_user(self) -> str:
        """The current step's run, or the parent run outside a step."""
        from magnus.context import current_step

        context = self._current_run()
        step = current_step.get()
        if step is not None:
            return self._step_run(step.step_log.internal_name, context)
        parent = self._parent_run(context)
        assert parent is not None
        return parent

    def _resume(self, run_id: str, nested: bool) -> Any:
        """Make ``run_id`` MLflow's active run (resuming it sets it RUNNING, which it is)."""
        import mlflow

        if time.monotonic() < self._server.unreachable_until:
            raise MLflowUnavailableError(self._server.unreachable_reason)
        with self._server.noting_unreachable("start the run for user code"):
            return mlflow.start_run(run_id=run_id, nested=nested)

    def _release(self, run_id: str) -> None:
        """Take ``run_id`` off MLflow's active-run stack without ending it.

        ``end_run`` is MLflow's only public way to pop the stack; given ``RUNNING`` it leaves
        the status alone, and magnus sets the final one when the step ends. Runs the user
        started inside the block and left open are ended first, as MLflow itself would. The
        stack is popped before MLflow calls the server, so a failure here leaves it right and
        is only worth a warning: nothing tracked is lost.
        """
        import mlflow

        try:
            with (
                environment(quiet()),
                self._server.noting_unreachable("release the run of user code"),
            ):
                while (active := mlflow.active_run()) is not None and active.info.run_id != run_id:
                    mlflow.end_run()
                if mlflow.active_run() is not None:
                    mlflow.end_run(status="RUNNING")
        except Exception as exc:
            logger.warning("The MLflow run of user code could not be released: %s", exc)

    # ------------------------------------------------------------------ observer hooks

    def start_tracking(self, run_log: RunLog, context: RunContext) -> None:
        """``before_run``: the parent run, its tags and initial parameters, recorded ids."""
        state = self._state_for(context.run_id)
        if state.parent_run_id is None:
            self._parent_run(context, parameters=run_log.parameters, search=False)

    def start_step(self, step_log: StepLog, node: BaseNode, context: RunContext) -> None:
        """``before_step``: the step's child run, its id on the step log."""
        if node.is_terminal:
            return
        run_id = self._step_run(step_log.internal_name, context, node)
        setattr(step_log, STEP_LOG_FIELD, run_id)

    def note_step_error(self, step_log: StepLog, error: BaseException) -> None:
        """``on_step_error``: the attempt's message as a tag of the step's run.

        Not on a shared parent run: a step that failed there and was recovered from would
        leave a run that succeeded looking failed.
        """
        run_id = self._known_step_run(step_log)
        if run_id is None or not self.nested_runs:
            return
        message = step_log.attempts[-1].message if step_log.attempts else str(error)
        # magnus hands observers masked messages; masked here again, as every tag is.
        self._server.call(
            "tag the step's error",
            "set_tag",
            run_id,
            "magnus.error",
            values.tag_text(message)[:5000],
        )

    def finish_step(self, step_log: StepLog, node: BaseNode, context: RunContext) -> None:
        """``after_step``: the step's outputs as params, its status, its run closed."""
        if node.is_terminal:
            return
        run_id = self._known_step_run(step_log)
        if run_id is None or self._state is None:
            return  # its run could not be created: nothing to close
        if not getattr(step_log, STEP_LOG_FIELD, None):
            setattr(step_log, STEP_LOG_FIELD, run_id)  # created late, by publish_data
        outputs = step_log.attempts[-1].output_parameters if step_log.attempts else {}
        prefix = "" if self.nested_runs else f"{step_log.internal_name}/"
        split = values.split_parameters(outputs, prefix)
        artifact = artifact_path(step_log.internal_name, PARAMETERS_ARTIFACT, self.nested_runs)
        log_split(self._server, self._state, run_id, split, artifact)
        if self.nested_runs:
            from mlflow.entities import RunTag

            tags = [
                RunTag(STATUS_TAG, step_log.status),
                RunTag("magnus.attempts", str(len(step_log.attempts))),
            ]
            self._server.call("tag the step's status", "log_batch", run_id, tags=tags)
            status = FINAL_STATUS.get(step_log.status, "FAILED")
            self._server.call("close the step's run", "set_terminated", run_id, status)
            self._state.closed_step_runs.add(run_id)

    def _known_step_run(self, step_log: StepLog) -> str | None:
        """The run this process made or found for ``step_log`` (never creates one)."""
        if self._state is None:
            return None
        if not self.nested_runs:
            return self._state.parent_run_id
        run_id = getattr(step_log, STEP_LOG_FIELD, None)
        return run_id or self._state.step_runs.get(step_log.internal_name)

    def _open_step_runs(self, parent: str) -> set[str]:
        """The step runs under ``parent`` still RUNNING on the server."""
        if self._state is None or self._state.experiment_id is None:
            return set()
        found = self._server.call(
            "find the step runs left open",
            "search_runs",
            [self._state.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'RUNNING'",
        )
        return {run.info.run_id for run in found or []}

    def finish_tracking(self, run_log: RunLog, context: RunContext) -> None:
        """``after_run``: the run's final status on the parent run, which is closed."""
        parent = self._parent_run(context, create=False)
        if parent is None:
            return
        if self._state is not None and self.nested_runs:
            # A run stopped mid-step: the steps it was in never reached after_step -- in this
            # process, or in another one (an orchestrator's pod, stopped; the exit handler ends
            # the run), whose step runs only the server knows.
            still_open = set(self._state.step_runs.values()) | self._open_step_runs(parent)
            for run_id in still_open - self._state.closed_step_runs:
                self._server.call("close a stopped step's run", "set_terminated", run_id, "KILLED")
                self._state.closed_step_runs.add(run_id)
        self._server.call("tag the run's status", "set_tag", parent, STATUS_TAG, run_log.status)
        status = (
            "KILLED" if interrupted(run_log.message) else FINAL_STATUS.get(run_log.status, "FAILED")
        )
        self._server.call("close the run's parent run", "set_terminated", parent, status)
        if self.uri.startswith(("http://", "https://")) and self._state is not None:
            logger.info(
                "MLflow run of %s: %s/#/experiments/%s/runs/%s",
                context.run_id,
                hide_password(self.uri).rstrip("/"),
                self._state.experiment_id,
                parent,
            )
