#!/bin/bash
# Runs once, after the influxdb image's setup: maps InfluxQL database "seguard" (retention policy
# autogen) to the bucket, so Grafana's InfluxQL datasource reads what the gateway writes.
set -euo pipefail
bucket_id="$(influx bucket list --org "$DOCKER_INFLUXDB_INIT_ORG" --name "$DOCKER_INFLUXDB_INIT_BUCKET" --hide-headers | cut -f1)"
influx v1 dbrp create --org "$DOCKER_INFLUXDB_INIT_ORG" --bucket-id "$bucket_id" \
    --db "$DOCKER_INFLUXDB_INIT_BUCKET" --rp autogen --default
