package health

import (
	"fmt"
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
			for c := time.Duration(0); a+b+c <= whole; c += 37 * time.Second {
				shown := [shownBuckets]time.Duration{a, b, c, whole - a - b - c}
				checkShares(t, fmt.Sprint(shown), shown, percentages(shown))
			}
		}
	}
}

func TestPercentages(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		shown [shownBuckets]time.Duration
		want  [shownBuckets]float64
	}{
		{"all passing", [4]time.Duration{time.Hour, 0, 0, 0}, [4]float64{100, 0, 0, 0}},
		// 1.5 s of 60 min is 0.04 %: shown as 0.1, taken from passing.
		{"a short failure is never 0", [4]time.Duration{time.Hour - 1500*ms, 0, 1500 * ms, 0}, [4]float64{99.9, 0, 0.1, 0}},
		{"each short status gets its sliver", [4]time.Duration{time.Hour - 3*ms, ms, ms, ms}, [4]float64{99.7, 0.1, 0.1, 0.1}},
		// The sliver comes from the largest share, whichever it is.
		{"taken from the largest, not from passing", [4]time.Duration{10 * time.Minute, 0, ms, 50*time.Minute - ms}, [4]float64{16.7, 0, 0.1, 83.2}},
		// Passing has no floor: hiding a little health hides no failure.
		{"a little passing may round to 0", [4]time.Duration{ms, 0, time.Hour - ms, 0}, [4]float64{0, 0, 100, 0}},
		{"0.05 % rounds up by itself", [4]time.Duration{time.Hour - 1800*ms, 0, 1800 * ms, 0}, [4]float64{99.9, 0, 0.1, 0}},
		{"thirds: the leftover tenth goes to the first", [4]time.Duration{time.Minute, time.Minute, time.Minute, 0}, [4]float64{33.4, 33.3, 33.3, 0}},
		// Of equal largest shares, passing gives the sliver.
		{"equal largest: the first gives", [4]time.Duration{30 * time.Minute, 0, ms, 30*time.Minute - ms}, [4]float64{49.9, 0, 0.1, 50}},
		{"the largest remainders get the missing tenths", [4]time.Duration{1, 2, 3, 4}, [4]float64{10, 20, 30, 40}},
		{"tied remainders: the first gets it", [4]time.Duration{500, 500, 1, 0}, [4]float64{50, 49.9, 0.1, 0}},
		{"nothing at all is no data", [4]time.Duration{}, [4]float64{0, 0, 0, 100}},
	}
	for _, tt := range tests {
		if got := percentages(tt.shown); got != tt.want {
			t.Errorf("%s: percentages(%v) = %v, want %v", tt.name, tt.shown, got, tt.want)
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
	for round := range 8 {
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
					b := bucketUnregistered
					if in(rec.Registered) {
						b = bucketNoData
					}
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
				want := instanceWindow(start, parts)
				if w != want {
					t.Fatalf("round %d, %v windows, window %d: got %+v, want %+v", round, g, i, w, want)
				}
			}
			// Runs are Windows merged: never two equal neighbours.
			runs := Runs(rec, now, g)
			for i := 1; i < len(runs); i++ {
				if sameTimes(runs[i-1].Window, runs[i].Window) {
					t.Fatalf("runs %d and %d are equal and not merged", i-1, i)
				}
			}
		}
	}
}

