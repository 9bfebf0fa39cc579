"""A commented jobflow-remote project for running viglas flows on a cluster.

``viglas hpc init`` writes the text of :func:`project_template` to a YAML file in the
jobflow-remote projects folder (``$JFREMOTE_PROJECTS_FOLDER`` or ``~/.jfremote``).
The project has three workers:

* ``slurm`` — batch jobs through ``sbatch`` (the runner runs on a login node),
* ``pbs`` — batch jobs through ``qsub`` (PBS Pro / OpenPBS ``select`` syntax),
* ``local`` — plain processes on the machine running the runner (for checks).

Store layout: the queue (job states) and the small output documents live in MongoDB;
large binary outputs go to a GridFS *additional store* named ``data``; MD trajectories
stay as H5MD files in the job's run directory on the cluster's file system and only
their paths are stored in the documents — never the frames themselves.

``metadata.viglas`` holds per-job-kind settings read by ``viglas submit``
(:mod:`viglas.workflows.hpc_settings`): for each worker, what ``md`` jobs (melt-quench and
production MD) and ``analysis`` jobs (structure building, diffusion fits, summaries)
ask of the scheduler, an optional execution config (e.g. ``gpu``), and the wall time
after which a long MD job stops at a checkpoint and continues in a new allocation.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from viglas.errors import ConfigError, MissingDependencyError

__all__ = [
    "project_template", "write_project", "default_projects_folder", "default_pre_run",
    "load_project", "parse_walltime_s",
]


def default_projects_folder() -> Path:
    """Where jobflow-remote looks for project files: ``$JFREMOTE_PROJECTS_FOLDER``
    or ``~/.jfremote``."""
    return Path(os.environ.get("JFREMOTE_PROJECTS_FOLDER", "~/.jfremote")).expanduser()


def default_pre_run() -> str:
    """A shell line that makes the Python running this command the one jobs use.

    A virtual environment is activated with ``source .../bin/activate``, a conda
    environment with ``conda activate``; otherwise the interpreter's ``bin`` folder is
    put first on ``PATH``.
    """
    if sys.prefix != sys.base_prefix:
        return f"source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}"
    conda = os.environ.get("CONDA_PREFIX")
    if conda and Path(sys.executable).resolve().is_relative_to(Path(conda).resolve()):
        return f"eval \"$(conda shell.bash hook)\" && conda activate {shlex.quote(conda)}"
    return f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH"


_TEMPLATE = """\
# jobflow-remote project for viglas, written by `viglas hpc init`.
#
# 1. Edit the lines marked EDIT (database host, shared work directory, partition,
#    account, GPU options). Keep this file as {projects_folder}/{name}.yaml
#    (or point $JFREMOTE_PROJECTS_FOLDER at its folder).
# 2. jf admin reset -y                     # once: creates the queue collections
# 3. jf runner start --single              # on the machine that can run sbatch/qsub
# 4. viglas submit CONFIG --worker slurm --project {name}
# 5. jf job list / jf flow info FLOW_ID / viglas results --project {name} FLOW_ID
#
# Everything the runner starts inherits the environment of `jf runner start`:
# export SLURM_CONF, model paths etc. before starting it.
name: {name}
# Runner logs and daemon files (on the machine running `jf runner`).
base_dir: {base_dir}
log_level: info

runner:
  # Seconds between the runner's polls of the database and of the scheduler.
  # 30 s (the jobflow-remote default) is polite to a real cluster; 2 s makes tests fast.
  delay_checkout: {delay}
  delay_check_run_status: {delay}
  delay_advance_status: {delay}
  delay_refresh_limited: {delay_limited}

