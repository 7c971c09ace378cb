#!/usr/bin/env bash
# Checks the deployment files without Docker, Slurm or a cluster:
#  - deploy/docker: the compose file is valid (docker-compose config), and
#    every stage of the Dockerfile installs its packages through
#    deploy/install-deps.sh, the script CI itself runs; the controller's
#    --listen and --metrics-address ports are published and the workers'
#    EVONAS_CONTROLLER is the controller's gRPC port;
#  - deploy/slurm: the sbatch script parses (bash -n);
#  - deploy/kubernetes: no schema validator (kubeconform, kubeval) is
#    packaged for Debian and CI downloads nothing, so a structural check of
#    what evonas relies on: each kind's apiVersion; required fields and
#    their types; selectors match the pod labels; Service ports, probes and
#    --listen/--metrics-address reach declared container ports; mounts name
#    declared volumes or claims; secrets and keys exist; the workers'
#    controller address is a Service port. A self-test feeds it broken
#    copies of the manifests, each of which must be refused;
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
import shutil
import subprocess
import sys
import tempfile

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

# --- Kubernetes: no schema validator (kubeconform, kubeval) is packaged for
# Debian and CI downloads nothing, so the fields evonas relies on are checked
# here: each kind's apiVersion, the required structure of workloads and
# Services, selectors, ports (Services, probes, flags), volumes, secrets,
# images and the flags the containers pass.

# The apiVersion each kind has on the Kubernetes versions we support. A kind
# not listed is refused until it is added here (and checked below).
API_VERSIONS = {
    "ConfigMap": "v1",
    "PersistentVolumeClaim": "v1",
    "Secret": "v1",
    "Service": "v1",
    "ServiceAccount": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1",
}
# A port name is an IANA service name: at most 15 lower-case letters, digits
# and '-', with a letter.
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
# A DNS-1123 label: metadata names of containers, volumes, Services.
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def field(where, obj, path, kind, problems, required=True):
    """obj's field at the dotted `path`, if it has the type `kind`;
    otherwise None, and a problem when it is missing (and required) or of
    another type."""
    value = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            if required:
                problems(where, f"no {path}")
            return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        problems(where, f"{path} is {type(value).__name__} {value!r}, not {names}")
        return None
    return value


def check_kubernetes(k8s):
    """The problems of the kustomization in directory `k8s`, as
    "where: what" strings (none when it is fine)."""
    global errors
    outer, errors = errors, []  # error() and check_invocation() append here
    try:
        _check_kubernetes(k8s)
        return errors
    finally:
        errors = outer


