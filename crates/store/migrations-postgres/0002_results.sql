-- A session's result: pending while graded, then graded or not graded (JSON of examroom_core::ExamResult).
CREATE TABLE results (
    session_id TEXT   PRIMARY KEY NOT NULL REFERENCES sessions (id),
    result     JSONB  NOT NULL,
    updated_at BIGINT NOT NULL
);
