-- Extra attempts at an exam that a proctor granted to a candidate (issue 9). Append-only: this table is the audit trail
-- of every grant. A candidate's allowance is the exam's `attempts` plus the sum of `extra` for (user_id, exam_id).
CREATE TABLE attempt_grants (
    seq     INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    user_id TEXT    NOT NULL,
    exam_id TEXT    NOT NULL,
    extra   INTEGER NOT NULL CHECK (extra BETWEEN 1 AND 100),
    reason  TEXT    NOT NULL,
    actor   TEXT    NOT NULL,
    at      INTEGER NOT NULL
) STRICT;

CREATE INDEX attempt_grants_by_user_exam ON attempt_grants (user_id, exam_id, seq);

CREATE TRIGGER attempt_grants_no_update BEFORE UPDATE ON attempt_grants
BEGIN
    SELECT RAISE(ABORT, 'attempt grants are append-only');
END;

CREATE TRIGGER attempt_grants_no_delete BEFORE DELETE ON attempt_grants
BEGIN
    SELECT RAISE(ABORT, 'attempt grants are append-only');
END;

-- Counting a candidate's attempts at an exam: sessions by (user, exam).
CREATE INDEX sessions_by_user_exam ON sessions (user_id, exam_id);
