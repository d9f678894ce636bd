-- Exam sessions and their append-only audit trail.
--
-- Ids and enum values are TEXT in their serde (snake_case) forms, `progress`, `failure` and `data` are JSON TEXT,
-- times are INTEGER unix milliseconds. STRICT tables refuse values of the wrong type.

CREATE TABLE sessions (
    id                      TEXT    NOT NULL PRIMARY KEY,
    user_id                 TEXT    NOT NULL,
    exam_id                 TEXT    NOT NULL,
    environment_id          TEXT    NOT NULL,
    state                   TEXT    NOT NULL CHECK (state IN
                                ('created', 'provisioning', 'ready', 'active', 'terminating', 'terminated', 'failed')),
    progress                TEXT    NULL CHECK (progress IS NULL OR json_valid(progress)),
    created_at              INTEGER NOT NULL,
    ready_at                INTEGER NULL,
    started_at              INTEGER NULL,
    deadline                INTEGER NULL,
    duration_ms             INTEGER NOT NULL,
    start_grace_ms          INTEGER NOT NULL,
    provisioning_timeout_ms INTEGER NOT NULL,
    ended_at                INTEGER NULL,
    end_reason              TEXT    NULL CHECK (end_reason IS NULL OR end_reason IN
                                ('submitted', 'expired', 'terminated_by_proctor', 'not_started')),
    failure                 TEXT    NULL CHECK (failure IS NULL OR json_valid(failure)),
    resources_released_at   INTEGER NULL,
    graded                  INTEGER NULL CHECK (graded IS NULL OR graded IN (0, 1)),
    updated_at              INTEGER NOT NULL
) STRICT;

-- A candidate has at most one live (not final) session. The database enforces it, so it holds under racing requests.
-- The WHERE clause must stay identical to the "live" condition used by the queries in `src/sqlite.rs`.
CREATE UNIQUE INDEX one_live_session_per_user ON sessions (user_id) WHERE state NOT IN ('terminated', 'failed');

CREATE INDEX sessions_by_state ON sessions (state);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

CREATE TABLE events (
    seq        INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    session_id TEXT    NOT NULL REFERENCES sessions (id),
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    from_state TEXT    NULL,
    to_state   TEXT    NULL,
    reason     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    data       TEXT    NULL CHECK (data IS NULL OR json_valid(data))
) STRICT;

CREATE INDEX events_by_session ON events (session_id, seq);

-- The audit trail is append-only.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
