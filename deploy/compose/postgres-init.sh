#!/bin/bash
# Runs once when the postgres volume is created. Central owns the schema (it migrates at start);
# Grafana reads it with a role that can only SELECT.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$GRAFANA_PG_PASSWORD" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE seguard TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE seguard IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL
