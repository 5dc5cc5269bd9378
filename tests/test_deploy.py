"""The deployment files under deploy/, checked offline: no cluster, no Docker engine, no network.

- Every YAML file parses.
- Kubernetes manifests validate (strict: unknown fields fail) against the Kubernetes JSON schemas that the
  `kubernetes-validate` package bundles, for the oldest and the newest Kubernetes version checked. Custom
  resources (KEDA, CloudNativePG) have no bundled schema: they live in files of their own and get
  structural checks (apiVersion/kind known, metadata.name, required spec keys, PgBouncer parameters the
  CloudNativePG operator accepts).
- deploy/compose.yaml validates against the compose-spec JSON schema vendored by `check-jsonschema`, after
  the same ${VAR:-default} interpolation compose does (with deploy/.env.example as the environment).
- Cross-checks against the code: every environment variable set is one threadlog reads (Settings fields,
  the conventional DATABASE_URL / NATS_URL / OPENAI_*, the offline model's, libpq's that asyncpg reads);
  the settings parse; processes listen on a non-loopback host; probes hit paths the code serves on the port
  the process listens on; commands name real modules and CLI sub-commands; the KEDA trigger names the
  stream and consumer the code creates; leader-electing processes reach PostgreSQL without the
  transaction pooler; selectors, Services, autoscalers and the NATS routes line up.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import re
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import msgspec
import pytest
import yaml

from services.local_model import config as local_model_config
from shared.bus import Subjects
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
NGINX = DEPLOY / "nginx.conf"
DOCKERFILE = DEPLOY / "Dockerfile"
README = DEPLOY / "README.md"

# Variables the deployment sets for behaviour the code was asked for: allowed even before Settings has them,
# and test_pending_variables_are_read xfails while any of them is not used by the code (a Settings field that
# nothing reads does not count).
PENDING = {
    "THREADLOG_NATS_REPLICAS": "replicas of the JetStream streams and consumers (3 on the 3-node NATS cluster)",
    "THREADLOG_LEADER_DATABASE_URL": "a direct, non-pooled URL for the leader-election advisory session locks",
}

# The PgBouncer parameters a CloudNativePG Pooler may set (the operator's validating webhook refuses others).
CNPG_POOLER_PARAMETERS = frozenset({
    "application_name_add_host", "auth_type", "autodb_idle_timeout", "cancel_wait_timeout", "client_idle_timeout",
    "client_login_timeout", "client_tls_sslmode", "default_pool_size", "disable_pqexec", "dns_max_ttl",
    "dns_nxdomain_ttl", "idle_transaction_timeout", "ignore_startup_parameters", "listen_backlog",
    "log_connections", "log_disconnections", "log_pooler_errors", "log_stats", "max_client_conn",
    "max_db_connections", "max_packet_size", "max_prepared_statements", "max_user_connections", "min_pool_size",
    "pkt_buf", "query_timeout", "query_wait_timeout", "reserve_pool_size", "reserve_pool_timeout", "sbuf_loopcnt",
    "server_check_delay", "server_check_query", "server_connect_timeout", "server_fast_close",
    "server_idle_timeout", "server_lifetime", "server_login_retry", "server_reset_query",
    "server_reset_query_always", "server_round_robin", "server_tls_ciphers", "server_tls_protocols",
    "server_tls_sslmode", "stats_period", "suspend_timeout", "tcp_defer_accept", "tcp_socket_buffer",
    "tcp_keepalive", "tcp_keepcnt", "tcp_keepidle", "tcp_keepintvl", "tcp_user_timeout", "track_extra_parameters",
    "verbose",
})
# Custom resources the manifests may use, with the spec keys each needs.
CUSTOM_RESOURCES: dict[tuple[str, str], tuple[str, ...]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): ("scaleTargetRef", "triggers"),
    ("postgresql.cnpg.io/v1", "Cluster"): ("instances", "storage"),
    ("postgresql.cnpg.io/v1", "Pooler"): ("cluster", "type", "pgbouncer"),
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
# Manifests must validate on the oldest Kubernetes supported here and on the newest kubernetes-validate knows.
KUBERNETES_OLDEST = "1.30.0"
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Set in the image for Python itself, not for threadlog.
PYTHON_RUNTIME_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR",
                      "PIP_DISABLE_PIP_VERSION_CHECK"}


# ---------------------------------------------------------------------------------------------------------
# What the code reads, serves and runs


@functools.cache
def settings_env_names() -> frozenset[str]:
    """THREADLOG_<FIELD> for every Settings field, plus the conventional names from_env maps (DATABASE_URL...)."""
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    quoted = set(re.findall(r'"([A-Z][A-Z0-9_]*[A-Z0-9])"', inspect.getsource(Settings.from_env)))
    conventional = {name for name in quoted if name.lower() in fields}
    assert {"DATABASE_URL", "NATS_URL"} <= conventional, "Settings.from_env no longer names DATABASE_URL / NATS_URL"
    return frozenset({f"THREADLOG_{f.upper()}" for f in fields} | conventional)


def settings_default(field: str) -> Any:
    (default,) = [f.default for f in msgspec.structs.fields(Settings) if f.name == field]
    return default


@functools.cache
def libpq_env_names() -> frozenset[str]:
    """The PG* variables asyncpg itself reads (PGUSER, PGPASSWORD, ...), found in its source."""
    spec = importlib.util.find_spec("asyncpg")
    assert spec is not None and spec.submodule_search_locations
    source = (Path(spec.submodule_search_locations[0]) / "connect_utils.py").read_text()
    names = frozenset(re.findall(r"""os\.(?:getenv|environ\.get)\(\s*['"](PG[A-Z]+)['"]""", source))
    assert {"PGUSER", "PGPASSWORD"} <= names
    return names


