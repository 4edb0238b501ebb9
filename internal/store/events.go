package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// Event is a check's status change or an instance's (de)registration, as
// recorded.
type Event struct {
	Key  EventKey
	At   time.Time
	Kind health.EventKind
	Node string
	// ServiceID is "" for a node check, which counts for every instance on
	// Node; Service, the service's name, is then "" too.
	ServiceID string
	Service   string
	// CheckID and CheckName are "" for a (de)registration.
	CheckID, CheckName string
	// From and To are the statuses either side of a check's change; "" for
	// none (a check added or removed, and a (de)registration).
	From, To health.Status
	// Output is the check's output at the change, at most
	// health.EventOutputMax bytes; OutputTruncated is set when it was cut.
	Output          string
	OutputTruncated bool
}

// Instance is the event's instance's API identifier, "" for a node check.
func (e Event) Instance() string {
	if e.ServiceID == "" {
		return ""
	}
	return health.InstanceID(e.Node, e.ServiceID)
}

// EventKey is an event's place in the order Events lists them, newest
// first: by time; within a millisecond, check changes before
// (de)registrations, as an instance registers before its checks appear;
// then by row. Every event has its own key, and a recorded time never goes
// backwards, so a key marks where a page ended whatever is recorded after it.
type EventKey struct {
	AtMs int64
	// Source is sourceRegistration or sourceCheck.
	Source int
	// ID is the checks or instances row.
	ID int64
}

const (
	sourceRegistration = 0
	sourceCheck        = 1
)

func compareKeys(a, b EventKey) int {
	return cmp.Or(cmp.Compare(a.AtMs, b.AtMs), cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
}

// String is the key as an opaque cursor for the API.
func (k EventKey) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d.%d", k.AtMs, k.Source, k.ID))
}

// ErrBadCursor is returned by ParseEventKey for text String did not make.
var ErrBadCursor = errors.New("not a cursor this server gave")

// ParseEventKey reads a cursor made by EventKey.String.
func ParseEventKey(cursor string) (EventKey, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return EventKey{}, ErrBadCursor
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 {
		return EventKey{}, ErrBadCursor
	}
	var n [3]int64
	for i, p := range parts {
		if n[i], err = strconv.ParseInt(p, 10, 64); err != nil {
			return EventKey{}, ErrBadCursor
		}
	}
	k := EventKey{AtMs: n[0], Source: int(n[1]), ID: n[2]}
	if (k.Source != sourceRegistration && k.Source != sourceCheck) || k.ID < 0 || k.String() != cursor {
		return EventKey{}, ErrBadCursor
	}
	return k, nil
}

// EventFilter selects events. Zero fields select everything.
type EventFilter struct {
	// Since and Until bound the events' times: Since ≤ at < Until.
	Since, Until time.Time
	// Service is a service name: its instances' events, and those of the
	// node checks on the nodes it runs on, which count in their status.
	Service string
	// Instance is an API identifier: the instance's events and those of
	// its node's checks.
	Instance string
	// Statuses keep only check changes to one of them (as shown:
	// maintenance for a maintenance check); with any, no
	// (de)registration is listed.
	Statuses []health.Status
	// After continues a listing after the event it names.
	After *EventKey
	// Limit is the most events returned; it must be at least 1.
	Limit int
}

// EventPage is up to Limit events, newest first, and the key to continue
// from when there are more.
type EventPage struct {
	Events []Event
	Next   *EventKey
}

