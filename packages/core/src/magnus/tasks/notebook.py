"""The ``notebook`` task type: runs a Jupyter notebook with papermill (``magnus-core[notebook]``).

Parameters in scope (nested values as dicts) and map variables are injected after the notebook's
``parameters``-tagged cell (at the top when it has none). Every output of every cell tagged
``output_cell_tag`` (``magnus_output``) must show a dict literal; the dicts are merged into the
step's output parameters. The executed notebook is written to ``notebook_output_path`` and put
into the run's catalog, also when a cell fails (papermill saves the notebook as far as it ran).

The notebook runs in a separate kernel process (the ``python3`` kernel of this environment unless
``optional_ploomber_args`` names another). The kernel inherits the environment: ``MAGNUS_RUN_ID``,
every parameter as ``MAGNUS_PRM_<name>`` and ``MAGNUS_MAP_VARIABLE``; what the kernel sets in its
own environment does not come back. magnus' interaction API (``get_parameter``, ``set_parameter``,
``put_in_catalog``, ``track_this``, ``get_secret``, ...) works in the kernel: while papermill
runs, the step answers its calls (``magnus.tasks.kernel_channel``), so what they set is merged
into the step's output as for a python task. Parameters set with ``set_parameter`` come first,
the dicts of output cells after them (an output cell overrides).

papermill is imported only when a notebook step runs, so ``import magnus`` and ``magnus validate``
work without the extra.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from magnus import parameters as params_mod
from magnus.exceptions import CatalogError, MagnusError, TaskError
from magnus.internal_names import MAX_FILE_NAME_BYTES, branch_name_of, fit_file_name
from magnus.redaction import get_redactor
from magnus.tasks import kernel_channel
from magnus.tasks.base import BaseTaskType, TaskInput, scope_environment
from magnus.tasks.environment import TaskEnvironment, exported_environment, task_environment
from magnus.tasks.output import task_output

logger = logging.getLogger(__name__)

NOTEBOOK_SUFFIX = ".ipynb"
INSTALL_HINT = "Notebook tasks need the notebook extra: pip install 'magnus-core[notebook]'"
#: the kernel ipykernel registers for the interpreter it is installed in
DEFAULT_KERNEL = "python3"

#: ``optional_ploomber_args`` keys with a papermill equivalent: 0.5 name -> papermill argument
_HONOURED = {
    "kernel_name": "kernel_name",
    "language": "language",
    "timeout": "execution_timeout",
    "execution_timeout": "execution_timeout",
    "start_timeout": "start_timeout",
    "startup_timeout": "start_timeout",
    "cwd": "cwd",
    "progress_bar": "progress_bar",
    "report_mode": "report_mode",
}
#: ploomber-engine options with no papermill equivalent: accepted so 0.5 pipelines load, ignored
#: (cell output always goes to the execution log and the console, which ``log_output`` asked for)
_IGNORED = frozenset(
    {
        "log_output",
        "profile_runtime",
        "profile_memory",
        "save_profiling_data",
        "debug",
        "debug_later",
        "verbose",
        "remove_tagged_cells",
    }
)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def default_output_path(command: str) -> str:
    """``dir/x.ipynb`` -> ``dir/x_out.ipynb``: only the final extension changes.

    (0.5 deleted every ``.`` of the stem, turning ``./x.ipynb`` into ``/x_out.ipynb``.)
    """
    return command[: -len(NOTEBOOK_SUFFIX)] + "_out" + NOTEBOOK_SUFFIX


def output_path_in_map(path: str, map_variables: dict[str, Any]) -> str:
    """``_<branch name>`` per map value, outermost first, before the ``.ipynb`` suffix.

    Branch names (``magnus.internal_names``) keep each element's notebook apart with a
    file-name-safe text; 0.5 appended the raw value after the suffix (``nb_out.ipynb_3``).
    """
    suffix = "".join(f"_{branch_name_of(value)}" for value in map_variables.values())
    folder, separator, stem = path[: -len(NOTEBOOK_SUFFIX)].rpartition("/")
    room = MAX_FILE_NAME_BYTES - len(NOTEBOOK_SUFFIX)
    return folder + separator + fit_file_name(stem + suffix, room) + NOTEBOOK_SUFFIX


def _must_be_notebook(value: str, what: str) -> str:
    if not value.endswith(NOTEBOOK_SUFFIX):
        raise ValueError(f"{what} must be the path of a notebook ending in .ipynb, not {value!r}")
    return value


class NotebookTaskType(BaseTaskType):
    """Runs the notebook at ``command`` with papermill in a Jupyter kernel.

    ``optional_ploomber_args`` keeps 0.5's name (0.5 used ploomber-engine). Honoured keys:
    ``kernel_name``, ``language``, ``timeout``/``execution_timeout`` (seconds per cell),
    ``start_timeout``/``startup_timeout`` (seconds for the kernel to start), ``cwd`` (the
    kernel's working directory), ``progress_bar`` and ``report_mode``. ploomber-only keys
    (``log_output``, ``profile_runtime``, ``debug``, ...) are accepted and ignored with a
    warning; anything else is a validation error.
    """

    service_name: ClassVar[str] = "notebook"

    notebook_output_path: str | None = None
    output_cell_tag: str = "magnus_output"
    optional_ploomber_args: dict[str, Any] = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _command_is_notebook(cls, value: str) -> str:
        return _must_be_notebook(value, "command")

    @field_validator("notebook_output_path")
    @classmethod
    def _output_is_notebook(cls, value: str | None) -> str | None:
        return None if value is None else _must_be_notebook(value, "notebook_output_path")

    @field_validator("output_cell_tag")
    @classmethod
    def _tag_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("output_cell_tag must not be empty")
        return value

    @field_validator("optional_ploomber_args")
    @classmethod
    def _known_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(_HONOURED) - _IGNORED)
        if unknown:
            raise ValueError(
                f"unsupported optional_ploomber_args {', '.join(unknown)}; notebooks run with "
                f"papermill, which takes {', '.join(sorted(_HONOURED))}"
            )
        return value

    @model_validator(mode="after")
    def _fill_output_path(self) -> NotebookTaskType:
        # Filled in rather than computed at run time so run_config.dag records where it went.
        if self.notebook_output_path is None:
            self.notebook_output_path = default_output_path(self.command)
        return self

    def output_path(self, map_variables: dict[str, Any]) -> str:
        """Where this execution writes the executed notebook."""
        path = self.notebook_output_path or default_output_path(self.command)
        return output_path_in_map(path, map_variables) if map_variables else path

    def execute(self, task_input: TaskInput) -> dict[str, Any]:
        # As for shell: the whole scope goes in, so all of it counts as consumed.
        task_input.consumed = self.consumes(task_input)
        papermill = _import_papermill()
        options = self._papermill_options()
        if (
            options["kernel_name"] == DEFAULT_KERNEL
            and importlib.util.find_spec("ipykernel") is None
        ):
            raise TaskError(INSTALL_HINT)
        source = Path(self.command)
        if not source.is_file():
            raise TaskError(f"Notebook {self.command} does not exist in {os.getcwd()}")
        output_path = Path(self.output_path(task_input.map_variables))
        if output_path.resolve() == source.resolve():
            raise TaskError(
                f"Notebook {self.command}: notebook_output_path is the notebook itself; "
                "running it would overwrite it"
            )

        injected = {**task_input.parameters, **task_input.map_variables}
        exported = params_mod.to_environment(task_input.parameters)
        exported.update(scope_environment(task_input))
        # A notebook left by an earlier run must not pass for this run's if papermill fails
        # before writing it.
        output_path.unlink(missing_ok=True)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        executed: Any = None
        error: BaseException | None = None
        environment: TaskEnvironment | None = None
        try:
            # The kernel inherits descriptors 1 and 2: what it prints there reaches the console
            # masked, and only what the cells print reaches the execution log.
            with (
                task_environment(exported) as environment,
                self._serving_calls(task_input.answer_call) as channel,
                exported_environment(channel),
                _quiet_expected_warnings(),
                task_output(
                    task_input.output,
                    task_input.console_out,
                    task_input.console_err,
                    log_piped=False,
                ) as (stdout, stderr),
            ):
                try:
                    executed = papermill.execute_notebook(
                        _literal_path(os.path.abspath(source)),
                        _literal_path(os.path.abspath(output_path)),
                        parameters=injected,
                        log_output=False,  # cell output is streamed to stdout_file/stderr_file
                        stdout_file=stdout,
                        stderr_file=stderr,
                        **options,
                    )
                finally:
                    # What the kernel's set_parameter calls left in this process's environment.
                    environment.collect()
        except Exception as exc:
            error = exc
        stored_as = self._store_in_catalog(output_path, task_input, failed=error is not None)
        if error is not None:
            raise self._failure(error, task_input, output_path, stored_as) from error
        left = environment.parameters if environment is not None else {}
        produced = params_mod.changed_in_environment(exported, left)
        produced.update(self._output_parameters(executed, task_input.step_name))
        return produced

    # ---------------------------------------------------------------------------- helpers

    def _papermill_options(self) -> dict[str, Any]:
        """papermill keyword arguments from the defaults and ``optional_ploomber_args``."""
        options: dict[str, Any] = {
            "kernel_name": DEFAULT_KERNEL,
            # Output cells are evaluated as Python literals: these are Python notebooks.
            "language": "python",
            "progress_bar": False,
        }
        ignored = sorted(set(self.optional_ploomber_args) & _IGNORED)
        if ignored:
            logger.warning(
                "Notebook %s: optional_ploomber_args %s have no papermill equivalent and are "
                "ignored",
                self.command,
                ", ".join(ignored),
            )
        for key, value in self.optional_ploomber_args.items():
            if key in _HONOURED:
                options[_HONOURED[key]] = value
        return options

    @contextmanager
    def _serving_calls(self, answer: kernel_channel.Answer | None) -> Iterator[dict[str, str]]:
        """The kernel's interaction calls answered by the step; the environment naming it."""
        if answer is None:  # executed outside a run: nothing to answer with
            yield {}
            return
        with kernel_channel.serving(answer) as environment:
            yield environment

    def _store_in_catalog(self, path: Path, task_input: TaskInput, failed: bool) -> str:
        """Put the executed notebook into the run's catalog, recorded on the current step.

        Returns the catalog name ("" when nothing was stored). Outside a running step (a task
        executed directly) there is no catalog to put it in.
        """
        if not path.is_file():
            return ""
        _mask_secrets_in(path)
        if task_input.store_file is None:
            return ""
        try:
            return task_input.store_file(path, _catalog_name(path))
        except CatalogError as exc:
            if failed:
                # The notebook's own error is what the step reports.
                logger.warning("Could not store the executed notebook %s: %s", path, exc)
                return ""
            raise TaskError(f"Notebook {self.command} ran but {exc}") from exc

    def _failure(
        self, error: BaseException, task_input: TaskInput, output_path: Path, stored_as: str
    ) -> MagnusError:
        """A TaskError naming the notebook and the failing cell's exception."""
        if isinstance(error, MagnusError):
            return error
        where = ""
        if output_path.is_file():
            where = f"; the executed notebook is {output_path}"
            if stored_as == output_path.as_posix():
                where += " (also in the catalog)"
            elif stored_as:
                where += f" (in the catalog as {stored_as})"
        ename = getattr(error, "ename", None)
        if ename is not None:  # papermill's PapermillExecutionError: a cell raised
            traceback = getattr(error, "traceback", None) or []
            task_input.output.write(_ANSI.sub("", "\n".join(traceback)) + "\n")
            cell = getattr(error, "cell_index", None)
            count = getattr(error, "exec_count", None)
            cell_text = f"cell {cell + 1}" if isinstance(cell, int) else "a cell"
            if count is not None:
                cell_text += f" (In [{count}])"
            message = f"{ename}: {getattr(error, 'evalue', '')}"
            return TaskError(f"Notebook {self.command} failed in {cell_text}: {message}{where}")
        name = type(error).__name__
        if name == "NoSuchKernel":  # jupyter_client's, raised before any cell runs
            return TaskError(
                f"Notebook {self.command}: no Jupyter kernel named "
                f"{getattr(error, 'name', error)!r} in this environment; install ipykernel or "
                f"set optional_ploomber_args.kernel_name{where}"
            )
        return TaskError(f"Notebook {self.command} failed: {name}: {error}{where}")

    def _output_parameters(self, notebook: Any, step_name: str) -> dict[str, Any]:
        """Merge the dict literals every output of every ``output_cell_tag`` cell shows."""
        produced: dict[str, Any] = {}
        for index, cell in enumerate(notebook.cells):
            if self.output_cell_tag not in cell.get("metadata", {}).get("tags", []):
                continue
            where = f"cell {index + 1} of notebook {self.command} (tagged {self.output_cell_tag!r})"
            for output in cell.get("outputs", []):
                for value in _output_values(output, where):
                    produced.update(params_mod.returned_parameters(value, step_name))
        return produced


def _output_values(output: Any, where: str) -> list[dict[str, Any]]:
    """The dicts one cell output shows: printed (stdout) or displayed (``text/plain``)."""
    kind = output.get("output_type")
    if kind == "stream" and output.get("name") == "stdout":
        text = "".join(output.get("text", ""))
    elif kind in ("execute_result", "display_data"):
        text = "".join(output.get("data", {}).get("text/plain", ""))
    else:
        # stderr (warnings), errors, rich-only displays: none of them carries parameters.
        return []
    if not text.strip():
        return []
    try:
        return [_dict_literal(text)]
    except ValueError as whole_error:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise TaskError(f"{where} showed {_short(text)}, {whole_error}") from None
    # Several prints in one cell arrive as one text: one dict per line is accepted as well.
    values = []
    for line in lines:
        try:
            values.append(_dict_literal(line))
        except ValueError as line_error:
            raise TaskError(f"{where} showed {_short(line)}, {line_error}") from None
    return values


def _dict_literal(text: str) -> dict[str, Any]:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(
            "which is not a Python literal; an output cell must show only a dict"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"a {type(value).__name__}, not a dict; an output cell must show a dict")
    return value


def _short(text: str, limit: int = 80) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _catalog_name(path: Path) -> str:
    """The output path relative to the working directory, as a catalog name.

    A notebook written outside the working directory is stored under its file name alone.
    """
    relative = os.path.relpath(os.path.abspath(path), os.getcwd())
    if relative.startswith(os.pardir) or os.path.isabs(relative):
        logger.warning(
            "The executed notebook %s is outside the working directory; it is stored in the "
            "catalog as %s",
            path,
            path.name,
        )
        return path.name
    return Path(relative).as_posix()


def _mask_secrets_in(path: Path) -> None:
    """Mask served secrets in the executed notebook, as in the execution log.

    Cell outputs, and the parameters injected into its source, are masked in the file itself:
    what magnus writes (there and in the catalog) never holds a secret. The JSON-escaped forms
    of each secret are masked too, since the notebook is JSON.
    """
    redactor = get_redactor()
    if not redactor.active:
        return
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    masked = redactor.redact_text(text)
    if masked == text:
        return
    partial = path.with_name(f".{path.name}.masking")
    partial.write_text(masked, encoding="utf-8", errors="surrogateescape")
    os.replace(partial, path)


def _literal_path(path: str) -> str:
    # papermill formats paths with the parameters (``{name}``); magnus' paths are literal.
    return path.replace("{", "{{").replace("}", "}}")


def _import_papermill() -> Any:
    try:
        # By name: papermill ships no type information, and importing it costs ~0.5 s.
        papermill = importlib.import_module("papermill")
    except ImportError as exc:
        if exc.name == "papermill":
            raise TaskError(INSTALL_HINT) from None
        raise TaskError(f"{INSTALL_HINT} (importing papermill failed: {exc})") from exc
    return papermill


class _DropExpectedWarnings(logging.Filter):
    """papermill warnings about what magnus does on purpose.

    magnus injects every parameter in scope, so papermill would warn about each one the
    notebook does not declare; and a notebook with no ``parameters`` cell (one that reads its
    parameters with ``get_parameter``) gets them at the top, as documented.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (
            message.startswith("Passed unknown parameter")
            or message.startswith("Input notebook does not contain a cell with tag")
        )


@contextmanager
def _quiet_expected_warnings() -> Iterator[None]:
    papermill_logger = logging.getLogger("papermill")
    quiet = _DropExpectedWarnings()
    papermill_logger.addFilter(quiet)
    try:
        yield
    finally:
        papermill_logger.removeFilter(quiet)
