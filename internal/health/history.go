package health

import (
	"cmp"
	"math"
	"math/bits"
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

// Recording is what was stored about one instance. It is taken as the
// database holds it, which need not be tidy: two monitors on one file, or a
// clock step, leave periods that overlap or run out of order. Every function
// here normalises a recording before use, so such data can never count the
// same moment twice.
type Recording struct {
	// Observed holds the periods in which health answers certified the
	// state. Time outside them is no data, whatever the checks said before
	// and after.
	Observed []Period
	// Registered holds the periods in which the instance was in the catalog.
	Registered []Period
	// Checks holds one timeline per check that ever counted for the
	// instance (its own and its node's), each starting no later than the
	// history it is asked about. Steps at the same moment apply in the
	// order given: the last one stands.
	Checks [][]Step
}

// Window is one history window: the exact time spent in each status, and
// the same as shares of the window in percent.
type Window struct {
	Start time.Time
	// The shares are rounded to 0.1 and sum to exactly 100. A warning,
	// critical or no data time above zero never shows as 0: it gets at
	// least 0.1, taken from the largest share, so that a failure is never
	// rounded away.
	Passing  float64
	Warning  float64
	Critical float64
	NoData   float64
	// The exact times. For one instance they add up to the window's
	// elapsed length; for a service (Aggregate) they are instance-time.
	PassingTime  time.Duration
	WarningTime  time.Duration
	CriticalTime time.Duration
	NoDataTime   time.Duration
	// UnregisteredTime is the part of NoDataTime in which the instance was
	// not in the catalog. For one instance that is no data like any other;
	// a service leaves it out, so that an instance counts only while it
	// exists.
	UnregisteredTime time.Duration
}

type bucket int

const (
	bucketPassing bucket = iota
	bucketWarning
	bucketCritical
	bucketNoData
	// bucketUnregistered is no data because the instance was not in the
	// catalog, kept apart so that a service can leave it out.
	bucketUnregistered
	bucketCount
)

// shownBuckets are the statuses a window shows: unregistered time shows as
// no data.
const shownBuckets = bucketUnregistered

type parts [bucketCount]time.Duration

// HistoryStart is the start of the first window of the history that ends at
// until: 24 hours back, aligned down to a multiple of granularity in UTC.
func HistoryStart(until time.Time, granularity time.Duration) time.Time {
	// time.Truncate counts from the zero time, which is a UTC midnight, so
	// for lengths that divide a day this aligns to UTC multiples.
	return until.Add(-HistorySpan).Truncate(granularity)
}

// WindowCount is how many windows the history ending at until has: those
// starting before until, the last one being the current, partial one.
func WindowCount(until time.Time, granularity time.Duration) int {
	return int((until.Sub(HistoryStart(until, granularity)) + granularity - 1) / granularity)
}

// Windows cuts the recording into windows of granularity covering the 24
// hours up to until, oldest first. until is the last moment history can
// speak for (the last certified one while Consul is being watched); the last
// window is measured over its elapsed time only.
func Windows(rec Recording, until time.Time, granularity time.Duration) []Window {
	return expand(Runs(rec, until, granularity), granularity, WindowCount(until, granularity))
}

func expand(runs []Run, granularity time.Duration, count int) []Window {
	windows := make([]Window, 0, count)
	for _, r := range runs {
		for i := range r.Count {
			w := r.Window
			w.Start = r.Window.Start.Add(time.Duration(i) * granularity)
			windows = append(windows, w)
		}
	}
	return windows
}

// Run is Count consecutive windows with the same exact times;
// Window.Start is the first one's start.
type Run struct {
	Count  int
	Window Window
}

// Runs is Windows with consecutive equal windows merged. It is what the
// batch history sends, and it is cheap: a window that lies wholly within
// one unchanged stretch of status needs no arithmetic, so the cost follows
// the number of changes rather than the number of windows.
func Runs(rec Recording, until time.Time, granularity time.Duration) []Run {
	from := HistoryStart(until, granularity)
	count := WindowCount(until, granularity)
	segs := segments(normalise(rec), from, until)
	var runs []Run
	add := func(n int, w Window) {
		if last := len(runs) - 1; last >= 0 && sameTimes(runs[last].Window, w) {
			runs[last].Count += n
			return
		}
		runs = append(runs, Run{Count: n, Window: w})
	}
	si := 0
	for i := 0; i < count; {
		start := from.Add(time.Duration(i) * granularity)
		end := earlier(start.Add(granularity), until)
		for !segs[si].End.After(start) {
			si++
		}
		if seg := segs[si]; !seg.End.Before(end) {
			// This window, and when it is a full one the next full ones
			// wholly inside seg, are all of seg's status.
			n := 1
			if end.Sub(start) == granularity {
				n = int(earlier(seg.End, until).Sub(start) / granularity)
			}
			var p parts
			p[seg.bucket] = end.Sub(start)
			add(n, instanceWindow(start, p))
			i += n
			continue
		}
		var p parts
		for sj := si; sj < len(segs) && segs[sj].Start.Before(end); sj++ {
			p[segs[sj].bucket] += earlier(segs[sj].End, end).Sub(later(segs[sj].Start, start))
		}
		add(1, instanceWindow(start, p))
		i++
	}
	return runs
}

// instanceWindow is one instance's window: unregistered time is no data.
func instanceWindow(start time.Time, p parts) Window {
	shown := [shownBuckets]time.Duration{p[bucketPassing], p[bucketWarning], p[bucketCritical], p[bucketNoData] + p[bucketUnregistered]}
	w := shownWindow(start, shown)
	w.UnregisteredTime = p[bucketUnregistered]
	return w
}

func shownWindow(start time.Time, shown [shownBuckets]time.Duration) Window {
	pct := percentages(shown)
	return Window{
		Start:   start.UTC(),
		Passing: pct[bucketPassing], Warning: pct[bucketWarning], Critical: pct[bucketCritical], NoData: pct[bucketNoData],
		PassingTime: shown[bucketPassing], WarningTime: shown[bucketWarning], CriticalTime: shown[bucketCritical], NoDataTime: shown[bucketNoData],
	}
}

// sameTimes reports whether two windows hold the same exact times, and so
// the same shares.
func sameTimes(a, b Window) bool {
	return a.PassingTime == b.PassingTime && a.WarningTime == b.WarningTime && a.CriticalTime == b.CriticalTime &&
		a.NoDataTime == b.NoDataTime && a.UnregisteredTime == b.UnregisteredTime
}

// Aggregate is a service's window made of its instances' windows for the
// same stretch of time: the share of instance-time in each status, counting
// each instance only while it was registered. So an instance that came or
// went within the window counts for the time it existed, and a new
// instance does not dilute the others with no data. A window in which no
// instance was registered is all no data.
func Aggregate(instances []Window) Window {
	if len(instances) == 0 {
		return Window{}
	}
	var shown [shownBuckets]time.Duration
	for _, w := range instances {
		shown = addTimes(shown, registeredTimes(w), 1)
	}
	first := instances[0]
	return serviceWindow(first.Start, shown, first.NoDataTime)
}

// registeredTimes is the time of an instance's window in each status while
// it was registered.
func registeredTimes(w Window) [shownBuckets]time.Duration {
	return [shownBuckets]time.Duration{w.PassingTime, w.WarningTime, w.CriticalTime, w.NoDataTime - w.UnregisteredTime}
}

func addTimes(a, b [shownBuckets]time.Duration, sign time.Duration) [shownBuckets]time.Duration {
	for i := range a {
		a[i] += sign * b[i]
	}
	return a
}

// serviceWindow is a service's window with shown instance-time. firstNoData
// is the first instance's no data time: when nobody was registered, that
// instance's whole window was unregistered, so it is the window's length.
func serviceWindow(start time.Time, shown [shownBuckets]time.Duration, firstNoData time.Duration) Window {
	if shown == ([shownBuckets]time.Duration{}) {
		// Nobody was registered: the window is as one unregistered instance's.
		w := shownWindow(start, [shownBuckets]time.Duration{bucketNoData: firstNoData})
		w.UnregisteredTime = firstNoData
		return w
	}
	return shownWindow(start, shown)
}

// ServiceRuns aggregates instances' runs, each from Runs over the same
// history (same until and granularity), into the service's runs, as
// Aggregate does window by window. The cost follows the number of runs, not
// instances times windows: the sums change only where a run begins.
func ServiceRuns(instances [][]Run, granularity time.Duration) []Run {
	if len(instances) == 0 {
		return nil
	}
	count := math.MaxInt
	for _, runs := range instances {
		n := 0
		for _, r := range runs {
			n += r.Count
		}
		count = min(count, n)
	}
	if count == 0 {
		return nil
	}
	// changes[i] is how the instances' summed registered times change at
	// window i, where some instance's run begins (cut[i]); firstNoData[i]
	// is the first instance's no data time from there on, if its run
	// begins there.
	changes := make([][shownBuckets]time.Duration, count)
	cut := make([]bool, count)
	firstNoData := make([]time.Duration, count)
	for k, runs := range instances {
		var before [shownBuckets]time.Duration
		i := 0
		for _, r := range runs {
			if i >= count {
				break
			}
			now := registeredTimes(r.Window)
			changes[i] = addTimes(addTimes(changes[i], now, 1), before, -1)
			cut[i] = true
			if k == 0 {
				firstNoData[i] = r.Window.NoDataTime
			}
			before = now
			i += r.Count
		}
	}
	var out []Run
	var sum [shownBuckets]time.Duration
	var noData time.Duration
	first := instances[0][0].Window.Start
	for i := 0; i < count; {
		sum = addTimes(sum, changes[i], 1)
		// A first instance with no no data time was registered all along,
		// so its service's sum is not empty and noData does not count.
		if firstNoData[i] > 0 {
			noData = firstNoData[i]
		}
		// Nothing changes until the next cut.
		j := i + 1
		for j < count && !cut[j] {
			j++
		}
		w := serviceWindow(first.Add(time.Duration(i)*granularity), sum, noData)
		if last := len(out) - 1; last >= 0 && sameTimes(out[last].Window, w) {
			out[last].Count += j - i
		} else {
			out = append(out, Run{Count: j - i, Window: w})
		}
		i = j
	}
	return out
}

// normalise returns rec with its periods sorted and overlapping ones merged,
// and its timelines sorted, so that no moment counts twice however the
// recording was stored.
func normalise(rec Recording) Recording {
	out := Recording{Observed: normalisePeriods(rec.Observed), Registered: normalisePeriods(rec.Registered), Checks: rec.Checks}
	cloned := false
	for i, steps := range rec.Checks {
		if slices.IsSortedFunc(steps, compareSteps) {
			continue
		}
		if !cloned {
			// The caller's recording stays as it was.
			out.Checks, cloned = slices.Clone(rec.Checks), true
		}
		sorted := slices.Clone(steps)
		// Stable: of steps at the same moment the last one given stands.
		slices.SortStableFunc(sorted, compareSteps)
		out.Checks[i] = sorted
	}
	return out
}

func compareSteps(a, b Step) int { return a.At.Compare(b.At) }

// normalisePeriods sorts periods, drops empty or reversed ones and merges
// those that overlap or touch. It returns ps itself when that is already so.
func normalisePeriods(ps []Period) []Period {
	tidy := true
	for i, p := range ps {
		if !p.Start.Before(p.End) || (i > 0 && !ps[i-1].End.Before(p.Start)) {
			tidy = false
			break
		}
	}
	if tidy {
		return ps
	}
	sorted := make([]Period, 0, len(ps))
	for _, p := range ps {
		if p.Start.Before(p.End) {
			sorted = append(sorted, p)
		}
	}
	slices.SortFunc(sorted, func(a, b Period) int { return a.Start.Compare(b.Start) })
	var out []Period
	for _, p := range sorted {
		if last := len(out) - 1; last >= 0 && !out[last].End.Before(p.Start) {
			out[last].End = later(out[last].End, p.End)
			continue
		}
		out = append(out, p)
	}
	return out
}

// segment is a stretch of time with one history category.
type segment struct {
	Period
	bucket bucket
}

// segments cuts [from, until) of a normalised recording into consecutive
// stretches of one category each: unregistered outside the catalog, no data
// outside observation, else the worst check.
func segments(rec Recording, from, until time.Time) []segment {
	var segs []segment
	add := func(p Period, b bucket) {
		if last := len(segs) - 1; last >= 0 && segs[last].bucket == b && segs[last].End.Equal(p.Start) {
			segs[last].End = p.End
			return
		}
		segs = append(segs, segment{p, b})
	}
	cursor := from
	for _, r := range intersect(rec.Registered, []Period{{from, until}}) {
		if r.Start.After(cursor) {
			add(Period{cursor, r.Start}, bucketUnregistered)
		}
		cursor = r.Start
		for _, o := range intersect(rec.Observed, []Period{r}) {
			if o.Start.After(cursor) {
				add(Period{cursor, o.Start}, bucketNoData)
			}
			forEachStatus(rec.Checks, o, add)
			cursor = o.End
		}
		if cursor.Before(r.End) {
			add(Period{cursor, r.End}, bucketNoData)
		}
		cursor = r.End
	}
	if cursor.Before(until) {
		add(Period{cursor, until}, bucketUnregistered)
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

// percentages gives each part's share of their sum in tenths of a percent,
// by largest remainder so that they add up to exactly 100. Then any warning,
// critical or no data part above zero that rounded to 0 gets 0.1, taken from
// the largest share: a short failure must stay visible.
func percentages(shown [shownBuckets]time.Duration) [shownBuckets]float64 {
	var whole int64
	for _, d := range shown {
		whole += int64(d)
	}
	var out [shownBuckets]float64
	if whole <= 0 {
		out[bucketNoData] = 100
		return out
	}
	var tenths, remainders [shownBuckets]int64
	var total int64
	for i, d := range shown {
		// A service's instance-time over thousands of instances passes
		// 2^63 once multiplied by 1000: the product is taken in 128 bits.
		// Each time is at most the whole, so the quotient fits.
		hi, lo := bits.Mul64(uint64(max(d, 0)), 1000)
		q, r := bits.Div64(hi, lo, uint64(whole))
		tenths[i], remainders[i] = int64(q), int64(r)
		total += tenths[i]
	}
	// The tenths still missing go to the largest remainders; of equal
	// ones, to the first in the order passing, warning, critical, no data.
	order := []int{0, 1, 2, 3}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(remainders[b], remainders[a]) })
	for _, i := range order[:1000-total] {
		tenths[i]++
	}
	// Of equal largest shares, the sliver comes from the first in that
	// order too, so healthy time gives it before no data does.
	for i := bucketWarning; i < shownBuckets; i++ {
		if shown[i] > 0 && tenths[i] == 0 {
			largest := 0
			for j := range tenths {
				if tenths[j] > tenths[largest] {
					largest = j
				}
			}
			tenths[largest]--
			tenths[i] = 1
		}
	}
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