def _check_kubernetes(k8s):
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
        if not isinstance(doc, dict):
            error(path, "a document is not a mapping")
            continue
        kind = doc.get("kind")
        name = field(path, doc, "metadata.name", str, error)
        where = f"{path} {kind} {name}"
        if kind not in API_VERSIONS:
            error(where, f"kind {kind!r} is not one this check knows ({', '.join(sorted(API_VERSIONS))})")
            continue
        if doc.get("apiVersion") != API_VERSIONS[kind]:
            error(where, f"apiVersion {doc.get('apiVersion')!r} for {kind}; it is {API_VERSIONS[kind]}")
        if name is not None and not DNS_LABEL.match(name):
            error(where, "metadata.name is not a DNS label (lower case, digits, '-')")
        if name is not None:
            kinds.setdefault(kind, []).append((path, doc))
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

    services = {d["metadata"]["name"] for _, d in kinds.get("Service", [])}
    pods = []  # (where, labels, pod spec)
    for kind in ("StatefulSet", "Deployment"):
        for path, doc in kinds.get(kind, []):
            where = f"{path} {kind} {doc['metadata']['name']}"
            spec = field(where, doc, "spec", dict, error)
            if spec is None:
                continue
            selector = field(where, spec, "selector.matchLabels", dict, error)
            labels = field(where, spec, "template.metadata.labels", dict, error)
            pod = field(where, spec, "template.spec", dict, error)
            if selector is not None and labels is not None:
                if not selector:
                    error(where, "selector.matchLabels is empty")
                if any(labels.get(k) != v for k, v in selector.items()):
                    error(where, "selector.matchLabels does not match the pod labels")
            if kind == "StatefulSet":
                if spec.get("replicas") != 1:
                    error(where, "the controller must have exactly one replica (SQLite)")
                if not spec.get("volumeClaimTemplates"):
                    error(where, "no volumeClaimTemplates: the database needs a PersistentVolumeClaim")
                if spec.get("serviceName") not in services:
                    error(where, f"serviceName {spec.get('serviceName')} is no Service")
            elif field(where, spec, "replicas", int, error, required=False) is not None and spec["replicas"] < 0:
                error(where, "replicas is negative")
            if pod is None:
                continue
            pods.append((where, labels or {}, pod))
            volumes = {}
            for volume in field(where, pod, "volumes", list, error, required=False) or []:
                vname = field(where, volume, "name", str, error)
                if vname in volumes:
                    error(where, f"volume {vname} is declared twice")
                volumes[vname] = volume
                sources = [k for k in volume if k != "name"]
                if len(sources) != 1:
                    error(where, f"volume {vname} needs exactly one source, has {sources}")
                if "secret" in volume:
                    secret = field(where, volume, "secret.secretName", str, error)
                    if secret not in secrets:
                        error(where, f"volume {vname} uses secret {secret}, which is not defined")
                    else:
                        for item in volume["secret"].get("items", []):
                            if item["key"] not in secret_keys(secret):
                                error(where, f"secret {secret} has no key {item['key']}")
                if "persistentVolumeClaim" in volume:
                    claim = field(where, volume, "persistentVolumeClaim.claimName", str, error)
                    if claim not in {d["metadata"]["name"] for _, d in kinds.get("PersistentVolumeClaim", [])}:
                        error(where, f"volume {vname} uses claim {claim}, which is not defined")
            claims = set()
            for template in spec.get("volumeClaimTemplates", []):
                claims.add(field(where, template, "metadata.name", str, error))
                field(where, template, "spec.accessModes", list, error)
                field(where, template, "spec.resources.requests.storage", str, error)
            if claims & set(volumes):
                error(where, f"{sorted(claims & set(volumes))} is both a volume and a claim template")
            containers = field(where, pod, "containers", list, error)
            if not containers:
                if containers is not None:
                    error(where, "no containers")
                continue
            container_names = set()
            for container in containers:
                cname = field(where, container, "name", str, error)
                cwhere = f"{where} container {cname}"
                if cname in container_names:
                    error(where, f"two containers are named {cname}")
                container_names.add(cname)
                image = field(cwhere, container, "image", str, error)
                if image is not None and image_repository(image) != IMAGE:
                    error(cwhere, f"image {image} is not {IMAGE}, which the Dockerfile builds")
                named, numbers = {}, set()
                for cp in field(cwhere, container, "ports", list, error, required=False) or []:
                    number = field(cwhere, cp, "containerPort", int, error)
                    pname = field(cwhere, cp, "name", str, error, required=False)
                    if number is not None and not 0 < number < 65536:
                        error(cwhere, f"containerPort {number} is out of range")
                    if pname is not None:
                        if not PORT_NAME.match(pname):
                            error(cwhere, f"port name {pname} is no IANA service name (<= 15 of a-z, 0-9, '-')")
                        if pname in named:
                            error(cwhere, f"port name {pname} is used twice")
                        named[pname] = number
                    numbers.add(number)
                container["_ports"] = (named, numbers)  # for the Service check below
                mount_paths = set()
                for mount in field(cwhere, container, "volumeMounts", list, error, required=False) or []:
                    mname = field(cwhere, mount, "name", str, error)
                    mpath = field(cwhere, mount, "mountPath", str, error)
                    if mname not in volumes and mname not in claims:
                        error(cwhere, f"mounts {mname}, which is no volume")
                    if mpath is not None and not mpath.startswith("/"):
                        error(cwhere, f"mountPath {mpath} is not absolute")
                    if mpath in mount_paths:
                        error(cwhere, f"two volumes are mounted at {mpath}")
                    mount_paths.add(mpath)
                for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                    probe = container.get(probe_name)
                    if probe is None:
                        continue
                    handlers = [h for h in ("httpGet", "tcpSocket", "grpc", "exec") if h in probe]
                    if len(handlers) != 1:
                        error(cwhere, f"{probe_name} needs exactly one of httpGet, tcpSocket, grpc, exec; has {handlers}")
                        continue
                    if handlers[0] == "exec":
                        continue
                    port = probe[handlers[0]].get("port")
                    if port not in named and port not in numbers:
                        error(cwhere, f"{probe_name} probes port {port!r}, which the container does not expose")
                    if handlers[0] == "httpGet" and "grpc" in named and named.get(port, port) == named["grpc"]:
                        error(cwhere, f"{probe_name} sends HTTP to the gRPC port")
                for env in field(cwhere, container, "env", list, error, required=False) or []:
                    ename = field(cwhere, env, "name", str, error)
                    if ("value" in env) == ("valueFrom" in env):
                        error(cwhere, f"env {ename} needs exactly one of value and valueFrom")
                    if "value" in env and not isinstance(env["value"], str):
                        error(cwhere, f"env {ename} value {env['value']!r} is not a string (quote it)")
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref and (ref["name"] not in secrets or ref["key"] not in secret_keys(ref["name"])):
                        error(cwhere, f"env {ename} refers to missing secret key {ref['name']}/{ref['key']}")
                words = []
                for key in ("command", "args"):
                    value = field(cwhere, container, key, list, error, required=False) or []
                    if not all(isinstance(w, str) for w in value):
                        error(cwhere, f"{key} has a word that is not a string (quote it)")
                        value = [str(w) for w in value]
                    words += value
                check_container_command(cwhere, words)

    # Ports: each Service port leads to a container port of the pods it
    # selects, the controller listens (gRPC, metrics) where its container
    # port says, and the workers' EVONAS_CONTROLLER names a Service port.
    service_ports = {}
    for path, service in kinds.get("Service", []):
        name = service["metadata"]["name"]
        where = f"{path} Service {name}"
        selector = field(where, service, "spec.selector", dict, error)
        if not selector:
            if selector is not None:
                error(where, "spec.selector is empty")
            continue
        selected = [p for p in pods if all(p[1].get(k) == v for k, v in selector.items())]
        if not selected:
            error(where, "selects no pod")
        ports = field(where, service, "spec.ports", list, error) or []
        port_names = [p.get("name") for p in ports]
        if len(ports) > 1 and (None in port_names or len(set(port_names)) != len(ports)):
            error(where, "a Service with several ports needs a distinct name for each")
        for port in ports:
            number = field(where, port, "port", int, error)
            target = port.get("targetPort", number)
            service_ports.setdefault(name, set()).add(number)
            for pwhere, _, pod in selected:
                exposed = [c.get("_ports", ({}, set())) for c in pod.get("containers", [])]
                if not any(target in named or target in numbers for named, numbers in exposed):
                    error(where, f"port {port.get('name')} targets {target}, which {pwhere} does not expose")
                for named, _ in exposed:
                    if target in named and named[target] != number:
                        error(where, f"port {port.get('name')} is {number} but the container's is {named[target]}")
    for pwhere, _, pod in pods:
        for container in pod.get("containers", []):
            named, _ = container.pop("_ports", ({}, set()))
            script = " ".join(str(w) for w in container.get("command", []) + container.get("args", []))
            for flag, port_name in (("--listen", "grpc"), ("--metrics-address", "metrics")):
                match = re.search(flag + r"=\S*:(\d+)", script)
                if match and named.get(port_name) != int(match.group(1)):
                    error(pwhere, f"{flag} port {match.group(1)} is not the container port {port_name} ({named.get(port_name)})")
            for env in container.get("env", []):
                if env.get("name") == "EVONAS_CONTROLLER" and isinstance(env.get("value"), str):
                    host, _, port = env["value"].rpartition(":")
                    if not port.isdigit() or int(port) not in service_ports.get(host.split(".")[0], set()):
                        error(pwhere, f"EVONAS_CONTROLLER {env['value']} is no Service port")


