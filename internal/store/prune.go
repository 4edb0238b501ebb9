package store

import (
	"context"
	"fmt"
	"time"
)

// PruneBatch is how many rows one retention transaction deletes at most.
// Small batches keep each hold of the writer short, so polls are not held
// up while a large backlog is deleted.
const PruneBatch = 2000

// pruneSteps each delete up to ?2 rows that are no longer needed to tell
// what happened after the cutoff ?1. A check's or instance's last row before
// the cutoff is kept while nothing newer replaces it, because it says what
// the status was at the cutoff.
var pruneSteps = []struct{ what, query string }{
	{"check spans", `
		DELETE FROM check_spans WHERE (check_id, at_ms) IN (
			SELECT s.check_id, s.at_ms FROM check_spans s
			WHERE s.at_ms < ?1 AND EXISTS (
				SELECT 1 FROM check_spans n WHERE n.check_id = s.check_id AND n.at_ms > s.at_ms AND n.at_ms <= ?1)
			LIMIT ?2)`},
	{"checks gone before the cutoff", `
		DELETE FROM checks WHERE id IN (
			SELECT c.id FROM checks c
			WHERE c.status = '' AND NOT EXISTS (SELECT 1 FROM check_spans s WHERE s.check_id = c.id AND s.at_ms >= ?1)
			LIMIT ?2)`},
	{"registrations", `
		DELETE FROM registrations WHERE (instance_id, at_ms) IN (
			SELECT r.instance_id, r.at_ms FROM registrations r
			WHERE r.at_ms < ?1 AND EXISTS (
				SELECT 1 FROM registrations n WHERE n.instance_id = r.instance_id AND n.at_ms > r.at_ms AND n.at_ms <= ?1)
			LIMIT ?2)`},
	{"instances gone before the cutoff", `
		DELETE FROM instances WHERE id IN (
			SELECT i.id FROM instances i
			WHERE i.registered = 0 AND NOT EXISTS (SELECT 1 FROM registrations r WHERE r.instance_id = i.id AND r.at_ms >= ?1)
			LIMIT ?2)`},
	{"observations", `
		DELETE FROM observations WHERE id IN (SELECT id FROM observations WHERE end_ms < ?1 LIMIT ?2)`},
}

// Pruned tells what a Prune did.
type Pruned struct {
	Rows    int64
	Batches int
	// LongestBatch is the longest the writer was held by one batch: how
	// long a poll could have waited for it.
	LongestBatch time.Duration
}

// Prune deletes history from before cutoff, a batch per transaction. Rows
// of instances and checks still in Consul are never removed, only their
// older spans.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (Pruned, error) {
	var p Pruned
	for _, step := range pruneSteps {
		for {
			started := time.Now()
			res, err := s.writer.ExecContext(ctx, step.query, cutoff.UnixMilli(), PruneBatch)
			if err != nil {
				return p, fmt.Errorf("store: prune %s: %w", step.what, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return p, fmt.Errorf("store: prune %s: %w", step.what, err)
			}
			p.Rows += n
			p.Batches++
			p.LongestBatch = max(p.LongestBatch, time.Since(started))
			if n < PruneBatch {
				break
			}
		}
	}
	return p, nil
}

// Checkpoint moves the write-ahead log into the database file and empties
// it, so that file sizes tell what the history takes.
func (s *Store) Checkpoint(ctx context.Context) error {
	_, err := s.writer.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}
