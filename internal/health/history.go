package health

import (
	"slices"
	"sort"
	"time"
)

// HistorySpan is how far back the dashboard's history reaches.
const HistorySpan = 24 * time.Hour

// Granularities are the window lengths, in minutes, history can be cut into.
// Each divides a day, so windows aligned to them line up with UTC midnight.
var Granularities = []int{5, 15, 30, 60}

// DefaultGranularity is the window length, in minutes, used when nobody chose one.
const DefaultGranularity = 15

// ValidGranularity reports whether minutes is one of Granularities.
func ValidGranularity(minutes int) bool { return slices.Contains(Granularities, minutes) }

// Period is the half-open interval [Start, End).
type Period struct{ Start, End time.Time }

// Step says that from At on, until the next Step, a check had Status. An
// empty Status means the check did not exist in Consul.
type Step struct {
	At     time.Time
	Status Status
}

// Recording is what was stored about one instance.
type Recording struct {
	// Observed holds the periods in which the watcher was reading Consul,
	// oldest first. Time outside them is no data, whatever the checks said
	// before and after.
	Observed []Period
	// Registered holds the periods in which the instance was in the catalog,
	// oldest first.
	Registered []Period
	// Checks holds one timeline per check that ever counted for the
	// instance (its own and its node's), each oldest step first and
	// starting no later than the history it is asked about.
	Checks [][]Step
}

// Window is the share of one history window spent in each status, in
// percent rounded to 0.1 and summing to exactly 100.
type Window struct {
	Start    time.Time
	Passing  float64
	Warning  float64
	Critical float64
	NoData   float64
}

type bucket int

const (
	bucketPassing bucket = iota
	bucketWarning
	bucketCritical
	bucketNoData
	bucketCount
)

// HistoryStart is the start of the first window of the history that ends at
// now: 24 hours back, aligned down to a multiple of granularity in UTC.
func HistoryStart(now time.Time, granularity time.Duration) time.Time {
	// time.Truncate counts from the zero time, which is a UTC midnight, so
	// for lengths that divide a day this aligns to UTC multiples.
	return now.Add(-HistorySpan).Truncate(granularity)
}

// WindowCount is how many windows the history ending at now has: those
// starting before now, the last one being the current, partial one.
func WindowCount(now time.Time, granularity time.Duration) int {
	return int((now.Sub(HistoryStart(now, granularity)) + granularity - 1) / granularity)
}

// Windows cuts the recording into windows of granularity covering the last
// 24 hours up to now, oldest first. The last window is the current one,
// measured over its elapsed time only.
func Windows(rec Recording, now time.Time, granularity time.Duration) []Window {
	runs := Runs(rec, now, granularity)
	windows := make([]Window, 0, WindowCount(now, granularity))
	for _, r := range runs {
		for i := range r.Count {
			w := r.Window
			w.Start = r.Window.Start.Add(time.Duration(i) * granularity)
			windows = append(windows, w)
		}
	}
	return windows
}

// Run is Count consecutive windows with the same shares; Window.Start is
// the first one's start.
type Run struct {
	Count  int
	Window Window
}

// Runs is Windows with consecutive equal windows merged. It is what the
// batch history sends, and it is cheap: a window that lies wholly within
// one unchanged stretch of status needs no arithmetic, so the cost follows
// the number of changes rather than the number of windows.
func Runs(rec Recording, now time.Time, granularity time.Duration) []Run {
	from := HistoryStart(now, granularity)
	count := WindowCount(now, granularity)
	segs := segments(rec, from, now)
	var runs []Run
	add := func(n int, w Window) {
		if last := len(runs) - 1; last >= 0 && sameShares(runs[last].Window, w) {
			runs[last].Count += n
			return
		}
		runs = append(runs, Run{Count: n, Window: w})
	}
	si := 0
	for i := 0; i < count; {
		start := from.Add(time.Duration(i) * granularity)
		end := earlier(start.Add(granularity), now)
		for !segs[si].End.After(start) {
			si++
		}
		if seg := segs[si]; !seg.End.Before(end) {
			// This window and the next ones wholly inside seg are all of
			// seg's status.
			n := count - i
			if seg.End.Before(now) {
				n = int(seg.End.Sub(start) / granularity)
			}
			var parts [bucketCount]time.Duration
			parts[seg.bucket] = 1
			add(n, window(start, percentages(parts, 1)))
			i += n
			continue
		}
		var parts [bucketCount]time.Duration
		for sj := si; sj < len(segs) && segs[sj].Start.Before(end); sj++ {
			parts[segs[sj].bucket] += earlier(segs[sj].End, end).Sub(later(segs[sj].Start, start))
		}
		add(1, window(start, percentages(parts, end.Sub(start))))
		i++
	}
	return runs
}

