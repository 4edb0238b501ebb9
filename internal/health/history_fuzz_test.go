package health

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// shareProblem says how pct fail to be the shares of shown as the API
// promises, or is empty: each in [0, 100] and a whole number of tenths,
// summing to exactly 100; a status with no time has no share; a warning,
// critical or no data time above zero has at least 0.1.
func shareProblem(shown [shownBuckets]time.Duration, pct [shownBuckets]float64) string {
	var tenths int64
	var whole time.Duration
	for i, p := range pct {
		whole += shown[i]
		ten := int64(p*10 + 0.5)
		if p < 0 || p > 100 || float64(ten)/10 != p {
			return fmt.Sprintf("share %d is %v", i, p)
		}
		tenths += ten
	}
	if tenths != 1000 {
		return fmt.Sprintf("shares %v sum to %d tenths", pct, tenths)
	}
	if whole == 0 {
		return ""
	}
	for i := range pct {
		if shown[i] == 0 && pct[i] != 0 {
			return fmt.Sprintf("status %d has no time but a share of %v", i, pct[i])
		}
		if bucket(i) != bucketPassing && shown[i] > 0 && pct[i] < 0.1 {
			return fmt.Sprintf("status %d has %v but a share of %v", i, shown[i], pct[i])
		}
	}
	return ""
}

func validShares(shown [shownBuckets]time.Duration, pct [shownBuckets]float64) bool {
	return shareProblem(shown, pct) == ""
}

func checkShares(t *testing.T, what string, shown [shownBuckets]time.Duration, pct [shownBuckets]float64) {
	t.Helper()
	if problem := shareProblem(shown, pct); problem != "" {
		t.Fatalf("%s: %s", what, problem)
	}
}

func shownTimes(w Window) [shownBuckets]time.Duration {
	return [shownBuckets]time.Duration{w.PassingTime, w.WarningTime, w.CriticalTime, w.NoDataTime}
}

func shares(w Window) [shownBuckets]float64 {
	return [shownBuckets]float64{w.Passing, w.Warning, w.Critical, w.NoData}
}

// oracleParts applies the history rules to rec as stored, without
// normalising it: it cuts [from, until) at every moment anything changes and
// asks, for each piece, whether any period covers it and which step was the
// last one at or before it. It is slow and simple, unlike segments.
func oracleParts(rec Recording, until, granularity time.Duration, base time.Time) []parts {
	end := base.Add(until)
	from := HistoryStart(end, granularity)
	cuts := []time.Time{from, end}
	for t := from; t.Before(end); t = t.Add(granularity) {
		cuts = append(cuts, t)
	}
	for _, ps := range [][]Period{rec.Observed, rec.Registered} {
		for _, p := range ps {
			cuts = append(cuts, p.Start, p.End)
		}
	}
	for _, steps := range rec.Checks {
		for _, s := range steps {
			cuts = append(cuts, s.At)
		}
	}
	slices.SortFunc(cuts, time.Time.Compare)
	cuts = slices.CompactFunc(cuts, time.Time.Equal)
	covered := func(ps []Period, t time.Time) bool {
		for _, p := range ps {
			if !t.Before(p.Start) && t.Before(p.End) {
				return true
			}
		}
		return false
	}
	out := make([]parts, WindowCount(end, granularity))
	for i := 0; i+1 < len(cuts); i++ {
		a, b := cuts[i], cuts[i+1]
		if a.Before(from) || !b.After(a) || b.After(end) {
			continue
		}
		kind := bucketUnregistered
		if covered(rec.Registered, a) {
			kind = bucketNoData
			if covered(rec.Observed, a) {
				var present []Check
				for _, steps := range rec.Checks {
					var status Status
					var latest time.Time
					found := false
					for _, s := range steps {
						// The latest step at or before a; of equal ones, the last given.
						if !s.At.After(a) && (!found || !s.At.Before(latest)) {
							status, latest, found = s.Status, s.At, true
						}
					}
					if status != "" {
						present = append(present, Check{Status: status})
					}
				}
				switch InstanceStatus(present) {
				case Passing:
					kind = bucketPassing
				case Warning:
					kind = bucketWarning
				case Critical, Maintenance:
					kind = bucketCritical
				}
			}
		}
		out[int(a.Sub(from)/granularity)][kind] += b.Sub(a)
	}
	return out
}

