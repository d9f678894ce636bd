-- A session's workspace on the exam page (JSON of examroom_store::Workspace): the tasks the candidate flagged and
-- visited, their notepad and the terminals they opened. Kept on the server (never inside the environment) so that it
-- survives a reload or a change of computer, and the proctor can read it after the end.
CREATE TABLE workspaces (
    session_id TEXT PRIMARY KEY NOT NULL REFERENCES sessions(id),
    workspace TEXT NOT NULL CHECK (json_valid(workspace)),
    updated_at INTEGER NOT NULL
) STRICT;
