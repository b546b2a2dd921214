#!/usr/bin/env bash
# Checks deploy/docker-compose.yml without a Docker engine: the YAML parses, every file and
# folder it mounts or builds from exists, every datasource uid a dashboard names is provisioned,
# and the seguard configs it mounts pass `seguard check` (when a built binary is at hand).
# It does not run the stack: nothing here proves the containers start.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"

py=/usr/bin/python3
if ! "$py" -c 'import yaml' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y python3-yaml >/dev/null
    else
        echo "python3-yaml is missing: apt-get install python3-yaml" >&2
        exit 1
    fi
fi

"$py" - "$here" "$repo" <<'PY'
import json, os, sys, yaml

deploy, repo = sys.argv[1], sys.argv[2]
problems = []
with open(os.path.join(deploy, "docker-compose.yml")) as f:
    compose = yaml.safe_load(f)
services = compose["services"]
for name in ["mosquitto", "influxdb", "grafana", "prometheus", "postgres", "central", "gateway", "sim"]:
    if name not in services:
        problems.append(f"service {name} is missing")
named_volumes = set((compose.get("volumes") or {}).keys())
for name, service in services.items():
    build = service.get("build")
    if build:
        context = os.path.normpath(os.path.join(deploy, build["context"]))
        dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
        if not os.path.isfile(dockerfile):
            problems.append(f"{name}: dockerfile {dockerfile} does not exist")
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith((".", "/")):
            path = os.path.normpath(os.path.join(deploy, source))
            if not os.path.exists(path):
                problems.append(f"{name}: mounted {source} does not exist ({path})")
        elif source not in named_volumes:
            problems.append(f"{name}: volume {source} is not declared")
    for dep in service.get("depends_on", []):
        if dep not in services:
            problems.append(f"{name}: depends on unknown service {dep}")
    for port in service.get("ports", []):
        if not str(port).startswith("127.0.0.1:"):
            problems.append(f"{name}: port {port} is not bound to 127.0.0.1")

# Datasource uids the dashboards use must be provisioned.
with open(os.path.join(deploy, "compose/grafana/provisioning/datasources/seguard.yml")) as f:
    provisioned = {d["uid"] for d in yaml.safe_load(f)["datasources"]}
dashboards = os.path.join(repo, "dashboards")
def uids(node):
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds and not str(ds["uid"]).startswith("$"):
            yield ds["uid"]
        for value in node.values():
            yield from uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from uids(value)
n_dashboards = 0
for file in sorted(os.listdir(dashboards)):
    if file.endswith(".json"):
        n_dashboards += 1
        with open(os.path.join(dashboards, file)) as f:
            for uid in set(uids(json.load(f))):
                if uid not in provisioned:
                    problems.append(f"dashboards/{file}: datasource uid {uid} is not provisioned")
if n_dashboards == 0:
    problems.append("no dashboards in dashboards/")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"docker-compose.yml: {len(services)} services, mounts and build files present; "
      f"{n_dashboards} dashboards use provisioned datasources only")
PY

seguard="${SEGUARD_BIN:-$repo/target/release/seguard}"
[ -x "$seguard" ] || seguard="$repo/target/debug/seguard"
if [ -x "$seguard" ]; then
    SEGUARD_INFLUX_TOKEN=check-only "$seguard" check "$here/compose/site.toml"
    "$seguard" check "$here/compose/fleet.toml"
else
    echo "no built seguard binary: skipped seguard check of the compose configs" >&2
fi