func TestWindowsNormaliseStoredPeriods(t *testing.T) {
	now := at(t, "12:00")
	steps := [][]Step{{{at(t, "2026-11-23T00:00:00Z"), Passing}, {at(t, "11:10"), Critical}, {at(t, "11:20"), Passing}}}
	always := []Period{{at(t, "2026-11-23T00:00:00Z"), now}}
	tidy := Recording{Observed: []Period{{at(t, "11:00"), at(t, "11:40")}}, Registered: always, Checks: steps}
	tests := []struct {
		name     string
		observed []Period
	}{
		// Two monitors on one file each wrote their own period.
		{"overlapping", []Period{{at(t, "11:00"), at(t, "11:30")}, {at(t, "11:10"), at(t, "11:40")}}},
		{"one inside another", []Period{{at(t, "11:00"), at(t, "11:40")}, {at(t, "11:05"), at(t, "11:25")}, {at(t, "11:10"), at(t, "11:20")}}},
		// A restart after the clock stepped back writes an earlier period after a later one.
		{"out of order", []Period{{at(t, "11:20"), at(t, "11:40")}, {at(t, "11:00"), at(t, "11:20")}}},
		{"duplicated", []Period{{at(t, "11:00"), at(t, "11:40")}, {at(t, "11:00"), at(t, "11:40")}}},
		// A period whose end went back before its start certifies nothing.
		{"reversed and empty ones", []Period{{at(t, "11:00"), at(t, "11:40")}, {at(t, "11:50"), at(t, "11:45")}, {at(t, "11:55"), at(t, "11:55")}}},
	}
	want := Windows(tidy, now, time.Hour)
	// 11:00-11:10 passing, 11:10-11:20 critical, 11:20-11:40 passing, 20 min unobserved.
	wantWindow(t, want[len(want)-1], 50, 0, 16.7, 33.3)
	for _, tt := range tests {
		rec := tidy
		rec.Observed = tt.observed
		rec.Registered = append(slices.Clone(always), always...)
		if got := Windows(rec, now, time.Hour); !slices.Equal(got, want) {
			t.Errorf("%s: last window %+v, want %+v", tt.name, got[len(got)-1], want[len(want)-1])
		}
	}

	// A timeline written across a backwards clock step: sorted by time, its
	// last step is passing, so it does not stay critical.
	stepped := tidy
	stepped.Checks = [][]Step{{{at(t, "2026-11-23T00:00:00Z"), Passing}, {at(t, "11:20"), Passing}, {at(t, "11:10"), Critical}}}
	if got := Windows(stepped, now, time.Hour); !slices.Equal(got, want) {
		t.Errorf("unsorted steps: last window %+v, want %+v", got[len(got)-1], want[len(want)-1])
	}
	if stepped.Checks[0][2].Status != Critical {
		t.Error("Windows reordered the caller's timeline")
	}
	// Of two steps at the same moment, the later in the timeline stands.
	same := tidy
	same.Checks = [][]Step{{{at(t, "2026-11-23T00:00:00Z"), Passing}, {at(t, "11:10"), Warning}, {at(t, "11:10"), Critical}, {at(t, "11:20"), Passing}}}
	if got := Windows(same, now, time.Hour); !slices.Equal(got, want) {
		t.Errorf("same-moment steps: last window %+v, want %+v", got[len(got)-1], want[len(want)-1])
	}
}

func TestWindowsExactTimes(t *testing.T) {
	now := at(t, "12:00")
	dayBefore := at(t, "2026-11-23T00:00:00Z")
	always := []Period{{dayBefore, now}}
	flap := at(t, "10:20")
	rec := Recording{Observed: always, Registered: always, Checks: [][]Step{{
		{dayBefore, Passing}, {flap, Critical}, {flap.Add(1500 * time.Millisecond), Passing},
	}}}
	w := windowAt(t, Windows(rec, now, time.Hour), "10:00")
	// 1.5 s of 60 min is 0.04 %: it shows as 0.1, and its exact time is kept.
	wantWindow(t, w, 99.9, 0, 0.1, 0)
	if w.CriticalTime != 1500*time.Millisecond || w.PassingTime != time.Hour-1500*time.Millisecond || w.WarningTime != 0 || w.NoDataTime != 0 {
		t.Errorf("times %+v", w)
	}
	// At 5 minutes it is still 0.5 %.
	wantWindow(t, windowAt(t, Windows(rec, now, 5*time.Minute), "10:20"), 99.5, 0, 0.5, 0)
}