// Events lists the recorded events that f selects, newest first. Each
// query reads from the newest end of an index (on time, on status and
// time, or a check's own rows), so that a page costs about its own length,
// not the history's.
func (s *Store) Events(ctx context.Context, f EventFilter) (EventPage, error) {
	if f.Limit < 1 {
		return EventPage{}, fmt.Errorf("store: events: limit %d", f.Limit)
	}
	var node, serviceID string
	if f.Instance != "" {
		var ok bool
		if node, serviceID, ok = health.ParseInstanceID(f.Instance); !ok {
			return EventPage{}, nil
		}
	}
	// One read transaction, so that all queries see the same moment.
	tx, err := s.reader.BeginTx(ctx, nil)
	if err != nil {
		return EventPage{}, err
	}
	defer tx.Rollback()
	// The newest Limit+1 of all are among the newest Limit+1 of each
	// query; the one past Limit tells that there are more.
	events, err := checkEvents(ctx, tx, f, node, serviceID)
	if err != nil {
		return EventPage{}, err
	}
	if len(f.Statuses) == 0 {
		regs, err := registrationEvents(ctx, tx, f, node, serviceID)
		if err != nil {
			return EventPage{}, err
		}
		events = append(events, regs...)
	}
	events = keepNewest(events, f.Limit+1)
	var page EventPage
	if len(events) > f.Limit {
		events = events[:f.Limit]
		page.Next = &events[f.Limit-1].Key
	}
	page.Events = events
	return page, nil
}

// keepNewest sorts events newest first and keeps n of them.
func keepNewest(events []Event, n int) []Event {
	slices.SortFunc(events, func(a, b Event) int { return compareKeys(b.Key, a.Key) })
	if len(events) > n {
		clear(events[n:]) // the outputs left behind are not held
		events = events[:n]
	}
	return events
}

// eventQuery gathers the conditions of one kind's query.
type eventQuery struct {
	where []string
	args  []any
}

func (q *eventQuery) add(cond string, args ...any) {
	q.where = append(q.where, cond)
	q.args = append(q.args, args...)
}

func (q *eventQuery) sql() string {
	if len(q.where) == 0 {
		return ""
	}
	return "WHERE " + strings.Join(q.where, " AND ")
}

// timeAndKey adds the time bounds and the cursor for one kind of event:
// source, whose time and row columns are at and id.
func (q *eventQuery) timeAndKey(f EventFilter, source int, at, id string) {
	// Times are whole milliseconds: a bound between two is the next.
	if !f.Since.IsZero() {
		q.add(at+" >= ?", ceilMillis(f.Since))
	}
	if !f.Until.IsZero() {
		q.add(at+" < ?", ceilMillis(f.Until))
	}
	if k := f.After; k != nil {
		switch {
		case k.Source == source:
			q.add("("+at+", "+id+") < (?, ?)", k.AtMs, k.ID)
		case k.Source < source:
			// This kind comes first within a millisecond: the cursor's
			// millisecond is done with.
			q.add(at+" < ?", k.AtMs)
		default:
			q.add(at+" <= ?", k.AtMs)
		}
	}
}

func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}

// maintenanceCheckSQL is health.Check.IsMaintenance for the check ID in
// column: Consul's reserved IDs for maintenance mode.
func maintenanceCheckSQL(column string) string {
	return "(" + column + " = '_node_maintenance' OR substr(" + column + ", 1, 21) = '_service_maintenance:')"
}

// perCheckMax is the most checks an instance or service filter reads one
// by one. Each check's newest changes are then read from its own rows, so
// that a quiet service in a busy fleet costs its own changes only; a
// larger service is read from the index on time, where its changes are
// common enough to be found soon.
var perCheckMax = 256 // a variable so that tests take both ways

