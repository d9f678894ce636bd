-- The version of the exam definition a session started on (a SHA-256 digest, hex). NULL for older sessions.
ALTER TABLE sessions ADD COLUMN exam_version TEXT CHECK (exam_version IS NULL OR length(exam_version) = 64);