errors += check_kubernetes("deploy/kubernetes")


# --- The Kubernetes check itself: a copy of the manifests passes, and each
# broken copy is refused with its problem named.
def kind_is(kind, change):
    return lambda doc: change(doc) if doc.get("kind") == kind else None


def pod_of(doc):
    return doc["spec"]["template"]["spec"]


def container_of(doc):
    return pod_of(doc)["containers"][0]


BROKEN = [
    ("StatefulSet in apps/v1beta1",
     kind_is("StatefulSet", lambda d: d.update(apiVersion="apps/v1beta1")),
     "apiVersion 'apps/v1beta1' for StatefulSet"),
    ("worker pods without the selector's label",
     kind_is("Deployment", lambda d: d["spec"]["template"]["metadata"]["labels"].update(
         {"app.kubernetes.io/component": "workers"})),
     "selector.matchLabels does not match the pod labels"),
    ("a readiness probe on a port the controller does not expose",
     kind_is("StatefulSet", lambda d: container_of(d)["readinessProbe"]["httpGet"].update(port="metric")),
     "readinessProbe probes port 'metric'"),
    ("an HTTP probe on the gRPC port",
     kind_is("StatefulSet", lambda d: container_of(d)["readinessProbe"]["httpGet"].update(port="grpc")),
     "readinessProbe sends HTTP to the gRPC port"),
    ("a mount of an undeclared volume",
     kind_is("StatefulSet", lambda d: container_of(d)["volumeMounts"][0].update(name="sate")),
     "mounts sate, which is no volume"),
    ("a flag evonas-worker does not accept",
     kind_is("Deployment", lambda d: container_of(d).update(args=["--thread=1"])),
     "evonas-worker has no flag --thread"),
    ("a Service port that targets no container port",
     kind_is("Service", lambda d: d["spec"]["ports"][0].update(targetPort="grpcs")),
     "port grpc targets grpcs"),
    ("--metrics-address on another port than the container's",
     kind_is("StatefulSet", lambda d: container_of(d).update(
         args=[container_of(d)["args"][0].replace(":9464", ":9465")])),
     "--metrics-address port 9465 is not the container port metrics"),
    ("a port number written as a string",
     kind_is("StatefulSet", lambda d: container_of(d)["ports"][1].update(containerPort="9464")),
     "containerPort is str '9464', not int"),
    ("a workload without containers",
     kind_is("Deployment", lambda d: pod_of(d).pop("containers")),
     "Deployment evonas-worker: no containers"),
    ("workers pointed at a port no Service has",
     kind_is("Deployment", lambda d: container_of(d)["env"][0].update(value="evonas-controller:50052")),
     "EVONAS_CONTROLLER evonas-controller:50052 is no Service port"),
    ("a secret volume of an undefined secret",
     kind_is("Deployment", lambda d: pod_of(d)["volumes"][0]["secret"].update(secretName="evonas-tsl")),
     "uses secret evonas-tsl, which is not defined"),
]