@functools.cache
def cli_env_names() -> frozenset[str]:
    return frozenset(re.findall(r'os\.environ\.get\(\s*"([A-Z_]+)"', (ROOT / "threadlog" / "cli.py").read_text()))


def allowed_env(command: list[str]) -> frozenset[str]:
    if command == ["python", "-m", "services.local_model"]:
        return frozenset(local_model_config._ENV_FIELDS)
    if command[:1] == ["threadlog"]:
        return cli_env_names() | libpq_env_names()
    return settings_env_names() | libpq_env_names()


@functools.cache
def cli_subcommands() -> frozenset[str]:
    return frozenset(re.findall(r'add_parser\(\s*"([\w-]+)"', (ROOT / "threadlog" / "cli.py").read_text()))


@functools.cache
def console_scripts() -> frozenset[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return frozenset(tomllib.load(f)["project"].get("scripts", {}))


def command_problem(command: Any) -> str | None:
    """None when `command` runs something real: `python -m <package with __main__>` or `<script> <subcommand>`."""
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        return f"command must be a non-empty list of strings, not {command!r}"
    if command[:2] == ["python", "-m"] and len(command) == 3:
        main = ROOT.joinpath(*command[2].split(".")) / "__main__.py"
        return None if main.is_file() else f"{command[2]} has no {main.relative_to(ROOT)}"
    if command[0] in console_scripts():
        if command[0] == "threadlog" and (len(command) < 2 or command[1] not in cli_subcommands()):
            return f"`threadlog` has no sub-command {command[1:2]} (it has {sorted(cli_subcommands())})"
        return None
    return f"{command!r} is neither `python -m services.<name>` nor a console script of the project"


def module_of(command: list[str]) -> str | None:
    return command[2] if command[:2] == ["python", "-m"] and len(command) == 3 else None


def package_source(module: str) -> str:
    return "\n".join(p.read_text() for p in sorted(ROOT.joinpath(*module.split(".")).rglob("*.py")))


@functools.cache
def served_paths(module: str) -> frozenset[str]:
    """GET routes the process of `module` serves: its own, plus the probe routes when it mounts them."""
    source = package_source(module)
    paths = set(re.findall(r'add_get\(\s*"([^"]+)"', source))
    if re.search(r"\b(add_probe_routes|serve_probes)\(", source):
        paths |= set(re.findall(r'add_get\(\s*"([^"]+)"', (ROOT / "shared" / "observability.py").read_text()))
    return frozenset(paths)


def listen_address(module: str, env: Mapping[str, str]) -> tuple[str, int]:
    """The host and port the process of `module` would bind with this environment (raises on bad settings)."""
    if module == "services.local_model":
        config = local_model_config.config_from_env(env)
        return config.host, config.port
    settings = Settings.from_env(env)
    main = ROOT.joinpath(*module.split(".")) / "__main__.py"
    fields = set(re.findall(r"\bsettings\.(\w*port)\b", main.read_text()))
    assert len(fields) == 1, f"cannot tell which port setting {main.relative_to(ROOT)} listens on: {fields}"
    return settings.host, int(getattr(settings, fields.pop()))


@functools.cache
def code_uses_setting(env_name: str, module: str | None = None) -> bool:
    """The Settings field behind `env_name` exists and is used (by `module`, or anywhere but config.py)."""
    field = env_name.removeprefix("THREADLOG_").lower()
    if env_name not in settings_env_names():
        return False
    if module is not None:
        source = package_source(module)
    else:
        files = [*ROOT.joinpath("shared").rglob("*.py"), *ROOT.joinpath("services").rglob("*.py")]
        source = "\n".join(p.read_text() for p in files if p.name != "config.py")
    return re.search(rf"\.{field}\b", source) is not None


def elects_leaders(module: str) -> bool:
    """Runs the outbox relay, the projector or the sealer: each takes an advisory *session* lock to lead."""
    return bool(re.search(r"\b(Relay|Projector|Sealer)\(", package_source(module)))


# ---------------------------------------------------------------------------------------------------------
# The deployment files


@functools.cache
def yaml_docs(path: Path) -> tuple[Any, ...]:
    with path.open() as f:
        return tuple(doc for doc in yaml.safe_load_all(f) if doc is not None)


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.y*ml") if p.name != "kustomization.yaml")


def manifests() -> list[dict[str, Any]]:
    return [doc for path in manifest_files() for doc in yaml_docs(path)]


def is_builtin(api_version: str) -> bool:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return group == "" or "." not in group or group.endswith(".k8s.io")


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc.get("kind") == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} named {name!r}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers_of(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads() -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc.get("kind") in WORKLOAD_KINDS]


