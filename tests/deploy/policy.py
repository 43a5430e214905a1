"""Deployment invariants that no schema expresses, checked on the files in deploy/.

Run by tests/deploy-check with the venv's Python (PyYAML comes with yamllint):
    python tests/deploy/policy.py DEPLOY_DIR
Prints one line per problem and exits 1 if there is any.
"""

import pathlib
import re
import sys

import yaml

DEPLOY = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "deploy")
UID = 10001
problems = []


def need(ok, where, what):
    if not ok:
        problems.append(f"{where}: {what}")


def port_of(address):
    """The port of `HOST:PORT` (or `[V6]:PORT`), or None."""
    port = str(address or "").rpartition(":")[2]
    return int(port) if port.isdigit() else None


# Behind a proxy every connection comes from the proxy's address: each of these
# must be off ("0"), and the proxy limits per client address instead.
PER_ADDRESS_LIMITS = (
    "NOMOS_ISSUER_ADDRESS_RATE_LIMIT",
    "NOMOS_ISSUER_MAX_CONNECTIONS_PER_ADDRESS",
    "NOMOS_ISSUER_MAX_IN_FLIGHT_PER_ADDRESS",
)
# The ports compose.yaml gives the replicas, which haproxy.cfg must route to.
issuer_ports = {}


def listeners(where, env):
    """Checks that the public and operator listeners are set apart; returns their ports."""
    public, operator = port_of(env.get("NOMOS_ISSUER_LISTEN")), port_of(env.get("NOMOS_ISSUER_OPERATOR_LISTEN"))
    need(public is not None, where, "NOMOS_ISSUER_LISTEN is not set to HOST:PORT")
    need(operator is not None, where,
         "NOMOS_ISSUER_OPERATOR_LISTEN is not set to HOST:PORT (/admin and /metrics would be on the public port)")
    need(operator is None or operator != public, where, "the operator port is the public port")
    return public, operator


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


# --- compose.yaml -------------------------------------------------------------
def issuer_image(service):
    return "nomos-issuer" in str(service.get("image", "")) or "NOMOS_IMAGE" in str(service.get("image", ""))


def hardened(where, service):
    need(service.get("read_only") is True, where, "read_only: true is missing")
    need("ALL" in (service.get("cap_drop") or []), where, "cap_drop: [ALL] is missing")
    need("no-new-privileges:true" in (service.get("security_opt") or []), where, "no-new-privileges:true is missing")


def check_compose():
    compose = load(DEPLOY / "compose.yaml")
    services = compose["services"]
    servers = {n: s for n, s in services.items() if issuer_image(s) and s.get("command", [None])[0] == "serve"}
    replicas = sum((s.get("deploy") or {}).get("replicas", 1) for s in servers.values())
    need(replicas >= 2, "compose.yaml", f"{replicas} issuer replica(s) run `serve`, want at least 2")
    need(any(issuer_image(s) and s.get("command") == ["migrate"] for s in services.values()),
         "compose.yaml", "no one-shot service runs `migrate`")
    published = [n for n, s in services.items() if s.get("ports")]
    need(published == ["lb"], "compose.yaml", f"only `lb` may publish ports, these do: {published}")
    for name, service in services.items():
        where = f"compose.yaml services.{name}"
        env = service.get("environment") or {}
        if issuer_image(service) or name == "lb":
            hardened(where, service)
        if issuer_image(service):
            need("NOMOS_ISSUER_KEK" not in env, where, "the KEK itself must not be in the environment")
            need(env.get("NOMOS_ISSUER_LOG_FORMAT") == "json", where, "NOMOS_ISSUER_LOG_FORMAT is not json")
        if name in servers:
            need(env.get("NOMOS_ISSUER_KEK_FILE") == "/run/secrets/kek", where,
                 "NOMOS_ISSUER_KEK_FILE is not /run/secrets/kek")
            need("kek" in (service.get("secrets") or []), where, "the kek secret is not mounted")
            need("NOMOS_ISSUER_ISSUER" in env, where, "NOMOS_ISSUER_ISSUER is not set")
            issuer_ports["public"], issuer_ports["operator"] = listeners(where, env)
            for limit in PER_ADDRESS_LIMITS:
                need(str(env.get(limit)) == "0", where, f"{limit} is not \"0\" behind lb (lb limits per client address)")
    need(compose.get("secrets", {}).get("kek", {}).get("file") == "./kek", "compose.yaml", "secrets.kek is not ./kek")
    lb_volumes = services.get("lb", {}).get("volumes") or []
    for volume in lb_volumes:
        source = volume.split(":")[0]
        need((DEPLOY / source).is_file(), "compose.yaml services.lb", f"mounts {source}, which does not exist")


