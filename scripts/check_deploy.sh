#!/usr/bin/env bash
# Checks the deployment files without Docker, Slurm or a cluster:
#  - deploy/docker: the compose file is valid (docker-compose config), and
#    every stage of the Dockerfile installs its packages through
#    deploy/install-deps.sh, the script CI itself runs; the controller's
#    --listen and --metrics-address ports are published and the workers'
#    EVONAS_CONTROLLER is the controller's gRPC port;
#  - deploy/slurm: the sbatch script parses (bash -n);
#  - deploy/kubernetes: the YAML parses and has the expected kinds; ports,
#    volumes, secrets and the workers' controller address fit together;
#  - everywhere: each flag passed to evonas-controller or evonas-worker is
#    one the built binary's --help lists, and every image is the one the
#    Dockerfile builds.
# The binaries come from $EVONAS_BUILD_DIR if set, else from ./build, where
# they are brought up to date first.
set -euo pipefail
cd "$(dirname "$0")/.."
dockerfile=deploy/docker/Dockerfile
stages=$(grep -c '^FROM ' "$dockerfile")
installs=$(grep -cE '^RUN .*install-deps\.sh' "$dockerfile")
if [[ "$stages" != "$installs" ]]; then
  echo "check_deploy: $stages stages but $installs install-deps.sh runs in $dockerfile" >&2
  exit 1
fi
if grep -nE 'apt-get install|pip install|curl |wget ' "$dockerfile"; then
  echo "check_deploy: $dockerfile installs packages outside install-deps.sh" >&2
  exit 1
fi
if ! command -v docker-compose >/dev/null; then
  apt-get install -y -q --no-install-recommends docker-compose >/dev/null
fi
docker-compose -f deploy/docker/docker-compose.yml config -q
echo "check_deploy: Dockerfile and docker-compose.yml OK"

bash -n deploy/slurm/evonas-workers.sbatch

build_dir="${EVONAS_BUILD_DIR:-build}"
if [[ "$build_dir" == build ]]; then
  # Up to date after scripts/test.sh, so a no-op in CI.
  scripts/build.sh --target evonas-controller evonas-worker
elif [[ ! -x "$build_dir/server/evonas-controller" ||
        ! -x "$build_dir/worker/evonas-worker" ]]; then
  echo "check_deploy: no evonas-controller and evonas-worker in $build_dir" >&2
  exit 1
fi
if ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
  apt-get install -y -q --no-install-recommends python3-yaml >/dev/null
fi

BUILD_DIR="$build_dir" /usr/bin/python3 - <<'PY'
import glob
import os
import re
import shlex
import subprocess
import sys

import yaml

BINARIES = {
    "evonas-controller": os.path.join(os.environ["BUILD_DIR"], "server/evonas-controller"),
    "evonas-worker": os.path.join(os.environ["BUILD_DIR"], "worker/evonas-worker"),
}
errors = []


def error(where, message):
    errors.append(f"{where}: {message}")


_help_flags = {}


def accepted_flags(binary, subcommands):
    """The long flags `binary subcommands... --help` lists."""
    key = (binary, tuple(subcommands))
    if key not in _help_flags:
        run = subprocess.run([BINARIES[binary], *subcommands, "--help"],
                             capture_output=True, text=True)
        if run.returncode != 0:
            _help_flags[key] = None
        else:
            _help_flags[key] = set(re.findall(r"(--[a-z0-9][a-z0-9-]*)", run.stdout))
    return _help_flags[key]


def check_invocation(where, words):
    """words: an evonas binary and its arguments, as the shell passes them."""
    binary = os.path.basename(words[0])
    subcommands = []
    for word in words[1:]:
        if word.startswith("-"):
            break
        subcommands.append(word)
    command = " ".join([binary] + subcommands)
    flags = accepted_flags(binary, subcommands)
    if flags is None:
        error(where, f"`{command} --help` fails: not a command of the binary")
        return
    for word in words[1:]:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            if flag not in flags:
                error(where, f"{command} has no flag {flag}")


