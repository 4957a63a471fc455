"""A real Airflow 3 cluster for the tests: api-server, scheduler, dag-processor and triggerer on 127.0.0.1.

:class:`AirflowCluster` runs Airflow as a user runs it, on a temporary ``AIRFLOW_HOME`` of its own (not the
one of :mod:`tests.support.airflow_env`, whose SQLite file ``dag.test()`` uses in-process): SQLite and the
LocalExecutor, the DAGs folder is the repository's ``dags/``, connections are ``AIRFLOW_CONN_*`` variables in
the environment of every component, and the API server uses the simple auth manager with two users, ``admin``
(role admin) and ``viewer`` (role viewer), whose passwords this module generates into the passwords file
before Airflow starts. Each component is a :class:`~tests.support.process.ProcessServer`: its own process
group (stopped with SIGTERM, then SIGKILL), a log file in the cluster's directory, and the tail of every
component's log in the message of a failure.

:class:`AirflowApi` is a small REST API v2 client (a JWT from ``POST /auth/token``) with what tests need:
trigger a DAG run, wait for a run's state, read an XCom or a task's log, post an Asset event, create pools
and connections. ``tests/conftest.py`` starts one cluster per session, lazily (fixture ``airflow_cluster``).

Nothing here imports Airflow: the cluster is only ever spoken to over HTTP.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.process import HOST, ProcessServer, find_executable, free_port, log_tail, port_is_open

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
USERS = {"admin": "admin", "viewer": "viewer"}  # user name -> simple auth manager role
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowError(RuntimeError):
    """A REST API call answered with an error status (the message has the status and the body)."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> {status}: {body[:2000]}")
        self.status = status
        self.body = body


@dataclass
class Response:
    """An HTTP answer: status code and body (``json()`` parses it)."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def http(
    method: str, url: str, *, body: Any = None, token: str | None = None, accept: str = "application/json"
) -> Response:
    """One HTTP request; never raises for an error status (see :class:`Response`)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": accept}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - 127.0.0.1 only
            return Response(answer.status, answer.read().decode(errors="replace"), dict(answer.headers))
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read().decode(errors="replace"), dict(exc.headers or {}))