workers:
  # Batch jobs with sbatch on this machine (a cluster login node). To drive a cluster
  # from another machine, use `type: remote` and add `host: login.example.org`
  # (plus `user:` and `key_filename:`); see the jobflow-remote documentation.
  slurm:
    type: local
    scheduler_type: slurm
    # EDIT: a folder on a file system the compute nodes share. Each job runs in its
    # own subfolder; MD trajectories (H5MD) and checkpoints stay there.
    work_dir: {work_dir}/slurm
    # Runs at the top of every batch script: activate the Python environment
    # that has viglas installed.
    pre_run: |
      {pre_run}
      export OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}}
    timeout_execute: 120
    # Default sbatch options of every job (keys of qtoolkit's Slurm template:
    # partition, account, qos, nodes, ntasks, cpus_per_task, mem, time, gres,
    # gpus, constraint, ...). metadata.viglas below refines them per job kind.
    resources:
      nodes: 1
      ntasks: 1
      cpus_per_task: 1
      time: "01:00:00"
      # partition: standard          # EDIT
      # account: my_allocation       # EDIT

  # Batch jobs with qsub (PBS Pro / OpenPBS).
  pbs:
    type: local
    scheduler_type: pbs
    work_dir: {work_dir}/pbs
    pre_run: |
      {pre_run}
      export OMP_NUM_THREADS=${{NCPUS:-1}}
    timeout_execute: 120
    # Keys of qtoolkit's PBS template: queue, account, select (written as
    # "select=N:ncpus=..."), walltime, place, ...
    resources:
      select: "select=1:ncpus=1"
      walltime: "01:00:00"
      # queue: workq                 # EDIT
      # account: my_allocation       # EDIT

  # Plain processes on the machine running the runner: checks and small jobs.
  local:
    type: local
    scheduler_type: shell
    work_dir: {work_dir}/local
    pre_run: |
      {pre_run}
      export OMP_NUM_THREADS=1
    max_jobs: 2                      # jobs running at the same time

# Job states, flows and locks. Must be a MongoDB server (or MongoDB wire-compatible);
# jobflow-remote uses aggregations and find-and-modify, so file stores do not work.
queue:
  store:
    type: MongoStore
    host: {host}                     # EDIT: your MongoDB host
    port: {port}
    database: {database}
    collection_name: jobs
    # username: viglas               # EDIT when the server needs a login
    # password: "..."

# Job outputs. The documents are small (numbers, units in the names, provenance,
# file paths). Large binary outputs marked with @job(data=...) go to GridFS.
# Trajectories are never stored here: they stay as H5MD files in work_dir.
jobstore:
  docs_store:
    type: MongoStore
    host: {host}
    port: {port}
    database: {database}
    collection_name: outputs
  additional_stores:
    data:
      type: GridFSStore
      host: {host}
      port: {port}
      database: {database}
      collection_name: outputs_blobs

# Named execution configs, selected per job kind below.
exec_config:
  gpu:
    # Runs after the worker's pre_run in jobs that use a GPU (ML potentials).
    # modules: [cuda/12.4]           # EDIT: site modules, if any
    # The GPU itself is chosen in the viglas config:
    #   calculator: {{name: chgnet, params: {{device: cuda, threads: 8}}}}
    pre_run: |
      nvidia-smi -L || echo "viglas: no GPU visible to this job"

metadata:
  viglas:
    # Read by `viglas submit`. For each worker and job kind:
    #   resources: scheduler options merged over the worker's `resources`
    #   exec_config: one of the names in `exec_config` above
    #   segment_walltime_s: an MD job stops at a checkpoint after this many seconds
    #     and continues in a new allocation (default: 90% of the time limit, minus
    #     2 minutes). Use it when an MD run is longer than the queue's maximum time.
    # Job kinds: md = melt-quench and production MD; analysis = structure
    # building, diffusion/conductivity fits, summaries.
    slurm:
      md:
        resources: {{cpus_per_task: 4, time: "04:00:00"}}
        # ML potentials on a GPU (CHGNet, SevenNet, MACE, ...), calculator
        # params in the viglas config: {{device: cuda, threads: 8}}
        # resources: {{cpus_per_task: 8, gres: "gpu:1", time: "12:00:00", partition: gpu}}
        # exec_config: gpu
      analysis:
        resources: {{cpus_per_task: 1, time: "00:30:00"}}
    pbs:
      md:
        resources: {{select: "select=1:ncpus=4", walltime: "04:00:00"}}
        # resources: {{select: "select=1:ncpus=8:ngpus=1", walltime: "12:00:00", queue: gpu}}
        # exec_config: gpu
      analysis:
        resources: {{select: "select=1:ncpus=1", walltime: "00:30:00"}}
    local:
      md: {{}}
      analysis: {{}}