func TestWindowsEndAtUntil(t *testing.T) {
	// The last certified moment was 12:29:30: history ends there.
	until := at(t, "2026-11-24T12:29:30Z")
	dayBefore := at(t, "2026-11-23T00:00:00Z")
	rec := Recording{
		Observed:   []Period{{dayBefore, at(t, "12:20")}},
		Registered: []Period{{dayBefore, until.Add(time.Hour)}},
		Checks:     [][]Step{{{dayBefore, Passing}}},
	}
	ws := Windows(rec, until, 15*time.Minute)
	if len(ws) != 97 || !ws[0].Start.Equal(at(t, "2026-11-23T12:15:00Z")) {
		t.Fatalf("%d windows from %v", len(ws), ws[0].Start)
	}
	last := ws[len(ws)-1]
	// 12:15-12:29:30: passing 5 min, then 9.5 min not certified.
	if !last.Start.Equal(at(t, "12:15")) || last.PassingTime != 5*time.Minute || last.NoDataTime != 9*time.Minute+30*time.Second || last.UnregisteredTime != 0 {
		t.Errorf("last window %+v", last)
	}
	wantWindow(t, last, 34.5, 0, 0, 65.5)
	runs := Runs(rec, until, 15*time.Minute)
	// Passing all along, then the 12:15 window: the full windows form one
	// run, and the partial one, with other times, is not merged into it.
	if len(runs) != 2 || runs[0].Count != 96 || runs[1].Count != 1 {
		t.Errorf("runs %+v", runs)
	}
}

func TestRunsMergeOnlyEqualTimes(t *testing.T) {
	now := at(t, "12:07")
	dayBefore := at(t, "2026-11-23T00:00:00Z")
	always := []Period{{dayBefore, now}}
	rec := Recording{Observed: always, Registered: always, Checks: [][]Step{{{dayBefore, Passing}}}}
	runs := Runs(rec, now, 15*time.Minute)
	// 96 full passing windows, then the current one: 100 % too, but 7 min.
	if len(runs) != 2 || runs[0].Count != 96 || runs[1].Count != 1 || runs[1].Window.PassingTime != 7*time.Minute || runs[1].Window.Passing != 100 {
		t.Errorf("runs %+v", runs)
	}
}

func TestAggregate(t *testing.T) {
	start := at(t, "12:00")
	win := func(passing, warning, critical, nodata, unregistered time.Duration) Window {
		return instanceWindow(start, parts{passing, warning, critical, nodata, unregistered})
	}
	m := time.Minute
	tests := []struct {
		name      string
		instances []Window
		times     [shownBuckets]time.Duration
		shares    [shownBuckets]float64
	}{
		// A deploy: a was critical 12:00-12:10 and left; b came at 12:10.
		{"a replaced instance keeps its failure", []Window{win(0, 0, 10*m, 0, 5*m), win(5*m, 0, 0, 0, 10*m)},
			[4]time.Duration{5 * m, 0, 10 * m, 0}, [4]float64{33.3, 0, 66.7, 0}},
		// A new instance does not dilute the others with the time before it existed.
		{"a new instance counts from its registration", []Window{win(15*m, 0, 0, 0, 0), win(1*m, 0, 0, 0, 14*m)},
			[4]time.Duration{16 * m, 0, 0, 0}, [4]float64{100, 0, 0, 0}},
		// Registered but not observed is no data, and counts.
		{"unobserved registered time is no data", []Window{win(10*m, 0, 0, 5*m, 0), win(15*m, 0, 0, 0, 0)},
			[4]time.Duration{25 * m, 0, 0, 5 * m}, [4]float64{83.3, 0, 0, 16.7}},
		{"nobody registered is no data", []Window{win(0, 0, 0, 0, 15*m), win(0, 0, 0, 0, 15*m)},
			[4]time.Duration{0, 0, 0, 15 * m}, [4]float64{0, 0, 0, 100}},
		{"a short failure among many", []Window{win(15*m, 0, 0, 0, 0), win(15*m-time.Second, time.Second, 0, 0, 0)},
			[4]time.Duration{30*m - time.Second, time.Second, 0, 0}, [4]float64{99.9, 0.1, 0, 0}},
	}
	for _, tt := range tests {
		got := Aggregate(tt.instances)
		if !got.Start.Equal(start) || shownTimes(got) != tt.times || shares(got) != tt.shares {
			t.Errorf("%s: %+v, want times %v shares %v", tt.name, got, tt.times, tt.shares)
		}
	}
	if got := Aggregate(nil); got != (Window{}) {
		t.Errorf("no instances: %+v", got)
	}
}

