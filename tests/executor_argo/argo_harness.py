"""A stand-in for Argo's workflow controller: play a rendered Workflow on this machine.

``play(workflow, cwd=..., env=...)`` walks the workflow the way Argo's controller does and runs
every container's command as a subprocess, so a rendered pipeline can be proved to *run*
without a Kubernetes cluster. What it does, and what it leaves out:

* **Arguments.** ``spec.arguments.parameters`` are the workflow's parameters; ``arguments=``
  overrides them as ``argo submit -p name=value`` does (a name the workflow does not declare
  is an error). Their values may use ``{{workflow.uid}}`` (a fresh UUID unless ``uid=`` is
  given) and ``{{workflow.name}}``.
* **Templates.** A template is a ``container`` or a ``dag``; anything else is an error. A
  template's declared ``inputs.parameters`` take the values of the calling task's
  ``arguments`` (or their own ``value``/``default``); an argument the template does not
  declare, or a declared input without a value, is an error (stricter than Argo, which
  ignores the first).
* **Substitution** of ``{{...}}`` everywhere in a container (command, args, env) and in a
  task's ``arguments`` and ``withParam``/``withItems``: ``inputs.parameters.X``,
  ``workflow.parameters.X``, ``workflow.uid``, ``workflow.name``, ``item``,
  ``tasks.T.outputs.parameters.P`` and, in a template with a retry strategy, ``retries``.
  Expressions ``{{=...}}`` may use numbers, strings, those names, ``asInt``/``asFloat``/
  ``string``, ``sprig.trunc`` and ``+ - * /``. A reference that cannot be resolved is an error, never left in.
* **DAGs.** Tasks run one at a time, in waves: every task whose dependencies have all ended
  is decided, in declaration order (a wave is what Argo would start together). ``depends``
  takes ``T.Succeeded|Failed|Errored|Skipped|Omitted|Daemoned|AnySucceeded|AllFailed``, a bare
  ``T`` (``T.Succeeded || T.Skipped || T.Daemoned``), ``&&``, ``||``, ``!`` and parentheses;
  the legacy ``dependencies`` list is read as bare names joined by ``&&``. A task whose
  ``depends`` is false is *Omitted* and does not run; tasks depending on it are decided in
  turn, as Argo does. ``withParam``/``withItems`` expand a task over a JSON list (an empty
  list makes the task *Skipped*); the expanded group failed if any of its children failed.
* **Conditions.** A task's ``when`` (filled in like its arguments) is evaluated as govaluate
  would (``evaluate_when``: literals, ``==``, ``!=``, ``!``, ``&&``, ``||``); when false the
  task is *Skipped*. A template may call itself (a recursive loop) as deep as it is told.
* **DAG phase** (Argo's ``assessDAGPhase``): the target tasks are those no other task
  depends on; a target that ran has its own phase, an omitted or skipped one
  inherits a failure of any task it depends on (else Succeeded). The DAG failed when a target
  did. ``failFast`` (Argo's default: true) stops starting new waves once a target has failed.
* **Containers.** ``command`` + ``args`` run with ``cwd`` as working directory (every "pod"
  shares it: the project is the image), with the environment of this process minus
  ``MAGNUS_*``, then ``env=``, then the container's ``env`` (``valueFrom.secretKeyRef`` read
  from ``secrets=``, keyed ``(secret name, key)``). A command starting with ``magnus`` runs
  ``python -m magnus`` with this interpreter. Exit status 0 is *Succeeded*, anything else
  *Failed* (message ``Error (exit code N)``). A container one of whose strings -- an
  argument, an environment variable ``NAME=value``, or the template as Argo hands it to its
  executor in the one variable ``ARGO_TEMPLATE`` (before Argo 4.1) -- reaches Linux's 128 KiB
  limit on one string (``MAX_ARG_STRLEN``) fails without starting, as Argo's executor does
  (``exec /bin/argoexec: argument list too long``, exit code 1). Output parameters with
  ``valueFrom.path`` are read from that file after the container exits (else their
  ``default``); each container gets
  a fresh temporary file for every such path, and an env value or argument equal to the path
  is pointed at it (two "pods" never share ``/tmp/output.txt``).
* **Retries.** A template's ``retryStrategy`` (or ``spec.retryStrategy``) re-runs a failed
  template up to ``limit`` more times, with ``retries`` 0, 1, 2...: a *Failed* one under policy
  ``Always`` or ``OnFailure`` (Argo's default), an *Error* one under ``Always`` or ``OnError``.
  Backoff is not waited for. Nothing is retried once the workflow shuts down.
* **Exit handler.** Once the entrypoint has ended, ``spec.onExit`` runs with
  ``{{workflow.status}}`` (``Succeeded``, ``Failed`` or ``Error``) and ``{{workflow.failures}}``
  (the JSON list of failed nodes -- ``displayName``, ``message``, ``templateName``, ``phase``,
  ``podName``, ``finishedAt`` -- JSON-quoted once more, as Argo writes it since 3.5); its nodes
  are under ``<workflow>.onExit``, and ``Result.failures`` holds what it was given. Its
  failure fails a workflow that succeeded.
* **Interruptions** (``interruptions=``): what an operator or the cluster does to a running
  container, the first time (or the first ``times`` times) a container of the named template
  runs and the interruption's ``when`` callable holds (polled): ``stop`` (``argo stop``) and
  ``terminate`` (``argo terminate``) send it SIGTERM (SIGKILL after ``grace`` seconds), fail it and shut the
  workflow down -- no new task starts, every running DAG fails -- with the exit handler after
  a stop only, as Argo does; the children of an expanded task that had not run yet fail with
  the same message (Argo had started their pods with the first);
  ``deadline`` is the workflow's deadline passing then, as a stop with Argo's message; ``delete``
  (a pod deleted, evicted or OOM-killed) sends SIGKILL: the node is *Error* and the workflow
  goes on. ``spec.activeDeadlineSeconds`` is honoured too, in real time.
* **Read-only containers.** A container whose ``securityContext`` (its own, else
  ``spec.templateDefaults``') sets ``readOnlyRootFilesystem`` is watched: its ``HOME`` and
  ``TMPDIR`` are folders of its own "pod", and ``Node.written`` lists what it created or changed
  in ``cwd`` outside the ``mountPath`` of its ``volumeMounts``, in ``HOME``, and in ``TMPDIR``
  unless a volume is mounted at ``/tmp`` -- what a cluster would refuse to write. Python is told
  not to write bytecode (on a read-only filesystem it silently does not), and ``cwd``'s ``.git``
  is not watched (git refreshes its index only where it can).
* **Left out:** concurrency and ``parallelism``, template deadlines and timeouts (a container
  gets ``timeout=`` seconds, then the play stops with an error), ``dag.target``,
  lifecycle hooks, volumes (the shared ``cwd`` stands for them), resources, pod metadata,
  artifacts.

Problems with the workflow itself (an unknown template, an unresolved reference) raise
``HarnessError``: in a cluster they would be errors of the workflow, not failures of a step.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUCCEEDED = "Succeeded"
FAILED = "Failed"
ERROR = "Error"
SKIPPED = "Skipped"
OMITTED = "Omitted"
#: the retry policies under which a Failed (non-zero exit) container is retried
_RETRIED_ON_FAILURE = {"Always", "OnFailure"}
#: the retry policies under which an Error (a pod deleted, evicted...) is retried
_RETRIED_ON_ERROR = {"Always", "OnError"}

#: interruptions: ``argo stop``, ``argo terminate``, the workflow's deadline, a lost pod
STOP = "stop"
TERMINATE = "terminate"
DEADLINE = "deadline"
DELETE = "delete"
#: the node (and workflow) message Argo records for each
INTERRUPTION_MESSAGES = {
    STOP: "Stopped with strategy 'Stop'",
    TERMINATE: "Stopped with strategy 'Terminate'",
    DEADLINE: "Step exceeded its deadline",
    DELETE: "pod deleted",
}
_POLL_SECONDS = 0.02
#: Linux's limit on one argument or environment string, its final NUL included
#: (``MAX_ARG_STRLEN``: 32 pages)
ARGUMENT_LIMIT = 131072
#: what Argo's executor says when one of them is over it
TOO_LONG = "exec /bin/argoexec: argument list too long"

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class HarnessError(RuntimeError):
    """The workflow does something Argo would reject, or this harness does not play."""


# ---------------------------------------------------------------------------- results


@dataclass
class Node:
    """One node of the played workflow, like an entry of Argo's ``status.nodes``."""

    #: Argo-style path: ``<workflow>.<task>.<task>(<index>:<item>)``
    name: str
    template: str
    #: ``Container``, ``DAG``, ``TaskGroup``, or ``Task`` (a task that did not run)
    kind: str
    phase: str
    #: a container's retry number (Argo's ``retries``, from 0)
    retries: int | None = None
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    #: why a node failed, as Argo says it (``Error (exit code 1)``, ``pod deleted``)
    message: str = ""
    #: with a read-only root filesystem: the files it wrote outside its volumes (see *Read-only
    #: containers*), relative to ``cwd`` or named ``$HOME/...`` and ``$TMPDIR/...``
    written: list[str] = field(default_factory=list)