"""


def project_template(name: str = "viglas", *, mongo_host: str = "localhost",
                     mongo_port: int = 27017, database: str | None = None,
                     work_dir: str | Path = "~/viglas-jobs", base_dir: str | Path | None = None,
                     pre_run: str | None = None, runner_delay_s: float = 30.0,
                     projects_folder: str | Path | None = None) -> str:
    """The text of a commented jobflow-remote project YAML for viglas.

    Args:
        name: project name (letters, digits, ``-``, ``_``); also the file stem.
        mongo_host, mongo_port: MongoDB server of the queue and of the outputs.
        database: database name (default: the project name).
        work_dir: parent folder of the workers' job folders (should be shared by
            the compute nodes); ``~`` is expanded.
        base_dir: runner logs/daemon folder (default ``<projects folder>/<name>``).
        pre_run: shell line(s) activating the Python environment in each job
            (default :func:`default_pre_run`).
        runner_delay_s: seconds between the runner's polls (> 0).
        projects_folder: shown in the comments only (default
            :func:`default_projects_folder`).
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name or ""):
        raise ConfigError("project name must be letters, digits, '-' or '_'", field="name",
                          value=name, allowed="e.g. viglas or viglas-cluster")
    if not (0 < runner_delay_s <= 3600):
        raise ConfigError("runner delay out of range", field="runner_delay_s",
                          value=runner_delay_s, allowed="0 < seconds <= 3600")
    if not (0 < int(mongo_port) < 65536):
        raise ConfigError("port out of range", field="mongo_port", value=mongo_port,
                          allowed="1..65535")
    folder = Path(projects_folder) if projects_folder else default_projects_folder()
    base = Path(base_dir).expanduser() if base_dir else folder / name
    pre = (pre_run or default_pre_run()).strip().replace("\n", "\n      ")
    return _TEMPLATE.format(
        name=name, host=mongo_host, port=int(mongo_port), database=database or name,
        work_dir=Path(str(work_dir)).expanduser().as_posix(), base_dir=base.as_posix(),
        pre_run=pre, delay=float(runner_delay_s),
        delay_limited=max(float(runner_delay_s), 10.0), projects_folder=folder.as_posix(),
    )


def write_project(path: str | Path | None = None, *, overwrite: bool = False,
                  **kwargs) -> Path:
    """Write :func:`project_template` (keyword arguments passed on) to ``path``.

    ``path`` defaults to ``<projects folder>/<name>.yaml``. An existing file is kept
    unless ``overwrite``. Returns the path written.
    """
    name = kwargs.get("name", "viglas")
    target = Path(path).expanduser() if path else default_projects_folder() / f"{name}.yaml"
    if target.exists() and not overwrite:
        raise ConfigError("file exists; not overwriting it", field="output", value=str(target),
                          allowed="a new path", hint="pass --force to replace it")
    if "projects_folder" not in kwargs and path:
        kwargs["projects_folder"] = target.parent
    text = project_template(**kwargs)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def load_project(path: str | Path):
    """Validate a project YAML with jobflow-remote's own model; return the ``Project``.

    Raises :class:`viglas.errors.ConfigError` naming the problem, or
    :class:`viglas.errors.MissingDependencyError` if jobflow-remote is missing.
    """
    try:
        from jobflow_remote.config.base import Project
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("jobflow-remote is not installed", field="jobflow_remote",
                                     hint="pip install 'viglas[hpc]'") from exc
    import yaml
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(Path(path).read_text())
        return Project.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"not a valid jobflow-remote project: {str(exc).splitlines()[0]}",
                          field="project", value=str(path)) from exc


_WALLTIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_walltime_s(value: str | int | float | None) -> float | None:
    """Seconds in a Slurm/PBS time limit: ``"D-HH:MM:SS"``, ``"HH:MM:SS"``,
    ``"MM:SS"``, ``"MM"`` (Slurm: a bare number is minutes) or a number of seconds
    when given as int/float. ``None`` -> ``None``."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _WALLTIME.match(str(value).strip())
    if not m:
        raise ConfigError("cannot read the time limit", field="time", value=value,
                          allowed="D-HH:MM:SS, HH:MM:SS, MM:SS or minutes")
    days, a, b, c = m.groups()
    parts = [int(p) for p in (a, b, c) if p is not None]
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        parts += [0] * (3 - len(parts))
        return float(int(days) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2])
    if len(parts) == 1:
        seconds = parts[0] * 60
    elif len(parts) == 2:
        seconds = parts[0] * 60 + parts[1]
    else:
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    return float(seconds)
