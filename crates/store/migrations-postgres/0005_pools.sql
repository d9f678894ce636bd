-- Warm pools (issue 10); see the SQLite migration of the same number for the rules. The triggers allow only
-- filling → ready | retiring and ready → claimed | retiring, and keep a claimed row for good.
CREATE TABLE pool_environments (
    environment_id TEXT   NOT NULL PRIMARY KEY,
    owner          TEXT   NOT NULL,
    exam_id        TEXT   NOT NULL,
    exam_digest    TEXT   NOT NULL,
    state          TEXT   NOT NULL CHECK (state IN ('filling', 'ready', 'claimed', 'retiring')),
    created_at     BIGINT NOT NULL,
    ready_at       BIGINT NULL,
    claimed_at     BIGINT NULL,
    session_id     TEXT   NULL REFERENCES sessions (id),
    CHECK ((state = 'claimed') = (session_id IS NOT NULL AND claimed_at IS NOT NULL))
);

CREATE INDEX pool_environments_ready ON pool_environments (owner, exam_id, state, exam_digest, created_at);
CREATE UNIQUE INDEX pool_environments_one_per_session ON pool_environments (session_id) WHERE session_id IS NOT NULL;

CREATE FUNCTION examroom_pool_environments_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.state = 'claimed' THEN
            RAISE EXCEPTION 'pooled environment: a claimed environment is kept as it is';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.state = 'claimed' THEN
        RAISE EXCEPTION 'pooled environment: a claimed environment is kept as it is';
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state AND NOT (
           (OLD.state = 'filling' AND NEW.state IN ('ready', 'retiring'))
        OR (OLD.state = 'ready' AND NEW.state IN ('claimed', 'retiring'))) THEN
        RAISE EXCEPTION 'pooled environment: transition not allowed (a claimed environment never returns to the pool)';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER pool_environments_guard BEFORE UPDATE OR DELETE ON pool_environments
    FOR EACH ROW EXECUTE FUNCTION examroom_pool_environments_guard();

-- Two sessions never share an environment (a pooled one, or a fresh one).
CREATE UNIQUE INDEX one_session_per_environment ON sessions (environment_id);

CREATE TABLE pool_schedules (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exam_id      TEXT   NOT NULL,
    candidates   BIGINT NOT NULL CHECK (candidates BETWEEN 1 AND 10000),
    at           BIGINT NOT NULL,
    fill_from    BIGINT NOT NULL,
    until        BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    actor        TEXT   NOT NULL,
    cancelled_at BIGINT NULL,
    CHECK (fill_from <= at AND at < until)
);

CREATE INDEX pool_schedules_by_until ON pool_schedules (until);
