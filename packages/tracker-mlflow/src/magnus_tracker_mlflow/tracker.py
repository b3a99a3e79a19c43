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
recorded in ``run_config``, which every process running a branch or a step reads; so parallel
branches and map elements in other processes add their child runs to the same parent.

Failures: MLflow calls are bounded (``request_timeout`` seconds, ``max_retries`` retries). A
server that cannot be reached is not asked again for :data:`RETRY_AFTER_SECONDS`, so a pipeline
does not wait on it once per call. Metrics that cannot be published fail the step only when the
tracker is ``strict``; the run log keeps them either way.

``mlflow`` is imported only where it is used: ``import magnus`` and ``magnus --help`` stay fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, PrivateAttr, model_validator

from magnus.exceptions import MagnusError
from magnus.executors.ending import interrupted
from magnus.tracking import BaseExperimentTracker, ExperimentTrackerError
from magnus_tracker_mlflow import values

if TYPE_CHECKING:
    from magnus.context import RunContext
    from magnus.nodes import BaseNode
    from magnus.runlog.models import RunLog, StepLog

# Under "magnus" so that ``--log-level`` and magnus' console handler apply to these messages.
logger = logging.getLogger("magnus.mlflow")

#: how long an unreachable server is left alone before magnus tries it again
RETRY_AFTER_SECONDS = 60.0
#: MLflow's default backoff factor is 2 (with 7 retries: minutes); 1 keeps retries short
BACKOFF_FACTOR = 1

TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
TIMEOUT_VARIABLE = "MLFLOW_HTTP_REQUEST_TIMEOUT"
RETRIES_VARIABLE = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
BACKOFF_VARIABLE = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
QUIET_VARIABLE = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"

PARENT_TAG = "mlflow.parentRunId"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
SOURCE_NAME_TAG = "mlflow.source.name"
TAG_PREFIX = "magnus."
RUN_ID_TAG = "magnus.run_id"
KIND_TAG = "magnus.kind"
STATUS_TAG = "magnus.status"

#: where the ids go in ``run_config["experiment_tracker"]``
RUN_CONFIG_KEY = "mlflow"
#: the extra field of a step log holding its MLflow run id
STEP_LOG_FIELD = "mlflow_run_id"

PARAMETERS_ARTIFACT = "parameters.json"
METRICS_ARTIFACT = "metrics.json"

#: magnus status -> MLflow's; a run still PROCESSING at its end was stopped (Ctrl-C, a crash)
_FINAL_STATUS = {"SUCCESS": "FINISHED", "FAIL": "FAILED", "PROCESSING": "KILLED"}


class MLflowUnavailableError(MagnusError):
    """The MLflow tracking server could not be reached (now, or recently)."""


def _unreachable(error: BaseException) -> bool:
    """Whether ``error`` means the server did not answer, rather than answered with an error.

    MLflow wraps transport failures (refused, timed out, retries exhausted) in a plain
    ``MlflowException`` raised while handling the ``requests`` error; a server that answered
    gives a ``RestException``. Only the former should make magnus stop asking for a while.
    """
    from mlflow.exceptions import RestException

    if isinstance(error, RestException):
        return False
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):  # ConnectionError, TimeoutError, socket errors
            return True
        module = type(current).__module__
        if module.startswith(("requests.", "urllib3.")):
            return True
        current = current.__cause__ or current.__context__
    return "Max retries exceeded" in str(error)


def _root_cause(error: BaseException) -> BaseException:
    """The first error of a chain: MLflow's own message repeats the URL and urllib3's pool."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    return error


def _hide_password(uri: str) -> str:
    """``uri`` without the password of its user-info part: run_config never holds a secret."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@contextlib.contextmanager
def _environment(settings: Mapping[str, str]) -> Iterator[None]:
    """Set ``settings`` in ``os.environ`` for the block only, then put back what was there.

    MLflow reads its HTTP timeouts and retries from the environment on every request and offers
    no per-client setting, so this is how a tracker bounds its calls without changing the
    environment the user's code (and every shell task) sees.
    """
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``mlflow.log_metric``...) at ``uri`` for the block only.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into ``os.environ`` and
    ``set_tracking_uri(None)`` deletes it, so both the module's setting and the variable are
    saved and restored here; MLflow offers no public way to read the module's own setting.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous_setting = getattr(tracking_utils, "_tracking_uri", None)
    previous_variable = os.environ.get(TRACKING_URI_VARIABLE)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_setting)
        if previous_variable is None:
            os.environ.pop(TRACKING_URI_VARIABLE, None)
        else:
            os.environ[TRACKING_URI_VARIABLE] = previous_variable


