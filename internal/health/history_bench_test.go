package health

import (
	"testing"
	"time"
)

// benchRecordings are n instances of one service observed all day, each
// with a check that flips a few times, as a busy deploy day might leave.
func benchRecordings(n int, until time.Time) []Recording {
	day := until.Add(-25 * time.Hour)
	always := []Period{{day, until}}
	recs := make([]Recording, n)
	for k := range recs {
		steps := []Step{{day, Passing}}
		for f := range 4 {
			at := day.Add(time.Duration(k*7919+f*3_600_000) * time.Millisecond % (24 * time.Hour))
			steps = append(steps, Step{at, Critical}, Step{at.Add(90 * time.Second), Passing})
		}
		recs[k] = Recording{Observed: always, Registered: always, Checks: [][]Step{steps}}
	}
	return recs
}

// BenchmarkHistory10k times what /api/history computes for 10,000
// instances of one service at 5 minutes: every instance's runs (timelines
// that wrap past the day's start are out of order, as a clock step leaves
// them), then the service's.
func BenchmarkHistory10k(b *testing.B) {
	until := time.Date(2026, 11, 24, 12, 7, 0, 0, time.UTC)
	recs := benchRecordings(10_000, until)
	g := 5 * time.Minute
	for b.Loop() {
		runs := make([][]Run, len(recs))
		for k, rec := range recs {
			runs[k] = Runs(rec, until, g)
		}
		ServiceRuns(runs, g)
	}
}
