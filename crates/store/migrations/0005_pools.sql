-- Warm pools (issue 10): environments made and set up ahead of demand, each taken (claimed) by exactly one candidate's
-- session. `owner` is the label of the server whose runtime holds the environment: a server fills, claims and retires
-- only its own; every server sees them all.
--
-- States: 'filling' (being made), 'ready' (may be claimed), 'claimed' (a session's now, for good), 'retiring' (being
-- destroyed; the row is deleted once it is gone). The triggers below allow only filling → ready | retiring and
-- ready → claimed | retiring, and keep a claimed row for good: a claimed environment never returns to the pool.
CREATE TABLE pool_environments (
    environment_id TEXT    NOT NULL PRIMARY KEY,
    owner          TEXT    NOT NULL,
    exam_id        TEXT    NOT NULL,
    exam_digest    TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('filling', 'ready', 'claimed', 'retiring')),
    created_at     INTEGER NOT NULL,
    ready_at       INTEGER NULL,
    claimed_at     INTEGER NULL,
    session_id     TEXT    NULL REFERENCES sessions (id),
    CHECK ((state = 'claimed') = (session_id IS NOT NULL AND claimed_at IS NOT NULL))
) STRICT;

-- Claims take the oldest ready environment of (owner, exam, digest).
CREATE INDEX pool_environments_ready ON pool_environments (owner, exam_id, state, exam_digest, created_at);
-- A session takes at most one environment from a pool.
CREATE UNIQUE INDEX pool_environments_one_per_session ON pool_environments (session_id) WHERE session_id IS NOT NULL;

CREATE TRIGGER pool_environments_transitions BEFORE UPDATE OF state ON pool_environments
WHEN NOT ((OLD.state = 'filling' AND NEW.state IN ('ready', 'retiring'))
       OR (OLD.state = 'ready' AND NEW.state IN ('claimed', 'retiring')))
BEGIN
    SELECT RAISE(ABORT, 'pooled environment: transition not allowed (a claimed environment never returns to the pool)');
END;

CREATE TRIGGER pool_environments_claimed_are_kept BEFORE UPDATE ON pool_environments
WHEN OLD.state = 'claimed'
BEGIN
    SELECT RAISE(ABORT, 'pooled environment: a claimed environment is kept as it is');
END;

CREATE TRIGGER pool_environments_claimed_no_delete BEFORE DELETE ON pool_environments
WHEN OLD.state = 'claimed'
BEGIN
    SELECT RAISE(ABORT, 'pooled environment: a claimed environment is kept as it is');
END;

-- Two sessions never share an environment (a pooled one, or a fresh one).
CREATE UNIQUE INDEX one_session_per_environment ON sessions (environment_id);

-- A proctor's announcement: `candidates` candidates will start `exam_id` at `at`. The pool of that exam fills from
-- `fill_from` and the announcement holds until `until`.
CREATE TABLE pool_schedules (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    exam_id      TEXT    NOT NULL,
    candidates   INTEGER NOT NULL CHECK (candidates BETWEEN 1 AND 10000),
    at           INTEGER NOT NULL,
    fill_from    INTEGER NOT NULL,
    until        INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    cancelled_at INTEGER NULL,
    CHECK (fill_from <= at AND at < until)
) STRICT;

CREATE INDEX pool_schedules_by_until ON pool_schedules (until);