def copy_with(change):
    """A copy of deploy/kubernetes whose manifests went through `change`."""
    directory = tempfile.mkdtemp(prefix="check_deploy_k8s_")
    shutil.copytree("deploy/kubernetes", directory, dirs_exist_ok=True)
    for path in glob.glob(f"{directory}/*.yaml"):
        if path.endswith("/kustomization.yaml"):
            continue
        docs = [d for d in yaml.safe_load_all(open(path)) if d]
        for doc in docs:
            change(doc)
        with open(path, "w") as f:
            yaml.safe_dump_all(docs, f)
    return directory


directory = copy_with(lambda doc: None)
for problem in check_kubernetes(directory):
    error("check_kubernetes self-test", f"an unchanged copy is refused: {problem}")
shutil.rmtree(directory)
for what, change, expected in BROKEN:
    directory = copy_with(change)
    problems = check_kubernetes(directory)
    shutil.rmtree(directory)
    if not any(expected in p for p in problems):
        error("check_kubernetes self-test",
              f"{what}: expected a problem containing {expected!r}, got {problems}")

if errors:
    print("\n".join("check_deploy: " + e for e in errors), file=sys.stderr)
    sys.exit(1)
checked = sorted(" ".join((b,) + s) for (b, s) in _help_flags)
print("check_deploy: Slurm and Kubernetes files OK; flags checked against --help of: "
      + ", ".join(checked))
print(f"check_deploy: the Kubernetes check refuses all {len(BROKEN)} broken copies")
PY
