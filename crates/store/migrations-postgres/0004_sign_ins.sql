-- Browser sign-ins (issue 9). The `examroom_session` cookie holds a random id; only its SHA-256 is stored. A sign-in
-- is valid while `signed_out_at` is NULL, `expires_at` (the token's `exp`, unix ms) has not passed, and the server's
-- token keys still have `key_fingerprint`. Rows past `expires_at` are deleted.
CREATE TABLE sign_ins (
    id_hash         TEXT   NOT NULL PRIMARY KEY,
    user_id         TEXT   NOT NULL,
    role            TEXT   NOT NULL CHECK (role IN ('candidate', 'proctor')),
    key_fingerprint TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    signed_out_at   BIGINT NULL
);

CREATE INDEX sign_ins_by_expiry ON sign_ins (expires_at);