@dataclass
class Interruption:
    """Something done to a played workflow from outside while one of its containers runs.

    ``action``: :data:`STOP`, :data:`TERMINATE`, :data:`DEADLINE` or :data:`DELETE`;
    ``template``: the container template whose (first) running container it hits; ``when``:
    polled while that container runs, the interruption happens once it returns true (``None``:
    at once); ``times``: how many containers of the template it hits, one after the other.
    """

    action: str
    template: str
    when: Callable[[], bool] | None = None
    #: how many containers of the template it hits, one after the other
    times: int = 1

    def __post_init__(self) -> None:
        if self.action not in INTERRUPTION_MESSAGES:
            raise HarnessError(f"unknown interruption {self.action!r}")


@dataclass
class Result:
    """What playing a workflow did."""

    #: the workflow's phase: Succeeded, Failed or Error
    phase: str
    uid: str
    #: the workflow parameters, resolved (``{{workflow.uid}}`` filled in)
    parameters: dict[str, str]
    #: every node in the order it ended (containers, DAGs, task groups, undecided tasks)
    nodes: list[Node]
    #: why the workflow stopped (a stop, a deadline); "" when it ran to its end
    message: str = ""
    #: the interruptions that happened, in order
    interrupted: list[str] = field(default_factory=list)
    #: ``{{workflow.failures}}`` as the exit handler was given it ("" without one)
    failures: str = ""

    def containers(self, template: str | None = None) -> list[Node]:
        """The containers that ran (every attempt), optionally of one template only."""
        return [
            n
            for n in self.nodes
            if n.kind == "Container" and (template is None or n.template == template)
        ]

    def exit_handler(self) -> list[Node]:
        """The containers of the exit handler (``spec.onExit``) that ran."""
        return [n for n in self.containers() if ".onExit" in n.name]

    def written(self) -> dict[str, list[str]]:
        """Node name -> what it wrote outside its volumes, for every container that did."""
        return {node.name: node.written for node in self.containers() if node.written}

    def phases(self) -> dict[str, str]:
        """Node name -> phase, for every node (retried containers: their last attempt)."""
        return {node.name: node.phase for node in self.nodes}

    def trace(self, output: bool = True) -> str:
        """A readable account of the play (for assertion messages); ``output``: failed
        containers' stdout and stderr too."""
        lines = [f"workflow {self.phase} (uid {self.uid})"]
        for node in self.nodes:
            attempt = f" retry {node.retries}" if node.retries else ""
            code = f" exit {node.returncode}" if node.returncode is not None else ""
            why = f" ({node.message})" if node.message else ""
            lines.append(f"  {node.phase:<9} {node.kind:<9} {node.name}{attempt}{code}{why}")
            if output and node.kind == "Container" and node.phase != SUCCEEDED:
                for stream in (node.stdout, node.stderr):
                    lines += [f"      | {line}" for line in stream.rstrip().splitlines()[-30:]]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- entry point