// checkEvents returns the newest f.Limit+1 check changes f selects.
func checkEvents(ctx context.Context, tx *sql.Tx, f EventFilter, node, serviceID string) ([]Event, error) {
	if f.Instance != "" || f.Service != "" {
		checks, err := filteredChecks(ctx, tx, f, node, serviceID)
		if err != nil {
			return nil, err
		}
		if len(checks) <= perCheckMax {
			var out []Event
			for _, c := range checks {
				query, args, ok := oneCheckEventsQuery(f, c)
				if !ok {
					continue
				}
				part, err := scanCheckEvents(ctx, tx, query, args)
				if err != nil {
					return nil, err
				}
				// Kept to a page as it goes: 256 checks' pages of
				// outputs would be a lot to hold.
				out = keepNewest(append(out, part...), f.Limit+1)
			}
			return out, nil
		}
	}
	// A status filter is a query per status, each read from an index in
	// time order, so that a rare status costs no more than a common one.
	statuses := f.Statuses
	if len(statuses) == 0 {
		statuses = []health.Status{""}
	}
	var out []Event
	for _, st := range statuses {
		query, args := checkEventsQuery(f, st, node, serviceID)
		part, err := scanCheckEvents(ctx, tx, query, args)
		if err != nil {
			return nil, err
		}
		out = keepNewest(append(out, part...), f.Limit+1)
	}
	return out, nil
}

type filteredCheck struct {
	id      int64
	checkID string
}

