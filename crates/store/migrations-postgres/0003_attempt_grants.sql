-- Extra attempts at an exam that a proctor granted to a candidate (issue 9). Append-only: this table is the audit trail
-- of every grant. A candidate's allowance is the exam's `attempts` plus the sum of `extra` for (user_id, exam_id).
CREATE TABLE attempt_grants (
    seq     BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id TEXT    NOT NULL,
    exam_id TEXT    NOT NULL,
    extra   BIGINT  NOT NULL CHECK (extra BETWEEN 1 AND 100),
    reason  TEXT    NOT NULL,
    actor   TEXT    NOT NULL,
    at      BIGINT  NOT NULL
);

CREATE INDEX attempt_grants_by_user_exam ON attempt_grants (user_id, exam_id, seq);

CREATE TRIGGER attempt_grants_no_update BEFORE UPDATE OR DELETE ON attempt_grants
    FOR EACH ROW EXECUTE FUNCTION examroom_append_only('attempt grants');
CREATE TRIGGER attempt_grants_no_truncate BEFORE TRUNCATE ON attempt_grants
    FOR EACH STATEMENT EXECUTE FUNCTION examroom_append_only('attempt grants');

-- Counting a candidate's attempts at an exam: sessions by (user, exam).
CREATE INDEX sessions_by_user_exam ON sessions (user_id, exam_id);
