-- Check outputs are cut to --check-output-max when read; this marks the
-- ones that were.
ALTER TABLE checks ADD COLUMN output_truncated INTEGER NOT NULL DEFAULT 0;

-- A gone check's output is kept by no span and never shown again: outputs
-- that earlier versions left in such rows are dropped.
UPDATE checks SET output = '' WHERE status = '' AND output != '';