// filteredChecks are the checks an instance or service filter selects:
// the instances' own and their nodes'.
func filteredChecks(ctx context.Context, tx *sql.Tx, f EventFilter, node, serviceID string) ([]filteredCheck, error) {
	// From the instances' side, so that the indexes on names and on
	// (node, service_id) find them without reading every check.
	query := `SELECT c.id, c.check_id FROM instances i JOIN checks c ON c.node = i.node AND c.service_id = i.service_id WHERE %[1]s
		UNION SELECT c.id, c.check_id FROM checks c WHERE c.service_id = '' AND c.node IN (SELECT node FROM instances i WHERE %[1]s)`
	var q eventQuery
	if f.Instance != "" {
		q.add("i.node = ? AND i.service_id = ?", node, serviceID)
	}
	if f.Service != "" {
		q.add("i.name = ?", f.Service)
	}
	cond := strings.Join(q.where, " AND ")
	rows, err := tx.QueryContext(ctx, `SELECT id, check_id FROM (`+fmt.Sprintf(query, cond)+`) LIMIT ?`, append(append(q.args, q.args...), perCheckMax+1)...)
	if err != nil {
		return nil, fmt.Errorf("store: checks of the filter: %w", err)
	}
	defer rows.Close()
	var out []filteredCheck
	for rows.Next() {
		var c filteredCheck
		if err := rows.Scan(&c.id, &c.checkID); err != nil {
			return nil, fmt.Errorf("store: checks of the filter: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

const checkEventsSelect = `
		SELECT s.at_ms, s.check_id, c.node, c.service_id, coalesce(i.name, ''), c.check_id, c.name,
			s.from_status, s.status, s.output, s.output_truncated
		FROM check_spans s
		JOIN checks c ON c.id = s.check_id
		LEFT JOIN instances i ON i.node = c.node AND i.service_id = c.service_id AND c.service_id != ''
		`

const checkEventsOrder = `
		ORDER BY s.at_ms DESC, s.check_id DESC
		LIMIT ?`

// oneCheckEventsQuery is the query for c's changes that f selects
// (f's instance or service filter includes c), newest first, one more
// than f.Limit; ok is false when f's statuses rule them all out.
func oneCheckEventsQuery(f EventFilter, c filteredCheck) (query string, args []any, ok bool) {
	var q eventQuery
	q.add("s.check_id = ?", c.id)
	q.timeAndKey(f, sourceCheck, "s.at_ms", "s.check_id")
	q.add("s.from_status != s.status")
	if len(f.Statuses) > 0 {
		// The shown status (health.ChangeOfCheck) depends on the check
		// alone, so it is settled here: a maintenance check's changes
		// to any status show as maintenance.
		if (health.Check{CheckID: c.checkID}).IsMaintenance() {
			if !slices.Contains(f.Statuses, health.Maintenance) {
				return "", nil, false
			}
			q.add("s.status != ''")
		} else {
			var stored []any
			for _, st := range f.Statuses {
				if st != health.Maintenance {
					stored = append(stored, string(st))
				}
			}
			if len(stored) == 0 {
				return "", nil, false
			}
			q.add("s.status IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(stored)), ", ")+")", stored...)
		}
	}
	return checkEventsSelect + q.sql() + checkEventsOrder, append(q.args, f.Limit+1), true
}

// checkEventsQuery is the query for the check changes f selects that go to
// status (as health.ChangeOfCheck shows it; "" for any), newest first, one
// more than f.Limit, read from the index on time.
func checkEventsQuery(f EventFilter, status health.Status, node, serviceID string) (string, []any) {
	var q eventQuery
	q.timeAndKey(f, sourceCheck, "s.at_ms", "s.check_id")
	// A row that changes nothing is no event; none is written so, but
	// spans from before events were kept got their from status later.
	q.add("s.from_status != s.status")
	if f.Instance != "" {
		q.add("c.node = ? AND c.service_id IN (?, '')", node, serviceID)
	}
	if f.Service != "" {
		q.add("(i.name = ? OR (c.service_id = '' AND c.node IN (SELECT node FROM instances WHERE name = ?)))", f.Service, f.Service)
	}
	switch status {
	case "":
	case health.Maintenance:
		// Consul stores maintenance as a critical check with a reserved
		// ID, and there are few: they are found first, then their changes.
		q.add("s.status != '' AND s.check_id IN (SELECT id FROM checks WHERE " + maintenanceCheckSQL("check_id") + ")")
	default:
		q.add("s.status = ? AND NOT "+maintenanceCheckSQL("c.check_id"), string(status))
	}
	return checkEventsSelect + q.sql() + checkEventsOrder, append(q.args, f.Limit+1)
}

func scanCheckEvents(ctx context.Context, tx *sql.Tx, query string, args []any) ([]Event, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: check events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e := Event{Key: EventKey{Source: sourceCheck}}
		var from, to string
		if err := rows.Scan(&e.Key.AtMs, &e.Key.ID, &e.Node, &e.ServiceID, &e.Service, &e.CheckID, &e.CheckName,
			&from, &to, &e.Output, &e.OutputTruncated); err != nil {
			return nil, fmt.Errorf("store: check events: %w", err)
		}
		e.At = fromMillis(e.Key.AtMs)
		change := health.ChangeOfCheck(e.CheckID, health.Status(from), health.Status(to))
		e.Kind, e.From, e.To = change.Kind, change.From, change.To
		out = append(out, e)
	}
	return out, rows.Err()
}

// registrationEventsQuery is the query for the (de)registrations f
// selects, newest first, one more than f.Limit.
func registrationEventsQuery(f EventFilter, node, serviceID string) (string, []any) {
	var q eventQuery
	q.timeAndKey(f, sourceRegistration, "r.at_ms", "r.instance_id")
	if f.Instance != "" {
		q.add("i.node = ? AND i.service_id = ?", node, serviceID)
	}
	if f.Service != "" {
		q.add("i.name = ?", f.Service)
	}
	return `
		SELECT r.at_ms, r.instance_id, i.node, i.service_id, i.name, r.registered
		FROM registrations r JOIN instances i ON i.id = r.instance_id
		` + q.sql() + `
		ORDER BY r.at_ms DESC, r.instance_id DESC
		LIMIT ?`, append(q.args, f.Limit+1)
}

func registrationEvents(ctx context.Context, tx *sql.Tx, f EventFilter, node, serviceID string) ([]Event, error) {
	query, args := registrationEventsQuery(f, node, serviceID)
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: registration events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e := Event{Key: EventKey{Source: sourceRegistration}}
		var registered bool
		if err := rows.Scan(&e.Key.AtMs, &e.Key.ID, &e.Node, &e.ServiceID, &e.Service, &registered); err != nil {
			return nil, fmt.Errorf("store: registration events: %w", err)
		}
		e.At = fromMillis(e.Key.AtMs)
		e.Kind = health.ChangeOfRegistration(registered)
		out = append(out, e)
	}
	return out, rows.Err()
}
