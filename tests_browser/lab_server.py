"""A private JupyterLab server for the browser tests: free localhost port, random token, own dirs.

`LabServer(notebooks, workdir)` copies the notebooks into `workdir/notebooks` (so the committed
files, whose outputs come from full runs, are never saved over), gives JupyterLab its own
config, settings, workspace and runtime folders under `workdir` (a user's ~/.jupyter plays no
part), keeps it off the internet (no news feed, no update check), exposes the front end as
`window.jupyterapp` (the tests read cell models through it), and starts `python -m jupyterlab`
with the project's kernel spec visible (it lives in the venv). Used as a context manager it
always stops the server and every process it started (the kernels run in sessions of their
own, so they are found through the process tree, not the process group).

Kernels inherit the server's environment: `env` adds e.g. MINIFUSION_FAST=1.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

# Front-end settings (JUPYTERLAB_SETTINGS_DIR): no news toast asking for consent, no update check.
_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
# Server settings (JUPYTER_CONFIG_DIR/jupyter_server_config.json); LabApp reads the same file.
_SERVER_CONFIG = {
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "expose_app_in_browser": True,  # window.jupyterapp: the tests read cell models through it
    },
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """All descendants of `pid` (from /proc); [] where /proc is unavailable."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in (...) may hold spaces
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LabServer:
    """JupyterLab on 127.0.0.1:<free port> with a random token, serving copies of `notebooks`."""

    def __init__(
        self,
        notebooks: Sequence[Path],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        startup_timeout: float = 120.0,
    ):
        self.workdir = Path(workdir)
        self.root = self.workdir / "notebooks"
        self.sources = [Path(p) for p in notebooks]
        missing = [str(p) for p in self.sources if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"notebooks to open in JupyterLab are missing: {missing}")
        self.extra_env = dict(env or {})
        self.python = python
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(16)
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "jupyterlab.log"

    # -- addresses -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        """The page that opens notebook `name` (a file in the served folder) in JupyterLab."""
        return f"{self.base_url}/lab/tree/{name}?token={self.token}&reset"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # -- start / stop ----------------------------------------------------------------------
    def _prepare(self) -> dict[str, str]:
        self.root.mkdir(parents=True, exist_ok=True)
        for source in self.sources:
            shutil.copy2(source, self.root / source.name)
        config = self.workdir / "config"
        settings = self.workdir / "lab-settings"
        for name, value in _USER_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        config.mkdir(parents=True, exist_ok=True)
        (config / "jupyter_server_config.json").write_text(json.dumps(_SERVER_CONFIG))
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # the kernel's own inline backend draws the figures
        env.update(
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTER_RUNTIME_DIR=str(self.workdir / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(self.workdir / "workspaces"),
        )
        env.update(self.extra_env)
        return env

    def start(self) -> LabServer:
        env = self._prepare()
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            self.port = free_port()
            command = [
                self.python, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
            ]
            if hasattr(os, "getuid") and os.getuid() == 0:
                command.append("--allow-root")  # containers and CI images run as root
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    command, cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
            if self._wait_ready():
                return self
            self.stop()
            if "address already in use" not in self.log_tail().lower():
                break
        raise RuntimeError(
            f"JupyterLab did not start within {self.startup_timeout:.0f} s on port {self.port}; "
            f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
        )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/api/status?token={self.token}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        return False

    def _api(self, path: str, method: str = "GET") -> bytes:
        request = urllib.request.Request(
            f"{self.base_url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.read()

    def shutdown_kernels(self) -> None:
        """Shut down every running kernel (one notebook's kernel is not needed by the next)."""
        for kernel in json.loads(self._api("/api/kernels")):
            self._api(f"/api/kernels/{kernel['id']}", method="DELETE")

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the server down (kernels first), then end whatever of its process tree is left."""
        process, self.process = self.process, None
        if process is None:
            return
        tree = _children(process.pid)
        if process.poll() is None:
            try:  # the polite way: the server shuts its kernels down and exits
                self._api("/api/shutdown", method="POST")
            except (urllib.error.URLError, OSError):
                pass
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            left = [pid for pid in tree if _alive(pid)]
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if left:
                time.sleep(1)

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