func TestServiceRunsDeploy(t *testing.T) {
	now := at(t, "12:00")
	dayBefore := at(t, "2026-11-23T00:00:00Z")
	observed := []Period{{dayBefore, now}}
	// api-a was critical from 11:05 and left at 11:10; api-b came at 11:10, passing.
	a := Recording{Observed: observed, Registered: []Period{{dayBefore, at(t, "11:10")}},
		Checks: [][]Step{{{dayBefore, Passing}, {at(t, "11:05"), Critical}, {at(t, "11:10"), ""}}}}
	b := Recording{Observed: observed, Registered: []Period{{at(t, "11:10"), now}},
		Checks: [][]Step{{{at(t, "11:10"), Passing}}}}
	g := 15 * time.Minute
	runs := ServiceRuns([][]Run{Runs(a, now, g), Runs(b, now, g)}, g)
	ws := expand(runs, g, WindowCount(now, g))
	if len(ws) != 96 {
		t.Fatalf("%d windows", len(ws))
	}
	w := windowAt(t, ws, "11:00")
	// a: passing 5, critical 5 min; b: passing 5 min.
	wantWindow(t, w, 66.7, 0, 33.3, 0)
	if w.CriticalTime != 5*time.Minute || w.PassingTime != 10*time.Minute {
		t.Errorf("11:00 %+v", w)
	}
	wantWindow(t, windowAt(t, ws, "10:45"), 100, 0, 0, 0)
	wantWindow(t, windowAt(t, ws, "11:45"), 100, 0, 0, 0)
	if ServiceRuns(nil, g) != nil || ServiceRuns([][]Run{Runs(a, now, g), nil}, g) != nil {
		t.Error("a service without instances has runs")
	}
	for i := 1; i < len(runs); i++ {
		if sameTimes(runs[i-1].Window, runs[i].Window) {
			t.Fatalf("service runs %d and %d are equal and not merged", i-1, i)
		}
	}
}

func TestRunsMergeRepeatingWindows(t *testing.T) {
	now := at(t, "12:00")
	from := HistoryStart(now, 15*time.Minute)
	always := []Period{{from, now}}
	// Critical for 5 minutes in the middle of every 15 minutes: every
	// window is the same, and so is one run, although no stretch of status
	// covers even one window.
	var steps []Step
	for t := from; t.Before(now); t = t.Add(15 * time.Minute) {
		steps = append(steps, Step{t, Passing}, Step{t.Add(5 * time.Minute), Critical}, Step{t.Add(10 * time.Minute), Passing})
	}
	runs := Runs(Recording{Observed: always, Registered: always, Checks: [][]Step{steps}}, now, 15*time.Minute)
	if len(runs) != 1 || runs[0].Count != 96 || runs[0].Window.CriticalTime != 5*time.Minute || runs[0].Window.PassingTime != 10*time.Minute {
		t.Errorf("runs %+v", runs)
	}
}

func TestServiceRunsMergeEqualAggregates(t *testing.T) {
	start := at(t, "12:00")
	passing := instanceWindow(start, parts{bucketPassing: 15 * time.Minute})
	critical := instanceWindow(start, parts{bucketCritical: 15 * time.Minute})
	// a is passing then critical, b the other way round: the service is
	// half and half all along, one run.
	a := []Run{{5, passing}, {5, critical}}
	b := []Run{{5, critical}, {5, passing}}
	runs := ServiceRuns([][]Run{a, b}, 15*time.Minute)
	if len(runs) != 1 || runs[0].Count != 10 || runs[0].Window.Passing != 50 || runs[0].Window.CriticalTime != 15*time.Minute {
		t.Errorf("runs %+v", runs)
	}
	// Runs of different lengths, from histories that do not match: the
	// service's cover the shortest.
	short := []Run{{4, passing}, {1, critical}}
	runs = ServiceRuns([][]Run{a, short}, 15*time.Minute)
	if len(runs) != 2 || runs[0].Count != 4 || runs[1].Count != 1 || runs[1].Window.CriticalTime != 15*time.Minute {
		t.Errorf("runs %+v", runs)
	}
	// Runs cut at different places: the service's are cut at each.
	c := []Run{{3, passing}, {7, critical}}
	runs = ServiceRuns([][]Run{a, c}, 15*time.Minute)
	var counts []int
	for _, r := range runs {
		counts = append(counts, r.Count)
	}
	if !slices.Equal(counts, []int{3, 2, 5}) || !runs[1].Window.Start.Equal(start.Add(45*time.Minute)) {
		t.Errorf("runs %v: %+v", counts, runs)
	}
}