class AirflowApi:
    """The REST API v2 of a running API server, as one user (a JWT from ``POST /auth/token``)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.token = token_for(self.base_url, username, password)

    def request(
        self, method: str, path: str, body: Any = None, *, accept: str = "application/json"
    ) -> Response:
        """A request to ``base_url + path`` with this user's token; the answer whatever its status."""
        return http(method, self.base_url + path, body=body, token=self.token, accept=accept)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """A request that must succeed (2xx): its parsed JSON body, else :class:`AirflowError`."""
        answer = self.request(method, path, body)
        if not 200 <= answer.status < 300:
            raise AirflowError(method, self.base_url + path, answer.status, answer.body)
        return answer.json()

    # -- DAGs and runs ----------------------------------------------------------------------------
    def dag(self, dag_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v2/dags/{dag_id}"))

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, *, run_id: str | None = None) -> str:
        """Trigger a DAG run (``logical_date`` null, as the UI's default); return its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return str(self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of a DAG, oldest first."""
        answer = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=id&limit=100")
        return list(answer["dag_runs"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}"))

    def wait_run(
        self, dag_id: str, run_id: str, timeout: float = 120, states: frozenset[str] | None = None
    ) -> str:
        """Wait until a run reaches one of ``states`` (default: success or failed); return the state."""
        wanted = states or TERMINAL_RUN_STATES
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = str(self.run(dag_id, run_id)["state"])
            if state in wanted:
                return state
            time.sleep(0.5)
        raise TimeoutError(
            f"run {dag_id}/{run_id} still {state} after {timeout:.0f}s; "
            f"tasks: {self.task_states(dag_id, run_id)}"
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        answer = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The (deserialized) value of one XCom."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/xcomEntries/{key}"
        value = self.call("GET", path + "?deserialize=true")["value"]
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The text of a task try's log."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/logs/{try_number}"
        answer = self.request("GET", path, accept="text/plain")
        if answer.status != 200:
            raise AirflowError("GET", self.base_url + path, answer.status, answer.body)
        return answer.body

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The Asset events a run consumed (that triggered it)."""
        answer = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/upstreamAssetEvents")
        return list(answer["asset_events"])

    def queued_asset_events(self, dag_id: str) -> list[dict[str, Any]]:
        """The Assets with an event queued for a DAG (a run will be created for them): ``[]`` if none."""
        answer = self.request("GET", f"/api/v2/dags/{dag_id}/assets/queuedEvents")
        if answer.status == 404:
            return []
        if answer.status != 200:
            raise AirflowError(
                "GET", f"{self.base_url}/api/v2/dags/{dag_id}/assets/queuedEvents", answer.status, answer.body
            )
        return list(answer.json()["queued_events"])

    # -- Assets, pools, connections ---------------------------------------------------------------
    def asset_id(self, uri: str) -> int:
        """The id of the Asset with this URI (known once a DAG that uses it was parsed)."""
        answer = self.call("GET", f"/api/v2/assets?uri_pattern={_q(uri)}&limit=100")
        for asset in answer["assets"]:
            if asset["uri"] == uri:
                return int(asset["id"])
        raise LookupError(f"no Asset {uri!r}; known: {[a['uri'] for a in answer['assets']]}")

    def post_asset_event(self, uri: str, extra: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/assets/events`` for the Asset of ``uri`` with ``extra``; return the event."""
        return dict(
            self.call("POST", "/api/v2/assets/events", {"asset_id": self.asset_id(uri), "extra": extra})
        )

    def ensure_pool(self, name: str, slots: int) -> None:
        """Create a pool (or set its slots)."""
        if self.request("GET", f"/api/v2/pools/{name}").status == 404:
            self.call("POST", "/api/v2/pools", {"name": name, "slots": slots})
        else:
            self.call("PATCH", f"/api/v2/pools/{name}", {"name": name, "slots": slots})


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def token_for(base_url: str, username: str, password: str) -> str:
    """A JWT for a simple-auth-manager user (``POST /auth/token``)."""
    answer = http(
        "POST", base_url.rstrip("/") + "/auth/token", body={"username": username, "password": password}
    )
    if answer.status not in (200, 201):
        raise AirflowError("POST", base_url + "/auth/token", answer.status, answer.body)
    return str(answer.json()["access_token"])


class AirflowComponent(ProcessServer):
    """One ``airflow <component>`` process of a cluster (ready when it runs; the cluster checks health)."""

    default_stop_timeout = 15.0

    def __init__(self, cluster: AirflowCluster, component: str, port: int | None = None) -> None:
        self.name = f"airflow-{component}"
        self.component = component
        self.cluster = cluster
        super().__init__(cluster.home, port)

    def _command(self) -> list[str]:
        extra = (
            ["--port", str(self.port), "--host", HOST, "--workers", "1"]
            if self.component == "api-server"
            else []
        )
        return [find_executable("airflow"), self.component, *extra]

    def _env(self) -> dict[str, str]:
        return self.cluster.env

    def _is_ready(self) -> bool:
        if self.component != "api-server":
            return True
        return (
            port_is_open(self.port)
            and http("GET", f"{self.cluster.base_url}/api/v2/monitor/health").status == 200
        )

    def _failure_details(self) -> str:
        return self.cluster.logs()


class AirflowCluster:
    """A running Airflow: ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``.

    :param home: the AIRFLOW_HOME (created; SQLite database, logs, passwords file and component logs in it).
    :param env: more environment (``AIRFLOW_CONN_*``, ``AIRFLOW__SECTION__KEY``, the DAGs' own variables).
    :param components: which components besides the API server (all four by default).
    :param bucket: the bucket the DAGs use (recorded for the tests; set ``MILVUS_BACKUP_BUCKET`` in ``env``).
    :param milvus_uri: the Milvus of ``milvus_default`` (recorded for the tests).
    """

    def __init__(
        self,
        home: Path,
        env: dict[str, str] | None = None,
        components: tuple[str, ...] = ("scheduler", "dag-processor", "triggerer"),
        *,
        bucket: str | None = None,
        milvus_uri: str | None = None,
    ) -> None:
        #: the bucket of backups (``MILVUS_BACKUP_BUCKET``) and the Milvus of ``milvus_default``, if given
        self.bucket = bucket
        self.milvus_uri = milvus_uri
        self.home = Path(home).resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.passwords = {user: secrets.token_urlsafe(12) for user in USERS}
        self.passwords_file = self.home / "simple_auth_manager_passwords.json"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        base.pop("AIRFLOW_HOME", None)
        self.env: dict[str, str] = {
            **base,
            "AIRFLOW_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{self.port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://{HOST}:{self.port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # the log servers of the scheduler (workers) and triggerer: free ports, not 8793 / 8794
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # react quickly: parse new files at once, schedule in a tight loop
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            **(env or {}),
        }
        self.api_server = AirflowComponent(self, "api-server", self.port)
        self.components = [AirflowComponent(self, c) for c in components]
        self.start_seconds: float | None = None
        self._apis: dict[str, AirflowApi] = {}

    # -- life cycle -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the UI, ``/api/v2``, ``/auth``, and plugins' apps."""
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 120) -> AirflowCluster:
        """Migrate the database, start every component and wait until all are healthy."""
        began = time.monotonic()
        self.passwords_file.write_text(json.dumps(self.passwords))
        migrate = subprocess.run(
            [find_executable("airflow"), "db", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=self.home,
        )
        if migrate.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}"
            )
        try:
            for component in self.components:
                component.start()
            self.api_server.start(timeout=timeout)
            self.wait_healthy(timeout=max(10.0, timeout - (time.monotonic() - began)))
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every component (the API server last, so running tasks can report)."""
        for component in [*self.components, self.api_server]:
            component.stop()

    def wait_healthy(self, timeout: float = 60) -> dict[str, Any]:
        """Wait until ``/api/v2/monitor/health`` reports every started component healthy."""
        names = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
        wanted = [names[c.component] for c in self.components]
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._check_alive()
            answer = http("GET", f"{self.base_url}/api/v2/monitor/health")
            if answer.status == 200:
                health = answer.json()
                if all((health.get(w) or {}).get("status") == "healthy" for w in wanted):
                    return health
            time.sleep(0.5)
        raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s: {health}\n{self.logs()}")

    def wait_dags(self, *dag_ids: str, timeout: float = 90) -> None:
        """Wait until the DAG processor has parsed these DAGs (and the API lists them)."""
        api = self.api("admin")
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            self._check_alive()
            missing = [d for d in dag_ids if api.request("GET", f"/api/v2/dags/{d}").status != 200]
            if not missing:
                return
            time.sleep(0.5)
        errors = api.call("GET", "/api/v2/importErrors")
        raise TimeoutError(
            f"DAGs {missing} not parsed after {timeout:.0f}s; import errors: {errors}\n{self.logs()}"
        )

    def _check_alive(self) -> None:
        for component in [*self.components, self.api_server]:
            if not component.running:
                raise RuntimeError(f"{component.name} is not running\n{self.logs()}")

    # -- access -----------------------------------------------------------------------------------
    def token(self, username: str = "admin") -> str:
        """A fresh JWT of ``admin`` or ``viewer``."""
        return token_for(self.base_url, username, self.passwords[username])

    def api(self, username: str = "admin") -> AirflowApi:
        """The REST API client of ``admin`` or ``viewer`` (one per user, its token made once)."""
        if username not in self._apis:
            self._apis[username] = AirflowApi(self.base_url, username, self.passwords[username])
        return self._apis[username]

    def logs(self, lines: int = 40) -> str:
        """The tail of every component's log, for failure messages."""
        return "\n".join(
            f"--- {c.log_path.name} ---\n{log_tail(c.log_path, lines)}"
            for c in [self.api_server, *self.components]
        )

    def task_log_files(self) -> str:
        """The text of every task log file under the cluster's log folder."""
        logs = self.home / "logs"
        return "\n".join(p.read_text(errors="replace") for p in sorted(logs.rglob("*.log")) if p.is_file())