def _quiet() -> dict[str, str]:
    """Keep MLflow from printing two "View run" lines whenever the tracker closes a run.

    They would land in the console once per step (and cost a request each); a user who set
    the variable either way keeps their choice.
    """
    return {} if QUIET_VARIABLE in os.environ else {QUIET_VARIABLE: "true"}


@dataclass
class _RunState:
    """What this process knows of one magnus run's MLflow side."""

    magnus_run_id: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    #: resolved step internal name -> the step's MLflow run id
    step_runs: dict[str, str] = field(default_factory=dict)
    #: step runs this process closed
    closed_step_runs: set[str] = field(default_factory=set)
    #: MLflow run id -> the params logged there (immutable on the server)
    params: dict[str, dict[str, str]] = field(default_factory=dict)
    #: (MLflow run id, artifact file) -> the JSON document written there so far
    artifacts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


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

    _state: _RunState | None = PrivateAttr(default=None)
    _client: Any = PrivateAttr(default=None)
    _unreachable_until: float = PrivateAttr(default=0.0)
    _unreachable_reason: str = PrivateAttr(default="")
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
            recorded["tracking_uri"] = _hide_password(recorded["tracking_uri"])
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

    def _mlflow(self) -> Any:
        """The client writing to this tracker's server (never the fluent API's global URI)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``MlflowClient.<method>``, bounded, and remember when the server is down.

        Raises :class:`MLflowUnavailableError` at once while a recent failure to reach the
        server is fresh, and when this call cannot reach it; other errors pass unchanged.
        """
        now = time.monotonic()
        if now < self._unreachable_until:
            raise MLflowUnavailableError(
                f"MLflow not asked to {what}: {self._unreachable_reason} less than "
                f"{RETRY_AFTER_SECONDS:.0f} s ago"
            )
        client = self._mlflow()
        with _environment({**self._http_settings(), **_quiet()}):
            try:
                return getattr(client, method)(*args, **kwargs)
            except Exception as exc:
                if not _unreachable(exc):
                    raise
                self._trip(exc, what)
                raise MLflowUnavailableError(
                    f"could not {what}: {self._unreachable_reason}"
                ) from exc

    # ------------------------------------------------------------------ run bookkeeping

    def _state_for(self, magnus_run_id: str) -> _RunState:
        """This process' state of ``magnus_run_id`` (a tracker instance serves one run)."""
        if self._state is None or self._state.magnus_run_id != magnus_run_id:
            self._state = _RunState(magnus_run_id)
        return self._state

    @staticmethod
    def _current_run() -> RunContext | None:
        from magnus.context import current_run

        return current_run.get()

    def _experiment_id(self, state: _RunState, tag: str) -> str:
        """The experiment's id, creating the experiment when it does not exist yet."""
        if state.experiment_id is not None:
            return state.experiment_id
        from mlflow.exceptions import MlflowException

        name = self.experiment_name or tag or "Default"
        experiment = self._call("look up the experiment", "get_experiment_by_name", name)
        if experiment is None:
            try:
                state.experiment_id = str(
                    self._call(f"create the experiment {name!r}", "create_experiment", name)
                )
                return state.experiment_id
            except MlflowException as exc:
                # Another process (a parallel branch) created it first.
                if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = self._call("look up the experiment", "get_experiment_by_name", name)
        if experiment.lifecycle_stage != "active":
            raise MagnusError(
                f"The MLflow experiment {name!r} is deleted; restore it in MLflow or set "
                "another experiment_name"
            )
        state.experiment_id = str(experiment.experiment_id)
        return state.experiment_id

    def _recorded_ids(self, context: RunContext) -> dict[str, Any]:
        """What an earlier process recorded in ``run_config`` of this run (may be nothing)."""
        run_config = context.run_log_store.get_run_config(context.run_id)
        tracker = run_config.get("experiment_tracker") or {}
        recorded = tracker.get(RUN_CONFIG_KEY) if isinstance(tracker, Mapping) else None
        return dict(recorded) if isinstance(recorded, Mapping) else {}

    def _record_ids(self, context: RunContext, state: _RunState) -> None:
        """Write the experiment and parent run ids into ``run_config``, merging what is there.

        ``set_run_config`` merges top-level keys only, so the tracker's block is read, extended
        and written back whole.
        """
        store = context.run_log_store
        tracker = dict(store.get_run_config(context.run_id).get("experiment_tracker") or {})
        tracker[RUN_CONFIG_KEY] = {
            "tracking_uri": _hide_password(self.uri),
            "experiment_id": state.experiment_id,
            "parent_run_id": state.parent_run_id,
        }
        store.set_run_config(context.run_id, {"experiment_tracker": tracker})

    def _run_tags(self, context: RunContext | None, magnus_run_id: str) -> dict[str, str]:
        tags = {RUN_ID_TAG: magnus_run_id, KIND_TAG: "run", STATUS_TAG: "PROCESSING"}
        if context is None:
            return tags
        tags["magnus.tag"] = context.tag
        tags["magnus.pipeline_file"] = context.pipeline_file
        tags["magnus.dag_hash"] = context.dag_hash
        if context.original_run_id:
            tags["magnus.original_run_id"] = context.original_run_id
        if context.pipeline_file:
            tags[SOURCE_NAME_TAG] = context.pipeline_file
        if context.code_identities:
            code = context.code_identities[0]
            tags["magnus.code_identifier"] = code.code_identifier or ""
            tags["magnus.code_identifier_type"] = code.code_identifier_type
            tags["magnus.code_identifier_dependable"] = str(code.code_identifier_dependable)
            if code.code_identifier_type == "git" and code.code_identifier:
                tags[GIT_COMMIT_TAG] = code.code_identifier
        # An empty tag (no tag, no pipeline file for an SDK run) says nothing: leave it out.
        return {key: values.tag_text(value) for key, value in tags.items() if value}

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
            recorded = self._recorded_ids(context)
            if recorded.get("parent_run_id"):
                state.experiment_id = str(recorded["experiment_id"])
                state.parent_run_id = str(recorded["parent_run_id"])
                return state.parent_run_id
        experiment_id = self._experiment_id(state, context.tag if context else "")
        if context is not None and search:
            found = self._call(
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
                self._record_ids(context, state)
                return state.parent_run_id
        if not create:
            return None
        run = self._call(
            "create the run's parent run",
            "create_run",
            experiment_id,
            run_name=magnus_run_id,
            tags=self._run_tags(context, magnus_run_id),
        )
        state.parent_run_id = str(run.info.run_id)
        if context is not None:
            self._record_ids(context, state)
            if parameters is None:
                # Created late, by a step: the parameters as they are now are the best record.
                parameters = context.run_log_store.get_parameters(context.run_id)
        if parameters:
            split = values.split_parameters(parameters)
            self._log(state, state.parent_run_id, split, PARAMETERS_ARTIFACT)
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
        tags = {
            PARENT_TAG: parent,
            RUN_ID_TAG: state.magnus_run_id,
            KIND_TAG: "step",
            STATUS_TAG: "PROCESSING",
            "magnus.step": step_name,
        }
        if node is not None:
            tags["magnus.step_name"] = node.name
            tags["magnus.step_type"] = node.node_type
        if context is not None and context.code_identities:
            code = context.code_identities[0]
            if code.code_identifier_type == "git" and code.code_identifier:
                tags[GIT_COMMIT_TAG] = code.code_identifier
        if "." in step_name:
            tags["magnus.branch"] = step_name.rsplit(".", 1)[0]
        assert state.experiment_id is not None
        # The experiment is given explicitly: MLflow's nested runs do not inherit the parent's.
        run = self._call(
            f"create the run of step {step_name!r}",
            "create_run",
            state.experiment_id,
            run_name=step_name,
            tags={key: values.tag_text(value) for key, value in tags.items()},
        )
        state.step_runs[step_name] = str(run.info.run_id)
        return state.step_runs[step_name]

    def _log(self, state: _RunState, run_id: str, split: values.Split, artifact: str) -> None:
        """Log ``split`` to ``run_id``: metrics, then params, then the JSON artifact.

        Metrics go first and on their own: they are what users look for, and a param the server
        refuses must not take them down with it. A param already logged with another value
        (MLflow params are immutable) joins the artifact instead of failing the step.
        """
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import RestException

        if split.metrics:
            stamp = int(time.time() * 1000)
            metrics = [Metric(key, value, stamp, step) for key, step, value in split.metrics]
            for batch in values.chunks(metrics, values.MAX_METRICS_PER_BATCH):
                self._call("log metrics", "log_batch", run_id, metrics=batch)

        logged = state.params.setdefault(run_id, {})
        leftovers = dict(split.leftovers)
        fresh: list[tuple[str, str]] = []
        for key, text in split.params.items():
            if key not in logged:
                fresh.append((key, text))
            elif logged[key] != text:
                leftovers[key] = text
        for batch in values.chunks(fresh, values.MAX_PARAMS_PER_BATCH):
            try:
                params = [Param(key, text) for key, text in batch]
                self._call("log params", "log_batch", run_id, params=params)
            except RestException as exc:
                if getattr(exc, "error_code", "") != "INVALID_PARAMETER_VALUE":
                    raise
                # Another process logged one of them with another value first.
                leftovers.update(dict(batch))
                continue
            logged.update(dict(batch))

        if leftovers:
            document = state.artifacts.setdefault((run_id, artifact), {})
            for key, value in leftovers.items():
                if isinstance(value, dict) and isinstance(document.get(key), dict):
                    document[key].update(value)  # more steps of the same tracked series
                else:
                    document[key] = value
            self._call(f"write {artifact}", "log_dict", run_id, _jsonable(document), artifact)

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
        artifact = self._artifact_path(step_internal_name, METRICS_ARTIFACT)
        self._log(self._state, run_id, values.split_metrics(metrics), artifact)

    def _artifact_path(self, step_name: str, name: str) -> str:
        """A step's own artifact file: in its child run, or under ``steps/`` of the parent."""
        if self.nested_runs:
            return name
        return f"steps/{values.safe_key(step_name).replace('/', '_')}/{name}"

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

        with _environment(self._http_settings()), _fluent_tracking_uri(self.uri):
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

        if time.monotonic() < self._unreachable_until:
            raise MLflowUnavailableError(self._unreachable_reason)
        with self._noting_unreachable("start the run for user code"):
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
            with _environment(_quiet()), self._noting_unreachable("release the run of user code"):
                while (active := mlflow.active_run()) is not None and active.info.run_id != run_id:
                    mlflow.end_run()
                if mlflow.active_run() is not None:
                    mlflow.end_run(status="RUNNING")
        except Exception as exc:
            logger.warning("The MLflow run of user code could not be released: %s", exc)

    @contextlib.contextmanager
    def _noting_unreachable(self, what: str) -> Iterator[None]:
        """Open the circuit (see :meth:`_call`) when the block fails to reach the server."""
        try:
            yield
        except Exception as exc:
            if _unreachable(exc):
                self._trip(exc, what)
            raise

    def _trip(self, error: BaseException, what: str) -> None:
        """Remember the server as unreachable for a while, and say so once."""
        self._unreachable_until = time.monotonic() + RETRY_AFTER_SECONDS
        root = _root_cause(error)
        self._unreachable_reason = (
            f"the MLflow tracking server {_hide_password(self.uri)} could not be reached "
            f"({type(root).__name__}: {root})"
        )
        logger.warning(
            "%s while trying to %s; magnus goes on and keeps every metric in the run log",
            self._unreachable_reason,
            what,
        )

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
        self._call(
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
        artifact = self._artifact_path(step_log.internal_name, PARAMETERS_ARTIFACT)
        self._log(self._state, run_id, split, artifact)
        if self.nested_runs:
            from mlflow.entities import RunTag

            tags = [
                RunTag(STATUS_TAG, step_log.status),
                RunTag("magnus.attempts", str(len(step_log.attempts))),
            ]
            self._call("tag the step's status", "log_batch", run_id, tags=tags)
            status = _FINAL_STATUS.get(step_log.status, "FAILED")
            self._call("close the step's run", "set_terminated", run_id, status)
            self._state.closed_step_runs.add(run_id)

    def _known_step_run(self, step_log: StepLog) -> str | None:
        """The run this process made or found for ``step_log`` (never creates one)."""
        if self._state is None:
            return None
        if not self.nested_runs:
            return self._state.parent_run_id
        run_id = getattr(step_log, STEP_LOG_FIELD, None)
        return run_id or self._state.step_runs.get(step_log.internal_name)

    def finish_tracking(self, run_log: RunLog, context: RunContext) -> None:
        """``after_run``: the run's final status on the parent run, which is closed."""
        parent = self._parent_run(context, create=False)
        if parent is None:
            return
        if self._state is not None and self.nested_runs:
            # A run stopped mid-step: the steps it was in never reached after_step.
            for run_id in set(self._state.step_runs.values()) - self._state.closed_step_runs:
                self._call("close a stopped step's run", "set_terminated", run_id, "KILLED")
                self._state.closed_step_runs.add(run_id)
        self._call("tag the run's status", "set_tag", parent, STATUS_TAG, run_log.status)
        status = (
            "KILLED"
            if interrupted(run_log.message)
            else _FINAL_STATUS.get(run_log.status, "FAILED")
        )
        self._call("close the run's parent run", "set_terminated", parent, status)
        if self.uri.startswith(("http://", "https://")) and self._state is not None:
            logger.info(
                "MLflow run of %s: %s/#/experiments/%s/runs/%s",
                context.run_id,
                _hide_password(self.uri).rstrip("/"),
                self._state.experiment_id,
                parent,
            )


def _jsonable(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` as JSON can hold it: what JSON cannot encode becomes its text."""
    return dict(json.loads(json.dumps(document, default=str)))
