-- Exam sessions and their append-only audit trail (PostgreSQL; follows the SQLite migration of the same number).
--
-- Ids and enum values are TEXT in their serde (snake_case) forms, `progress`, `failure` and `data` are JSONB, times
-- are BIGINT unix milliseconds.

CREATE TABLE sessions (
    id                      TEXT    NOT NULL PRIMARY KEY,
    user_id                 TEXT    NOT NULL,
    exam_id                 TEXT    NOT NULL,
    environment_id          TEXT    NOT NULL,
    state                   TEXT    NOT NULL CHECK (state IN
                                ('created', 'provisioning', 'ready', 'active', 'terminating', 'terminated', 'failed')),
    progress                JSONB   NULL,
    created_at              BIGINT  NOT NULL,
    ready_at                BIGINT  NULL,
    started_at              BIGINT  NULL,
    deadline                BIGINT  NULL,
    duration_ms             BIGINT  NOT NULL,
    start_grace_ms          BIGINT  NOT NULL,
    provisioning_timeout_ms BIGINT  NOT NULL,
    ended_at                BIGINT  NULL,
    end_reason              TEXT    NULL CHECK (end_reason IS NULL OR end_reason IN
                                ('submitted', 'expired', 'terminated_by_proctor', 'not_started')),
    failure                 JSONB   NULL,
    resources_released_at   BIGINT  NULL,
    graded                  BOOLEAN NULL,
    updated_at              BIGINT  NOT NULL
);

-- A candidate has at most one live (not final) session. The database enforces it, so it holds under racing requests
-- (on every replica). The WHERE clause must stay identical to the "live" condition used in `src/postgres.rs`.
CREATE UNIQUE INDEX one_live_session_per_user ON sessions (user_id) WHERE state NOT IN ('terminated', 'failed');

CREATE INDEX sessions_by_state ON sessions (state);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

CREATE TABLE events (
    seq        BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (id),
    at         BIGINT  NOT NULL,
    kind       TEXT    NOT NULL,
    from_state TEXT    NULL,
    to_state   TEXT    NULL,
    reason     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    data       JSONB   NULL
);

CREATE INDEX events_by_session ON events (session_id, seq);

-- The audit trail is append-only (TRUNCATE included).
CREATE FUNCTION examroom_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION examroom_append_only('events');
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION examroom_append_only('events');