def check_shell(where, script):
    """Checks every evonas command in a shell command line."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    command = None
    for token in list(lexer) + [";"]:
        if token in ("&&", "||", ";", "|", "&", "(", ")"):
            if command:
                check_invocation(where, command)
            command = None
        elif command is not None:
            command.append(token)
        elif os.path.basename(token) in BINARIES:
            command = [token]
    return script


def check_container_command(where, words):
    if not words:
        return
    if os.path.basename(words[0]) in BINARIES:
        check_invocation(where, words)
    elif words[0] in ("/bin/sh", "sh", "/bin/bash", "bash") and "-c" in words:
        check_shell(where, " ".join(words[words.index("-c") + 1:]))


def image_repository(image):
    name = image.rsplit("/", 1)[-1]
    return name.split("@")[0].split(":")[0]


# --- The image the Dockerfile builds, and its CMD.
dockerfile = open("deploy/docker/Dockerfile").read()
tags = re.findall(r"docker build .*-t (\S+)", dockerfile)
if not tags:
    error("deploy/docker/Dockerfile", "no `docker build ... -t IMAGE` line names the image")
IMAGE = image_repository(tags[0]) if tags else "evonas"
for cmd in re.findall(r"^CMD (\[.*\])$", dockerfile, re.M):
    check_container_command("deploy/docker/Dockerfile CMD", yaml.safe_load(cmd))

# --- docker-compose.yml.
compose = yaml.safe_load(open("deploy/docker/docker-compose.yml"))
for name, service in compose["services"].items():
    where = f"docker-compose.yml service {name}"
    if "image" in service and image_repository(service["image"]) != IMAGE:
        error(where, f"image {service['image']} is not {IMAGE}, which the Dockerfile builds")
    words = []
    for key in ("entrypoint", "command"):
        value = service.get(key, [])
        words += shlex.split(value) if isinstance(value, str) else list(value)
    check_container_command(where, words)


def compose_container_ports(service):
    """The container ports a compose service publishes ("HOST:CONTAINER",
    "IP:HOST:CONTAINER", "CONTAINER", optionally /tcp, or the long syntax)."""
    ports = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


# The controller listens (gRPC, metrics) on ports its service publishes, and
# the workers' EVONAS_CONTROLLER is a service's gRPC port.
listen_ports = {}
for name, service in compose["services"].items():
    where = f"docker-compose.yml service {name}"
    value = service.get("command", [])
    script = value if isinstance(value, str) else " ".join(value)
    for flag in ("--listen", "--metrics-address"):
        match = re.search(r"evonas-controller\b.*?" + flag + r"[= ]\S*:(\d+)", script, re.S)
        if not match:
            continue
        port = int(match.group(1))
        if flag == "--listen":
            listen_ports[name] = port
        if port not in compose_container_ports(service):
            error(where, f"{flag} port {port} is not in its ports")
for name, service in compose["services"].items():
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    if "EVONAS_CONTROLLER" in env:
        host, _, port = env["EVONAS_CONTROLLER"].rpartition(":")
        if listen_ports.get(host) != int(port):
            error(f"docker-compose.yml service {name}",
                  f"EVONAS_CONTROLLER {env['EVONAS_CONTROLLER']} is no controller's --listen port")

# --- Slurm: the worker's flags are collected in worker_flags.
sbatch = "deploy/slurm/evonas-workers.sbatch"
text = open(sbatch).read()
worker_words = ["evonas-worker"]
for body in re.findall(r"^\s*worker_flags\+?=\((.*?)\)", text, re.M | re.S):
    worker_words += shlex.split(body, comments=True)
exec_lines = re.findall(r"^exec evonas-worker (.*)$", text, re.M)
if exec_lines != ['"${worker_flags[@]}"']:
    error(sbatch, "expected one `exec evonas-worker \"${worker_flags[@]}\"` line")
if len(worker_words) < 2:
    error(sbatch, "no worker_flags=(...) found")
check_invocation(sbatch, worker_words)

# --- Kubernetes.
k8s = "deploy/kubernetes"
kustomization = yaml.safe_load(open(f"{k8s}/kustomization.yaml"))
documents = []
for resource in kustomization.get("resources", []):
    path = f"{k8s}/{resource}"
    if not os.path.exists(path):
        error(f"{k8s}/kustomization.yaml", f"resource {resource} does not exist")
        continue
    documents += [(path, d) for d in yaml.safe_load_all(open(path)) if d]
listed = {f"{k8s}/{r}" for r in kustomization.get("resources", [])}
for path in glob.glob(f"{k8s}/*.yaml"):
    if path not in listed and not path.endswith("kustomization.yaml"):
        error(path, "not listed in kustomization.yaml resources")
for entry in kustomization.get("images", []):
    if image_repository(entry.get("newName", entry["name"])) != IMAGE or entry["name"] != IMAGE:
        error(f"{k8s}/kustomization.yaml", f"image entry {entry} is not {IMAGE}")

kinds = {}
for path, doc in documents:
    for field in ("apiVersion", "kind", "metadata"):
        if field not in doc:
            error(path, f"a document has no {field}")
    kinds.setdefault(doc.get("kind"), []).append((path, doc))
for kind in ("Service", "StatefulSet", "Deployment"):
    if kind not in kinds:
        error(k8s, f"no {kind}")

secrets = {s["name"]: s for s in kustomization.get("secretGenerator", [])}
secrets.update({d["metadata"]["name"]: d for _, d in kinds.get("Secret", [])})
if "kubernetes.io/tls" not in {s.get("type") for s in secrets.values()}:
    error(k8s, "no kubernetes.io/tls secret for the controller's TLS pair")


def secret_keys(name):
    secret = secrets[name]
    if "files" in secret:
        return {f.split("=", 1)[0] for f in secret["files"]}
    return set(secret.get("data", {})) | set(secret.get("stringData", {}))


pods = []  # (where, labels, pod spec)
for kind in ("StatefulSet", "Deployment"):
    for path, doc in kinds.get(kind, []):
        name = doc["metadata"]["name"]
        where = f"{path} {kind} {name}"
        spec = doc["spec"]
        template = spec["template"]
        selector = spec["selector"]["matchLabels"]
        labels = template["metadata"].get("labels", {})
        if any(labels.get(k) != v for k, v in selector.items()):
            error(where, "selector.matchLabels does not match the pod labels")
        pods.append((where, labels, template["spec"]))
        if kind == "StatefulSet":
            if spec.get("replicas") != 1:
                error(where, "the controller must have exactly one replica (SQLite)")
            if not spec.get("volumeClaimTemplates"):
                error(where, "no volumeClaimTemplates: the database needs a PersistentVolumeClaim")
            services = {d["metadata"]["name"] for _, d in kinds.get("Service", [])}
            if spec.get("serviceName") not in services:
                error(where, f"serviceName {spec.get('serviceName')} is no Service")
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        for volume in volumes.values():
            if "secret" in volume:
                secret = volume["secret"]["secretName"]
                if secret not in secrets:
                    error(where, f"volume {volume['name']} uses secret {secret}, which is not defined")
                else:
                    for item in volume["secret"].get("items", []):
                        if item["key"] not in secret_keys(secret):
                            error(where, f"secret {secret} has no key {item['key']}")
        for container in template["spec"]["containers"]:
            cwhere = f"{where} container {container['name']}"
            if image_repository(container["image"]) != IMAGE:
                error(cwhere, f"image {container['image']} is not {IMAGE}, which the Dockerfile builds")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes and mount["name"] not in claims:
                    error(cwhere, f"mounts {mount['name']}, which is no volume")
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and (ref["name"] not in secrets or ref["key"] not in secret_keys(ref["name"])):
                    error(cwhere, f"env {env['name']} refers to missing secret key {ref['name']}/{ref['key']}")
            check_container_command(cwhere, list(container.get("command", [])) + list(container.get("args", [])))

# Ports: each Service port leads to a container port of the pods it selects,
# the controller listens (gRPC, metrics) where its container port says, and
# the workers' EVONAS_CONTROLLER names a Service port.
service_ports = {}
for path, service in kinds.get("Service", []):
    name = service["metadata"]["name"]
    where = f"{path} Service {name}"
    selector = service["spec"].get("selector", {})
    selected = [p for p in pods if all(p[1].get(k) == v for k, v in selector.items())]
    if not selected:
        error(where, "selects no pod")
    for port in service["spec"]["ports"]:
        service_ports.setdefault(name, set()).add(port["port"])
        target = port.get("targetPort", port["port"])
        for pwhere, _, pod in selected:
            container_ports = [cp for c in pod["containers"] for cp in c.get("ports", [])]
            if not any(cp.get("name") == target or cp["containerPort"] == target for cp in container_ports):
                error(where, f"port {port['name']} targets {target}, which {pwhere} does not expose")
            for cp in container_ports:
                if cp.get("name") == target and cp["containerPort"] != port["port"]:
                    error(where, f"port {port['name']} is {port['port']} but the container's is {cp['containerPort']}")
for pwhere, _, pod in pods:
    for container in pod["containers"]:
        named = {cp.get("name"): cp["containerPort"] for cp in container.get("ports", [])}
        script = " ".join(container.get("command", []) + container.get("args", []))
        for flag, port_name in (("--listen", "grpc"), ("--metrics-address", "metrics")):
            match = re.search(flag + r"=\S*:(\d+)", script)
            if match and named.get(port_name) != int(match.group(1)):
                error(pwhere, f"{flag} port {match.group(1)} is not the container port {port_name} ({named.get(port_name)})")
        for env in container.get("env", []):
            if env["name"] == "EVONAS_CONTROLLER":
                host, _, port = env["value"].rpartition(":")
                if int(port) not in service_ports.get(host.split(".")[0], set()):
                    error(pwhere, f"EVONAS_CONTROLLER {env['value']} is no Service port")

if errors:
    print("\n".join("check_deploy: " + e for e in errors), file=sys.stderr)
    sys.exit(1)
checked = sorted(" ".join((b,) + s) for (b, s) in _help_flags)
print("check_deploy: Slurm and Kubernetes files OK; flags checked against --help of: "
      + ", ".join(checked))
PY
