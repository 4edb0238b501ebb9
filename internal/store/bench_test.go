package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// BenchmarkRecord measures one poll of 100 instances and reports the rows
// it writes, with no change and with one check changing.
func BenchmarkRecord(b *testing.B) {
	for _, tc := range []struct {
		name           string
		flipEveryOther bool
	}{{"no-change", false}, {"one-check-changes", true}} {
		b.Run(tc.name, func(b *testing.B) {
			s := mustOpen(b, filepath.Join(b.TempDir(), "h.db"))
			snap := cluster(100)
			flipped := withCheckStatus(snap, "service:svc-3", health.Critical)
			mustRecord(b, s, t0, snap)
			var rows, spans int
			at := t0
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				at = at.Add(time.Minute)
				poll := snap
				if tc.flipEveryOther && i%2 == 0 {
					poll = flipped
				}
				w := mustRecord(b, s, at, poll)
				rows += w.Total()
				spans += w.Spans
			}
			b.ReportMetric(float64(rows)/float64(b.N), "rows/poll")
			b.ReportMetric(float64(spans)/float64(b.N), "spans/poll")
		})
	}
}

// BenchmarkThousandPolls records 1,000 polls of 100 instances (one minute
// apart, nothing changing, then with one check flipping every poll) and
// reports the size of the database afterwards.
func BenchmarkThousandPolls(b *testing.B) {
	for _, tc := range []struct {
		name string
		flip bool
	}{{"no-change", false}, {"one-flip-per-poll", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var size int64
			for b.Loop() {
				path := filepath.Join(b.TempDir(), "h.db")
				s := mustOpen(b, path)
				snap := cluster(100)
				flipped := withCheckStatus(snap, "service:svc-3", health.Warning)
				for i := range 1000 {
					poll := snap
					if tc.flip && i%2 == 1 {
						poll = flipped
					}
					mustRecord(b, s, t0.Add(time.Duration(i)*time.Minute), poll)
				}
				size = fileSize(b, s, path)
				s.Close()
			}
			b.ReportMetric(float64(size), "db-bytes")
		})
	}
}

// fileSize checkpoints the WAL into the database file and returns the size
// of both, which is what the history takes on disk.
func fileSize(b *testing.B, s *Store, path string) int64 {
	b.Helper()
	if err := s.Checkpoint(context.Background()); err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, p := range []string{path, path + "-wal"} {
		if info, err := os.Stat(p); err == nil {
			total += info.Size()
		}
	}
	return total
}
