package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// A backlog larger than one batch is deleted entirely, in several batches:
// Prune must not stop after the first.
func TestPruneDeletesABacklogOfSeveralBatches(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(1)
	mustRecord(t, s, t0, snap)
	// One and a half batches of older changes of svc-0's check, one a
	// millisecond, written in one statement: recording them poll by poll
	// takes minutes under -race.
	backlog := PruneBatch + PruneBatch/2
	_, err := s.writer.ExecContext(ctx, `
		WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?2)
		INSERT INTO check_spans (check_id, at_ms, status)
		SELECT (SELECT id FROM checks WHERE check_id = 'service:svc-0'), ?1 + n,
			CASE n % 2 WHEN 1 THEN 'critical' ELSE 'passing' END FROM seq`,
		t0.UnixMilli(), backlog)
	if err != nil {
		t.Fatal(err)
	}
	mustRecord(t, s, t0.Add(time.Hour), snap)
	// svc-0's spans, and serfHealth's and svc-0's first from the first poll.
	if got := countRows(t, s, "check_spans"); got != backlog+2 {
		t.Fatalf("%d spans before pruning, want %d", got, backlog+2)
	}

	cutoff := t0.Add(time.Minute)
	pruned, err := s.Prune(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	// Every span of svc-0 but the last before the cutoff is superseded;
	// the last says what the check was at the cutoff, and stays.
	if got := countRows(t, s, "check_spans"); got != 2 {
		t.Errorf("%d spans after pruning, want 2: a batch was left behind", got)
	}
	// Two batches for the spans (a full one, then the rest), one for each other step.
	if pruned.Rows != int64(backlog) || pruned.Batches != len(pruneSteps)+1 {
		t.Errorf("pruned %+v, want %d rows in %d batches", pruned, backlog, len(pruneSteps)+1)
	}
	rec, err := s.Recording(ctx, "n0/svc-0", cutoff, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// backlog is even, so the last change is to passing.
	last := health.Step{At: t0.Add(time.Duration(backlog) * time.Millisecond), Status: health.Passing}
	if len(rec.Checks) != 2 || len(rec.Checks[1]) != 1 || rec.Checks[1][0] != last {
		t.Errorf("status at the cutoff: %+v, want svc-0's check at %+v", rec.Checks, last)
	}
}