# --- haproxy/haproxy.cfg ----------------------------------------------------------
def check_haproxy():
    cfg = (DEPLOY / "haproxy" / "haproxy.cfg").read_text(encoding="utf-8")
    sections = {}
    current = None
    for line in cfg.splitlines():
        line = line.split("#", 1)[0].rstrip()
        if line and not line[0].isspace():
            current = line.strip()
            sections[current] = []
        elif line.strip() and current:
            sections[current].append(line.strip())
    public = sections.get("frontend public", [])
    admin = sections.get("frontend admin", [])
    need(any(l.startswith("bind :8080") for l in public), "haproxy.cfg", "frontend public does not bind :8080")
    need(any(l.startswith("bind :8081") for l in admin), "haproxy.cfg", "frontend admin does not bind :8081")
    for path in ("/admin", "/metrics"):
        need(any(l.startswith("http-request deny") and path in l for l in public),
             "haproxy.cfg", f"frontend public does not refuse {path}")
    need(any(l.startswith("tcp-request connection reject") and "conn_cur" in l for l in public),
         "haproxy.cfg", "frontend public does not limit open connections per client address")
    need(any(l.startswith("http-request return status 429") for l in public),
         "haproxy.cfg", "frontend public does not limit token requests per client address")

    def backend_of(frontend, name):
        """The default backend of a frontend; checks that it is the replicas on `name`'s port."""
        used = [l.split()[1] for l in sections.get(f"frontend {frontend}", []) if l.startswith("default_backend ")]
        need(len(used) == 1, "haproxy.cfg", f"frontend {frontend} has no single default_backend")
        if len(used) != 1:
            return None
        where = f"haproxy.cfg backend {used[0]}"
        backend = sections.get(f"backend {used[0]}", [])
        need(any("uri /readyz" in l for l in backend) and "option httpchk" in backend,
             where, "is not health-checked with GET /readyz")
        servers = [l for l in backend if l.startswith(("server ", "server-template "))]
        need(servers and any(" check" in f" {l}" for l in backend), where, "has no checked issuer server")
        want = issuer_ports.get(name)
        targets = {port_of(l.split()[3 if l.startswith("server-template ") else 2]) for l in servers}
        need(want is not None and targets == {want}, where,
             f"routes frontend {frontend} to port(s) {sorted(t for t in targets if t)}, "
             f"not the replicas' {name} port {want} (compose.yaml)")
        return used[0]

    public_backend = backend_of("public", "public")
    admin_backend = backend_of("admin", "operator")
    need(public_backend is None or public_backend != admin_backend, "haproxy.cfg",
         "frontends public and admin share a backend")