// fuzzInput reads a recording from arbitrary bytes: any number of periods
// in any order, overlapping, reversed or empty, and timelines whose steps go
// back in time as a stepped clock leaves them.
type fuzzInput struct{ data []byte }

func (in *fuzzInput) byte() byte {
	if len(in.data) == 0 {
		return 0
	}
	b := in.data[0]
	in.data = in.data[1:]
	return b
}

// offset is a moment from 26 hours before the history's end to an hour
// after it, in milliseconds.
func (in *fuzzInput) offset() time.Duration {
	var b [4]byte
	for i := range b {
		b[i] = in.byte()
	}
	return time.Duration(binary.BigEndian.Uint32(b[:])%uint32(27*time.Hour/time.Millisecond)) * time.Millisecond
}

var fuzzBase = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

// recording decodes one recording whose history ends at until.
func (in *fuzzInput) recording(until time.Time) Recording {
	start := until.Add(-26 * time.Hour)
	at := func() time.Time { return start.Add(in.offset()) }
	periods := func(n int) []Period {
		ps := make([]Period, n)
		for i := range ps {
			ps[i] = Period{at(), at()}
		}
		return ps
	}
	head := in.byte()
	rec := Recording{Observed: periods(int(head % 8)), Registered: periods(int(head/8%4) + 1)}
	statuses := []Status{Passing, Warning, Critical, Maintenance, ""}
	for range head / 32 % 4 {
		steps := make([]Step, in.byte()%16)
		for i := range steps {
			steps[i] = Step{at(), statuses[in.byte()%5]}
		}
		rec.Checks = append(rec.Checks, steps)
	}
	return rec
}

// historyEnd decodes where the history ends, to the millisecond, and its
// granularity.
func (in *fuzzInput) historyEnd() (time.Duration, time.Duration) {
	until := 12*time.Hour + in.offset()%(2*time.Hour)
	return until, time.Duration(Granularities[in.byte()%4]) * time.Minute
}

func checkWindows(t *testing.T, rec Recording, until, granularity time.Duration) []Run {
	t.Helper()
	end := fuzzBase.Add(until)
	kept := clone(rec)
	runs := Runs(rec, end, granularity)
	if !equalRecordings(rec, kept) {
		t.Fatal("Runs changed the recording it was given")
	}
	ws := Windows(rec, end, granularity)
	count := WindowCount(end, granularity)
	if len(ws) != count || count < int(HistorySpan/granularity) || count > int(HistorySpan/granularity)+1 {
		t.Fatalf("%d windows, WindowCount %d, for %v ending %v", len(ws), count, granularity, end)
	}
	if got := expand(runs, granularity, count); !slices.Equal(got, ws) {
		t.Fatal("Runs expanded differ from Windows")
	}
	for i := 1; i < len(runs); i++ {
		if sameTimes(runs[i-1].Window, runs[i].Window) {
			t.Fatalf("runs %d and %d have the same times and are not merged", i-1, i)
		}
	}
	want := oracleParts(rec, until, granularity, fuzzBase)
	from := HistoryStart(end, granularity)
	// The stretches Runs works from cover the history without gaps, each
	// as long as it can be.
	segs := segments(normalise(rec), from, end)
	for i, seg := range segs {
		if !seg.Start.Before(seg.End) || (i == 0 && !seg.Start.Equal(from)) || (i > 0 && (!seg.Start.Equal(segs[i-1].End) || seg.bucket == segs[i-1].bucket)) {
			t.Fatalf("segment %d of %d: %+v after %+v", i, len(segs), seg, segs[max(i-1, 0)])
		}
	}
	if !segs[len(segs)-1].End.Equal(end) {
		t.Fatalf("segments end at %v, not %v", segs[len(segs)-1].End, end)
	}
	for i, w := range ws {
		start := from.Add(time.Duration(i) * granularity)
		length := earlier(start.Add(granularity), end).Sub(start)
		if !w.Start.Equal(start) || w.Start.Location() != time.UTC || start.UnixNano()%int64(granularity) != 0 {
			t.Fatalf("window %d starts at %v, want %v aligned to %v", i, w.Start, start, granularity)
		}
		what := func() string { return fmt.Sprintf("%v window %d (%v)", granularity, i, start.Format(time.TimeOnly)) }
		times := shownTimes(w)
		if sum := times[0] + times[1] + times[2] + times[3]; sum != length || w.UnregisteredTime > w.NoDataTime || w.UnregisteredTime < 0 {
			t.Fatalf("%s: times %v (unregistered %v) for a window of %v", what(), times, w.UnregisteredTime, length)
		}
		if !validShares(times, shares(w)) {
			checkShares(t, what(), times, shares(w))
		}
		if wantWindow := instanceWindow(start, want[i]); w != wantWindow {
			t.Fatalf("%s:\n got %+v\nwant %+v", what(), w, wantWindow)
		}
		// No data outside observation: whatever the checks say, status
		// time never exceeds the observed time.
		var observed time.Duration
		for _, p := range normalisePeriods(rec.Observed) {
			if d := earlier(p.End, start.Add(length)).Sub(later(p.Start, start)); d > 0 {
				observed += d
			}
		}
		if status := w.PassingTime + w.WarningTime + w.CriticalTime; status > observed {
			t.Fatalf("%s: %v in a status but only %v observed", what(), status, observed)
		}
	}
	return runs
}

