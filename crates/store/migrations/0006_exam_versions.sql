-- The version of the exam definition a session started on (a SHA-256 digest, hex): the session keeps it for setup,
-- tasks and grading even after the catalog is reloaded. NULL for sessions stored before versions were recorded.
ALTER TABLE sessions ADD COLUMN exam_version TEXT CHECK (exam_version IS NULL OR length(exam_version) = 64);