def is_threadlog_image(image: str) -> bool:
    return image.rsplit("/", 1)[-1].split("@")[0].split(":")[0] == "threadlog"


def threadlog_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(w, c) for w in workloads() for c in containers_of(w) if is_threadlog_image(c["image"])]


def container_id(workload: dict[str, Any], container: dict[str, Any]) -> str:
    return f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"


def dockerfile_stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    stages: list[list[str]] = []
    for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.split()[0].upper() == "FROM":
            stages.append([])
        assert stages, "the Dockerfile must start with FROM"
        stages[-1].append(line)
    return stages


@functools.cache
def image_env() -> dict[str, str]:
    """ENV of the final stage: what every container of the image starts with."""
    env: dict[str, str] = {}
    for line in dockerfile_stages()[-1]:
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "ENV":
            for token in shlex.split(rest):
                key, sep, value = token.partition("=")
                assert sep, f"use ENV KEY=VALUE: {line}"
                env[key] = value
    return env


def k8s_env(container: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    """(the environment the process sees, the names the manifests set), envFrom sources resolved."""
    env = dict(image_env())
    names: set[str] = set()
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values = dict(named("ConfigMap", source["configMapRef"]["name"]).get("data", {}))
        else:
            secret = named("Secret", source["secretRef"]["name"])
            values = {**{k: "<secret>" for k in secret.get("data", {})}, **secret.get("stringData", {})}
        env.update({k: str(v) for k, v in values.items()})
        names |= set(values)
    for entry in container.get("env", []):
        env[entry["name"]] = str(entry["value"]) if "value" in entry else f"<{next(iter(entry['valueFrom']))}>"
        names.add(entry["name"])
    return env, names


def container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    matches = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert matches, f"container {container['name']} has no port named {port!r}"
    return int(matches[0])


@functools.cache
def env_example() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{ENV_EXAMPLE.name}: not KEY=VALUE: {line}"
            env[key.strip()] = value.strip()
    return env


_INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, env: Mapping[str, str], required: set[str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$ over every string of a document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, required) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, required) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, argument = m.group(3), m.group(4) or ""
        current = env.get(name)
        if op in (":?", "?"):
            required.add(name)
        if op == ":-":
            return current or argument
        if op == "-":
            return argument if current is None else current
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


@functools.cache
def compose_raw() -> dict[str, Any]:
    docs = yaml_docs(COMPOSE)
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


@functools.cache
def compose_required() -> frozenset[str]:
    required: set[str] = set()
    interpolate(compose_raw(), env_example(), required)
    return frozenset(required)


@functools.cache
def compose() -> dict[str, Any]:
    resolved: dict[str, Any] = interpolate(compose_raw(), env_example(), set())
    return resolved


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {k: "" if v is None else str(v) for k, v in environment.items()}


