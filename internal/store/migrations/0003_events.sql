-- Each status change keeps the status it left and the check's output at
-- the change, written with it, so that it reads as an event
-- (/api/events) and goes with it when retention deletes the span.
-- output is cut to health.EventOutputMax bytes; output_truncated marks it.
ALTER TABLE check_spans ADD COLUMN from_status TEXT NOT NULL DEFAULT '';
ALTER TABLE check_spans ADD COLUMN output TEXT NOT NULL DEFAULT '';
ALTER TABLE check_spans ADD COLUMN output_truncated INTEGER NOT NULL DEFAULT 0;

-- Spans written before this migration get the status before them from the
-- span before them; their output was not kept.
UPDATE check_spans SET from_status = coalesce((
	SELECT p.status FROM check_spans p
	WHERE p.check_id = check_spans.check_id AND p.at_ms < check_spans.at_ms
	ORDER BY p.at_ms DESC LIMIT 1), '');

-- Events are listed newest first across all checks and instances; these
-- let a page of them be read from the newest end without a sort.
CREATE INDEX check_spans_by_time ON check_spans (at_ms);
-- The same for the changes to one status, however rare.
CREATE INDEX check_spans_by_status ON check_spans (status, at_ms);
CREATE INDEX registrations_by_time ON registrations (at_ms);
-- The service filter finds the nodes a service runs on.
CREATE INDEX instances_by_name ON instances (name);
