package health

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"time"
)

// UptimeWindows are the lengths uptime is reported over, by their API name.
var UptimeWindows = []struct {
	Name   string
	Length time.Duration
}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// ReasonBeforeHistory is why a status_since is unknown: the status was
// already in force when the retained history begins.
const ReasonBeforeHistory = "before retained history"

// ReasonNotRecorded is why a service's since is unknown when its instances
// now differ from what history holds so far.
const ReasonNotRecorded = "not recorded yet"

// Uptime is the time an instance (or a service's instances together) spent
// in each status within a window, counting registered time only.
type Uptime struct {
	// From is where the window starts: its length back from the end,
	// clipped to where the retained history begins.
	From time.Time
	// Observed is the time health answers certified: the sum of the four
	// statuses. NoData is registered time that nothing certified, or in
	// which no check existed.
	Passing, Warning, Critical, Maintenance, NoData time.Duration
}

// Observed is the certified time, maintenance included.
func (u Uptime) Observed() time.Duration { return u.Passing + u.Warning + u.Critical + u.Maintenance }

// UptimePct is an Uptime as shares in percent, each rounded to 0.1.
// Passing, Warning and Critical are shares of observed time less
// maintenance and sum to exactly 100 (all 0 when there was no such time);
// a non-zero warning or critical time never shows as 0. Maintenance is its
// share of observed time, NoData its share of registered time.
type UptimePct struct {
	Passing, Warning, Critical, Maintenance, NoData float64
}

// Pct is u as shares.
func (u Uptime) Pct() UptimePct {
	var out UptimePct
	if up := u.Passing + u.Warning + u.Critical; up > 0 {
		p := percentages([shownBuckets]time.Duration{u.Passing, u.Warning, u.Critical, 0})
		out.Passing, out.Warning, out.Critical = p[bucketPassing], p[bucketWarning], p[bucketCritical]
	}
	out.Maintenance = share(u.Maintenance, u.Observed())
	out.NoData = share(u.NoData, u.Observed()+u.NoData)
	return out
}

// share is part of whole in percent to 0.1; a part above zero never shows
// as 0, nor one below the whole as 100.
func share(part, whole time.Duration) float64 {
	if part <= 0 || whole <= 0 {
		return 0
	}
	tenths := math.Round(float64(part) * 1000 / float64(whole))
	tenths = min(max(tenths, 1), 1000)
	if part < whole {
		tenths = min(tenths, 999)
	}
	return tenths / 10
}

func (u Uptime) add(v Uptime) Uptime {
	u.Passing += v.Passing
	u.Warning += v.Warning
	u.Critical += v.Critical
	u.Maintenance += v.Maintenance
	u.NoData += v.NoData
	return u
}

// Incident is what the API tells about an instance's recent past.
type Incident struct {
	Status Status
	// Since is when Status began; zero with SinceReason when that was
	// before the retained history.
	Since       time.Time
	SinceReason string
	// Changes24h counts the instance's status changes in the last 24 hours
	// (a change of status as the instance shows it, not of each check).
	Changes24h int
	// Uptime is one figure per UptimeWindows entry.
	Uptime []Uptime
	// timeline is the instance's status over registered time from the
	// retained history on, for the service's figures.
	timeline []Step
}

// Instance status for the timelines: as InstanceStatus, with Unknown when
// no check exists. absent is an instance outside the catalog.
const absent Status = ""

// InstanceIncident computes an instance's figures from its recording. from
// is where the retained history begins (check timelines start with the
// step in force there), until where history ends (see Windows).
func InstanceIncident(rec Recording, from, until time.Time) Incident {
	rec = normalise(rec)
	tl := statusTimeline(rec.Checks, from, until)
	inc := Incident{Status: tl[len(tl)-1].Status}
	last := tl[len(tl)-1]
	if reg := intersect(rec.Registered, []Period{{from, until}}); len(tl) == 1 && last.Status == Unknown && len(reg) > 0 && reg[len(reg)-1].Start.After(from) {
		// Never checked: unknown since it was registered.
		last.At = reg[len(reg)-1].Start
	}
	if last.At.After(from) {
		inc.Since = last.At
	} else {
		inc.SinceReason = ReasonBeforeHistory
	}
	dayAgo := until.Add(-24 * time.Hour)
	for i, s := range tl {
		if i > 0 && s.At.After(dayAgo) && !(i == 1 && tl[0].Status == Unknown && firstAppearance(rec.Checks, s.At)) {
			inc.Changes24h++
		}
	}
	for _, w := range UptimeWindows {
		start := later(from, until.Add(-w.Length))
		inc.Uptime = append(inc.Uptime, uptime(rec, tl, start, until))
	}
	inc.timeline = registeredTimeline(tl, rec.Registered, from, until)
	return inc
}