def play(
    workflow: Mapping[str, Any],
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    arguments: Mapping[str, str] | None = None,
    secrets: Mapping[tuple[str, str], str] | None = None,
    uid: str | None = None,
    timeout: float = 300.0,
    interruptions: Sequence[Interruption] = (),
    grace: float = 30.0,
) -> Result:
    """Play a rendered ``Workflow`` (or a ``CronWorkflow``'s workflow) to its end.

    ``cwd``: every container's working directory; ``env``: variables every container gets on
    top of this process' environment (minus ``MAGNUS_*``); ``arguments``: submit-time values
    of workflow parameters; ``secrets``: Kubernetes secret values by ``(name, key)``; ``uid``:
    the workflow's ``{{workflow.uid}}``; ``timeout``: seconds any one container may take;
    ``interruptions``: what is done to it from outside (see :class:`Interruption`); ``grace``:
    seconds a container may take to exit after SIGTERM, as a pod's grace period.
    """
    spec = workflow.get("spec") or {}
    if workflow.get("kind") == "CronWorkflow":
        spec = spec.get("workflowSpec") or {}
    metadata = workflow.get("metadata") or {}
    player = _Player(
        spec=spec,
        name=metadata.get("name") or f"{metadata.get('generateName', 'workflow-')}harness",
        cwd=Path(cwd),
        env=dict(env or {}),
        secrets=dict(secrets or {}),
        uid=uid or str(uuid.uuid4()),
        timeout=timeout,
        interruptions=list(interruptions),
        grace=grace,
    )
    return player.run(dict(arguments or {}))


# ---------------------------------------------------------------------------- substitution


def substitute(text: str, scope: Mapping[str, str], where: str) -> str:
    """``text`` with every ``{{name}}`` and ``{{=expression}}`` filled in from ``scope``."""

    def fill(match: re.Match[str]) -> str:
        body = match.group(1).strip()
        if body.startswith("="):
            return evaluate_expression(body[1:], scope, where)
        if body not in scope:
            raise HarnessError(f"{where}: cannot resolve {{{{{body}}}}}")
        return scope[body]

    return _TAG.sub(fill, text)


def _substitute_all(value: Any, scope: Mapping[str, str], where: str) -> Any:
    """Every string inside ``value`` (lists and mappings walked) substituted."""
    if isinstance(value, str):
        return substitute(value, scope, where)
    if isinstance(value, list):
        return [_substitute_all(item, scope, where) for item in value]
    if isinstance(value, dict):
        return {key: _substitute_all(item, scope, where) for key, item in value.items()}
    return value


_FUNCTIONS: dict[str, Callable[[Any], Any]] = {"asInt": int, "asFloat": float, "string": str}


def _trunc(count: Any, text: Any) -> str:
    """sprig's ``trunc``: the first ``count`` bytes (a character cut in two is replaced, as
    Argo's JSON encoding of the template replaces it)."""
    return str(text).encode()[: int(count)].decode(errors="replace")


_SPRIG: dict[str, Callable[[Any, Any], Any]] = {"trunc": _trunc}
_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def evaluate_expression(expression: str, scope: Mapping[str, str], where: str) -> str:
    """An Argo ``{{=...}}`` expression, for the small part of expr-lang the renderer uses."""

    def dotted(node: ast.expr) -> str:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            return f"{dotted(node.value)}.{node.attr}"
        raise HarnessError(f"{where}: unsupported expression {expression!r}")

    def value(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = dotted(node)
            if name not in scope:
                raise HarnessError(f"{where}: {name!r} is not defined in {expression!r}")
            return scope[name]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
            and len(node.args) == 1
            and not node.keywords
        ):
            return _FUNCTIONS[node.func.id](value(node.args[0]))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and dotted(node.func.value) == "sprig"
            and node.func.attr in _SPRIG
            and len(node.args) == 2
            and not node.keywords
        ):
            return _SPRIG[node.func.attr](value(node.args[0]), value(node.args[1]))
        raise HarnessError(f"{where}: unsupported expression {expression!r}")

    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise HarnessError(f"{where}: unsupported expression {expression!r}") from None
    result = value(tree.body)
    return result if isinstance(result, str) else json.dumps(result)


