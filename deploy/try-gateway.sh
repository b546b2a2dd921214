#!/usr/bin/env bash
# Tries the gateway on this machine with nothing set up: starts mosquitto (port 1883) and
# InfluxDB 1.x (port 8086) in a temp dir, runs `seguard gateway` on
# firmware-configs/site-example.toml, and publishes sample elevator and boiler telemetry whose
# pressure ramps past the high limit and back. Ctrl-C stops everything.
# (`seguard demo` will replace this with one process and no servers to install.)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "please install: ${need[*]} (sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
export PATH="$PATH:/usr/sbin"

for port in 1883 8086 9180; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port is in use; stop what listens there first" >&2
    exit 1
  fi
done

cargo build --release --quiet
work=$(mktemp -d)
pids=()
gateway=""
# Stop the gateway first, so it can flush to the servers, then the servers.
cleanup() {
  trap - EXIT INT TERM
  [ -n "$gateway" ] && kill "$gateway" 2>/dev/null && wait "$gateway" 2>/dev/null
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nuser root\n' "$work" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 & pids+=($!)
cat > "$work/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:8088"
[meta]
  dir = "$work/meta"
[data]
  dir = "$work/data"
  wal-dir = "$work/wal"
[http]
  bind-address = "127.0.0.1:8086"
  log-enabled = false
CONF
influxd -config "$work/influxdb.conf" >"$work/influxd.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -fs http://127.0.0.1:8086/ping >/dev/null && break; sleep 0.1; done
curl -fs -XPOST http://127.0.0.1:8086/query --data-urlencode 'q=CREATE DATABASE seguard' >/dev/null

target/release/seguard gateway -c firmware-configs/site-example.toml & gateway=$!

# Sample telemetry: lift A1 moving between floors, the boiler receiver's pressure ramping up
# past its high (1.65 MPa) and high-high (1.72 MPa) limits and back down.
(
  i=0
  while sleep 1; do
    ms=$(($(date +%s%N) / 1000000))
    floor=$((i % 10 + 1))
    mosquitto_pub -p 1883 -q 1 -t site/pudong-tower-3/lift-a1/telemetry \
      -m "{\"ts\":$ms,\"car_status\":\"running\",\"direction\":\"up\",\"floor\":\"$floor\",\"door_zone\":false,\"door_closed_locked\":true,\"occupied\":true,\"service_mode\":\"normal\",\"speed\":2.5}"
    step=$((i % 40)); [ $step -gt 20 ] && step=$((40 - step))
    pa=$((1500000 + step * 12000))
    mosquitto_pub -p 1883 -q 1 -t site/pudong-tower-3/boiler/pressure \
      -m "{\"time\":\"$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)\",\"pressure_pa\":$pa,\"temperature_c\":41.5}"
    i=$((i + 1))
  done
) & pids+=($!)

cat <<TEXT

seguard gateway is running on firmware-configs/site-example.toml.
  API:       curl http://127.0.0.1:9180/api/v1/alarms   (and /metrics, /readyz, /api/v1/equipment)
  incidents: mosquitto_sub -p 1883 -v -t 'seguard/v1/#'
  InfluxDB:  curl -G http://127.0.0.1:8086/query --data-urlencode db=seguard --data-urlencode 'q=SELECT * FROM pressure_vessel ORDER BY time DESC LIMIT 5'
Ctrl-C stops it all.

TEXT
wait