// firstAppearance reports whether no check had any step before t: the
// instance's checks appeared at t, which is its birth, not a change.
func firstAppearance(checks [][]Step, t time.Time) bool {
	for _, steps := range checks {
		if len(steps) > 0 && steps[0].At.Before(t) {
			return false
		}
	}
	return true
}

// statusTimeline is the instance's status from from to until: its first
// step is at from, and each next one is a change. It walks the checks'
// sorted timelines together, so the cost follows their steps.
func statusTimeline(checks [][]Step, from, until time.Time) []Step {
	// idx[c] is the step of check c in force at the moment reached, -1
	// before its first.
	idx := make([]int, len(checks))
	for c, steps := range checks {
		idx[c] = sort.Search(len(steps), func(i int) bool { return steps[i].At.After(from) }) - 1
	}
	current := func() Status {
		worst, present := Passing, false
		for c, steps := range checks {
			if idx[c] < 0 || steps[idx[c]].Status == "" {
				continue
			}
			present = true
			s := steps[idx[c]].Status
			if s == Maintenance {
				return Maintenance
			}
			if s.severity() > worst.severity() {
				worst = s
			}
		}
		if !present {
			return Unknown
		}
		return worst
	}
	tl := []Step{{At: from, Status: current()}}
	for {
		var next time.Time
		found := false
		for c, steps := range checks {
			if i := idx[c] + 1; i < len(steps) && (!found || steps[i].At.Before(next)) {
				next, found = steps[i].At, true
			}
		}
		if !found || next.After(until) {
			return tl
		}
		for c, steps := range checks {
			for idx[c]+1 < len(steps) && steps[idx[c]+1].At.Equal(next) {
				idx[c]++
			}
		}
		if st := current(); st != tl[len(tl)-1].Status {
			tl = append(tl, Step{At: next, Status: st})
		}
	}
}

// statusAt is the instance status at t, as InstanceStatus ranks it, from
// check timelines whose steps may carry Maintenance for Consul's
// maintenance checks.
func statusAt(checks [][]Step, t time.Time) Status {
	worst, present := Passing, false
	for _, steps := range checks {
		i := sort.Search(len(steps), func(i int) bool { return steps[i].At.After(t) })
		if i == 0 || steps[i-1].Status == "" {
			continue
		}
		present = true
		s := steps[i-1].Status
		if s == Maintenance {
			return Maintenance
		}
		if s.severity() > worst.severity() {
			worst = s
		}
	}
	if !present {
		return Unknown
	}
	return worst
}

// uptime sums tl's time in each status over the registered part of
// [start, until); time outside observation is no data, and so is time in
// which no check existed.
func uptime(rec Recording, tl []Step, start, until time.Time) Uptime {
	u := Uptime{From: start}
	for _, r := range intersect(rec.Registered, []Period{{start, until}}) {
		unobserved := r.End.Sub(r.Start)
		for _, o := range intersect(rec.Observed, []Period{r}) {
			unobserved -= o.End.Sub(o.Start)
			forEachStep(tl, o, func(p Period, s Status) {
				d := p.End.Sub(p.Start)
				switch s {
				case Passing:
					u.Passing += d
				case Warning:
					u.Warning += d
				case Critical:
					u.Critical += d
				case Maintenance:
					u.Maintenance += d
				default:
					u.NoData += d
				}
			})
		}
		u.NoData += unobserved
	}
	return u
}

// forEachStep calls fn for each stretch of p in one status of tl, whose
// first step is at or before p.Start.
func forEachStep(tl []Step, p Period, fn func(Period, Status)) {
	i := sort.Search(len(tl), func(i int) bool { return tl[i].At.After(p.Start) }) - 1
	i = max(i, 0)
	for at := p.Start; at.Before(p.End); i++ {
		end := p.End
		if i+1 < len(tl) && tl[i+1].At.Before(end) {
			end = tl[i+1].At
		}
		fn(Period{at, end}, tl[i].Status)
		at = end
	}
}

// registeredTimeline is tl with the instance absent outside its
// registered periods.
func registeredTimeline(tl []Step, registered []Period, from, until time.Time) []Step {
	out := []Step{{At: from, Status: absent}}
	put := func(at time.Time, s Status) {
		last := &out[len(out)-1]
		switch {
		case last.At.Equal(at):
			last.Status = s
			if len(out) > 1 && out[len(out)-2].Status == s {
				out = out[:len(out)-1]
			}
		case last.Status != s:
			out = append(out, Step{At: at, Status: s})
		}
	}
	for _, r := range intersect(registered, []Period{{from, until}}) {
		if !r.End.Before(until) {
			// A change recorded at until itself is the status now.
			r.End = until.Add(time.Nanosecond)
		}
		forEachStep(tl, r, func(p Period, s Status) { put(p.Start, s) })
		if r.End.Before(until) {
			put(r.End, absent)
		}
	}
	return out
}

