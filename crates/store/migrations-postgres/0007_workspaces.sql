-- A session's workspace on the exam page (JSON of examroom_store::Workspace): the tasks the candidate flagged and
-- visited, their notepad and the terminals they opened. The twin of SQLite's 0007.
CREATE TABLE workspaces (
    session_id TEXT   PRIMARY KEY NOT NULL REFERENCES sessions (id),
    workspace  JSONB  NOT NULL,
    updated_at BIGINT NOT NULL
);