def threadlog_compose_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose_services().items() if is_threadlog_image(s.get("image", ""))}


def healthcheck_target(test: Any) -> tuple[int, str]:
    text = " ".join(test) if isinstance(test, list) else str(test)
    m = re.search(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[^'\"\s]*)", text)
    assert m, f"healthcheck does not probe a local HTTP URL: {text}"
    return int(m.group(1)), m.group(2)


# ---------------------------------------------------------------------------------------------------------
# Files parse; schemas


def test_deploy_files_exist() -> None:
    for path in (DOCKERFILE, COMPOSE, NGINX, ENV_EXAMPLE, README, K8S / "kustomization.yaml"):
        assert path.is_file(), f"missing {path.relative_to(ROOT)}"
    assert len(manifest_files()) >= 5


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = yaml_docs(path)
    assert docs, f"{path.name} holds no document"
    assert all(isinstance(doc, dict) for doc in docs)


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:  # a missing dev dependency must fail, not skip
        pytest.fail(f"`{module}` is not installed: it is a dev dependency (pyproject.toml [dev])")


@functools.cache
def kubernetes_validate_module() -> Any:
    module = _require("kubernetes_validate")
    # validate() re-reads the 1.2 MB definitions file on every call: read each schema file once (0.9 s -> 0.1 s).
    module.utils.schema_contents = functools.cache(module.utils.schema_contents)
    return module


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_kubernetes_manifests_match_their_schemas(path: Path) -> None:
    kubernetes_validate = kubernetes_validate_module()
    docs = yaml_docs(path)
    builtin = [doc for doc in docs if is_builtin(doc["apiVersion"])]
    custom = [doc for doc in docs if not is_builtin(doc["apiVersion"])]
    assert not (builtin and custom), f"{path.name}: keep custom resources in files of their own"
    for doc in builtin:
        for version in (KUBERNETES_OLDEST, kubernetes_validate.utils.latest_version()):
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path)
                pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): "
                            f"{where}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                pytest.fail(f"{path.name}: {e.message}")
    for doc in custom:
        key = (doc["apiVersion"], doc["kind"])
        assert key in CUSTOM_RESOURCES, f"{path.name}: unknown custom resource {key}"
        assert DNS_1123.match(doc.get("metadata", {}).get("name", "")), f"{path.name}: bad metadata.name"
        missing = [k for k in CUSTOM_RESOURCES[key] if k not in doc.get("spec", {})]
        assert not missing, f"{path.name}: {doc['kind']} spec lacks {missing}"


def test_compose_matches_the_compose_spec() -> None:
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("`check-jsonschema` (which vendors the compose-spec schema) is not installed: a dev dependency")
    schema_path = Path(spec.submodule_search_locations[0]) / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:10])


