"""Start/stop one server binary (PocketBase or keepd) on a fresh data dir."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

SUPERUSER_EMAIL = "root@example.com"
SUPERUSER_PASSWORD = "r00t-Passw0rd!"

START_TIMEOUT = float(os.environ.get("COMPAT_START_TIMEOUT", "60"))


_PORT_LOCK = threading.Lock()
_PORTS_GIVEN = set()


def free_port():
    """A currently free loopback port, never the same one twice in this process
    (so two servers started in parallel cannot end up sharing one)."""
    with _PORT_LOCK:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _PORTS_GIVEN:
                _PORTS_GIVEN.add(port)
                return port
        raise ServerError("no free port found")


class ServerError(RuntimeError):
    pass


class Server:
    """One running server. `label` is "pb" (reference) or "keepd"."""

    def __init__(self, label, binary, base_tmp=None):
        self.label = label
        self.binary = binary
        self.root = tempfile.mkdtemp(prefix=f"compat-{label}-", dir=base_tmp)
        self.data_dir = os.path.join(self.root, "data")
        self.log_path = os.path.join(self.root, "server.log")
        self.port = None
        self.proc = None
        self.started_at = None
        self.superuser_token = None

    @property
    def host(self):
        return "127.0.0.1"

    def _run_cli(self, *args):
        res = subprocess.run([self.binary, *args, "--dir", self.data_dir],
                             capture_output=True, text=True, timeout=START_TIMEOUT)
        if res.returncode != 0:
            raise ServerError(f"[{self.label}] {' '.join(args[:2])} failed "
                              f"(exit {res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def start(self):
        self.started_at = time.time()
        self._run_cli("superuser", "upsert", SUPERUSER_EMAIL, SUPERUSER_PASSWORD)
        last_err = None
        for _attempt in range(3):  # retry in case the free port got taken meanwhile
            self.port = free_port()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--http", f"127.0.0.1:{self.port}", "--dir", self.data_dir],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            try:
                self._wait_healthy()
                break
            except ServerError as e:
                last_err = e
                self.stop(cleanup=False)
        else:
            raise last_err
        self.superuser_token = self._superuser_login()
        return self

    def _wait_healthy(self):
        deadline = time.time() + START_TIMEOUT
        url = f"http://127.0.0.1:{self.port}/api/health"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"[{self.label}] exited with code {self.proc.returncode} "
                                  f"before becoming healthy:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        raise ServerError(f"[{self.label}] not healthy after {START_TIMEOUT}s:\n{self.log_tail()}")

    def _superuser_login(self):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/collections/_superusers/auth-with-password",
            data=json.dumps({"identity": SUPERUSER_EMAIL, "password": SUPERUSER_PASSWORD}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())["token"]
        except Exception as e:  # noqa: BLE001
            raise ServerError(f"[{self.label}] superuser login failed: {e}\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def stop(self, cleanup=True):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if cleanup and not os.environ.get("COMPAT_KEEP_DATA"):
            shutil.rmtree(self.root, ignore_errors=True)
