"""Starts Switchboard's production shape on this machine's loopback, for an operator to try it and for
``tests/test_production.py`` to test it: nginx (Debian's package) running ``deploy/nginx.conf`` in front
of two daphne processes, two session workers, a standalone simulator, a fresh PostgreSQL database and
an empty Redis database index.

    .venv/bin/python -m deploy.local             # https://127.0.0.1:8443/, agent1 / agent1
    .venv/bin/python -m deploy.local --port 9443 --redis redis://127.0.0.1:6379/12

Every process runs as the systemd units run it, with the settings of ``deploy/switchboard.env.example``
(JSON logs, TLS ended by nginx, the simulator off in the desk). What the launcher makes lives in a
temporary folder: the nginx configuration rendered from the template with the chosen ports, a
self-signed certificate for 127.0.0.1, the collected static files and every process's log. Stopping
(Ctrl-C) ends the processes, drops the database, empties the Redis index and removes the folder.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import ipaddress
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.processes import (
    WORKER,
    Database,
    ProcessError,
    Processes,
    answers,
    daphne,
    desk_env,
    flush_redis,
    voicesim,
)

TEMPLATE = Path(__file__).resolve().parent / "nginx.conf"
NGINX = Path("/usr/sbin/nginx")
MIME_TYPES = Path("/etc/nginx/mime.types")
START_TIMEOUT_S = 40.0
SETUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
PLACEHOLDER = re.compile(r"\$\{(SWITCHBOARD_[A-Z0-9_]+)\}")

# The desk users and their logins, on the standalone simulator's two dialects (run by `manage.py shell`).
SEED = """
import os
from django.contrib.auth import get_user_model
from calls.demo import DEMO_AGENTS
from calls.models import AgentLogin, VoiceServer

root = os.environ["SWITCHBOARD_SIMULATOR"]
servers = {
    dialect: VoiceServer.objects.create(
        name=f"Simulator ({dialect})", dialect=dialect, base_url=f"{root}/{dialect}"
    )
    for dialect in ("genesys", "huawei")
}
for agent in DEMO_AGENTS:
    user = get_user_model().objects.create_user(agent.username, password=agent.username)
    AgentLogin.objects.create(
        user=user,
        server=servers[agent.dialect],
        username=agent.agent_id,
        password=agent.password,
        dn=agent.dn,
        place=f"place_{agent.dn}",
    )
"""

# nginx as whoever runs the launcher, everything it writes inside the work folder; the site itself is
# deploy/nginx.conf, rendered.
MAIN_CONFIG = """\
{user}worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/logs/nginx-error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    include {mime_types};
    default_type application/octet-stream;
    client_body_temp_path {work}/nginx-temp/body;
    proxy_temp_path {work}/nginx-temp/proxy;
    fastcgi_temp_path {work}/nginx-temp/fastcgi;
    uwsgi_temp_path {work}/nginx-temp/uwsgi;
    scgi_temp_path {work}/nginx-temp/scgi;
    include {work}/switchboard.conf;
}}
"""


class DeploymentError(ProcessError):
    """The deployment could not start, or one of its processes ended; the message says why."""


@dataclass(frozen=True)
class Ports:
    """Where each process listens on 127.0.0.1; the defaults are the systemd units' and the Procfile's."""

    https: int = 8443
    desks: tuple[int, int] = (8001, 8002)
    worker_metrics: tuple[int, int] = (9101, 9102)
    simulator: int = 8100


def render_nginx(template: str, values: Mapping[str, str]) -> str:
    """The template with each ``${SWITCHBOARD_...}`` replaced (nginx's own ``$variables`` are left
    alone); a placeholder without a value is an error rather than a broken configuration."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - values.keys())
    if missing:
        raise DeploymentError(f"no value for {', '.join(missing)} in {TEMPLATE.name}")
    return PLACEHOLDER.sub(lambda found: values[found.group(1)], template)


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``host`` valid for a week, and its key; the certificate is also the CA a
    client trusts to reach the deployment with TLS verified."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "tls-certificate.pem", directory / "tls-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return certificate_path, key_path


