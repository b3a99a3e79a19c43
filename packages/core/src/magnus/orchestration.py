"""How an orchestrator calls magnus back: the commands, their options and environment variables.

An executor that renders a pipeline for an orchestrator (``traverses = False``, such as
``argo``) writes containers that run ``magnus <command> <run id> <internal name> [options]``
once per step, branch or fan. The command line registers these commands and reads these
options, the engine reads these variables, and a renderer writes all of them: each is named
here once, so the three cannot drift apart.

Internal names travel on the command line with spaces written ``%``
(``magnus.internal_names.to_command_line``).
"""

from __future__ import annotations

from collections.abc import Sequence

#: run one leaf step of a run (task, stub, success or fail); exit 1 if it fails
EXECUTE_SINGLE_NODE = "execute_single_node"
#: run one branch of a composite step to its end; exit 1 if the branch fails
EXECUTE_SINGLE_BRANCH = "execute_single_branch"
#: fan a composite step out (create its branch logs) or in (decide its status)
FAN = "fan"
#: end a run once the orchestrator's workflow is over (an exit handler): ``end_run <run id>
#: <workflow status> [--failures <JSON>]``; closes what is open, ends an open run FAIL
END_RUN = "end_run"
#: start a re-run of an original for an orchestrator: ``start_rerun <run id> <original run
#: id>``; records reused the steps before the first one that runs again
START_RERUN = "start_rerun"
#: every command an orchestrator calls, under its canonical name
COMMANDS = (EXECUTE_SINGLE_NODE, EXECUTE_SINGLE_BRANCH, FAN, END_RUN, START_RERUN)

#: ``fan --mode out``: create the composite's step log and its branch logs
FAN_OUT = "out"
#: ``fan --mode in``: decide the composite's status from its branches
FAN_IN = "in"
#: ``fan --mode next``: after a branch ended, start the next one (a loop's next iteration);
#: the output file gets its key, or ``""`` when the composite is done
FAN_NEXT = "next"
FAN_MODES = (FAN_IN, FAN_OUT, FAN_NEXT)

#: on ``execute_single_node`` and ``fan --mode in``: once the step succeeded, run the success
#: step its ``next`` leads to in the same process (an orchestrator spares that step's pod)
THEN_SUCCESS_OPTION = "--then-success"
#: on a map's ``fan --mode out``: write batch numbers, not element indices; on
#: ``execute_single_branch``: the map's own index is a batch number, whose elements run in turn
BATCH_SIZE_OPTION = "--batch-size"
#: on a map's ``fan --mode out``: write each index with a label of its element (or batch), for
#: an orchestrator's UI to show: ``{"element": "amber", "index": 0}``
LABELLED_OPTION = "--labelled"

#: set (to anything but ``""`` or ``0``) when ``--map-variable`` holds each enclosing map's
#: element *index*: magnus reads the element from that map's ``map_values`` in the run log
MAP_INDICES_ENV = "MAGNUS_MAP_INDICES"
#: set on a composite's fan-out (and a loop's ``next``): the file it writes what to run to --
#: a map's JSON list of element indices, or the key of the one branch to run ("" for none)
MAP_INDICES_FILE_ENV = "MAGNUS_MAP_INDICES_FILE"
#: set by an orchestrator that retries a step itself: the number (from 1) of this attempt,
#: the only one the container makes
ATTEMPT_ENV = "MAGNUS_STEP_ATTEMPT"
#: set for a branch's process started by a local parallel run: its console prints only
#: failures, since the process that started it shows the composite's progress
FAILURES_ONLY_ENV = "MAGNUS_CONSOLE_FAILURES_ONLY"


def command_names(command: str) -> tuple[str, ...]:
    """The names the command line accepts for ``command``: itself, and its hyphenated alias."""
    alias = command.replace("_", "-")
    return (command,) if alias == command else (command, alias)


def callback_command(
    program: Sequence[str],
    command: str,
    run_id: str,
    name: str,
    *,
    log_level: str,
    mode: str = "",
    pipeline_file: str = "",
    map_variable: str = "",
    configuration_file: str = "",
    parameters_file: str = "",
    tag: str = "",
    reuse: bool | None = None,
) -> list[str]:
    """The command line of one call back into magnus; empty options are left out.

    Args:
        program: what starts magnus (``["magnus"]``, ``[sys.executable, "-m", "magnus.cli"]``).
        command: one of :data:`COMMANDS`.
        run_id: the run the call belongs to (an orchestrator's template expression is fine).
        name: the internal name of the step or branch, spaces written ``%``.
        log_level: the level magnus logs at in the called process.
        mode: :data:`FAN_OUT` or :data:`FAN_IN`, for :data:`FAN` only.
        pipeline_file: the pipeline file (without it, the graph recorded in the run log runs).
        map_variable: the JSON object of the map values (or indices) in force.
        configuration_file: the configuration file.
        parameters_file: the parameters file of the run.
        tag: the run's tag.
        reuse: ``--reuse`` or ``--no-reuse`` for the process that starts the run (``None``:
            neither; a process joining a run shares the run's recorded setting).
    """
    line = [*program, command, run_id, name]
    if mode:
        line += ["--mode", mode]
    line += ["--log-level", log_level]
    options = (
        ("--file", pipeline_file),
        ("--map-variable", map_variable),
        ("--config-file", configuration_file),
        ("--parameters-file", parameters_file),
        ("--tag", tag),
    )
    for option, value in options:
        if value:
            line += [option, value]
    if reuse is not None:
        line.append("--reuse" if reuse else "--no-reuse")
    return line