def item_text(item: Any) -> str:
    """How Argo writes a ``withParam`` element into ``{{item}}``: strings bare, others JSON."""
    return item if isinstance(item, str) else json.dumps(item)


# ---------------------------------------------------------------------------- depends


_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[A-Za-z0-9_][-A-Za-z0-9_]*(?:\.[A-Za-z]+)?)")
_OPERATOR_TOKENS = {"(", ")", "&&", "||", "!"}
_RESULTS = {
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
}


def depends_tasks(expression: str) -> set[str]:
    """The task names a ``depends`` expression refers to."""
    return {token.split(".")[0] for token in _tokens(expression) if token not in _OPERATOR_TOKENS}


def _tokens(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise HarnessError(f"cannot parse depends {expression!r} at {text[position:]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def evaluate_depends(expression: str, results: Callable[[str, str], bool]) -> bool:
    """``expression`` (Argo's ``depends`` language) with ``results(task, result)`` for atoms."""
    tokens = _tokens(expression)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal position
        token = peek()
        if token is None or (expected is not None and token != expected):
            raise HarnessError(f"cannot parse depends {expression!r}: expected {expected!r}")
        position += 1
        return token

    def either() -> bool:
        value = both()
        while peek() == "||":
            take()
            right = both()  # parse both sides: no short circuit hides a syntax error
            value = value or right
        return value

    def both() -> bool:
        value = unary()
        while peek() == "&&":
            take()
            right = unary()
            value = value and right
        return value

    def unary() -> bool:
        token = take()
        if token == "!":
            return not unary()
        if token == "(":
            value = either()
            take(")")
            return value
        if token in ("&&", "||", ")"):
            raise HarnessError(f"cannot parse depends {expression!r}: unexpected {token!r}")
        task, _, result = token.partition(".")
        if not result:
            return (
                results(task, "Succeeded") or results(task, "Skipped") or results(task, "Daemoned")
            )
        if result not in _RESULTS:
            raise HarnessError(f"depends {expression!r}: unknown task result {result!r}")
        return results(task, result)

    value = either()
    if peek() is not None:
        raise HarnessError(f"cannot parse depends {expression!r}: trailing {peek()!r}")
    return value


# ---------------------------------------------------------------------------- when


_WHEN_TOKEN = re.compile(r"\s*(==|!=|&&|\|\||!|\(|\)|['\"]|-?[0-9]+(?:\.[0-9]+)?|[A-Za-z_]\w*)")


def _when_tokens(expression: str, where: str) -> list[tuple[str, Any]]:
    """``(kind, value)`` tokens: ``op``, ``str``, ``num``, ``bool``; govaluate's lexing of
    string literals: either quote ends one, a backslash escapes the next character."""
    tokens: list[tuple[str, Any]] = []
    position, text = 0, expression.rstrip()
    while position < len(text):
        match = _WHEN_TOKEN.match(text, position)
        if match is None:
            raise HarnessError(f"{where}: cannot parse when {expression!r} at {text[position:]!r}")
        token, position = match.group(1), match.end()
        if token in ("'", '"'):
            literal: list[str] = []
            while position < len(text) and text[position] not in "'\"":
                if text[position] == "\\" and position + 1 < len(text):
                    position += 1
                literal.append(text[position])
                position += 1
            if position >= len(text):
                raise HarnessError(f"{where}: unclosed string in when {expression!r}")
            position += 1
            tokens.append(("str", "".join(literal)))
        elif token in ("true", "false"):
            tokens.append(("bool", token == "true"))
        elif token[0].isdigit() or token[0] == "-":
            tokens.append(("num", float(token)))
        elif token[0].isalpha() or token[0] == "_":
            # Argo turns govaluate's variables into strings: `heads == heads` holds.
            tokens.append(("str", token))
        else:
            tokens.append(("op", token))
    return tokens


def evaluate_when(expression: str, where: str = "when") -> bool:
    """A task's ``when``, once ``{{...}}`` is filled in: govaluate's literals (quoted strings,
    numbers, ``true``/``false``; a bare word is a string, as Argo has it), ``==``, ``!=``,
    ``!``, ``&&``, ``||`` and parentheses."""
    tokens = _when_tokens(expression, where)
    position = 0

    def fail(problem: str) -> HarnessError:
        return HarnessError(f"{where}: when {expression!r}: {problem}")

    def take() -> tuple[str, Any]:
        nonlocal position
        if position >= len(tokens):
            raise fail("unexpected end")
        position += 1
        return tokens[position - 1]

    def peek() -> Any:
        return tokens[position][1] if position < len(tokens) else None

    def either() -> Any:
        value = both()
        while peek() == "||":
            take()
            right = both()
            value = _truth(value, fail) or _truth(right, fail)
        return value

    def both() -> Any:
        value = comparison()
        while peek() == "&&":
            take()
            right = comparison()
            value = _truth(value, fail) and _truth(right, fail)
        return value

    def comparison() -> Any:
        value = unary()
        while peek() in ("==", "!="):
            operator = take()[1]
            right = unary()
            value = (value == right) if operator == "==" else (value != right)
        return value

    def unary() -> Any:
        kind, value = take()
        if kind != "op":
            return value
        if value == "!":
            return not _truth(unary(), fail)
        if value == "(":
            inner = either()
            if take() != ("op", ")"):
                raise fail("expected ')'")
            return inner
        raise fail(f"unexpected {value!r}")

    result = either()
    if position != len(tokens):
        raise fail(f"trailing {tokens[position][1]!r}")
    return _truth(result, fail)


def _truth(value: Any, fail: Callable[[str], HarnessError]) -> bool:
    if not isinstance(value, bool):
        raise fail(f"{value!r} is not a boolean")
    return value


# ---------------------------------------------------------------------------- the player


@dataclass
class _Outcome:
    """How a template or a task ended."""

    phase: str
    outputs: dict[str, str] = field(default_factory=dict)
    #: the phases of an expanded task's children
    children: list[str] = field(default_factory=list)


def _failed(phase: str) -> bool:
    return phase in (FAILED, ERROR)


class _Player:
    """Plays one workflow; holds what every template shares."""

    def __init__(
        self,
        *,
        spec: Mapping[str, Any],
        name: str,
        cwd: Path,
        env: dict[str, str],
        secrets: dict[tuple[str, str], str],
        uid: str,
        timeout: float,
        interruptions: list[Interruption],
        grace: float,
    ) -> None:
        self.spec = spec
        self.templates = {t["name"]: t for t in spec.get("templates", [])}
        self.cwd = cwd
        self.env = env
        self.secrets = secrets
        self.timeout = timeout
        self.uid = uid
        self.scope: dict[str, str] = {"workflow.uid": uid, "workflow.name": name}
        self.name = name
        self.nodes: list[Node] = []
        self.interruptions = interruptions
        #: how many more containers each interruption hits
        self.hits = {id(interruption): interruption.times for interruption in interruptions}
        self.interrupted: list[str] = []
        self.grace = grace
        self.started = time.monotonic()
        deadline = spec.get("activeDeadlineSeconds")
        self.deadline = float(deadline) if deadline not in (None, "") else None
        #: why the workflow is shutting down ("" while it is not): no new task starts
        self.shutdown = ""
        self.exit_handler_runs = True

    def run(self, overrides: dict[str, str]) -> Result:
        declared = (self.spec.get("arguments") or {}).get("parameters") or []
        names = {parameter["name"] for parameter in declared}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise HarnessError(f"the workflow declares no parameter {unknown}")
        parameters: dict[str, str] = {}
        for parameter in declared:
            key = parameter["name"]
            raw = overrides.get(key, parameter.get("value"))
            if raw is None:
                raise HarnessError(f"workflow parameter {key!r} has no value")
            value = substitute(str(raw), self.scope, f"workflow parameter {key!r}")
            parameters[key] = value
        self.scope.update({f"workflow.parameters.{k}": v for k, v in parameters.items()})
        entrypoint = self.spec.get("entrypoint")
        if not entrypoint:
            raise HarnessError("the workflow has no spec.entrypoint")
        outcome = self._template(entrypoint, {}, self.name)
        phase = outcome.phase if _failed(outcome.phase) else SUCCEEDED
        message = self.shutdown
        if message:
            phase = FAILED
        on_exit = self.spec.get("onExit")
        failures = ""
        if on_exit and self.exit_handler_runs:
            self.shutdown = ""  # Argo runs the exit handler after a stop and a deadline
            self.deadline = None
            self.scope["workflow.status"] = phase
            failures = self.scope["workflow.failures"] = self._failures()
            handled = self._template(str(on_exit), {}, f"{self.name}.onExit")
            if _failed(handled.phase) and phase == SUCCEEDED:
                phase = handled.phase
        return Result(
            phase=phase,
            uid=self.uid,
            parameters=parameters,
            nodes=self.nodes,
            message=message,
            interrupted=self.interrupted,
            failures=failures,
        )

    def _failures(self) -> str:
        """``{{workflow.failures}}``: the failed nodes as Argo lists them, quoted as it does."""
        failed = [
            {
                "displayName": node.name.rsplit(".", 1)[-1],
                "message": node.message,
                "templateName": node.template,
                "phase": node.phase,
                "podName": node.name,
                "finishedAt": None,
            }
            for node in self.nodes
            if _failed(node.phase)
        ]
        return json.dumps(json.dumps(failed or None))

    def _deadline_passed(self) -> bool:
        """Whether ``spec.activeDeadlineSeconds`` has passed: then the workflow shuts down."""
        if self.deadline is None or time.monotonic() - self.started <= self.deadline:
            return False
        self.shutdown = self.shutdown or INTERRUPTION_MESSAGES[DEADLINE]
        return True

    # ------------------------------------------------------------------ templates

    def _template(self, name: str, arguments: dict[str, str], path: str) -> _Outcome:
        """Run template ``name`` with ``arguments`` as its inputs, retrying as it says."""
        template = self.templates.get(name)
        if template is None:
            raise HarnessError(f"{path}: no template {name!r}")
        inputs = self._inputs(template, arguments, path)
        strategy = template.get("retryStrategy") or self.spec.get("retryStrategy")
        limit = int((strategy or {}).get("limit", 0) or 0)
        policy = (strategy or {}).get("retryPolicy") or "OnFailure"
        retries = 0
        while True:
            scope = dict(self.scope)
            scope.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
            if strategy is not None:
                scope["retries"] = str(retries)
            if "container" in template:
                outcome = self._container(template, scope, path, retries)
            elif "dag" in template:
                outcome = self._dag(template, scope, path)
            else:
                kinds = sorted(set(template) - {"name", "inputs", "outputs"})
                raise HarnessError(f"{path}: template {name!r} is none of container/dag: {kinds}")
            retried = (outcome.phase == FAILED and policy in _RETRIED_ON_FAILURE) or (
                outcome.phase == ERROR and policy in _RETRIED_ON_ERROR
            )
            if not retried or retries >= limit or self.shutdown:
                return outcome
            retries += 1

    def _inputs(
        self, template: Mapping[str, Any], arguments: dict[str, str], path: str
    ) -> dict[str, str]:
        declared = (template.get("inputs") or {}).get("parameters") or []
        names = [parameter["name"] for parameter in declared]
        extra = sorted(set(arguments) - set(names))
        if extra:
            raise HarnessError(
                f"{path}: template {template['name']!r} declares no input parameter {extra}"
            )
        values: dict[str, str] = {}
        for parameter in declared:
            key = parameter["name"]
            value = arguments.get(key, parameter.get("value", parameter.get("default")))
            if value is None:
                raise HarnessError(f"{path}: input parameter {key!r} has no value")
            values[key] = str(value)
        return values

    # ------------------------------------------------------------------ containers

    def _container(
        self, template: Mapping[str, Any], scope: dict[str, str], path: str, retries: int
    ) -> _Outcome:
        where = f"{path} (template {template['name']!r})"
        container = _substitute_all(template["container"], scope, where)
        outputs = (template.get("outputs") or {}).get("parameters") or []
        with tempfile.TemporaryDirectory(prefix="argo-pod-") as pod:
            # Each "pod" has its own files where output parameters are read from.
            files = {
                parameter["valueFrom"]["path"]: str(Path(pod) / f"output-{index}")
                for index, parameter in enumerate(outputs)
                if (parameter.get("valueFrom") or {}).get("path")
            }
            env = {k: v for k, v in os.environ.items() if not k.startswith("MAGNUS_")}
            env.update(self.env)
            for variable in container.get("env") or []:
                env[variable["name"]] = self._env_value(variable, files, where)
            command = [files.get(part, part) for part in container.get("command") or []]
            command += [files.get(part, part) for part in container.get("args") or []]
            if not command:
                raise HarnessError(f"{where}: the container has no command")
            if command[0] == "magnus":
                command = [sys.executable, "-m", "magnus", *command[1:]]
            watch = self._read_only_watch(container, Path(pod), env)
            streams = Path(pod) / "stdout", Path(pod) / "stderr"
            returncode: int | None
            if _too_long(template, container, env):
                phase, message, returncode = FAILED, "Error (exit code 1)", 1
                streams[1].write_text(TOO_LONG + "\n")
                streams[0].touch()
            else:
                with streams[0].open("w") as stdout, streams[1].open("w") as stderr:
                    process = subprocess.Popen(
                        command, cwd=self.cwd, env=env, stdout=stdout, stderr=stderr, text=True
                    )
                    phase, message = self._wait(process, template["name"], where)
                returncode = process.returncode
            values = self._output_values(outputs, files, phase, where) if phase != ERROR else {}
            output = [stream.read_text(errors="replace") for stream in streams]
            written = watch.written() if watch is not None else []
        self.nodes.append(
            Node(
                name=path,
                template=template["name"],
                kind="Container",
                phase=phase,
                retries=retries,
                command=command,
                env={k: env[k] for k in (v["name"] for v in container.get("env") or [])},
                returncode=returncode,
                stdout=output[0],
                stderr=output[1],
                outputs=values,
                message=message,
                written=written,
            )
        )
        return _Outcome(phase, values)

    def _read_only_watch(
        self, container: Mapping[str, Any], pod: Path, env: dict[str, str]
    ) -> _Watch | None:
        """For a container with a read-only root filesystem: its ``HOME`` and ``TMPDIR`` set in
        ``env``, and what it may write watched; ``None`` for any other."""
        defaults = (self.spec.get("templateDefaults") or {}).get("container") or {}
        context = {
            **(defaults.get("securityContext") or {}),
            **(container.get("securityContext") or {}),
        }
        if not context.get("readOnlyRootFilesystem"):
            return None
        mounts = [*(defaults.get("volumeMounts") or []), *(container.get("volumeMounts") or [])]
        paths = {str(mount["mountPath"]).rstrip("/") or "/" for mount in mounts}
        home, tmp = pod / "home", pod / "tmp"
        home.mkdir()
        tmp.mkdir()
        env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONDONTWRITEBYTECODE="1")
        watched = {"$HOME": home} if "/tmp" in paths else {"$HOME": home, "$TMPDIR": tmp}
        volumes = [Path(path).resolve() for path in paths]
        return _Watch(self.cwd, volumes, watched, _files(self.cwd, volumes))

    def _wait(self, process: subprocess.Popen[str], template: str, where: str) -> tuple[str, str]:
        """Wait for a container, interrupting it as asked; its phase and message."""
        started = time.monotonic()
        interruption = next((i for i in self.interruptions if i.template == template), None)
        while True:
            try:
                code = process.wait(timeout=_POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            else:
                return (SUCCEEDED, "") if code == 0 else (FAILED, f"Error (exit code {code})")
            if time.monotonic() - started > self.timeout:
                process.kill()
                process.wait()
                raise HarnessError(f"{where}: the container ran over {self.timeout} s")
            if interruption is not None and (interruption.when is None or interruption.when()):
                self.hits[id(interruption)] -= 1
                if not self.hits[id(interruption)]:
                    self.interruptions.remove(interruption)
                return self._interrupt(process, interruption.action)
            if self._deadline_passed():
                return self._interrupt(process, DEADLINE)

    def _interrupt(self, process: subprocess.Popen[str], action: str) -> tuple[str, str]:
        """Do ``action`` to a running container: its phase and message."""
        self.interrupted.append(action)
        message = INTERRUPTION_MESSAGES[action]
        if action == DELETE:
            process.kill()
            process.wait()
            return ERROR, message
        self.shutdown = self.shutdown or message
        if action == TERMINATE:
            self.exit_handler_runs = False
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return FAILED, message

    def _env_value(self, variable: Mapping[str, Any], files: dict[str, str], where: str) -> str:
        if "value" in variable:
            value = str(variable["value"])
            return files.get(value, value)
        reference = (variable.get("valueFrom") or {}).get("secretKeyRef")
        if reference is None:
            raise HarnessError(f"{where}: env {variable['name']!r} has neither value nor secret")
        key = (reference["name"], reference["key"])
        if key not in self.secrets:
            raise HarnessError(f"{where}: no secret {key[0]!r} with key {key[1]!r} was given")
        return self.secrets[key]

    @staticmethod
    def _output_values(
        outputs: list[Mapping[str, Any]], files: dict[str, str], phase: str, where: str
    ) -> dict[str, str]:
        values: dict[str, str] = {}
        for parameter in outputs:
            source = parameter.get("valueFrom") or {}
            if "path" not in source:
                raise HarnessError(f"{where}: output {parameter['name']!r} is not from a path")
            file = Path(files[source["path"]])
            if file.is_file():
                values[parameter["name"]] = file.read_text(encoding="utf-8")
            elif "default" in source:
                values[parameter["name"]] = str(source["default"])
            elif phase == SUCCEEDED:
                raise HarnessError(f"{where}: output {parameter['name']!r}: no file, no default")
        return values

    # ------------------------------------------------------------------ DAGs

    def _dag(self, template: Mapping[str, Any], scope: dict[str, str], path: str) -> _Outcome:
        dag = template["dag"]
        tasks = {task["name"]: task for task in dag.get("tasks") or []}
        logic = {name: _depends_of(task) for name, task in tasks.items()}
        parents = {name: depends_tasks(text) if text else set() for name, text in logic.items()}
        for name, found in parents.items():
            if found - set(tasks):
                raise HarnessError(f"{path}: task {name!r} depends on unknown {found - set(tasks)}")
        if dag.get("target"):
            raise HarnessError(f"{path}: the harness does not play a DAG's 'target'")
        depended = set().union(*parents.values()) if parents else set()
        targets = [name for name in tasks if name not in depended]
        fail_fast = dag.get("failFast", True)
        ended: dict[str, _Outcome] = {}

        def results(task: str, result: str) -> bool:
            outcome = ended[task]
            if result == "Succeeded":
                return outcome.phase == SUCCEEDED
            if result == "Failed":
                return outcome.phase == FAILED
            if result == "Errored":
                return outcome.phase == ERROR
            if result == "Skipped":
                return outcome.phase == SKIPPED
            if result == "Omitted":
                return outcome.phase == OMITTED
            if result == "AnySucceeded":
                return SUCCEEDED in outcome.children
            if result == "AllFailed":
                return bool(outcome.children) and all(p == FAILED for p in outcome.children)
            return False  # Daemoned: nothing here is a daemon

        while True:
            phase = self._dag_phase(targets, parents, ended)
            if phase != "" and (fail_fast or len(ended) == len(tasks)):
                break
            if self.shutdown or self._deadline_passed():
                # Argo fails every DAG still running when the workflow shuts down.
                phase = phase if _failed(phase) else FAILED
                break
            wave = [
                name
                for name in tasks
                if name not in ended and all(parent in ended for parent in parents[name])
            ]
            if not wave:
                raise HarnessError(f"{path}: tasks {sorted(set(tasks) - set(ended))} never ran")
            for name in wave:
                task, task_path = tasks[name], f"{path}.{name}"
                if logic[name] and not evaluate_depends(logic[name], results):
                    ended[name] = _Outcome(OMITTED)
                    self.nodes.append(Node(task_path, task["template"], "Task", OMITTED))
                    continue
                ended[name] = self._task(task, scope, ended, task_path)
        node = Node(path, template["name"], "DAG", phase)
        self.nodes.append(node)
        return _Outcome(phase)

    @staticmethod
    def _dag_phase(
        targets: list[str], parents: dict[str, set[str]], ended: dict[str, _Outcome]
    ) -> str:
        """Argo's assessment: "" while undecided; Failed/Error once a target failed."""
        branch: dict[str, str] = {}

        def branch_phase(name: str) -> str:
            # A task that ran has its own phase; an omitted or skipped one inherits a failure
            # of what it depends on.
            if name not in branch:
                phase = ended[name].phase
                if phase in (SKIPPED, OMITTED):
                    inherited = [branch_phase(p) for p in sorted(parents[name])]
                    phase = next((p for p in inherited if _failed(p)), SUCCEEDED)
                branch[name] = phase
            return branch[name]

        decided = [branch_phase(name) for name in targets if name in ended]
        failure = next((phase for phase in decided if _failed(phase)), None)
        if failure is not None:
            return failure
        return SUCCEEDED if len(decided) == len(targets) else ""

    def _task(
        self,
        task: Mapping[str, Any],
        dag_scope: dict[str, str],
        ended: dict[str, _Outcome],
        path: str,
    ) -> _Outcome:
        """Run one DAG task: its template once, or once per element of its list."""
        for unsupported in ("templateRef", "inline", "onExit", "hooks"):
            if unsupported in task:
                raise HarnessError(f"{path}: the harness does not play a task's {unsupported!r}")
        scope = dict(dag_scope)
        for name, outcome in ended.items():
            scope.update(
                {f"tasks.{name}.outputs.parameters.{k}": v for k, v in outcome.outputs.items()}
            )
        where = f"{path} (task)"
        if "when" in task and not evaluate_when(substitute(str(task["when"]), scope, where), where):
            self.nodes.append(Node(path, task["template"], "Task", SKIPPED))
            return _Outcome(SKIPPED)
        if "withParam" in task or "withItems" in task:
            if "withParam" in task:
                text = substitute(str(task["withParam"]), scope, where)
                try:
                    items = json.loads(text)
                except json.JSONDecodeError:
                    raise HarnessError(f"{where}: withParam is not JSON: {text!r}") from None
            else:
                items = task["withItems"]
            if not isinstance(items, list):
                raise HarnessError(f"{where}: withParam is not a JSON list: {items!r}")
            if not items:
                self.nodes.append(Node(path, task["template"], "TaskGroup", SKIPPED))
                return _Outcome(SKIPPED)
            children = []
            for index, item in enumerate(items):
                text = item_text(item)
                if self.shutdown:
                    # Argo had started its pod with the others: the shutdown fails it.
                    child = Node(f"{path}({index}:{text})", task["template"], "Task", FAILED)
                    child.message = self.shutdown
                    self.nodes.append(child)
                    children.append(FAILED)
                    continue
                arguments = self._arguments(task, {**scope, "item": text}, where)
                outcome = self._template(task["template"], arguments, f"{path}({index}:{text})")
                children.append(outcome.phase)
            phase = next((p for p in children if _failed(p)), SUCCEEDED)
            self.nodes.append(Node(path, task["template"], "TaskGroup", phase))
            return _Outcome(phase, children=children)
        return self._template(task["template"], self._arguments(task, scope, where), path)

    @staticmethod
    def _arguments(task: Mapping[str, Any], scope: dict[str, str], where: str) -> dict[str, str]:
        parameters = (task.get("arguments") or {}).get("parameters") or []
        return {
            parameter["name"]: substitute(str(parameter.get("value", "")), scope, where)
            for parameter in parameters
        }


def _files(root: Path, volumes: list[Path]) -> dict[str, tuple[int, int]]:
    """``relative path -> (mtime, size)`` of every file under ``root``, outside ``volumes``
    and ``.git``."""
    found: dict[str, tuple[int, int]] = {}
    for folder, names, files in os.walk(root):
        here = Path(folder)
        names[:] = [n for n in names if n != ".git" and (here / n).resolve() not in volumes]
        for name in files:
            path = here / name
            stat = path.lstat()
            found[str(path.relative_to(root))] = (stat.st_mtime_ns, stat.st_size)
    return found


@dataclass
class _Watch:
    """What a read-only container might write: ``cwd`` outside its volumes, and folders of its
    own (``HOME``...) that must stay empty."""

    cwd: Path
    volumes: list[Path]
    empty: dict[str, Path]
    before: dict[str, tuple[int, int]]

    def written(self) -> list[str]:
        """What was created or changed since the container started."""
        after = _files(self.cwd, self.volumes)
        changed = sorted(path for path, stat in after.items() if self.before.get(path) != stat)
        for name, folder in self.empty.items():
            changed += [f"{name}/{p.relative_to(folder)}" for p in sorted(folder.rglob("*"))]
        return changed


def _too_long(
    template: Mapping[str, Any], container: Mapping[str, Any], env: dict[str, str]
) -> bool:
    """Whether a container cannot start: one of its strings reaches Linux's limit -- an
    argument, a ``NAME=value``, or the template Argo's executor gets in ``ARGO_TEMPLATE`` (the
    template filled in, its input parameters left out as Argo 3.6 does)."""
    arguments = [*(container.get("command") or []), *(container.get("args") or [])]
    strings = [*arguments, *(f"{name}={value}" for name, value in env.items())]
    argo_template = {k: v for k, v in template.items() if k != "inputs"}
    strings.append("ARGO_TEMPLATE=" + json.dumps({**argo_template, "container": container}))
    return any(len(str(text).encode()) + 1 > ARGUMENT_LIMIT for text in strings)


def _depends_of(task: Mapping[str, Any]) -> str:
    """A task's ``depends``; the legacy ``dependencies`` list as bare names joined by ``&&``."""
    if task.get("depends"):
        return str(task["depends"])
    return " && ".join(task.get("dependencies") or [])