# --- kubernetes/ ------------------------------------------------------------------
def check_pod(where, pod, args):
    sc = pod.get("securityContext") or {}
    need(sc.get("runAsNonRoot") is True, where, "pod securityContext.runAsNonRoot is not true")
    need(sc.get("runAsUser") == UID, where, f"pod securityContext.runAsUser is not {UID}")
    need((sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", where, "seccompProfile is not RuntimeDefault")
    need(pod.get("automountServiceAccountToken") is False, where, "automountServiceAccountToken is not false")
    containers = pod["containers"]
    need([c.get("args") for c in containers] == [args], where, f"container args are not {args}")
    for c in containers:
        cw = f"{where} container {c['name']}"
        csc = c.get("securityContext") or {}
        need(csc.get("readOnlyRootFilesystem") is True, cw, "readOnlyRootFilesystem is not true")
        need(csc.get("allowPrivilegeEscalation") is False, cw, "allowPrivilegeEscalation is not false")
        need((csc.get("capabilities") or {}).get("drop") == ["ALL"], cw, "capabilities.drop is not [ALL]")
        res = c.get("resources") or {}
        need("requests" in res and "memory" in res.get("limits", {}), cw, "resources.requests/limits.memory missing")
        need(all(e["name"] != "NOMOS_ISSUER_KEK" for e in c.get("env") or []), cw, "the KEK itself is in env")
    return containers


def check_kubernetes():
    kdir = DEPLOY / "kubernetes"
    kustomization = load(kdir / "kustomization.yaml")
    files = sorted(p.name for p in kdir.glob("*.yaml") if p.name != "kustomization.yaml")
    need(sorted(kustomization.get("resources", [])) == files, "kubernetes/kustomization.yaml",
         f"resources {sorted(kustomization.get('resources', []))} differ from the files {files}")
    before = len(problems)
    docs = {}
    for name in files:
        doc = load(kdir / name)
        docs[doc["kind"]] = doc
    for kind in ("Deployment", "Job", "PodDisruptionBudget", "Service", "Secret"):
        need(kind in docs, "kubernetes/", f"no {kind}")
    if len(problems) > before:
        return
    dep = docs["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    selector = dep["spec"]["selector"]["matchLabels"]
    need(dep["spec"].get("replicas", 1) >= 2, "Deployment", "fewer than 2 replicas")
    need(pod.get("terminationGracePeriodSeconds") is not None, "Deployment", "no terminationGracePeriodSeconds")
    need(bool(pod.get("topologySpreadConstraints") or pod.get("affinity")), "Deployment", "no topology spread")
    need(pod["securityContext"].get("fsGroup") == UID, "Deployment", f"fsGroup is not {UID} (the KEK file's group)")
    (issuer,) = check_pod("Deployment", pod, ["serve"])
    config = (docs.get("ConfigMap") or {}).get("data") or {}
    public, operator = listeners("ConfigMap", config)
    for limit in PER_ADDRESS_LIMITS:
        need(str(config.get(limit)) == "0", "ConfigMap",
             f"{limit} is not \"0\" behind the Ingress (it limits per client address)")
    ports = {p.get("name"): p.get("containerPort") for p in issuer.get("ports", [])}
    need(len(ports) == 2 and set(ports.values()) == {public, operator}, "Deployment",
         f"container ports {list(ports.values())} are not the ConfigMap's listeners {[public, operator]}")
    annotations = dep["spec"]["template"]["metadata"].get("annotations") or {}
    need(str(annotations.get("prometheus.io/port")) == str(operator), "Deployment",
         f"prometheus.io/port is not the operator port {operator}")
    probe = lambda kind: (issuer.get(kind) or {}).get("httpGet", {}).get("path")  # noqa: E731
    need(probe("livenessProbe") == "/healthz", "Deployment", "livenessProbe is not GET /healthz")
    need(probe("readinessProbe") == "/readyz", "Deployment", "readinessProbe is not GET /readyz")
    env = {e["name"]: e for e in issuer.get("env") or []}
    kek_file = env.get("NOMOS_ISSUER_KEK_FILE", {}).get("value", "")
    mounts = {m["name"]: m["mountPath"] for m in issuer.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    kek_mount = [n for n, path in mounts.items() if kek_file.startswith(path.rstrip("/") + "/")]
    need(len(kek_mount) == 1 and "secret" in volumes.get(kek_mount[0], {}), "Deployment",
         "NOMOS_ISSUER_KEK_FILE is not a file on a mounted Secret volume")
    need(env.get("NOMOS_ISSUER_DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef") is not None,
         "Deployment", "NOMOS_ISSUER_DATABASE_URL does not come from a Secret")
    check_pod("Job", docs["Job"]["spec"]["template"]["spec"], ["migrate"])
    pdb = docs["PodDisruptionBudget"]["spec"]
    need(pdb.get("minAvailable") == 1 and pdb["selector"]["matchLabels"] == selector, "PodDisruptionBudget",
         "not minAvailable 1 over the Deployment's selector")
    svc = docs["Service"]["spec"]
    need(svc.get("type", "ClusterIP") == "ClusterIP", "Service", "type is not ClusterIP")
    need(svc["selector"].items() <= labels.items(), "Service", "selector does not match the issuer pods")
    public_names = {n for n, p in ports.items() if p == public} | {public}
    need(all(p.get("targetPort") in public_names for p in svc["ports"]), "Service",
         "a targetPort is not the issuer's public port (the operator port must not be in the Service)")
    need({"kek", "database-url"} <= set(docs["Secret"].get("stringData", {})), "Secret", "kek or database-url missing")


# --- systemd/nomos-issuer.service ---------------------------------------------------
def check_systemd():
    env = {}
    for line in (DEPLOY / "systemd" / "nomos-issuer.service").read_text(encoding="utf-8").splitlines():
        if line.startswith("Environment="):
            for assignment in line[len("Environment="):].split():
                key, _, value = assignment.partition("=")
                env[key] = value
    where = "systemd/nomos-issuer.service"
    listeners(where, env)
    need(env.get("NOMOS_ISSUER_OPERATOR_LISTEN", "").startswith("127.0.0.1:"), where,
         "NOMOS_ISSUER_OPERATOR_LISTEN is not on loopback")


# --- Dockerfile ---------------------------------------------------------------------
def check_dockerfile():
    lines = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
    last_from = max(i for i, l in enumerate(lines) if l.upper().startswith("FROM "))
    runtime = lines[last_from:]
    users = [l.split()[1] for l in runtime if l.upper().startswith("USER ")]
    need(users and re.fullmatch(rf"{UID}(:{UID})?", users[-1]) is not None, "Dockerfile",
         f"the runtime stage does not end as USER {UID}:{UID}")


for check in (check_compose, check_haproxy, check_kubernetes, check_systemd, check_dockerfile):
    try:
        check()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OSError) as e:
        problems.append(f"{check.__name__}: could not read the files ({type(e).__name__}: {e})")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
