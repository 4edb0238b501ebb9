package health

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// at parses a UTC clock time on 2026-11-24 ("12:07") or a full RFC 3339 time.
func at(t *testing.T, clock string) time.Time {
	t.Helper()
	if len(clock) == 5 {
		clock = "2026-11-24T" + clock + ":00Z"
	}
	v, err := time.Parse(time.RFC3339, clock)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// windowAt finds the window starting at clock.
func windowAt(t *testing.T, ws []Window, clock string) Window {
	t.Helper()
	start := at(t, clock)
	for _, w := range ws {
		if w.Start.Equal(start) {
			return w
		}
	}
	t.Fatalf("no window starts at %s", clock)
	return Window{}
}

func wantWindow(t *testing.T, got Window, passing, warning, critical, nodata float64) {
	t.Helper()
	if got.Passing != passing || got.Warning != warning || got.Critical != critical || got.NoData != nodata {
		t.Errorf("window %s = passing %v warning %v critical %v nodata %v, want %v %v %v %v",
			got.Start.Format("15:04"), got.Passing, got.Warning, got.Critical, got.NoData, passing, warning, critical, nodata)
	}
}

func TestWindowsCountAndAlignment(t *testing.T) {
	tests := []struct {
		now         string
		granularity time.Duration
		count       int
		first       string
	}{
		{"12:07", 15 * time.Minute, 97, "2026-11-23T12:00:00Z"}, // 96 full windows and the current one
		{"12:00", 60 * time.Minute, 24, "2026-11-23T12:00:00Z"}, // aligned now: exactly 24 h
		{"12:30", 60 * time.Minute, 25, "2026-11-23T12:00:00Z"},
		{"12:00", 5 * time.Minute, 288, "2026-11-23T12:00:00Z"},
		{"12:01", 5 * time.Minute, 289, "2026-11-23T12:00:00Z"},
		{"00:10", 30 * time.Minute, 49, "2026-11-23T00:00:00Z"},
	}
	for _, tt := range tests {
		now := at(t, tt.now)
		ws := Windows(Recording{}, now, tt.granularity)
		if len(ws) != tt.count {
			t.Errorf("now %s, %v: %d windows, want %d", tt.now, tt.granularity, len(ws), tt.count)
			continue
		}
		if !ws[0].Start.Equal(at(t, tt.first)) {
			t.Errorf("now %s, %v: first window %s, want %s", tt.now, tt.granularity, ws[0].Start, tt.first)
		}
		for i, w := range ws {
			if w.Start.Location() != time.UTC || w.Start.Sub(ws[0].Start) != time.Duration(i)*tt.granularity {
				t.Fatalf("window %d starts at %s", i, w.Start)
			}
			// Nothing recorded: every window is entirely no data.
			if w.NoData != 100 {
				t.Fatalf("window %d has %v%% no data, want 100", i, w.NoData)
			}
		}
	}
}

func TestWindowsTimeInStatus(t *testing.T) {
	now := at(t, "12:07")
	dayBefore := at(t, "2026-11-23T00:00:00Z")
	always := []Period{{dayBefore, now}}
	passingSince := func(steps ...Step) []Step {
		return append([]Step{{dayBefore, Passing}}, steps...)
	}

	t.Run("passing all day", func(t *testing.T) {
		ws := Windows(Recording{Observed: always, Registered: always, Checks: [][]Step{passingSince()}}, now, 15*time.Minute)
		for _, w := range ws {
			wantWindow(t, w, 100, 0, 0, 0)
		}
	})

	t.Run("span crossing a window edge and the current window", func(t *testing.T) {
		rec := Recording{Observed: always, Registered: always, Checks: [][]Step{passingSince(
			Step{at(t, "11:50"), Critical},
			Step{at(t, "12:05"), Passing},
		)}}
		ws := Windows(rec, now, 15*time.Minute)
		wantWindow(t, windowAt(t, ws, "11:30"), 100, 0, 0, 0)
		// 11:45-11:50 passing (5 of 15 min), 11:50-12:00 critical (10 of 15).
		wantWindow(t, windowAt(t, ws, "11:45"), 33.3, 0, 66.7, 0)
		// Current window, 7 min elapsed: critical 12:00-12:05 (5/7 = 71.43%),
		// passing 12:05-12:07 (2/7 = 28.57%).
		wantWindow(t, windowAt(t, ws, "12:00"), 28.6, 0, 71.4, 0)
	})

	t.Run("a gap in observation is no data, not the status before it", func(t *testing.T) {
		rec := Recording{
			Observed:   []Period{{dayBefore, at(t, "11:33")}, {at(t, "11:36"), now}},
			Registered: always,
			Checks:     [][]Step{passingSince()},
		}
		ws := Windows(rec, now, 15*time.Minute)
		// 11:30-11:33 and 11:36-11:45 passing (12 of 15 min), 3 min unobserved.
		wantWindow(t, windowAt(t, ws, "11:30"), 80, 0, 0, 20)
		wantWindow(t, windowAt(t, ws, "11:45"), 100, 0, 0, 0)
	})

	t.Run("a five minute flap inside a fifteen minute window", func(t *testing.T) {
		rec := Recording{Observed: always, Registered: always, Checks: [][]Step{passingSince(
			Step{at(t, "10:05"), Warning},
			Step{at(t, "10:10"), Passing},
		)}}
		ws15 := Windows(rec, now, 15*time.Minute)
		wantWindow(t, windowAt(t, ws15, "10:00"), 66.7, 33.3, 0, 0)
		// At 5-minute granularity the flap fills exactly one window.
		ws5 := Windows(rec, now, 5*time.Minute)
		wantWindow(t, windowAt(t, ws5, "10:00"), 100, 0, 0, 0)
		wantWindow(t, windowAt(t, ws5, "10:05"), 0, 100, 0, 0)
		wantWindow(t, windowAt(t, ws5, "10:10"), 100, 0, 0, 0)
		// At an hour it is 5 of 60 minutes: 8.33%.
		ws60 := Windows(rec, now, time.Hour)
		wantWindow(t, windowAt(t, ws60, "10:00"), 91.7, 8.3, 0, 0)
	})

	t.Run("equal thirds still sum to 100", func(t *testing.T) {
		rec := Recording{Observed: always, Registered: always, Checks: [][]Step{passingSince(
			Step{at(t, "09:05"), Warning},
			Step{at(t, "09:10"), Critical},
			Step{at(t, "09:15"), Passing},
		)}}
		// Each third is 33.33...%; the 0.1 left over goes to the first.
		wantWindow(t, windowAt(t, Windows(rec, now, 15*time.Minute), "09:00"), 33.4, 33.3, 33.3, 0)
	})

	t.Run("time before registration is no data", func(t *testing.T) {
		rec := Recording{
			Observed:   always,
			Registered: []Period{{at(t, "11:40"), now}},
			Checks:     [][]Step{{{at(t, "11:40"), Passing}}},
		}
		ws := Windows(rec, now, 15*time.Minute)
		wantWindow(t, windowAt(t, ws, "11:15"), 0, 0, 0, 100)
		wantWindow(t, windowAt(t, ws, "11:30"), 33.3, 0, 0, 66.7)
	})

	t.Run("worst of several checks, node check included", func(t *testing.T) {
		service := passingSince(Step{at(t, "08:03"), Warning}, Step{at(t, "08:09"), Passing})
		node := passingSince(Step{at(t, "08:06"), Critical}, Step{at(t, "08:12"), Passing})
		rec := Recording{Observed: always, Registered: always, Checks: [][]Step{service, node}}
		// 08:00-08:03 passing, 08:03-08:06 warning, 08:06-08:12 critical, 08:12-08:15 passing.
		wantWindow(t, windowAt(t, Windows(rec, now, 15*time.Minute), "08:00"), 40, 20, 40, 0)
	})

	t.Run("maintenance counts as critical, no checks as no data", func(t *testing.T) {
		maintenance := []Step{{dayBefore, ""}, {at(t, "07:00"), Maintenance}, {at(t, "07:05"), ""}}
		maintenanceByID := []Step{{dayBefore, ""}, {at(t, "07:05"), Critical}, {at(t, "07:10"), ""}}
		rec := Recording{Observed: always, Registered: always, Checks: [][]Step{maintenance, maintenanceByID}}
		// 07:00-07:10 critical-like, 07:10-07:15 no check present at all.
		wantWindow(t, windowAt(t, Windows(rec, now, 15*time.Minute), "07:00"), 0, 0, 66.7, 33.3)
	})

	t.Run("deregistered check no longer counts", func(t *testing.T) {
		gone := passingSince(Step{at(t, "06:00"), Critical}, Step{at(t, "06:05"), ""})
		stays := passingSince()
		rec := Recording{Observed: always, Registered: always, Checks: [][]Step{gone, stays}}
		wantWindow(t, windowAt(t, Windows(rec, now, 15*time.Minute), "06:00"), 66.7, 0, 33.3, 0)
	})

	t.Run("history older than the window does not leak in", func(t *testing.T) {
		rec := Recording{
			Observed:   []Period{{at(t, "2026-11-22T00:00:00Z"), at(t, "2026-11-23T12:05:00Z")}},
			Registered: always,
			Checks:     [][]Step{{{at(t, "2026-11-22T00:00:00Z"), Critical}}},
		}
		ws := Windows(rec, now, 15*time.Minute)
		// The first window starts at 12:00 the day before; 5 of its 15 min were observed.
		wantWindow(t, ws[0], 0, 0, 33.3, 66.7)
		wantWindow(t, ws[1], 0, 0, 0, 100)
	})
}

func TestPercentagesAlwaysSumTo100(t *testing.T) {
	whole := 7 * time.Minute
	for a := time.Duration(0); a <= whole; a += 13 * time.Second {
		for b := time.Duration(0); a+b <= whole; b += 29 * time.Second {
			parts := [bucketCount]time.Duration{a, b, 0, whole - a - b}
			var tenths int
			for _, p := range percentages(parts, whole) {
				tenths += int(p*10 + 0.5)
			}
			if tenths != 1000 {
				t.Fatalf("parts %v sum to %d tenths", parts, tenths)
			}
		}
	}
}

// TestRunsMatchSecondBySecond checks Runs and Windows against the rules
// applied one second at a time, on random recordings whose changes all fall
// on whole seconds, so that counting seconds is exact.
func TestRunsMatchSecondBySecond(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	now := at(t, "12:07").Add(13 * time.Second)
	statuses := []Status{Passing, Warning, Critical, Maintenance, ""}
	randomTime := func() time.Time { return now.Add(-time.Duration(rng.IntN(26*3600)) * time.Second) }
	periods := func(n int) []Period {
		var cuts []time.Time
		for range 2 * n {
			cuts = append(cuts, randomTime())
		}
		slices.SortFunc(cuts, time.Time.Compare)
		var ps []Period
		for i := 0; i+1 < len(cuts); i += 2 {
			if cuts[i].Before(cuts[i+1]) {
				ps = append(ps, Period{cuts[i], cuts[i+1]})
			}
		}
		return ps
	}
	statusAt := func(steps []Step, t time.Time) Status {
		var s Status
		for _, st := range steps {
			if !st.At.After(t) {
				s = st.Status
			}
		}
		return s
	}
	for round := range 25 {
		rec := Recording{Observed: periods(1 + rng.IntN(5)), Registered: periods(1 + rng.IntN(3))}
		for range 1 + rng.IntN(3) {
			var steps []Step
			for range rng.IntN(40) {
				steps = append(steps, Step{randomTime(), statuses[rng.IntN(len(statuses))]})
			}
			slices.SortFunc(steps, func(a, b Step) int { return a.At.Compare(b.At) })
			rec.Checks = append(rec.Checks, steps)
		}
		for _, g := range []time.Duration{5 * time.Minute, time.Hour} {
			got := Windows(rec, now, g)
			from := HistoryStart(now, g)
			for i, w := range got {
				start := from.Add(time.Duration(i) * g)
				end := earlier(start.Add(g), now)
				var parts [bucketCount]time.Duration
				for sec := start; sec.Before(end); sec = sec.Add(time.Second) {
					in := func(ps []Period) bool {
						for _, p := range ps {
							if !sec.Before(p.Start) && sec.Before(p.End) {
								return true
							}
						}
						return false
					}
					b := bucketNoData
					if in(rec.Observed) && in(rec.Registered) {
						var present []Check
						for _, steps := range rec.Checks {
							if s := statusAt(steps, sec); s != "" {
								present = append(present, Check{Status: s})
							}
						}
						switch InstanceStatus(present) {
						case Passing:
							b = bucketPassing
						case Warning:
							b = bucketWarning
						case Critical, Maintenance:
							b = bucketCritical
						}
					}
					parts[b] += time.Second
				}
				want := window(start, percentages(parts, end.Sub(start)))
				if w != want {
					t.Fatalf("round %d, %v windows, window %d: got %+v, want %+v", round, g, i, w, want)
				}
			}
			// Runs are Windows merged: never two equal neighbours.
			runs := Runs(rec, now, g)
			for i := 1; i < len(runs); i++ {
				if sameShares(runs[i-1].Window, runs[i].Window) {
					t.Fatalf("runs %d and %d are equal and not merged", i-1, i)
				}
			}
		}
	}
}