func window(start time.Time, pct [bucketCount]float64) Window {
	return Window{Start: start.UTC(), Passing: pct[bucketPassing], Warning: pct[bucketWarning], Critical: pct[bucketCritical], NoData: pct[bucketNoData]}
}

func sameShares(a, b Window) bool {
	return a.Passing == b.Passing && a.Warning == b.Warning && a.Critical == b.Critical && a.NoData == b.NoData
}

// segment is a stretch of time with one history category.
type segment struct {
	Period
	bucket bucket
}

// segments cuts [from, now) into consecutive stretches of one category
// each: no data outside observed, registered time, else the worst check.
func segments(rec Recording, from, now time.Time) []segment {
	var segs []segment
	add := func(p Period, b bucket) {
		if last := len(segs) - 1; last >= 0 && segs[last].bucket == b && segs[last].End.Equal(p.Start) {
			segs[last].End = p.End
			return
		}
		segs = append(segs, segment{p, b})
	}
	cursor := from
	for _, c := range intersect(intersect(rec.Observed, rec.Registered), []Period{{from, now}}) {
		if c.Start.After(cursor) {
			add(Period{cursor, c.Start}, bucketNoData)
		}
		forEachStatus(rec.Checks, c, add)
		cursor = c.End
	}
	if cursor.Before(now) {
		add(Period{cursor, now}, bucketNoData)
	}
	return segs
}

// forEachStatus calls fn for each stretch of seg in which the worst of the
// checks stays the same.
func forEachStatus(checks [][]Step, seg Period, fn func(Period, bucket)) {
	changes := []time.Time{seg.Start}
	for _, steps := range checks {
		for _, s := range steps {
			if s.At.After(seg.Start) && s.At.Before(seg.End) {
				changes = append(changes, s.At)
			}
		}
	}
	slices.SortFunc(changes, time.Time.Compare)
	changes = slices.CompactFunc(changes, time.Time.Equal)
	for i, at := range changes {
		end := seg.End
		if i+1 < len(changes) {
			end = changes[i+1]
		}
		fn(Period{at, end}, bucketAt(checks, at))
	}
}

// bucketAt is the history category of the worst check status at t, as
// InstanceStatus would rank it; no check present at all is no data.
func bucketAt(checks [][]Step, t time.Time) bucket {
	worst, present := Passing, false
	for _, steps := range checks {
		i := sort.Search(len(steps), func(i int) bool { return steps[i].At.After(t) })
		if i == 0 || steps[i-1].Status == "" {
			continue
		}
		present = true
		if s := steps[i-1].Status; s.severity() > worst.severity() {
			worst = s
		}
	}
	switch {
	case !present:
		return bucketNoData
	case worst == Passing:
		return bucketPassing
	case worst == Warning:
		return bucketWarning
	}
	// Critical, and maintenance: Consul takes an instance in maintenance
	// out of service discovery exactly as it does a critical one.
	return bucketCritical
}

// percentages rounds parts/whole to tenths of a percent by largest remainder,
// so that the rounded values still add up to exactly 100.
func percentages(parts [bucketCount]time.Duration, whole time.Duration) [bucketCount]float64 {
	var tenths, remainders [bucketCount]int64
	var total int64
	for i, d := range parts {
		tenths[i] = int64(d) * 1000 / int64(whole)
		remainders[i] = int64(d) * 1000 % int64(whole)
		total += tenths[i]
	}
	for ; total < 1000; total++ {
		largest := 0
		for i := range remainders {
			if remainders[i] > remainders[largest] {
				largest = i
			}
		}
		tenths[largest]++
		remainders[largest] = -1
	}
	var out [bucketCount]float64
	for i, t := range tenths {
		out[i] = float64(t) / 10
	}
	return out
}

// intersect returns the overlap of two lists of sorted, disjoint periods.
func intersect(a, b []Period) []Period {
	var out []Period
	for i, j := 0, 0; i < len(a) && j < len(b); {
		start := later(a[i].Start, b[j].Start)
		end := earlier(a[i].End, b[j].End)
		if start.Before(end) {
			out = append(out, Period{start, end})
		}
		if a[i].End.Before(b[j].End) {
			i++
		} else {
			j++
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
