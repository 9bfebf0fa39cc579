"""Fixtures that start a real single-node Slurm cluster and a MongoDB-wire server.

Everything runs inside the test session and is stopped by PID at its end:

* ``munged`` (as the ``munge`` user) with a private key and socket,
* ``slurmctld`` and ``slurmd`` (Debian ``slurm-wlm``) with a temporary
  ``slurm.conf`` pointing at that munge socket,
* ``secantusd-py`` (PyPI ``secantusdb``, GPL, beta: a test-only MongoDB-wire server;
  the viglas package never imports it) on a free 127.0.0.1 port,
* the jobflow-remote runner daemon (``jf runner start --single``), stopped with
  ``jf runner shutdown`` and, if still alive, by its supervisord PID.

The jobflow-remote project is written by ``viglas hpc init`` into a temporary
projects folder (``JFREMOTE_PROJECTS_FOLDER``), exactly as the README's
"Running on a cluster" section does.

Missing system pieces skip these tests, unless ``VIGLAS_HPC_REQUIRED=1`` (set by
``scripts/ci_hpc.sh``) turns the skip into a failure.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REQUIRED = os.environ.get("VIGLAS_HPC_REQUIRED") == "1"
PROJECT = "viglas-test"


def _need(ok: bool, why: str) -> None:
    if not ok:
        if REQUIRED:
            pytest.fail(f"hpc test prerequisite missing: {why}")
        pytest.skip(f"hpc prerequisite missing ({why}); run scripts/ci_hpc.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    """Call ``check()`` until it returns a truthy value; fail after ``timeout`` s."""
    t0 = time.monotonic()
    last_exc = None
    while time.monotonic() - t0 < timeout:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s (last error: {last_exc!r})")


class Daemon:
    """One foreground process started with Popen and stopped by its PID."""

    def __init__(self, name: str, argv: list[str], log: Path, **popen_kwargs) -> None:
        self.name, self.argv, self.log = name, argv, log
        self._fh = open(log, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, **popen_kwargs)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                               + tail(self.log))

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._fh.close()


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"<no {path}>"


SLURM_CONF = """\
ClusterName=viglastest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/slurm/state
SlurmdSpoolDir={root}/slurm/spool
SlurmctldPidFile={root}/slurm/slurmctld.pid
SlurmdPidFile={root}/slurm/slurmd.pid
SlurmctldLogFile={root}/slurm/slurmctld.log
SlurmdLogFile={root}/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    """A running munge + Slurm + MongoDB-wire server, with its environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.daemons: list[Daemon] = []
        self.env: dict[str, str] = {}
        self.mongo_port = 0
        self.munge_socket = root / "munge" / "munge.socket"

    # -- munge ----------------------------------------------------------------
    def start_munge(self) -> None:
        mdir = self.root / "munge"
        mdir.mkdir(mode=0o755)
        key = mdir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        pw = pwd.getpwnam("munge")
        for p in (mdir, key):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        argv = ["/usr/sbin/munged", "--foreground", f"--socket={self.munge_socket}",
                f"--key-file={key}", f"--pid-file={mdir / 'munged.pid'}",
                f"--log-file={mdir / 'munged.log'}", f"--seed-file={mdir / 'munged.seed'}",
                "--num-threads=2"]
        d = Daemon("munged", argv, self.root / "munged.out", user=pw.pw_uid, group=pw.pw_gid)
        self.daemons.append(d)

        def ready():
            d.check_alive()
            r = subprocess.run(["munge", "-n", f"--socket={self.munge_socket}"],
                               capture_output=True)
            return r.returncode == 0

        wait_until(ready, 20, "munged")

    # -- slurm ----------------------------------------------------------------
    def start_slurm(self) -> None:
        sdir = self.root / "slurm"
        for sub in ("state", "spool"):
            (sdir / sub).mkdir(parents=True)
        conf = sdir / "slurm.conf"
        conf.write_text(SLURM_CONF.format(root=self.root, ctld_port=free_port(),
                                          slurmd_port=free_port(),
                                          munge_socket=self.munge_socket))
        self.env["SLURM_CONF"] = str(conf)
        os.environ["SLURM_CONF"] = str(conf)
        ctld = Daemon("slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)],
                      self.root / "slurmctld.out")
        self.daemons.append(ctld)
        time.sleep(0.5)
        slurmd = Daemon("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(conf)],
                        self.root / "slurmd.out")
        self.daemons.append(slurmd)

        def idle():
            ctld.check_alive()
            slurmd.check_alive()
            r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
            return r.returncode == 0 and r.stdout.strip().startswith("idle")

        try:
            wait_until(idle, 40, "slurm node idle", interval=0.5)
        except Exception:
            print(tail(sdir / "slurmctld.log"), tail(sdir / "slurmd.log"), sep="\n")
            raise

    # -- MongoDB-wire server ----------------------------------------------------
    def start_mongo(self) -> None:
        exe = shutil.which("secantusd-py")
        self.mongo_port = free_port()
        data = self.root / "mongo"
        data.mkdir()
        d = Daemon("secantusd", [exe, "--host", "127.0.0.1", "--port", str(self.mongo_port),
                                 "--storage-path", str(data), "--log-level", "WARNING"],
                   self.root / "secantusd.out", cwd=data)
        self.daemons.append(d)
        import pymongo

        def ping():
            d.check_alive()
            with pymongo.MongoClient("127.0.0.1", self.mongo_port,
                                     serverSelectionTimeoutMS=500) as c:
                return c.admin.command("ping").get("ok") == 1

        wait_until(ping, 60, "secantusd", interval=0.5)

    def stop(self) -> None:
        if "SLURM_CONF" in self.env:
            subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, timeout=30)
        for d in reversed(self.daemons):
            try:
                d.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                print(f"could not stop {d.name} (pid {d.pid}): {exc}", file=sys.stderr)

    def logs(self) -> str:
        parts = []
        for p in sorted(self.root.rglob("*.log")) + sorted(self.root.glob("*.out")):
            parts.append(f"==== {p}\n{tail(p, 25)}")
        return "\n".join(parts)


@pytest.fixture(scope="session")
def cluster(request):
    """munge + single-node Slurm + secantusd, all stopped by PID at session end."""
    _need(os.geteuid() == 0, "slurmd and munged need root")
    for exe in ("munged", "munge", "slurmctld", "slurmd", "sbatch", "sinfo", "secantusd-py", "jf"):
        _need(shutil.which(exe) is not None or Path("/usr/sbin", exe).exists(), f"'{exe}' not found")
    try:
        pwd.getpwnam("munge")
    except KeyError:
        _need(False, "no 'munge' user")
    pytest.importorskip("jobflow_remote") if not REQUIRED else __import__("jobflow_remote")

    root = Path(tempfile.mkdtemp(prefix="viglas-hpc-", dir="/tmp"))
    root.chmod(0o755)  # the munge user must reach its socket folder
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF",)}
    c = Cluster(root)
    t0 = time.monotonic()
    try:
        c.start_munge()
        c.start_slurm()
        c.start_mongo()
    except Exception:
        print(c.logs(), file=sys.stderr)
        c.stop()
        raise
    c.startup_s = time.monotonic() - t0
    print(f"\n[hpc] munge+slurm+secantusd ready in {c.startup_s:.1f} s under {root}",
          file=sys.stderr)
    yield c
    failed = request.session.testsfailed
    if failed:
        print(c.logs(), file=sys.stderr)
    c.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if not failed and os.environ.get("VIGLAS_HPC_KEEP") != "1":
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"[hpc] kept {root} for inspection", file=sys.stderr)


def jf(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``jf`` command line (jobflow-remote) with the session's environment."""
    r = subprocess.run(["jf", *args], capture_output=True, text=True, timeout=timeout,
                       env=os.environ.copy())
    if check and r.returncode != 0:
        raise RuntimeError(f"jf {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def viglas(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the ``viglas`` command line as a user would."""
    r = subprocess.run([sys.executable, "-m", "viglas.cli", *args], capture_output=True,
                       text=True, timeout=timeout, env=os.environ.copy())
    if check and r.returncode != 0:
        raise RuntimeError(f"viglas {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="session")
def jf_project(cluster):
    """A jobflow-remote project written by ``viglas hpc init``, queue reset, runner on.

    Yields the project name. The runner is shut down at the end and its supervisord
    process killed by PID if it survived.
    """
    env_keys = ("JFREMOTE_PROJECTS_FOLDER", "JFREMOTE_PROJECT", "JFREMOTE_CONFIG_FILE",
                "OMP_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in env_keys}
    folder = cluster.root / "jfremote"
    os.environ["JFREMOTE_PROJECTS_FOLDER"] = str(folder)
    os.environ["JFREMOTE_PROJECT"] = PROJECT
    os.environ["JFREMOTE_CONFIG_FILE"] = str(cluster.root / "jfremote-settings.yaml")
    os.environ["OMP_NUM_THREADS"] = "1"
    import jobflow_remote

    # jobflow-remote reads its settings (projects folder, project) at import time
    saved_settings = jobflow_remote.SETTINGS
    jobflow_remote.SETTINGS = jobflow_remote.JobflowRemoteSettings()
    # The README steps, with test values:
    viglas("hpc", "init", "--name", PROJECT, "--mongo-host", "127.0.0.1",
           "--mongo-port", str(cluster.mongo_port), "--work-dir", str(cluster.root / "jobs"),
           "--runner-delay", "2", "-o", str(folder / f"{PROJECT}.yaml"))
    jf("admin", "reset", "-y")
    t0 = time.monotonic()
    jf("runner", "start", "--single")
    from jobflow_remote import ConfigManager
    from jobflow_remote.jobs.daemon import DaemonManager

    dm = DaemonManager.from_project(ConfigManager().get_project(PROJECT))
    supervisord_pid = None
    try:
        supervisord_pid = wait_until(dm.get_supervisord_pid, 30, "jf runner (supervisord)")
        print(f"[hpc] runner up in {time.monotonic() - t0:.1f} s (supervisord pid "
              f"{supervisord_pid})", file=sys.stderr)
        yield PROJECT
    finally:
        t1 = time.monotonic()
        jf("runner", "shutdown", "--wait", check=False, timeout=90)
        pid = supervisord_pid or dm.get_supervisord_pid()
        if pid:
            _stop_tree(pid)
        print(f"[hpc] runner shut down in {time.monotonic() - t1:.1f} s", file=sys.stderr)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        jobflow_remote.SETTINGS = saved_settings


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _stop_tree(pid: int, grace: float = 10.0) -> None:
    """SIGTERM ``pid`` (a supervisord we started), then SIGKILL it and its children."""
    if not _alive(pid):
        return
    kids = _children(pid)
    os.kill(pid, signal.SIGTERM)
    t0 = time.monotonic()
    while time.monotonic() - t0 < grace and (_alive(pid) or any(_alive(k) for k in kids)):
        time.sleep(0.3)
    for p in kids + [pid]:
        if _alive(p):
            print(f"[hpc] killing pid {p} (did not stop)", file=sys.stderr)
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="session")
def cli():
    """The ``jf`` and ``viglas`` command-line runners: ``cli.jf(...)``, ``cli.viglas(...)``."""
    import types

    return types.SimpleNamespace(jf=jf, viglas=viglas)