class LocalDeployment(Processes):
    """The production shape on loopback, as one object: ``start()`` brings every part up (or, failing,
    takes down what it started), ``stop()`` takes everything down again, whatever state it is in.

    ``postgres_url`` names the server's maintenance database (the deployment's own is created beside
    it); ``redis_url`` names a Redis database index that must be empty, and is emptied at the end.
    """

    def __init__(
        self,
        *,
        postgres_url: str,
        redis_url: str,
        ports: Ports | None = None,
        lease_seconds: float = 30.0,
        answer_delay_ms: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.ports = ports or Ports()
        self.answer_delay_ms = answer_delay_ms
        self.database = Database(postgres_url, "switchboard_local")
        self.database_url = self.database.url
        self.url = f"https://127.0.0.1:{self.ports.https}"
        self.simulator_url = f"http://127.0.0.1:{self.ports.simulator}"
        self.desk_urls = [f"http://127.0.0.1:{port}" for port in self.ports.desks]
        self.worker_metrics_urls = [f"http://127.0.0.1:{port}/metrics" for port in self.ports.worker_metrics]
        self.work = Path(tempfile.mkdtemp(prefix="switchboard-local-"))
        self.certificate = self.work / "tls-certificate.pem"
        self._redis_claimed = False
        env = desk_env(
            self.database_url,
            redis_url,
            {
                "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                "BEHIND_TLS_PROXY": "1",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "STATIC_ROOT": str(self.work / "static"),
                "LOG_FORMAT": "json",
                "VOICE_SESSION_LEASE_SECONDS": str(lease_seconds),
                "PYTHONUNBUFFERED": "1",
                **(settings or {}),
            },
        )
        super().__init__(
            env,
            self.work / "logs",
            error=DeploymentError,
            stop_timeout=STOP_TIMEOUT_S,
            extra_logs=["nginx-error"],
        )

    # -- starting ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """1. Claim the storage: a new database, the empty Redis index.
        2. The simulator; the schema, the static files and the agents (desk users with their logins).
        3. The TLS certificate and nginx's configuration, checked with ``nginx -t``.
        4. Both daphne processes, both workers (each with its metrics port), nginx.
        5. Wait until each daphne and nginx answer /healthz and each worker serves its channel.
        On any failure, stop everything started so far and raise.
        """
        try:
            if not NGINX.exists():
                raise DeploymentError(f"{NGINX} is missing: apt-get install nginx")
            (self.work / "nginx-temp").mkdir()
            self._claim_storage()
            self.spawn("voicesim", voicesim(self.ports.simulator, self.answer_delay_ms))
            self.manage("migrate", "--noinput", "--verbosity", "0", timeout=SETUP_TIMEOUT_S)
            self.manage("collectstatic", "--noinput", "--verbosity", "0", timeout=SETUP_TIMEOUT_S)
            seed_env = {"SWITCHBOARD_SIMULATOR": self.simulator_url}
            self.manage("shell", "-c", SEED, extra_env=seed_env, timeout=SETUP_TIMEOUT_S)
            simulator = functools.partial(answers, f"{self.simulator_url}/control/state")
            self.wait_for("the simulator to answer", simulator, START_TIMEOUT_S)
            command = self._configure_nginx()
            for number, port in enumerate(self.ports.desks, 1):
                self.spawn(f"daphne-{number}", daphne(port, "-v", "0", "--proxy-headers"))
            for number, port in enumerate(self.ports.worker_metrics, 1):
                self.spawn(f"worker-{number}", WORKER, extra_env={"METRICS_PORT": str(port)})
            self.spawn("nginx", command)
            for number, url in enumerate(self.desk_urls, 1):
                healthy = functools.partial(answers, f"{url}/healthz")
                self.wait_for(f"daphne-{number} to be healthy", healthy, START_TIMEOUT_S)
            for name in [name for name in self.processes if name.startswith("worker")]:
                self.wait_for(f"{name} to serve", functools.partial(self.serving, name), START_TIMEOUT_S)
            healthz = functools.partial(answers, f"{self.url}/healthz", self.tls_context())
            self.wait_for("nginx to pass /healthz on", healthz, START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise

    def _claim_storage(self) -> None:
        self.database.create()
        keys = redis.Redis.from_url(self.redis_url).dbsize()
        if keys:
            raise DeploymentError(
                f"{self.redis_url} holds {keys} keys: name an empty Redis database index (the launcher "
                "empties it when it stops), or empty this one with `redis-cli -n <index> flushdb`"
            )
        self._redis_claimed = True

    def _configure_nginx(self) -> list[str]:
        """Writes the certificate, the site rendered from deploy/nginx.conf and a main configuration
        around it; checks them with ``nginx -t``; returns the command that runs nginx on them."""
        certificate, key = self_signed_certificate(self.work)
        site = render_nginx(
            TEMPLATE.read_text(encoding="utf-8"),
            {
                "SWITCHBOARD_LISTEN": f"127.0.0.1:{self.ports.https}",
                "SWITCHBOARD_SERVER_NAME": "127.0.0.1 localhost",
                "SWITCHBOARD_DESK_1": f"127.0.0.1:{self.ports.desks[0]}",
                "SWITCHBOARD_DESK_2": f"127.0.0.1:{self.ports.desks[1]}",
                "SWITCHBOARD_TLS_CERTIFICATE": str(certificate),
                "SWITCHBOARD_TLS_CERTIFICATE_KEY": str(key),
                "SWITCHBOARD_STATIC_ROOT": self.env["STATIC_ROOT"],
                "SWITCHBOARD_ACCESS_LOG": str(self.work / "logs" / "nginx-access.log"),
            },
        )
        (self.work / "switchboard.conf").write_text(site, encoding="utf-8")
        # A master running as root hands its workers to `nobody`, who could not read the work folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        main = MAIN_CONFIG.format(user=user, work=self.work, mime_types=MIME_TYPES)
        (self.work / "nginx.conf").write_text(main, encoding="utf-8")
        command = [str(NGINX), "-p", str(self.work), "-c", str(self.work / "nginx.conf")]
        command += ["-e", str(self.work / "logs" / "nginx-error.log")]
        checked = subprocess.run(  # noqa: S603 (Debian's nginx on our own configuration)
            [*command, "-t"], capture_output=True, text=True, timeout=30, check=False
        )
        if checked.returncode != 0:
            raise DeploymentError(f"nginx -t refused the configuration:\n{checked.stderr}")
        return [*command, "-g", "daemon off;"]

    def tls_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts the deployment's own certificate, and verifies it."""
        return ssl.create_default_context(cafile=str(self.certificate))

    # -- stopping -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """The desk processes and the workers first (the workers drain against a live simulator and
        hand their leases back), then the simulator and nginx; then the database, the Redis index and
        the work folder. Safe to call more than once, and after a failed start."""
        try:
            self.end()
        finally:
            try:
                self.database.drop()
            finally:
                try:
                    if self._redis_claimed:
                        flush_redis(self.redis_url)
                        self._redis_claimed = False
                finally:
                    shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> LocalDeployment:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local", description=(__doc__ or "").split("\n\n", 1)[0]
    )
    defaults = Ports()
    parser.add_argument("--port", type=int, default=defaults.https, help="nginx's HTTPS port (%(default)s)")
    parser.add_argument(
        "--postgres",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="the PostgreSQL server's maintenance database; the deployment's own is created beside it",
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/12",
        help="an empty Redis database index, emptied again at the end (%(default)s)",
    )
    parser.add_argument(
        "--lease-seconds", type=float, default=30.0, help="VOICE_SESSION_LEASE_SECONDS (%(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    deployment = LocalDeployment(
        postgres_url=args.postgres,
        redis_url=args.redis,
        ports=Ports(https=args.port),
        lease_seconds=args.lease_seconds,
    )
    stop_asked: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, frame: stop_asked.append(received))
    try:
        deployment.start()
    except DeploymentError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        print(
            f"Switchboard on {deployment.url}/ (certificate: {deployment.certificate})\n"
            "  agents: the README's demo logins (agent1 / agent1 ...), on the standalone simulator\n"
            f"  simulator control API: {deployment.simulator_url}/control/\n"
            f"  metrics: {', '.join(f'{url}/metrics' for url in deployment.desk_urls)}, "
            f"{', '.join(deployment.worker_metrics_urls)}\n"
            f"  logs: {deployment.work / 'logs'}\n"
            "Ctrl-C stops it and drops its database.",
            flush=True,
        )
        while not stop_asked:
            if exited := deployment.exited():
                print(f"{', '.join(exited)} ended:\n{deployment.tails()}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        deployment.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
