#!/usr/bin/env python3
"""Writes the Grafana dashboards of this folder from one description per panel.

Every InfluxDB panel is described once, with its query in both languages; the script writes each
dashboard twice, `<name>-flux.json` for InfluxDB 2 (Flux) and `<name>-influxql.json` for InfluxDB
1.x, 2.x (v1-compatible API) and 3.x, so the two never drift apart. PostgreSQL panels (central's
store) and Prometheus panels (the gateway's /metrics) are the same in both. Run it after editing:

    python3 dashboards/generate.py

tests/dashboards.rs checks every measurement, tag, field, table, column and Prometheus metric the
written files use against what seguard writes.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

FLUX = {"type": "influxdb", "uid": "seguard-influx-flux"}
INFLUXQL = {"type": "influxdb", "uid": "seguard-influx-influxql"}
PG = {"type": "grafana-postgresql-datasource", "uid": "seguard-central-pg"}
PROM = {"type": "prometheus", "uid": "seguard-prometheus"}

# The limits of rule `receiver-pressure` in deploy/compose/site.toml (tests/dashboards.rs checks
# that they agree): high 1.65 MPa, high-high 1.72 MPa.
PRESSURE_HIGH = 1.65
PRESSURE_HIGH_HIGH = 1.72


def flux_range(body):
    return (
        "from(bucket: v.defaultBucket)\n"
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n" + body
    )


def influx_panel(title, kind, flux, influxql, **options):
    return {"title": title, "kind": kind, "flux": flux, "influxql": influxql, **options}


def sql_panel(title, kind, sql, **options):
    return {"title": title, "kind": kind, "sql": sql, **options}


def prom_panel(title, kind, exprs, **options):
    return {"title": title, "kind": kind, "prom": exprs, **options}


# ---- Panel descriptions ---------------------------------------------------------------------

MAP_SQL = """SELECT e.id AS equipment, e.kind AS kind, e.name AS name, e.address AS address,
  e.lat AS latitude, e.lon AS longitude,
  COALESCE(MAX(CASE a.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 END), 0) AS alarm_level,
  COUNT(a.id) AS open_alarms,
  COALESCE(MAX(a.trapped), 0) AS trapped
FROM equipment e
LEFT JOIN alarms a ON a.gateway = e.gateway AND a.equipment = e.id AND a.cleared_ms IS NULL
WHERE e.lat IS NOT NULL AND e.lon IS NOT NULL
GROUP BY e.gateway, e.id, e.kind, e.name, e.address, e.lat, e.lon"""

OPEN_ALARMS_SQL = """SELECT to_timestamp(a.raised_ms / 1000.0) AS raised, a.equipment AS equipment, a.kind AS kind,
  a.severity AS severity, a.rule AS rule, a.message AS message, a.address AS address,
  to_timestamp(a.acked_ms / 1000.0) AS acknowledged, a.acked_by AS acknowledged_by
