"""The database schema, as an ordered list of migrations keyed on ``PRAGMA user_version``.

Column names are a contract with users who query the file directly (see docs/schema.md):
add columns in a new migration, never rename or drop one.
"""

from agenttop.store.series import (
    COUNT_KEYS,
    COUNT_NAMES,
    RECORD_VALUES,
    SET_SERIES_IDS,
    UPSERT_SERIES,
)

# Marks a file as an agenttop database ("AGTP"), so that a foreign SQLite file is refused
# instead of being written into.
APPLICATION_ID = 0x41475450

MIGRATIONS: list[str] = [
    # 1: receiver tables.
    """
    CREATE TABLE resources (
        resource_id   INTEGER PRIMARY KEY,
        service       TEXT NOT NULL,
        attributes    TEXT NOT NULL,
        first_seen_ns INTEGER NOT NULL
    );

    CREATE TABLE spans (
        trace_id       TEXT NOT NULL,
        span_id        TEXT NOT NULL,
        parent_span_id TEXT,
        name           TEXT NOT NULL,
        kind           INTEGER NOT NULL,
        service        TEXT NOT NULL,
        resource_id    INTEGER NOT NULL,
        scope          TEXT NOT NULL,
        start_ns       INTEGER NOT NULL,
        end_ns         INTEGER NOT NULL,
        duration_ns    INTEGER NOT NULL,
        status_code    INTEGER NOT NULL,
        status_message TEXT NOT NULL,
        layer          TEXT NOT NULL DEFAULT 'other',
        failure        TEXT,
        attributes     TEXT NOT NULL,
        events         TEXT NOT NULL,
        links          TEXT NOT NULL,
        trace_state    TEXT NOT NULL,
        flags          INTEGER NOT NULL,
        dropped_counts TEXT,
        received_ns    INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX spans_trace ON spans (trace_id, span_id);
    CREATE INDEX spans_layer_time ON spans (layer, start_ns);

    CREATE TABLE traces (
        trace_id     TEXT PRIMARY KEY,
        root_span_id TEXT,
        root_name    TEXT,
        service      TEXT,
        start_ns     INTEGER NOT NULL,
        end_ns       INTEGER NOT NULL,
        duration_ns  INTEGER NOT NULL,
        span_count   INTEGER NOT NULL,
        error_count  INTEGER NOT NULL,
        updated_ns   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX traces_start ON traces (start_ns);

    CREATE TABLE metric_points (
        point_id        INTEGER PRIMARY KEY,
        name            TEXT NOT NULL,
        description     TEXT NOT NULL,
        unit            TEXT NOT NULL,
        type            TEXT NOT NULL,
        temporality     INTEGER,
        monotonic       INTEGER,
        service         TEXT NOT NULL,
        resource_id     INTEGER NOT NULL,
        scope           TEXT NOT NULL,
        start_ns        INTEGER NOT NULL,
        time_ns         INTEGER NOT NULL,
        value,
        count           INTEGER,
        sum             REAL,
        min             REAL,
        max             REAL,
        bounds          TEXT,
        bucket_counts   TEXT,
        scale           INTEGER,
        zero_count      INTEGER,
        zero_threshold  REAL,
        positive_offset INTEGER,
        positive_counts TEXT,
        negative_offset INTEGER,
        negative_counts TEXT,
        quantiles       TEXT,
        attributes      TEXT NOT NULL,
        flags           INTEGER NOT NULL,
        received_ns     INTEGER NOT NULL
    );
    CREATE INDEX metric_points_name_time ON metric_points (name, time_ns);

    CREATE TABLE logs (
        log_id          INTEGER PRIMARY KEY,
        time_ns         INTEGER NOT NULL,
        observed_ns     INTEGER NOT NULL,
        severity_number INTEGER NOT NULL,
        severity_text   TEXT NOT NULL,
        body            TEXT,
        trace_id        TEXT,
        span_id         TEXT,
        event_name      TEXT,
        service         TEXT NOT NULL,
        resource_id     INTEGER NOT NULL,
        scope           TEXT NOT NULL,
        attributes      TEXT NOT NULL,
        flags           INTEGER NOT NULL,
        received_ns     INTEGER NOT NULL
    );
    CREATE INDEX logs_time ON logs (time_ns);
    CREATE INDEX logs_span ON logs (trace_id, span_id) WHERE trace_id IS NOT NULL;
    """,
    # 2: analysis: normalised GenAI fields, findings, alerts, per-minute layer rollups.
    """
    ALTER TABLE spans ADD COLUMN genai TEXT;
    ALTER TABLE spans ADD COLUMN input_tokens INTEGER;
    ALTER TABLE spans ADD COLUMN output_tokens INTEGER;
    ALTER TABLE spans ADD COLUMN finding_count INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE findings (
        finding_id  INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        pattern     TEXT NOT NULL,
        trace_id    TEXT,
        span_id     TEXT,
        signal      TEXT NOT NULL,
        location    TEXT NOT NULL,
        position    INTEGER NOT NULL,
        direction   TEXT NOT NULL,
        excerpt     TEXT NOT NULL,
        service     TEXT NOT NULL,
        time_ns     INTEGER NOT NULL,
        received_ns INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX findings_unique
        ON findings (trace_id, span_id, signal, location, position, pattern);
    CREATE INDEX findings_time ON findings (time_ns);

    CREATE TABLE alerts (
        alert_id    INTEGER PRIMARY KEY,
        rule        TEXT NOT NULL,
        layer       TEXT,
        metric      TEXT,
        measure     TEXT NOT NULL,
        op          TEXT NOT NULL,
        state       TEXT NOT NULL,
        value       REAL,
        threshold   REAL NOT NULL,
        window_s    INTEGER NOT NULL,
        started_ns  INTEGER NOT NULL,
        resolved_ns INTEGER,
        updated_ns  INTEGER NOT NULL,
        message     TEXT NOT NULL
    );
    CREATE INDEX alerts_state ON alerts (state, started_ns);

    CREATE TABLE layer_minutes (
        minute            INTEGER NOT NULL,
        layer             TEXT NOT NULL,
        service           TEXT NOT NULL,
        spans             INTEGER NOT NULL,
        failures          INTEGER NOT NULL,
        f_auth            INTEGER NOT NULL,
        f_rate_limit      INTEGER NOT NULL,
        f_timeout         INTEGER NOT NULL,
        f_schema          INTEGER NOT NULL,
        f_tool_error      INTEGER NOT NULL,
        f_server          INTEGER NOT NULL,
        f_error           INTEGER NOT NULL,
        duration_sum_ns   INTEGER NOT NULL,
        duration_max_ns   INTEGER NOT NULL,
        input_tokens      INTEGER NOT NULL,
        output_tokens     INTEGER NOT NULL,
        truncated         INTEGER NOT NULL,
        content_filtered  INTEGER NOT NULL,
        retrievals        INTEGER NOT NULL,
        empty_retrievals  INTEGER NOT NULL,
        top_score_sum     REAL NOT NULL,
        top_score_count   INTEGER NOT NULL,
        eval_score_sum    REAL NOT NULL,
        eval_score_count  INTEGER NOT NULL,
        PRIMARY KEY (minute, layer, service)
    ) WITHOUT ROWID;

    CREATE TABLE layer_minute_durations (
        minute  INTEGER NOT NULL,
        layer   TEXT NOT NULL,
        service TEXT NOT NULL,
        bucket  INTEGER NOT NULL,
        count   INTEGER NOT NULL,
        PRIMARY KEY (minute, layer, service, bucket)
    ) WITHOUT ROWID;
    """,
    # 3: what the trace list shows and filters on without reading spans.
    """
    ALTER TABLE traces ADD COLUMN layers TEXT NOT NULL DEFAULT '';
    ALTER TABLE traces ADD COLUMN finding_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE traces ADD COLUMN services TEXT NOT NULL DEFAULT '';
    """,
    # 4: refused OTLP calls (agenttop/otlp/audit.py); never the token or the payload.
    """
    CREATE TABLE audit (
        audit_id INTEGER PRIMARY KEY,
        time_ns  INTEGER NOT NULL,
        peer     TEXT NOT NULL,
        signal   TEXT NOT NULL,
        reason   TEXT NOT NULL,
        count    INTEGER NOT NULL
    );
    CREATE INDEX audit_time ON audit (time_ns);
    """,
    # 5: the receiver's heartbeat and state, for readers (the TUI) to tell whether it runs.
    # One row, rewritten every few seconds by serve; status is a JSON object of counters
    # and settings keyed by the part that reports them (agenttop/store/status.py).
    """
    CREATE TABLE receiver (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        pid          INTEGER NOT NULL,
        started_ns   INTEGER NOT NULL,
        heartbeat_ns INTEGER NOT NULL,
        stopped_ns   INTEGER,
        status       TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 6: an alert's identity in parts (agenttop/store/alerts.py): the rule's name and, for a
    # metric rule, its series' labels as a JSON array of [name, value] pairs. ``rule`` keeps
    # the display form. Rows from before stay NULL here and are matched by ``rule``.
    """
    ALTER TABLE alerts ADD COLUMN rule_name TEXT;
    ALTER TABLE alerts ADD COLUMN labels TEXT;
    """,
    # 7: a log record or data point sent again (a retrying exporter, the same file imported
    # twice) is stored once, as spans are: a hash of what was received, unique. Rows from
    # before have none.
    """
    ALTER TABLE logs ADD COLUMN fingerprint INTEGER;
    CREATE UNIQUE INDEX logs_fingerprint ON logs (fingerprint) WHERE fingerprint IS NOT NULL;
    ALTER TABLE metric_points ADD COLUMN fingerprint INTEGER;
    CREATE UNIQUE INDEX metric_points_fingerprint ON metric_points (fingerprint)
        WHERE fingerprint IS NOT NULL;
    """,
    # 8: echoes. A PII finding keeps a keyed digest of its value (the key is never stored),
    # so an output that repeats what an input of the same trace held first (a graph's
    # output echoing the user's message) is marked echo = 1: not PII a model produced.
    """
    ALTER TABLE findings ADD COLUMN digest INTEGER;
    ALTER TABLE findings ADD COLUMN echo INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX findings_digest ON findings (trace_id, digest) WHERE digest IS NOT NULL;
    """,
    # 9: cost and conversations. A priced model call's cost in USD on its span (NULL: not a
    # model call with tokens, or no price known), summed per trace and per layer minute
    # with the calls that had no price (and the runs, root spans, a minute started), and a
    # per-minute rollup by model, as layer_minutes is by layer. A trace's session (the
    # conversation it is a turn of) and agents, and one row per conversation.
    """
    ALTER TABLE spans ADD COLUMN cost_usd REAL;
    ALTER TABLE traces ADD COLUMN cost_usd REAL;
    ALTER TABLE traces ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE traces ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE traces ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE traces ADD COLUMN session TEXT;
    ALTER TABLE traces ADD COLUMN agents TEXT NOT NULL DEFAULT '';
    ALTER TABLE traces ADD COLUMN models TEXT NOT NULL DEFAULT '';
    CREATE INDEX traces_session ON traces (session, start_ns) WHERE session IS NOT NULL;
    ALTER TABLE layer_minutes ADD COLUMN runs INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE layer_minutes ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
    ALTER TABLE layer_minutes ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE model_minutes (
        minute             INTEGER NOT NULL,
        provider           TEXT NOT NULL,
        model              TEXT NOT NULL,
        service            TEXT NOT NULL,
        calls              INTEGER NOT NULL,
        failures           INTEGER NOT NULL,
        rate_limits        INTEGER NOT NULL,
        input_tokens       INTEGER NOT NULL,
        output_tokens      INTEGER NOT NULL,
        cache_read_tokens  INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        reasoning_tokens   INTEGER NOT NULL,
        cost_usd           REAL NOT NULL,
        priced             INTEGER NOT NULL,
        unpriced           INTEGER NOT NULL,
        duration_sum_ns    INTEGER NOT NULL,
        duration_max_ns    INTEGER NOT NULL,
        PRIMARY KEY (minute, provider, model, service)
    ) WITHOUT ROWID;

    CREATE TABLE conversations (
        session       TEXT PRIMARY KEY,
        turns         INTEGER NOT NULL,
        first_ns      INTEGER NOT NULL,
        last_ns       INTEGER NOT NULL,
        agents        TEXT NOT NULL,
        services      TEXT NOT NULL,
        input_tokens  INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_usd      REAL,
        unpriced      INTEGER NOT NULL,
        failed_turns  INTEGER NOT NULL,
        findings      INTEGER NOT NULL,
        updated_ns    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX conversations_last ON conversations (last_ns);
    """,
    # 10: agents, tools and models. Per minute, each agent run, tool call and model call
    # counted under the agent that made it (the nearest ancestor span naming an agent; ''
    # for none), with a duration histogram per agent / tool / model. A call whose ancestors
    # have not all arrived is counted under '' and listed in pending_calls until they do
    # (then moved to its agent) or for an hour. A trace's tools, as its agents. Evaluation
    # results (gen_ai.evaluation.result events on spans or as logs) per minute, name,
    # service and label.
    """
    CREATE TABLE call_minutes (
        minute             INTEGER NOT NULL,
        kind               TEXT NOT NULL,
        caller             TEXT NOT NULL,
        provider           TEXT NOT NULL,
        name               TEXT NOT NULL,
        calls              INTEGER NOT NULL,
        failures           INTEGER NOT NULL,
        f_auth             INTEGER NOT NULL,
        f_rate_limit       INTEGER NOT NULL,
        f_timeout          INTEGER NOT NULL,
        f_schema           INTEGER NOT NULL,
        f_tool_error       INTEGER NOT NULL,
        f_server           INTEGER NOT NULL,
        f_error            INTEGER NOT NULL,
        input_tokens       INTEGER NOT NULL,
        output_tokens      INTEGER NOT NULL,
        cache_read_tokens  INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        reasoning_tokens   INTEGER NOT NULL,
        cost_usd           REAL NOT NULL,
        priced             INTEGER NOT NULL,
        unpriced           INTEGER NOT NULL,
        ttft_sum_s         REAL NOT NULL,
        ttft_count         INTEGER NOT NULL,
        PRIMARY KEY (minute, kind, caller, provider, name)
    ) WITHOUT ROWID;
    CREATE TABLE call_minute_durations (
        minute   INTEGER NOT NULL,
        kind     TEXT NOT NULL,
        provider TEXT NOT NULL,
        name     TEXT NOT NULL,
        bucket   INTEGER NOT NULL,
        count    INTEGER NOT NULL,
        PRIMARY KEY (kind, provider, name, minute, bucket)
    ) WITHOUT ROWID;
    CREATE INDEX call_minute_durations_minute ON call_minute_durations (minute);
    CREATE TABLE pending_calls (
        trace_id    TEXT NOT NULL,
        span_id     TEXT NOT NULL,
        received_ns INTEGER NOT NULL,
        PRIMARY KEY (trace_id, span_id)
    ) WITHOUT ROWID;
    CREATE INDEX pending_calls_received ON pending_calls (received_ns);
    ALTER TABLE traces ADD COLUMN tools TEXT NOT NULL DEFAULT '';

    CREATE TABLE eval_minutes (
        minute      INTEGER NOT NULL,
        name        TEXT NOT NULL,
        service     TEXT NOT NULL,
        label       TEXT NOT NULL,
        results     INTEGER NOT NULL,
        score_sum   REAL NOT NULL,
        score_count INTEGER NOT NULL,
        score_sq    REAL NOT NULL,
        score_min   REAL,
        score_max   REAL,
        PRIMARY KEY (minute, name, service, label)
    ) WITHOUT ROWID;
    """,
    # 11: metric series and cardinality (agenttop/store/series.py), kept by the writer:
    # one row per series (name, type, service, attributes as sorted JSON) with its first
    # and last point time and point count, each point's series_id, series per metric name,
    # and per metric name and attribute key the series holding it and its distinct values.
    # data_changes.version grows with every write a reader would show (data, alerts,
    # pruning) and not with the heartbeat: a reader with nothing new to show reads nothing.
    # Existing points are counted in (attributes as stored: a series sent with its keys in
    # two orders before this version shows as two).
    """
    CREATE TABLE metric_series (
        series_id  INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        type       TEXT NOT NULL,
        service    TEXT NOT NULL,
        attributes TEXT NOT NULL,
        unit       TEXT NOT NULL,
        first_ns   INTEGER NOT NULL,
        last_ns    INTEGER NOT NULL,
        points     INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX metric_series_key ON metric_series (name, type, service, attributes);
    CREATE INDEX metric_series_name_last ON metric_series (name, last_ns);
    CREATE INDEX metric_series_last ON metric_series (last_ns);
    CREATE INDEX metric_series_first ON metric_series (first_ns);
    ALTER TABLE metric_points ADD COLUMN series_id INTEGER;
    CREATE INDEX metric_points_series ON metric_points (series_id, time_ns);
    CREATE TABLE metric_names (
        name   TEXT PRIMARY KEY,
        series INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX metric_names_series ON metric_names (series);
    CREATE TABLE metric_label_keys (
        name     TEXT NOT NULL,
        key      TEXT NOT NULL,
        series   INTEGER NOT NULL,
        "values" INTEGER NOT NULL,
        PRIMARY KEY (name, key)
    ) WITHOUT ROWID;
    CREATE TABLE metric_label_values (
        name  TEXT NOT NULL,
        key   TEXT NOT NULL,
        value,
        PRIMARY KEY (name, key, value)
    ) WITHOUT ROWID;
    CREATE TABLE data_changes (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO data_changes (id, version) VALUES (1, 0);
    """ + ";\n".join(s.replace(":mark", "0").replace(":series", "0") for s in (
        UPSERT_SERIES, SET_SERIES_IDS, COUNT_NAMES, COUNT_KEYS, RECORD_VALUES)),
]

LATEST_VERSION = len(MIGRATIONS)