func clone(rec Recording) Recording {
	out := Recording{Observed: slices.Clone(rec.Observed), Registered: slices.Clone(rec.Registered)}
	for _, steps := range rec.Checks {
		out.Checks = append(out.Checks, slices.Clone(steps))
	}
	return out
}

func equalRecordings(a, b Recording) bool {
	return slices.Equal(a.Observed, b.Observed) && slices.Equal(a.Registered, b.Registered) &&
		slices.EqualFunc(a.Checks, b.Checks, slices.Equal)
}

// fuzzSeeds are random inputs, the same in every run, so that the
// properties are checked over many recordings by every go test.
func fuzzSeeds(f *testing.F, n, size int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 8))
	f.Add([]byte{})
	f.Add(slices.Repeat([]byte{0xff}, size))
	for range n {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		f.Add(b)
	}
}

// FuzzWindows checks Runs and Windows over arbitrary recordings, at every
// granularity: the window count and alignment, the times adding up to each
// window, the shares' bounds, sum and floor, no status time outside
// observation, and the result against oracleParts.
func FuzzWindows(f *testing.F) {
	fuzzSeeds(f, 150, 300, 1)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{data}
		until, _ := in.historyEnd()
		rec := in.recording(fuzzBase.Add(until))
		for _, g := range Granularities {
			checkWindows(t, rec, until, time.Duration(g)*time.Minute)
		}
	})
}

// FuzzServiceRuns checks that a service's runs are, window by window, the
// instances' registered time summed, with the same guarantees on shares.
func FuzzServiceRuns(f *testing.F) {
	fuzzSeeds(f, 60, 600, 2)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{data}
		until, granularity := in.historyEnd()
		end := fuzzBase.Add(until)
		var recs []Recording
		var instanceRuns [][]Run
		for range 1 + in.byte()%4 {
			rec := in.recording(end)
			recs = append(recs, rec)
			instanceRuns = append(instanceRuns, checkWindows(t, rec, until, granularity))
		}
		count := WindowCount(end, granularity)
		got := expand(ServiceRuns(instanceRuns, granularity), granularity, count)
		if len(got) != count {
			t.Fatalf("service has %d windows, want %d", len(got), count)
		}
		oracles := make([][]parts, len(recs))
		for k, rec := range recs {
			oracles[k] = oracleParts(rec, until, granularity, fuzzBase)
		}
		from := HistoryStart(end, granularity)
		for i, w := range got {
			start := from.Add(time.Duration(i) * granularity)
			length := earlier(start.Add(granularity), end).Sub(start)
			var want [shownBuckets]time.Duration
			for k := range recs {
				for b := range shownBuckets {
					want[b] += oracles[k][i][b]
				}
			}
			if want == ([shownBuckets]time.Duration{}) {
				// Nobody registered: the window is all no data.
				want[bucketNoData] = length
			}
			if !w.Start.Equal(start) || shownTimes(w) != want {
				t.Fatalf("service window %d at %v: times %v, want %v at %v", i, w.Start, shownTimes(w), want, start)
			}
			checkShares(t, "service window", shownTimes(w), shares(w))
		}
	})
}