// ServiceIncident is a service's figures over its instances.
type ServiceIncident struct {
	// Counts is how many registered instances are in each status now.
	Counts map[Status]int
	// Worst is the worst status of an instance now (see WorseService).
	Worst Status
	// Since is when the service came to be at Worst; zero with SinceReason
	// when that was before the retained history.
	Since       time.Time
	SinceReason string
	// Changes24h counts changes of the service's worst status in the last
	// 24 hours.
	Changes24h int
	// Uptime adds up the instances' times: instance-time while registered.
	Uptime []Uptime
}

// serviceRank orders statuses for a service's worst: a failing instance
// outranks one that is in maintenance, which is a choice, not a failure.
func serviceRank(s Status) int {
	switch s {
	case Critical:
		return 5
	case Warning:
		return 4
	case Unknown:
		return 3
	case Maintenance:
		return 2
	case Passing:
		return 1
	}
	return 0
}

// rankStatus is the status of each serviceRank.
var rankStatus = [6]Status{absent, Passing, Maintenance, Unknown, Warning, Critical}

// WorseService reports whether a is worse than b for a service's status:
// critical, warning, unknown, maintenance, passing.
func WorseService(a, b Status) bool { return serviceRank(a) > serviceRank(b) }

// Service aggregates the incidents of a service's instances: current, the
// statuses of those registered now, and all, the figures of every instance
// registered at some time in the history. from and until are those given
// to InstanceIncident.
func Service(current []Status, all []Incident, from, until time.Time) ServiceIncident {
	out := ServiceIncident{Counts: map[Status]int{Passing: 0, Warning: 0, Critical: 0, Maintenance: 0, Unknown: 0}, Worst: absent}
	for _, s := range current {
		out.Counts[s]++
		if WorseService(s, out.Worst) {
			out.Worst = s
		}
	}
	for i := range UptimeWindows {
		var u Uptime
		for _, inc := range all {
			if i < len(inc.Uptime) {
				u = u.add(inc.Uptime[i])
				u.From = inc.Uptime[i].From
			}
		}
		if u.From.IsZero() {
			u.From = later(from, until.Add(-UptimeWindows[i].Length))
		}
		out.Uptime = append(out.Uptime, u)
	}
	// The service's worst over time: sweep every instance's registered
	// timeline, keeping how many instances are in each status.
	type event struct {
		at       int64 // Unix nanoseconds: cheaper to sort than time.Time
		from, to Status
	}
	var events []event
	for _, inc := range all {
		prev := absent
		for _, st := range inc.timeline {
			events = append(events, event{st.At.UnixNano(), prev, st.Status})
			prev = st.Status
		}
	}
	// Events at one moment are all applied before the worst is read, so
	// their order among themselves does not matter.
	slices.SortFunc(events, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	var counts [6]int // by serviceRank
	worstNow := func() Status {
		for r := len(counts) - 1; r > 0; r-- {
			if counts[r] > 0 {
				return rankStatus[r]
			}
		}
		return absent
	}
	tl := []Step{{At: from, Status: absent}}
	for i := 0; i < len(events); {
		at := events[i].at
		for ; i < len(events) && events[i].at == at; i++ {
			counts[serviceRank(events[i].from)]--
			counts[serviceRank(events[i].to)]++
		}
		w := worstNow()
		switch last := &tl[len(tl)-1]; {
		case last.At.UnixNano() == at:
			last.Status = w
			if len(tl) > 1 && tl[len(tl)-2].Status == w {
				tl = tl[:len(tl)-1]
			}
		case last.Status != w:
			tl = append(tl, Step{At: time.Unix(0, at).UTC(), Status: w})
		}
	}
	// The service's since is for the worst of the instances registered
	// now; the history's last step says the same unless the catalog moved
	// after the history's end.
	last := tl[len(tl)-1]
	switch {
	case out.Worst == absent:
	case last.Status == out.Worst && last.At.After(from):
		out.Since = last.At
	case last.Status == out.Worst:
		out.SinceReason = ReasonBeforeHistory
	default:
		out.SinceReason = ReasonNotRecorded
	}
	dayAgo := until.Add(-24 * time.Hour)
	for i := 1; i < len(tl); i++ {
		// Appearing or leaving is not a change of status.
		if tl[i].At.After(dayAgo) && tl[i].Status != absent && tl[i-1].Status != absent {
			out.Changes24h++
		}
	}
	if out.Worst == absent {
		out.Worst = Unknown
	}
	return out
}
