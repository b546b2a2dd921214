//! The one schema, for SQLite and PostgreSQL alike. Portable SQL only: TEXT, BIGINT and
//! DOUBLE PRECISION columns, times as UTC milliseconds (BIGINT), flags as 0/1 BIGINT, ids as
//! text (UUIDs and random hex), upserts with `ON CONFLICT`. A migration is a list of statements
//! applied in one transaction and recorded in `schema_migrations`; never edit a released one,
//! add the next.

pub const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE gateways (
            id TEXT PRIMARY KEY,
            site TEXT NOT NULL,
            state TEXT NOT NULL,
            since_ms BIGINT,
            updated_ms BIGINT NOT NULL)",
            "CREATE TABLE equipment (
            gateway TEXT NOT NULL,
            id TEXT NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            registration_code TEXT NOT NULL,
            using_unit TEXT NOT NULL,
            maintenance_unit TEXT,
            address TEXT NOT NULL,
            lat DOUBLE PRECISION,
            lon DOUBLE PRECISION,
            next_inspection TEXT,
            insured BIGINT,
            site TEXT NOT NULL,
            record TEXT NOT NULL,
            updated_ms BIGINT NOT NULL,
            PRIMARY KEY (gateway, id))",
            // Every alarm event received, once: the primary key is the event id.
            "CREATE TABLE events (
            id TEXT PRIMARY KEY,
            alarm_id TEXT,
            gateway TEXT NOT NULL,
            equipment TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            transition TEXT NOT NULL,
            time_ms BIGINT NOT NULL,
            value DOUBLE PRECISION,
            limit_value DOUBLE PRECISION,
            message TEXT NOT NULL,
            source TEXT NOT NULL,
            received_ms BIGINT NOT NULL,
            payload TEXT NOT NULL)",
            "CREATE INDEX events_alarm ON events (alarm_id, time_ms)",
            // One row per alarm occurrence (raise .. clear), with its acknowledgement.
            "CREATE TABLE alarms (
            id TEXT PRIMARY KEY,
            gateway TEXT NOT NULL,
            equipment TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            kind TEXT NOT NULL,
            using_unit TEXT NOT NULL,
            address TEXT NOT NULL,
            trapped BIGINT NOT NULL,
            message TEXT NOT NULL,
            raised_ms BIGINT NOT NULL,
            cleared_ms BIGINT,
            acked_ms BIGINT,
            acked_by TEXT,
            ack_comment TEXT)",
            "CREATE INDEX alarms_open ON alarms (gateway, equipment, rule, severity, cleared_ms)",
            "CREATE INDEX alarms_raised ON alarms (raised_ms)",
            "CREATE TABLE fill_records (
            id TEXT PRIMARY KEY,
            gateway TEXT NOT NULL,
            cylinder_code TEXT NOT NULL,
            labelled BIGINT NOT NULL,
            station TEXT NOT NULL,
            time_ms BIGINT NOT NULL,
            record TEXT NOT NULL)",
            // A rescue dispatch and its timer. `next_check_ms` is when the escalation check is due;
            // any instance may run it, and a compare-and-set on (level, status, next_check_ms)
            // makes sure only one does.
            "CREATE TABLE dispatches (
            id TEXT PRIMARY KEY,
            order_no TEXT NOT NULL UNIQUE,
            alarm_id TEXT NOT NULL UNIQUE,
            event_id TEXT NOT NULL,
            gateway TEXT NOT NULL,
            equipment TEXT NOT NULL,
            incident_ms BIGINT NOT NULL,
            created_ms BIGINT NOT NULL,
            status TEXT NOT NULL,
            level BIGINT NOT NULL,
            unit TEXT NOT NULL,
            unit_phone TEXT NOT NULL,
            chain TEXT NOT NULL,
            level_started_ms BIGINT NOT NULL,
            next_check_ms BIGINT,
            responded_ms BIGINT,
            on_site_ms BIGINT,
            closed_ms BIGINT,
            record TEXT NOT NULL)",
            // The rescue page links: one per called unit, kept as SHA-256 only; the unit is who
            // the steps made with the link are recorded as.
            "CREATE TABLE dispatch_links (
            token_sha256 TEXT PRIMARY KEY,
            dispatch_id TEXT NOT NULL,
            unit TEXT NOT NULL,
            created_ms BIGINT NOT NULL)",
            "CREATE INDEX dispatches_due ON dispatches (next_check_ms)",
            "CREATE TABLE dispatch_steps (
            id TEXT PRIMARY KEY,
            dispatch_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            at_ms BIGINT NOT NULL,
            step TEXT NOT NULL,
            level BIGINT NOT NULL,
            unit TEXT NOT NULL,
            actor TEXT NOT NULL,
            note TEXT NOT NULL)",
            "CREATE UNIQUE INDEX dispatch_steps_seq ON dispatch_steps (dispatch_id, seq)",
            // Messages to rescue units, written in the same transaction as the step that causes
            // them, delivered at least once by whichever instance claims them.
            "CREATE TABLE notifications (
            id TEXT PRIMARY KEY,
            dispatch_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            target TEXT NOT NULL,
            subject TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            next_attempt_ms BIGINT NOT NULL,
            attempts BIGINT NOT NULL,
            sent_ms BIGINT,
            owner TEXT,
            lease_until_ms BIGINT,
            last_error TEXT)",
            "CREATE INDEX notifications_due ON notifications (sent_ms, next_attempt_ms)",
            "CREATE TABLE audit_log (
            id TEXT PRIMARY KEY,
            at_ms BIGINT NOT NULL,
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL)",
        ],
    ),
    (
        2,
        &[
            // Fill records arrive from the gateways over MQTT (`{prefix}/{gateway}/fills`).
            "ALTER TABLE fill_records ADD COLUMN received_ms BIGINT",
            "CREATE INDEX fill_records_cylinder ON fill_records (cylinder_code, time_ms)",
        ],
    ),
    (
        3,
        &[
            // What intake repaired in a stored event (`central/clean.rs`), comma-separated.
            "ALTER TABLE events ADD COLUMN intake_notes TEXT",
            // Messages intake refused, kept for operators (the newest `[intake] rejected_keep`).
            "CREATE TABLE rejected_messages (
            id TEXT PRIMARY KEY,
            received_ms BIGINT NOT NULL,
            topic TEXT NOT NULL,
            message_id TEXT,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            payload TEXT NOT NULL,
            payload_bytes BIGINT NOT NULL)",
            "CREATE INDEX rejected_messages_received ON rejected_messages (received_ms)",
        ],
    ),
    (
        4,
        &[
            // Event ids are unique per gateway, not across gateways: the key becomes
            // (gateway, id). SQLite cannot change a primary key in place, so the table is
            // copied (the same statements run on PostgreSQL).
            "CREATE TABLE events_by_gateway (
            id TEXT NOT NULL,
            alarm_id TEXT,
            gateway TEXT NOT NULL,
            equipment TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            transition TEXT NOT NULL,
            time_ms BIGINT NOT NULL,
            value DOUBLE PRECISION,
            limit_value DOUBLE PRECISION,
            message TEXT NOT NULL,
            source TEXT NOT NULL,
            received_ms BIGINT NOT NULL,
            payload TEXT NOT NULL,
            intake_notes TEXT,
            PRIMARY KEY (gateway, id))",
            "INSERT INTO events_by_gateway (id, alarm_id, gateway, equipment, rule, severity, transition, time_ms,
                value, limit_value, message, source, received_ms, payload, intake_notes)
             SELECT id, alarm_id, gateway, equipment, rule, severity, transition, time_ms, value, limit_value,
                message, source, received_ms, payload, intake_notes FROM events",
            "DROP TABLE events",
            "ALTER TABLE events_by_gateway RENAME TO events",
            "CREATE INDEX events_alarm ON events (alarm_id, time_ms)",
        ],
    ),
    (
        5,
        &[
            // The alarm list is filtered, ordered by (raised_ms, id) and paged in SQL
            // (store/alarms.rs): one index for any filter, one for the active alarms.
            "DROP INDEX IF EXISTS alarms_raised",
            "CREATE INDEX alarms_list ON alarms (raised_ms, id)",
            "CREATE INDEX alarms_open_list ON alarms (cleared_ms, raised_ms, id)",
        ],
    ),
    (
        6,
        &[
            // Inspection reports an agency posted (`central/hazards.rs`), once per (agency,
            // report number).
            "CREATE TABLE inspection_reports (
            id TEXT PRIMARY KEY,
            agency TEXT NOT NULL,
            report_no TEXT NOT NULL,
            gateway TEXT NOT NULL,
            equipment TEXT NOT NULL,
            using_unit TEXT NOT NULL,
            manufacturer TEXT,
            conclusion TEXT NOT NULL,
            inspected_on TEXT NOT NULL,
            received_ms BIGINT NOT NULL,
            record TEXT NOT NULL,
            UNIQUE (agency, report_no))",
            // Each hazard a report found: an item on the using unit's ledger (and the
            // manufacturer's when `product_defect`), open until a regulator or the agency
            // verifies the correction. `overdue_alarm_id` is set once, by a compare-and-set,
            // when its overdue alarm is raised.
            "CREATE TABLE hazards (
            id TEXT PRIMARY KEY,
            report_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            gateway TEXT NOT NULL,
            equipment TEXT NOT NULL,
            using_unit TEXT NOT NULL,
            manufacturer TEXT,
            product_defect BIGINT NOT NULL,
            description TEXT NOT NULL,
            severity TEXT NOT NULL,
            legal_basis TEXT NOT NULL,
            deadline TEXT NOT NULL,
            status TEXT NOT NULL,
            cause TEXT,
            responsibility TEXT,
            corrective_action TEXT,
            corrected_ms BIGINT,
            corrected_by TEXT,
            verified_ms BIGINT,
            verified_by TEXT,
            review_note TEXT,
            overdue_alarm_id TEXT,
            created_ms BIGINT NOT NULL)",
            "CREATE INDEX hazards_status ON hazards (status, deadline)",
        ],
    ),
    (
        7,
        &[
            // Regional alarm floods (central/flood.rs): a situation groups the alarms raised
            // around one place within the flood window; its dispatches and their notification
            // rows name it, so the board shows them together and each unit gets one message
            // per batch period.
            "CREATE TABLE situations (
            id TEXT PRIMARY KEY,
            lat DOUBLE PRECISION NOT NULL,
            lon DOUBLE PRECISION NOT NULL,
            radius_km DOUBLE PRECISION NOT NULL,
            started_ms BIGINT NOT NULL,
            ended_ms BIGINT)",
            "CREATE INDEX situations_open ON situations (ended_ms)",
            "ALTER TABLE alarms ADD COLUMN situation_id TEXT",
            "CREATE INDEX alarms_situation ON alarms (situation_id, raised_ms)",
            "ALTER TABLE dispatches ADD COLUMN situation_id TEXT",
            "CREATE INDEX dispatches_situation ON dispatches (situation_id)",
            "ALTER TABLE notifications ADD COLUMN situation_id TEXT",
        ],
    ),
    (
        8,
        &[
            // The cylinder register as the filling units' registers give it (CSV import,
            // `central/cylinders.rs`); codes seen only in fills are registered nowhere.
            "CREATE TABLE cylinders (
            code TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            medium TEXT NOT NULL,
            cylinder_type TEXT NOT NULL,
            made TEXT,
            last_inspection TEXT,
            next_inspection TEXT,
            scrapped BIGINT NOT NULL,
            insured BIGINT,
            updated_ms BIGINT NOT NULL)",
            // What changed in the register: registered, owner changed, inspected, scrapped.
            "CREATE TABLE cylinder_events (
            id TEXT PRIMARY KEY,
            code TEXT NOT NULL,
            at_ms BIGINT NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL)",
            "CREATE INDEX cylinder_events_code ON cylinder_events (code, at_ms)",
        ],
    ),
    (
        9,
        &[
            // The upward exchange's durable queue (`central/exchange.rs`): one row per record,
            // keyed by what the receiver deduplicates on; deleted never, marked sent once the
            // higher-level platform confirmed it.
            "CREATE TABLE exchange_queue (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            record TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            attempts BIGINT NOT NULL,
            next_attempt_ms BIGINT NOT NULL,
            sent_ms BIGINT,
            last_error TEXT)",
            "CREATE INDEX exchange_queue_due ON exchange_queue (sent_ms, next_attempt_ms)",
        ],
    ),
    (
        10,
        &[
            // The alarm list's area filter is an equality on the area the address lies in
            // (`trends::area_of`, lowercased), not a scan of every address; rows stored before
            // are filled in by `Store::backfill_alarm_areas` at start.
            "ALTER TABLE alarms ADD COLUMN area TEXT",
            "CREATE INDEX alarms_area ON alarms (area, raised_ms, id)",
            // The dispatch board is paged newest first, open ones on their own
            // (`store/dispatches.rs`); a rescue team's list finds its dispatches by unit.
            "CREATE INDEX dispatches_list ON dispatches (created_ms, id)",
            "CREATE INDEX dispatches_open_list ON dispatches (closed_ms, created_ms, id)",
            "CREATE INDEX dispatch_steps_unit ON dispatch_steps (unit, dispatch_id)",
            // The equipment page (opened from a map marker) reads its latest readings and its
            // dispatches by equipment.
            "CREATE INDEX events_equipment ON events (gateway, equipment, time_ms)",
            "CREATE INDEX dispatches_equipment ON dispatches (gateway, equipment, created_ms)",
        ],
    ),
    (
        11,
        &[
            // Where a register row comes from: `register` (a filling unit's register, imported)
            // or `fills` (a code the gateways reported in fills that no register declared; an
            // import later fills in its details).
            "ALTER TABLE cylinders ADD COLUMN origin TEXT NOT NULL DEFAULT 'register'",
        ],
    ),
    (
        12,
        &[
            // An equipment unit's page of the equipment list and its counts
            // (`store/equipment_list.rs`) read its own rows, not the city's; the index holds
            // every column they rank by.
            "CREATE INDEX equipment_unit ON equipment (using_unit, name, gateway, id, next_inspection)",
            // A regulator's page reads the city by name the same way, a state at a time.
            "CREATE INDEX equipment_name ON equipment (name, gateway, id, next_inspection)",
        ],
    ),
    (
        13,
        &[
            // A record the higher-level platform refused (a 4xx that judges its content, found
            // by bisecting its batch, `central/exchange.rs`) is set aside: kept, never retried
            // on its own, listed for the regulator with the receiver's status and an excerpt of
            // its answer until re-queued.
            "ALTER TABLE exchange_queue ADD COLUMN refused_ms BIGINT",
            "ALTER TABLE exchange_queue ADD COLUMN refused_status BIGINT",
            "ALTER TABLE exchange_queue ADD COLUMN refused_answer TEXT",
            "CREATE INDEX exchange_queue_refused ON exchange_queue (refused_ms)",
        ],
    ),
    (
        14,
        &[
            // The equipment counts (`store/equipment_list.rs`) count the city's pieces past
            // inspection off this index instead of reading every row.
            "CREATE INDEX equipment_inspection ON equipment (next_inspection)",
        ],
    ),
];