FROM alarms a
WHERE a.cleared_ms IS NULL
ORDER BY a.raised_ms DESC
LIMIT 200"""

QUALITY_FLUX = flux_range(
    '  |> filter(fn: (r) => r._measurement == "seguard_quality")\n'
    '  |> filter(fn: (r) => r._field == "bad" or r._field == "stale")\n'
    '  |> group(columns: ["equipment", "metric", "_field"])\n'
    "  |> sum()\n"
)
QUALITY_INFLUXQL = (
    'SELECT sum("bad") AS "bad", sum("stale") AS "stale" FROM "seguard_quality" '
    'WHERE $timeFilter GROUP BY "equipment", "metric"'
)

MAP_PANELS = [
    sql_panel("Equipment and alarm state", "geomap", MAP_SQL, w=24, h=14),
    sql_panel("Open alarms", "table", OPEN_ALARMS_SQL, w=14, h=9),
    influx_panel(
        "Bad and stale readings by equipment and metric",
        "table",
        QUALITY_FLUX,
        QUALITY_INFLUXQL,
        w=10,
        h=9,
    ),
]

PRESSURE_PANELS = [
    influx_panel(
        "Pressure (MPa) with the receiver-pressure limits",
        "pressure",
        flux_range(
            '  |> filter(fn: (r) => r._measurement == "pressure_vessel" or r._measurement == "autoclave")\n'
            '  |> filter(fn: (r) => r._field == "pressure")\n'
            "  |> filter(fn: (r) => r.equipment =~ /^${vessel:regex}$/)\n"
            "  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)\n"
            '  |> group(columns: ["equipment"])\n'
        ),
        'SELECT mean("pressure") AS "pressure" FROM "pressure_vessel", "autoclave" '
        'WHERE "equipment" =~ /^$vessel$/ AND $timeFilter '
        'GROUP BY time($__interval), "equipment" fill(none)',
        w=24,
        h=10,
    ),
    influx_panel(
        "Temperature (°C)",
        "timeseries",
        flux_range(
            '  |> filter(fn: (r) => r._measurement == "pressure_vessel" or r._measurement == "autoclave")\n'
            '  |> filter(fn: (r) => r._field == "temperature")\n'
            "  |> filter(fn: (r) => r.equipment =~ /^${vessel:regex}$/)\n"
            "  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)\n"
            '  |> group(columns: ["equipment"])\n'
        ),
        'SELECT mean("temperature") AS "temperature" FROM "pressure_vessel", "autoclave" '
        'WHERE "equipment" =~ /^$vessel$/ AND $timeFilter '
        'GROUP BY time($__interval), "equipment" fill(none)',
        w=12,
        h=8,
    ),
    influx_panel(
        "Autoclave door closed and locked (1) against pressure",
        "timeseries",
        flux_range(
            '  |> filter(fn: (r) => r._measurement == "autoclave")\n'
            '  |> filter(fn: (r) => r._field == "door_closed_locked" or r._field == "pressure")\n'
            "  |> filter(fn: (r) => r.equipment =~ /^${vessel:regex}$/)\n"
            '  |> map(fn: (r) => ({r with _value: if r._field == "door_closed_locked" then (if r._value == true then 1.0 else 0.0) else float(v: r._value)}))\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: last, createEmpty: false)\n"
        ),
        'SELECT last("door_closed_locked") AS "door_closed_locked", last("pressure") AS "pressure" '
        'FROM "autoclave" WHERE "equipment" =~ /^$vessel$/ AND $timeFilter '
        'GROUP BY time($__interval), "equipment" fill(none)',
        w=12,
        h=8,
    ),
]

ELEVATOR_TRAPPED_SQL = """SELECT to_timestamp(a.raised_ms / 1000.0) AS raised, a.equipment AS equipment,
  a.address AS address, a.severity AS severity, a.message AS message,
  to_timestamp(a.acked_ms / 1000.0) AS acknowledged, to_timestamp(a.cleared_ms / 1000.0) AS cleared,
  d.unit AS rescue_unit, d.status AS dispatch_status,
  (d.responded_ms - d.incident_ms) / 1000.0 AS response_s,
  (d.on_site_ms - d.incident_ms) / 1000.0 AS arrival_s
FROM alarms a
LEFT JOIN dispatches d ON d.alarm_id = a.id
WHERE a.trapped = 1 AND a.raised_ms >= $__unixEpochFrom() * 1000 AND a.raised_ms <= $__unixEpochTo() * 1000
ORDER BY a.raised_ms DESC"""

ELEVATOR_PANELS = [
    sql_panel("Trapped-passenger incidents and their rescue", "table", ELEVATOR_TRAPPED_SQL, w=24, h=9),
    influx_panel(
        "Fault codes (GB/T 24476; 0 = none)",
        "timeseries",
        flux_range(
            '  |> filter(fn: (r) => r._measurement == "elevator")\n'
            '  |> filter(fn: (r) => r._field == "fault_code")\n'
            "  |> filter(fn: (r) => r.equipment =~ /^${lift:regex}$/)\n"
            "  |> aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)\n"
            '  |> group(columns: ["equipment"])\n'
        ),
        'SELECT max("fault_code") AS "fault_code" FROM "elevator" '
        'WHERE "equipment" =~ /^$lift$/ AND $timeFilter '
        'GROUP BY time($__interval), "equipment" fill(none)',
        w=12,
        h=8,
    ),
    influx_panel(
        "Faults reported (readings with a fault code other than 0)",
        "table",
        flux_range(
            '  |> filter(fn: (r) => r._measurement == "elevator")\n'
            '  |> filter(fn: (r) => r._field == "fault_code")\n'
            "  |> filter(fn: (r) => r.equipment =~ /^${lift:regex}$/)\n"
            "  |> filter(fn: (r) => r._value != 0.0)\n"
            '  |> group(columns: ["equipment", "_value"])\n'
            "  |> count()\n"
        ),
        'SELECT count("fault_code") AS "readings" FROM "elevator" '
        'WHERE "equipment" =~ /^$lift$/ AND "fault_code" <> 0 AND $timeFilter '
        'GROUP BY "equipment"',
        w=12,
        h=8,
    ),
    influx_panel(
        "Car state now",
        "table",
        flux_range(
            '  |> filter(fn: (r) => r._measurement == "elevator")\n'
            '  |> filter(fn: (r) => r._field == "car_status" or r._field == "floor" or r._field == "door_zone" or r._field == "door_closed_locked" or r._field == "occupied" or r._field == "service_mode")\n'
            "  |> filter(fn: (r) => r.equipment =~ /^${lift:regex}$/)\n"
            "  |> last()\n"
            '  |> pivot(rowKey: ["equipment"], columnKey: ["_field"], valueColumn: "_value")\n'
            '  |> group()\n'
        ),
        'SELECT last("car_status") AS "car_status", last("floor") AS "floor", '
        'last("door_zone") AS "door_zone", last("door_closed_locked") AS "door_closed_locked", '
        'last("occupied") AS "occupied", last("service_mode") AS "service_mode" FROM "elevator" '
        'WHERE "equipment" =~ /^$lift$/ AND $timeFilter GROUP BY "equipment"',
        w=12,
        h=8,
    ),
    influx_panel(
        "Speed (m/s)",
        "timeseries",
        flux_range(
            '  |> filter(fn: (r) => r._measurement == "elevator")\n'
            '  |> filter(fn: (r) => r._field == "speed")\n'
            "  |> filter(fn: (r) => r.equipment =~ /^${lift:regex}$/)\n"
            "  |> aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)\n"
            '  |> group(columns: ["equipment"])\n'
        ),
        'SELECT max("speed") AS "speed" FROM "elevator" '
        'WHERE "equipment" =~ /^$lift$/ AND $timeFilter '
        'GROUP BY time($__interval), "equipment" fill(none)',
        w=12,
        h=8,
    ),
]

HEALTH_PANELS = [
    prom_panel("Gateway up", "stat", ['up{job="seguard-gateway"}'], w=6, h=5),
    prom_panel("MQTT connections up", "stat", ["sum by (uplink) (seguard_broker_connected)"], w=6, h=5),
    prom_panel("Alarm flood", "stat", ["max(seguard_alarm_flood)"], w=6, h=5),
    prom_panel("Alarms by state", "stat", ["sum by (state) (seguard_alarms)"], w=6, h=5),
    prom_panel(
        "Readings received per second, by source",
        "timeseries",
        ["sum by (source) (rate(seguard_readings_received_total[5m]))"],
        w=12,
        h=8,
    ),
    prom_panel(
        "Messages rejected per second, by reason",
        "timeseries",
        ["sum by (reason) (rate(seguard_messages_rejected_total[5m]))"],
        w=12,
        h=8,
    ),
    prom_panel(
        "Outbox queue depth, by lane",
        "timeseries",
        ["sum by (lane) (seguard_queue_depth)"],
        w=12,
        h=8,
    ),
    prom_panel(
        "Dropped or lost (must stay 0)",
        "timeseries",
        [
            "sum by (lane) (increase(seguard_outbox_dropped_total[1h]))",
            "sum by (lane) (increase(seguard_outbox_skipped_records_total[1h]))",
            "sum by (uplink) (increase(seguard_uplink_rejected_points_total[1h]))",
        ],
        w=12,
        h=8,
    ),
    prom_panel(
        "Uplink writes and failures per second",
        "timeseries",
        [
            "sum by (uplink) (rate(seguard_uplink_writes_total[5m]))",
            "sum by (uplink) (rate(seguard_uplink_failures_total[5m]))",
        ],
        w=12,
        h=8,
    ),
    prom_panel(
        "Uplink write latency p99 (s)",
        "timeseries",
        ["histogram_quantile(0.99, sum by (uplink, le) (rate(seguard_uplink_write_seconds_bucket[5m])))"],
        w=12,
        h=8,
    ),
    prom_panel(
        "Modbus devices online",
        "timeseries",
        ["sum by (device) (seguard_modbus_device_online)"],
        w=12,
        h=8,
    ),
    prom_panel(
        "Modbus errors per second, by device and reason",
        "timeseries",
        ["sum by (device, reason) (rate(seguard_modbus_errors_total[5m]))"],
        w=12,
        h=8,
    ),
]

# ---- Rendering ------------------------------------------------------------------------------


def target(panel, lang):
    if "sql" in panel:
        return [{"refId": "A", "datasource": PG, "rawQuery": True, "editorMode": "code",
                 "format": "table", "rawSql": panel["sql"]}]
    if "prom" in panel:
        return [{"refId": chr(ord("A") + i), "datasource": PROM, "expr": expr,
                 "legendFormat": "__auto", "range": True}
                for i, expr in enumerate(panel["prom"])]
    fmt = "table" if panel["kind"] == "table" else "time_series"
    if lang == "flux":
        return [{"refId": "A", "datasource": FLUX, "query": panel["flux"]}]
    return [{"refId": "A", "datasource": INFLUXQL, "rawQuery": True, "resultFormat": fmt,
             "query": panel["influxql"]}]


def datasource(panel, lang):
    if "sql" in panel:
        return PG
    if "prom" in panel:
        return PROM
    return FLUX if lang == "flux" else INFLUXQL


def render_panel(panel, lang, panel_id, x, y):
    kind = panel["kind"]
    out = {
        "id": panel_id,
        "title": panel["title"],
        "datasource": datasource(panel, lang),
        "gridPos": {"x": x, "y": y, "w": panel["w"], "h": panel["h"]},
        "targets": target(panel, lang),
        "options": {},
        "fieldConfig": {"defaults": {}, "overrides": []},
    }
    if kind == "pressure":
        out["type"] = "timeseries"
        out["fieldConfig"]["defaults"] = {
            "unit": "none",
            "custom": {"thresholdsStyle": {"mode": "line+area"}, "lineWidth": 2, "axisLabel": "MPa"},
            "thresholds": {
                "mode": "absolute",
                "steps": [
                    {"color": "green", "value": None},
                    {"color": "orange", "value": PRESSURE_HIGH},
                    {"color": "red", "value": PRESSURE_HIGH_HIGH},
                ],
            },
            "displayName": "${__field.labels.equipment}",
        }
        out["description"] = (
            "Limits drawn: high and high-high of rule receiver-pressure in deploy/compose/site.toml."
        )
    elif kind == "geomap":
        out["type"] = "geomap"
        out["fieldConfig"]["defaults"] = {
            "thresholds": {
                "mode": "absolute",
                "steps": [
                    {"color": "green", "value": None},
                    {"color": "yellow", "value": 1},
                    {"color": "orange", "value": 3},
                    {"color": "red", "value": 4},
                ],
            },
            "color": {"mode": "thresholds"},
        }
        out["options"] = {
            "view": {"id": "fit", "lat": 31.23, "lon": 121.47, "zoom": 12},
            "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": [{
                "type": "markers",
                "name": "Equipment",
                "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
                "config": {
                    "showLegend": True,
                    "style": {
                        "size": {"fixed": 8},
                        "color": {"field": "alarm_level"},
                        "text": {"field": "equipment", "mode": "field"},
                        "textConfig": {"fontSize": 11, "offsetY": -12},
                    },
                },
                "tooltip": True,
            }],
            "tooltip": {"mode": "details"},
        }
        out["description"] = (
            "Central's registry with each equipment's worst open alarm: 0 none, 1 low, 2 medium, "
            "3 high, 4 critical. WGS-84 as stored."
        )
    elif kind == "table":
        out["type"] = "table"
        out["options"] = {"showHeader": True}
    else:
        out["type"] = kind
    return out


def influx_variable(name, label, measurements, lang):
    if lang == "flux":
        predicate = " or ".join(f'r._measurement == "{m}"' for m in measurements)
        query = (
            'import "influxdata/influxdb/schema"\n'
            "schema.tagValues(bucket: v.defaultBucket, tag: \"equipment\", "
            f"predicate: (r) => {predicate}, start: -30d)"
        )
        ds = FLUX
    else:
        sources = ", ".join(f'"{m}"' for m in measurements)
        query = f'SHOW TAG VALUES FROM {sources} WITH KEY = "equipment"'
        ds = INFLUXQL
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": ds,
        "query": query,
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard(uid, title, panels, lang, variables, tags):
    rendered, x, y, row_h, panel_id = [], 0, 0, 0, 1
    for panel in panels:
        if x + panel["w"] > 24:
            x, y, row_h = 0, y + row_h, 0
        rendered.append(render_panel(panel, lang, panel_id, x, y))
        panel_id += 1
        x += panel["w"]
        row_h = max(row_h, panel["h"])
    suffix = {"flux": " (Flux)", "influxql": " (InfluxQL)", None: ""}[lang]
    return {
        "uid": uid,
        "title": title + suffix,
        "tags": ["seguard"] + tags + ([lang] if lang else []),
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["seguard"], "asDropdown": True, "title": "seguard"}],
        "panels": rendered,
    }


def write(name, board):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump(board, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    for lang in ("flux", "influxql"):
        write(f"equipment-map-{lang}.json",
              dashboard(f"seguard-map-{lang}", "seguard: equipment map", MAP_PANELS, lang, [], ["map"]))
        write(f"pressure-{lang}.json",
              dashboard(f"seguard-pressure-{lang}", "seguard: pressure vessels", PRESSURE_PANELS, lang,
                        [influx_variable("vessel", "Vessel", ["pressure_vessel", "autoclave"], lang)],
                        ["pressure"]))
        write(f"elevators-{lang}.json",
              dashboard(f"seguard-elevators-{lang}", "seguard: elevators, faults and trapped passengers",
                        ELEVATOR_PANELS, lang,
                        [influx_variable("lift", "Elevator", ["elevator"], lang)], ["elevator"]))
    write("gateway-health.json",
          dashboard("seguard-gateway-health", "seguard: gateway health", HEALTH_PANELS, None, [], ["health"]))


if __name__ == "__main__":
    main()