def test_compose_required_variables_are_in_env_example() -> None:
    missing = sorted(compose_required() - set(env_example()))
    assert not missing, f"compose.yaml requires {missing}: give them a line in .env.example"


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = yaml_docs(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert set(listed) == {p.name for p in manifest_files()}
    (namespace,) = of_kind("Namespace")
    assert kustomization["namespace"] == namespace["metadata"]["name"]
    images = {i["name"] for i in kustomization.get("images", [])}
    assert images <= {c["image"].split(":")[0] for w in workloads() for c in containers_of(w)}


# ---------------------------------------------------------------------------------------------------------
# The image


def test_dockerfile_builds_the_project_only_as_non_root() -> None:
    stages = dockerfile_stages()
    for stage in stages:
        assert re.fullmatch(r"FROM python:3\.11-slim(\s+AS\s+\w+)?", stage[0], re.IGNORECASE), stage[0]
    text = "\n".join(line for stage in stages for line in stage)
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", text), "the image must `pip install .` the project"
    assert "[dev]" not in text, "no dev dependencies in the image"
    users = [line.split()[1] for line in stages[-1] if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the final stage must switch to a non-root USER"
    for line in (line for stage in stages for line in stage if line.upper().startswith("COPY ")):
        if "--from" not in line:
            for source in shlex.split(line)[1:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"


def test_dockerignore_lets_the_copied_sources_in() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for line in (line for stage in dockerfile_stages() for line in stage if line.upper().startswith("COPY ")):
        if "--from" not in line:
            for source in shlex.split(line)[1:-1]:
                assert f"!{source.rstrip('/')}" in ignore, f"{source} is excluded from the build context"


def test_dockerfile_command_and_env() -> None:
    cmd = [line for line in dockerfile_stages()[-1] if line.upper().startswith("CMD ")]
    assert cmd, "the final stage needs a CMD"
    command = json.loads(cmd[-1][4:])
    assert command_problem(command) is None, command_problem(command)
    unknown = {k for k in image_env() if k not in PYTHON_RUNTIME_ENV} - settings_env_names()
    assert not unknown, f"the image sets variables threadlog does not read: {sorted(unknown)}"


# ---------------------------------------------------------------------------------------------------------
# Kubernetes: threadlog containers against the code


def test_kubernetes_commands_name_real_modules() -> None:
    found = threadlog_containers()
    assert {module_of(c["command"]) for _, c in found} >= {
        "services.gateway", "services.projector", "services.run_worker"}
    assert any(c["command"] == ["threadlog", "migrate"] for _, c in found), "no `threadlog migrate` Job"
    for workload, container in found:
        problem = command_problem(container.get("command"))
        assert problem is None, f"{container_id(workload, container)}: {problem}"


def test_kubernetes_env_vars_are_read_by_threadlog() -> None:
    for workload, container in threadlog_containers():
        _, names = k8s_env(container)
        unknown = names - allowed_env(container["command"]) - set(PENDING)
        assert not unknown, f"{container_id(workload, container)} sets variables threadlog never reads: {unknown}"


def test_kubernetes_services_listen_where_their_probes_look() -> None:
    for workload, container in threadlog_containers():
        module = module_of(container["command"])
        if module is None:
            continue
        where = container_id(workload, container)
        env, _ = k8s_env(container)
        host, port = listen_address(module, env)
        assert host not in LOOPBACK, f"{where} listens on {host}: unreachable from probes and Services"
        assert port in {p["containerPort"] for p in container.get("ports", [])}, f"{where}: port {port} undeclared"
        for kind in ("readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            assert probe and "httpGet" in probe, f"{where}: needs an HTTP {kind}"
            path = probe["httpGet"]["path"].split("?")[0]
            assert path in served_paths(module), f"{where}: {kind} {path} is not served ({served_paths(module)})"
            assert container_port(container, probe["httpGet"]["port"]) == port, f"{where}: {kind} on wrong port"


def test_gateway_is_ready_for_traffic_and_drains() -> None:
    gateway = named("Deployment", "gateway")
    assert gateway["spec"]["replicas"] == 2
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(pre_stop[1]) + 10, "grace must cover the preStop sleep and aiohttp's 10 s shutdown"
    (hpa,) = [h for h in of_kind("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == "gateway"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "cpu" in container["resources"]["requests"], "CPU utilisation needs a CPU request"


def test_threadlog_pods_are_bounded_and_unprivileged() -> None:
    for workload, container in threadlog_containers():
        where = container_id(workload, container)
        assert {"requests", "limits"} <= set(container.get("resources", {})), f"{where}: set requests and limits"
        pod_security = pod_spec(workload).get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
        assert container.get("securityContext", {}).get("allowPrivilegeEscalation") is False, where


def test_projector_runs_one_replica() -> None:
    assert named("Deployment", "projector")["spec"]["replicas"] == 1


def test_selectors_services_and_scalers_line_up() -> None:
    by_name = {(w["kind"], w["metadata"]["name"]): w for w in workloads()}
    for workload in workloads():
        if workload["kind"] == "Job":
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), f"{workload['metadata']['name']}: selector misses its pods"
    for service in of_kind("Service"):
        selector = service["spec"]["selector"]
        targets = [w for w in workloads() if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert targets, f"Service {service['metadata']['name']} selects no pods"
        for port in service["spec"]["ports"]:
            for workload in targets:
                ports = [p for c in containers_of(workload) for p in c.get("ports", [])]
                target = port.get("targetPort", port["port"])
                assert any(target in (p.get("name"), p["containerPort"]) for p in ports), (
                    f"Service {service['metadata']['name']}: targetPort {target} not on {workload['metadata']['name']}")
    for budget in of_kind("PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads())
    targets = [("Deployment", h["spec"]["scaleTargetRef"]["name"]) for h in of_kind("HorizontalPodAutoscaler")]
    scaled = [("Deployment", s["spec"]["scaleTargetRef"]["name"]) for s in of_kind("ScaledObject")]
    for target in targets + scaled:
        assert target in by_name, f"autoscaler targets a missing {target}"
    assert not set(targets) & set(scaled), "KEDA makes its own HPA: do not add a second one to the same target"


# ---------------------------------------------------------------------------------------------------------
# Kubernetes: NATS, KEDA, CloudNativePG


def nats_statefulset() -> dict[str, Any]:
    (sts,) = [s for s in of_kind("StatefulSet") if any(c["image"].startswith("nats:") for c in containers_of(s))]
    return sts


def nats_conf() -> str:
    sts = nats_statefulset()
    (volume,) = [v for v in pod_spec(sts)["volumes"] if "configMap" in v]
    data: dict[str, str] = named("ConfigMap", volume["configMap"]["name"])["data"]
    (conf,) = data.values()
    return conf


def config_map_value(name: str) -> str | None:
    values = [cm["data"][name] for cm in of_kind("ConfigMap") if name in cm.get("data", {})]
    assert len(set(values)) <= 1, f"{name} is set to different values: {values}"
    return values[0] if values else None


def test_nats_is_a_three_node_jetstream_cluster() -> None:
    sts = nats_statefulset()
    replicas = sts["spec"]["replicas"]
    assert replicas == 3
    headless = named("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses") is True, "peers must resolve before they are ready"
    (container,) = containers_of(sts)
    conf = nats_conf()
    cluster = re.search(r"cluster\s*\{(.*?)\n\s*\}", conf, re.DOTALL)
    assert cluster, "nats.conf has no cluster block"
    routes = re.findall(r"nats://([\w.-]+):(\d+)", cluster.group(1))
    name, service = sts["metadata"]["name"], sts["spec"]["serviceName"]
    assert {".".join(host.split(".")[:2]) for host, _ in routes} == {f"{name}-{i}.{service}" for i in range(replicas)}
    assert {int(port) for _, port in routes} == {container_port(container, "cluster")}
    assert re.search(r"server_name:\s*\$POD_NAME", conf)
    assert any(e["name"] == "POD_NAME" and e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
               for e in container["env"])
    store = re.search(r"store_dir:\s*(\S+)", conf)
    assert store, "JetStream needs a store_dir"
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    assert any(m["name"] in claims and store.group(1).startswith(m["mountPath"]) for m in container["volumeMounts"])
    stream_replicas = int(config_map_value("THREADLOG_NATS_REPLICAS") or 1)
    assert stream_replicas == replicas, "streams should be replicated on every node"


def test_nats_url_points_at_the_nats_pods() -> None:
    url = urlsplit(config_map_value("NATS_URL") or "")
    service = named("Service", (url.hostname or "").split(".")[0])
    labels = nats_statefulset()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert url.port in {p["port"] for p in service["spec"]["ports"]}


def test_keda_scales_the_worker_on_the_consumer_the_code_creates() -> None:
    (scaled,) = of_kind("ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "run-worker"
    assert scaled["spec"]["minReplicaCount"] >= 2
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    meta = trigger["metadata"]
    prefix = config_map_value("THREADLOG_NATS_PREFIX") or str(settings_default("nats_prefix"))
    role = re.search(r'\.pull\(\s*"([\w-]+)"', (ROOT / "services" / "run_worker" / "worker.py").read_text())
    assert role, "cannot find the run-worker's durable consumer in services/run_worker/worker.py"
    subjects = Subjects(prefix)
    assert meta["stream"] == subjects.events_stream
    assert meta["consumer"] == subjects.durable(role.group(1))
    concurrency = int(config_map_value("THREADLOG_WORKER_CONCURRENCY") or settings_default("worker_concurrency"))
    assert 0 < int(meta["lagThreshold"]) <= concurrency, "add workers before the ones running are saturated"
    host, port = meta["natsServerMonitoringEndpoint"].rsplit(":", 1)
    sts = nats_statefulset()
    namespace = of_kind("Namespace")[0]["metadata"]["name"]
    assert host == f"{sts['spec']['serviceName']}.{namespace}.svc.cluster.local", "use the headless Service (FQDN)"
    assert int(port) == container_port(containers_of(sts)[0], "monitor")
    assert re.search(rf"http:\s*[\d.]*:?{port}\b", nats_conf()), "the monitoring port must be enabled in nats.conf"


def test_postgres_cluster_and_transaction_pooler() -> None:
    (cluster,) = of_kind("Cluster")
    (pooler,) = of_kind("Pooler")
    assert cluster["spec"]["instances"] == 3
    assert pooler["spec"]["cluster"]["name"] == cluster["metadata"]["name"] != pooler["metadata"]["name"]
    assert pooler["spec"]["type"] == "rw"
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction"
    parameters = pooler["spec"]["pgbouncer"].get("parameters", {})
    assert set(parameters) <= CNPG_POOLER_PARAMETERS, set(parameters) - CNPG_POOLER_PARAMETERS
    assert all(isinstance(v, str) for v in parameters.values()), "CloudNativePG wants parameter values as strings"
    assert int(parameters.get("max_prepared_statements", "0")) > 0, "asyncpg prepares statements at protocol level"
    # asyncpg sends the server_settings of shared/db.py as startup parameters: PgBouncer must be told to ignore them.
    startup = set(re.findall(r'"(\w+)":', (ROOT / "shared" / "db.py").read_text().split("SERVER_SETTINGS", 1)[1]
                             .split("\n", 1)[0]))
    ignored = set(parameters.get("ignore_startup_parameters", "").split(","))
    assert startup <= ignored, f"PgBouncer would refuse the startup parameters {startup - ignored}"


def database_hosts() -> tuple[str, str]:
    (cluster,) = of_kind("Cluster")
    (pooler,) = of_kind("Pooler")
    return f"{cluster['metadata']['name']}-rw", pooler["metadata"]["name"]


def test_database_urls_name_real_services_and_credentials() -> None:
    direct, pooled = database_hosts()
    (cluster,) = of_kind("Cluster")
    used: set[str] = set()
    for workload, container in threadlog_containers():
        where = container_id(workload, container)
        env, _ = k8s_env(container)
        for name in ("DATABASE_URL", "THREADLOG_LEADER_DATABASE_URL"):
            if name in env:
                url = urlsplit(env[name])
                assert url.hostname in (direct, pooled), f"{where}: {name} host {url.hostname} is no database service"
                used.add(url.hostname)
                assert url.username or {"PGUSER", "PGPASSWORD"} <= set(env), f"{where}: no database credentials"
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and entry["name"].startswith("PG"):
                assert ref["name"] == f"{cluster['metadata']['name']}-app", f"{where}: not the CloudNativePG secret"
                assert ref["key"] in ("username", "password")
        if container["command"][:1] == ["threadlog"]:
            assert urlsplit(env["DATABASE_URL"]).hostname == direct, f"{where}: migrations go to the primary directly"
    assert pooled in used, "nothing uses the pooler"


def leader_url_problems(honour_pending: bool) -> list[str]:
    """Processes whose leader locks would go through the pooler; honour_pending: as if the code read
    THREADLOG_LEADER_DATABASE_URL everywhere, else only where the process's own code uses it."""
    direct, _ = database_hosts()
    leader_var = "THREADLOG_LEADER_DATABASE_URL"
    problems = []
    for workload, container in threadlog_containers():
        module = module_of(container["command"])
        if module is None or not elects_leaders(module):
            continue
        env, _ = k8s_env(container)
        reads_leader_var = honour_pending or code_uses_setting(leader_var, module)
        url = env.get(leader_var) if reads_leader_var and env.get(leader_var) else env["DATABASE_URL"]
        if urlsplit(url).hostname != direct:
            problems.append(f"{container_id(workload, container)} takes leader locks via {urlsplit(url).hostname}")
    return problems


def test_leader_election_bypasses_the_transaction_pooler() -> None:
    """Advisory session locks through a transaction pooler are shared with strangers: leaders connect directly."""
    intended = leader_url_problems(honour_pending=True)
    assert not intended, intended
    actual = leader_url_problems(honour_pending=False)
    if actual:
        pytest.xfail(f"the code does not use THREADLOG_LEADER_DATABASE_URL there yet: {actual}")


def test_pending_variables_are_read() -> None:
    """Not a failure while the code catches up: an xfail that names what is missing."""
    set_somewhere = {name for _, c in threadlog_containers() for name in k8s_env(c)[1]}
    for service in threadlog_compose_services().values():
        set_somewhere |= set(compose_env(service))
    waiting = {name: why for name, why in PENDING.items() if name in set_somewhere and not code_uses_setting(name)}
    if waiting:
        pytest.xfail(f"set by the deployment, not used by the code yet: {waiting}")


# ---------------------------------------------------------------------------------------------------------
# Compose


def test_compose_commands_and_env() -> None:
    services = threadlog_compose_services()
    modules = {module_of(s["command"]) for s in services.values()}
    assert modules >= {"services.gateway", "services.projector", "services.run_worker", "services.local_model"}
    assert any(s["command"] == ["threadlog", "migrate"] for s in services.values())
    for name, service in services.items():
        problem = command_problem(service.get("command"))
        assert problem is None, f"compose service {name}: {problem}"
        unknown = set(compose_env(service)) - allowed_env(service["command"]) - set(PENDING)
        assert not unknown, f"compose service {name} sets variables threadlog never reads: {unknown}"


def test_compose_services_listen_where_their_healthchecks_look() -> None:
    for name, service in threadlog_compose_services().items():
        module = module_of(service["command"])
        if module is None:
            continue
        host, port = listen_address(module, {**image_env(), **compose_env(service)})
        assert host not in LOOPBACK, f"compose service {name} listens on {host}"
        probe_port, path = healthcheck_target(service["healthcheck"]["test"])
        assert probe_port == port, f"compose service {name}: healthcheck on {probe_port}, listens on {port}"
        assert path.split("?")[0] in served_paths(module), f"compose service {name}: {path} is not served"


def test_compose_topology() -> None:
    services = compose_services()
    for name in ("gateway", "run-worker"):
        assert services[name].get("deploy", {}).get("replicas", 1) >= 2, f"{name} needs 2 replicas"
        assert "container_name" not in services[name], f"{name}: a container_name forbids replicas"
    assert "offline" in services["local-model"].get("profiles", [])
    migrate = [n for n, s in threadlog_compose_services().items() if s["command"][:1] == ["threadlog"]]
    for name, service in threadlog_compose_services().items():
        if name in migrate or module_of(service["command"]) == "services.local_model":
            continue
        depends = service["depends_on"]
        assert all(depends[m]["condition"] == "service_completed_successfully" for m in migrate), name
    assert "healthcheck" in services["postgres"]
    nats_command = services["nats"]["command"]
    assert "-js" in nats_command and "-sd" in nats_command
    assert services["nats"]["image"].startswith("nats:2.1")
    # The URLs threadlog is given name the compose services, with the credentials PostgreSQL is set up with.
    postgres_env = compose_env(services["postgres"])
    for name, service in threadlog_compose_services().items():
        env = compose_env(service)
        if "DATABASE_URL" in env:
            url = urlsplit(env["DATABASE_URL"])
            assert url.hostname in services and url.username == postgres_env["POSTGRES_USER"], name
            assert url.password == postgres_env["POSTGRES_PASSWORD"], name
            assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"], name
        if "NATS_URL" in env:
            assert urlsplit(env["NATS_URL"]).hostname in services, name


def test_proxy_balances_the_gateways_without_buffering() -> None:
    services = compose_services()
    proxy = services["proxy"]
    assert any(v.split(":")[0] in ("./nginx.conf", "nginx.conf") for v in proxy["volumes"])
    conf = NGINX.read_text()
    assert re.search(r"^\s*proxy_buffering\s+off;", conf, re.MULTILINE), "SSE must not be buffered"
    timeout = re.search(r"^\s*proxy_read_timeout\s+(\d+)s?;", conf, re.MULTILINE)
    assert timeout and int(timeout.group(1)) >= 300, "long-lived streams need a long proxy_read_timeout"
    upstream = re.search(r"upstream\s+\w+\s*\{(.*?)\}", conf, re.DOTALL)
    assert upstream, "no upstream block"
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream.group(1), re.MULTILINE)
    gateway = services["gateway"]
    _, port = listen_address("services.gateway", {**image_env(), **compose_env(gateway)})
    assert servers == [("gateway", str(port))], servers
    assert re.search(r"proxy_pass\s+http://\w+;", conf)


# ---------------------------------------------------------------------------------------------------------
# Documentation


def test_readme_documents_every_variable() -> None:
    first_cells = re.findall(r"^\|([^|\n]*)\|", README.read_text(), re.MULTILINE)
    documented = {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}
    used = set(settings_env_names()) | set(local_model_config._ENV_FIELDS) | set(env_example())
    used |= {k for k in image_env() if k.startswith("THREADLOG_")}
    used |= {name for _, c in threadlog_containers() for name in k8s_env(c)[1]}
    for service in threadlog_compose_services().values():
        used |= set(compose_env(service))
    missing = sorted(used - documented)
    assert not missing, f"deploy/README.md's table lacks {missing}"
