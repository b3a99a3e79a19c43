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
    THEN_SUCCESS_OPTION,
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


#: pod labels, so ``argo list -l`` and ``kubectl logs -l`` find a run's pods
RUN_ID_LABEL = "magnus/run-id"
PIPELINE_LABEL = "magnus/pipeline"
STEP_LABEL = "magnus/step"
#: the emptyDir mounted at /tmp when containers run with a read-only root filesystem: the
#: fan-out writes its output file there, and Python its temporary files
TMP_VOLUME = "magnus-tmp"
TMP_PATH = "/tmp"


def read_only(security_context: dict[str, object] | None) -> bool:
    """Whether a container security context makes the root filesystem read-only."""
    context = security_context or {}
    return bool(context.get("readOnlyRootFilesystem") or context.get("read_only_root_filesystem"))


class ContainerTemplates:
    """What every template of one pipeline shares, and the container templates made from it.

    ``configured`` is the executor's configuration as read (each step's settings are resolved
    from it: filling twice would undo ``$$``), ``config`` the same with placeholders filled and
    ``defaults`` the settings of a step without an override. ``template_names`` maps
    ``(kind, internal name)`` to each template's unique name.

    What every container shares (image pull policy, resources, volume mounts, security context,
    ``envFrom``) is written once, in ``spec.templateDefaults``: a template carries such a key
    only where its step's settings differ. Each container keeps its command and environment.
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
        self.read_only = read_only(config.security_context) or any(
            read_only(override.security_context) for override in config.overrides.values()
        )
        self.volume_mounts = [
            m.VolumeMount(name=f"executor-{index}", mount_path=volume.mount_path)
            for index, volume in enumerate(config.persistent_volumes)
        ]
        if self.read_only:
            self.volume_mounts.append(m.VolumeMount(name=TMP_VOLUME, mount_path=TMP_PATH))
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

    def template_defaults(self) -> m.Template:
        """``spec.templateDefaults``: the step deadline, and what every container shares."""
        defaults = self.defaults
        return m.Template(
            active_deadline_seconds=kubernetes.int_or_string(defaults.max_step_duration_in_seconds),
            container=m.Container(
                image=defaults.image,
                image_pull_policy=defaults.image_pull_policy or None,
                resources=kubernetes.resources(defaults.resources),
                volume_mounts=list(self.volume_mounts) or None,
                security_context=self._security_context(defaults),
                env_from=kubernetes.env_from(defaults.env_from, "executor service 'argo'"),
            ),
        )

    def leaf(
        self, node: BaseNode, scope: tuple[str, ...], first: bool, then_success: bool = False
    ) -> m.Template:
        """The container template of a leaf step (task, stub, success, fail).

        ``then_success``: the step's ``next`` is its graph's success step, which the same
        container runs once the step succeeded (it costs no pod of its own).
        """
        settings = self.settings(node)
        if settings.batch_size and settings.batch_size != self.defaults.batch_size:
            logger.warning(
                "Step %s: batch_size applies to map steps; it is not used here", node.internal_name
            )
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
        command = self.command(EXECUTE_SINGLE_NODE, node.internal_name, scope, first=first)
        if then_success:
            command.append(THEN_SUCCESS_OPTION)
        return self.container(
            name=self.template_names[("leaf", node.internal_name)],
            settings=settings,
            command=command,
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
        where = f"executor service 'argo', template {name!r}"
        env = [
            m.EnvVar(name=IMAGE_ENV, value=settings.image),
            *([m.EnvVar(name=MAP_INDICES_ENV, value="1")] if scope else []),
            *env,
            *kubernetes.env_vars(settings.env),
            *self.secret_env,
        ]

        def differing(key: str) -> bool:
            return bool(getattr(settings, key) != getattr(defaults, key))

        duration = settings.max_step_duration_in_seconds
        return m.Template(
            name=name,
            metadata=m.Metadata(labels={RUN_ID_LABEL: RUN_ID, STEP_LABEL: name}),
            inputs=inputs(scope),
            outputs=outputs,
            container=m.Container(
                image=settings.image,
                command=command,
                env=env,
                image_pull_policy=(settings.image_pull_policy or "IfNotPresent")
                if differing("image_pull_policy")
                else None,
                resources=kubernetes.resources(
                    settings.resources, no_gpu_as_zero=defaults.resources.limits.gpu is not None
                )
                if differing("resources")
                else None,
                security_context=self._security_context(settings)
                if differing("security_context")
                else None,
                env_from=kubernetes.env_from(settings.env_from, where)
                if differing("env_from")
                else None,
            ),
            active_deadline_seconds=kubernetes.int_or_string(duration)
            if differing("max_step_duration_in_seconds")
            else None,
            # Argo accepts timeout on leaf templates only, so it is set here, not in
            # templateDefaults (which reach DAG templates too): an hour beyond the deadline.
            timeout=f"{duration + 3600}s",
            retry_strategy=retry,
            tolerations=kubernetes.tolerations(settings.tolerations)
            if differing("tolerations")
            else None,
            node_selector=settings.node_selector if differing("node_selector") else None,
            affinity=self.affinity(settings, where) if differing("affinity") else None,
            priority_class_name=settings.priority_class_name
            if differing("priority_class_name")
            else None,
            pod_spec_patch=kubernetes.pod_spec_patch(settings.pod_spec_patch)
            if differing("pod_spec_patch")
            else None,
        )

    def _security_context(self, settings: StepSettings) -> m.SecurityContext | None:
        raw = settings.security_context
        if raw is None:
            return None
        where = "executor service 'argo', key 'security_context'"
        return kubernetes.kubernetes_object(m.SecurityContext, raw, where)

    @staticmethod
    def affinity(settings: StepSettings, where: str) -> m.Affinity | None:
        """A step's (or the workflow's) affinity, checked; ``None`` when not configured."""
        raw = settings.affinity
        return None if raw is None else kubernetes.kubernetes_object(m.Affinity, raw, where)

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
