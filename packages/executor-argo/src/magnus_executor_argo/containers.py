"""Container templates: a leaf step's, and the fan-out and fan-in containers of composites.

Every container runs the magnus console script of the image with one of the orchestrator
callbacks of ``magnus.orchestration`` (``execute_single_node``, ``fan --mode out|in``), for the
run ``{{workflow.parameters.run_id}}``. Template-level settings are written only where a step's
settings differ from the workflow's, so the same pipeline always renders the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from hera.workflows import models as m

from magnus.context import RunContext
from magnus.fingerprints import IMAGE_ENV
from magnus.internal_names import to_command_line
from magnus.nodes import BaseNode, ExecutableNode
from magnus.orchestration import (
    ATTEMPT_ENV,
    EXECUTE_SINGLE_NODE,
    MAP_INDICES_ENV,
    callback_command,
)
from magnus_executor_argo import kubernetes
from magnus_executor_argo.arguments import parameter_env
from magnus_executor_argo.config import ArgoConfig, StepSettings, step_settings
from magnus_executor_argo.map_scope import inputs, map_variable

# Every message of rendering comes from one logger, whichever module of the renderer says it.
logger = logging.getLogger("magnus_executor_argo.render")

RUN_ID = "{{workflow.parameters.run_id}}"
#: the command every container runs: the magnus console script of the image
MAGNUS_COMMAND = "magnus"
#: Argo's ``retries`` counts from 0 in a template with a retryStrategy; magnus' attempts from 1
ATTEMPT_EXPRESSION = "{{=asInt(retries) + 1}}"
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "FATAL"}


def log_level() -> str:
    """The level magnus logs at here, for the containers to log at the same level."""
    level = logging.getLevelName(logging.getLogger("magnus").getEffectiveLevel())
    level = "FATAL" if level == "CRITICAL" else str(level)
    return level if level in _LOG_LEVELS else "WARNING"


class ContainerTemplates:
    """What every template of one pipeline shares, and the container templates made from it.

    ``configured`` is the executor's configuration as read (each step's settings are resolved
    from it: filling twice would undo ``$$``), ``config`` the same with placeholders filled and
    ``defaults`` the settings of a step without an override. ``template_names`` maps
    ``(kind, internal name)`` to each template's unique name.
    """

    def __init__(
        self,
        context: RunContext,
        configured: ArgoConfig,
        config: ArgoConfig,
        variables: dict[str, str],
        defaults: StepSettings,
        template_names: dict[Hashable, str],
        exposed: dict[str, str],
    ) -> None:
        self.context = context
        self.configured = configured
        self.variables = variables
        self.template_names = template_names
        self.exposed = exposed
        self.defaults = defaults
        self.log_level = log_level()
        self.volume_mounts = [
            m.VolumeMount(name=f"executor-{index}", mount_path=volume.mount_path)
            for index, volume in enumerate(config.persistent_volumes)
        ]
        self.secret_env = [
            m.EnvVar(
                name=secret.environment_variable,
                value_from=m.EnvVarSource(
                    secret_key_ref=m.SecretKeySelector(
                        name=secret.secret_name, key=secret.secret_key
                    )
                ),
            )
            for secret in config.secrets_from_k8s
        ]

    def settings(self, node: BaseNode) -> StepSettings:
        """``node``'s settings: the executor's keys with the step's override applied."""
        return step_settings(self.configured, node, self.variables)

    def first_env(self, first: bool) -> list[m.EnvVar]:
        """The exposed parameters, for the first container only: it starts the run."""
        # Submit-time values reach the run log there.
        return parameter_env(self.exposed) if first else []

    def leaf(self, node: BaseNode, scope: tuple[str, ...], first: bool) -> m.Template:
        """The container template of a leaf step (task, stub, success, fail)."""
        settings = self.settings(node)
        env = self.first_env(first)
        retry = None
        attempts = node.max_attempts if isinstance(node, ExecutableNode) else 1
        override_limit = settings.retry_strategy.limit
        if override_limit and override_limit != self.defaults.retry_strategy.limit:
            logger.warning(
                "Step %s: retry_strategy.limit is not used for a task step; it is retried "
                "max_attempts - 1 times (max_attempts: %s)",
                node.internal_name,
                attempts,
            )
        if attempts > 1 or self.defaults.retry_strategy.limit:
            # Argo retries the container; magnus records each attempt once, numbered by Argo.
            # A template of its own also keeps a workflow-wide limit off task steps.
            retry = kubernetes.retry_strategy(settings.retry_strategy, limit=attempts - 1)
            if attempts > 1:
                env.append(m.EnvVar(name=ATTEMPT_ENV, value=ATTEMPT_EXPRESSION))
        return self.container(
            name=self.template_names[("leaf", node.internal_name)],
            settings=settings,
            command=self.command(EXECUTE_SINGLE_NODE, node.internal_name, scope, first=first),
            scope=scope,
            env=env,
            retry=retry,
        )

    def container(
        self,
        *,
        name: str,
        settings: StepSettings,
        command: list[str],
        scope: tuple[str, ...],
        env: list[m.EnvVar],
        retry: m.RetryStrategy | None,
        outputs: m.Outputs | None = None,
    ) -> m.Template:
        """A container template; template-level settings only where they differ from the spec's.

        ``MAGNUS_IMAGE`` names the container's image: it is part of the fingerprint of every
        step run there, so a step is reused only from a run in the same image.
        """
        defaults = self.defaults
        env = [
            m.EnvVar(name=IMAGE_ENV, value=settings.image),
            *([m.EnvVar(name=MAP_INDICES_ENV, value="1")] if scope else []),
            *env,
            *self.secret_env,
        ]
        duration = settings.max_step_duration_in_seconds
        return m.Template(
            name=name,
            inputs=inputs(scope),
            outputs=outputs,
            container=m.Container(
                image=settings.image,
                command=command,
                env=env,
                image_pull_policy=settings.image_pull_policy or None,
                resources=kubernetes.resources(settings.resources),
                volume_mounts=list(self.volume_mounts) or None,
            ),
            active_deadline_seconds=m.IntOrString(duration)
            if duration != defaults.max_step_duration_in_seconds
            else None,
            # Argo accepts timeout on leaf templates only, so it is set here, not in
            # templateDefaults (which reach DAG templates too): an hour beyond the deadline.
            timeout=f"{duration + 3600}s",
            retry_strategy=retry,
            tolerations=kubernetes.tolerations(settings.tolerations)
            if settings.tolerations != defaults.tolerations
            else None,
            node_selector=settings.node_selector
            if settings.node_selector != defaults.node_selector
            else None,
        )

    def command(
        self,
        verb: str,
        internal_name: str,
        scope: tuple[str, ...],
        mode: str = "",
        first: bool = False,
    ) -> list[str]:
        """The callback a container runs: ``magnus <verb> <run id> <step> ...``.

        The ``first`` container starts the run: it says whether the run reuses steps by
        fingerprint (``--reuse``/``--no-reuse``, as decided where the workflow is rendered),
        and every other container shares the setting the run recorded.
        """
        context = self.context
        return callback_command(
            [MAGNUS_COMMAND],
            verb,
            RUN_ID,
            to_command_line(internal_name),
            log_level=self.log_level,
            mode=mode,
            pipeline_file=context.pipeline_file,
            map_variable=map_variable(scope) if scope else "",
            configuration_file=context.configuration_file,
            parameters_file=context.parameters_file,
            tag=context.tag,
            reuse=context.reuse if first else None,
        )
