package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// Recording returns what is stored about the instance with API identifier
// id from the moment from until until (see HistoryEnd), or ErrNotFound.
// It answers for an instance that has left the catalog too, until
// retention removes it. Check timelines start with the step in force at
// from.
func (s *Store) Recording(ctx context.Context, id string, from, until time.Time) (health.Recording, error) {
	node, serviceID, ok := health.ParseInstanceID(id)
	if !ok {
		return health.Recording{}, ErrNotFound
	}
	// One read transaction, so that all parts come from the same poll.
	tx, err := s.reader.BeginTx(ctx, nil)
	if err != nil {
		return health.Recording{}, err
	}
	defer tx.Rollback()

	var instanceID int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM instances WHERE node = ? AND service_id = ?`, node, serviceID).Scan(&instanceID)
	if errors.Is(err, sql.ErrNoRows) {
		return health.Recording{}, ErrNotFound
	}
	if err != nil {
		return health.Recording{}, fmt.Errorf("store: find instance: %w", err)
	}

	var rec health.Recording
	if rec.Observed, err = observed(ctx, tx, from, until); err != nil {
		return health.Recording{}, err
	}
	registrations, err := queryRegistrations(ctx, tx, `WHERE instance_id = ?`, instanceID)
	if err != nil {
		return health.Recording{}, err
	}
	rec.Registered = registeredPeriods(registrations[instanceID], until)
	steps, err := queryCheckSteps(ctx, tx, from, `node = ? AND service_id IN (?, '')`, node, serviceID)
	if err != nil {
		return health.Recording{}, err
	}
	for _, checkSteps := range steps {
		rec.Checks = append(rec.Checks, checkSteps.steps)
	}
	return rec, nil
}

// InstanceRecording is one instance's Recording with what names it, so
// that an instance that has left the catalog can still be shown.
type InstanceRecording struct {
	health.Recording
	Node, ServiceID string
	// Name is the service's name, which groups instances.
	Name string
	// Gone is true when the instance was not in the catalog at the last
	// read; DeregisteredAt is then when it left (its last deregistration).
	Gone           bool
	DeregisteredAt time.Time
}

// Recordings returns a Recording for every instance that was in the
// catalog at any time from from until until, keyed by API identifier,
// including those that have left since, in a fixed number of queries.
func (s *Store) Recordings(ctx context.Context, from, until time.Time) (map[string]InstanceRecording, error) {
	tx, err := s.reader.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	observed, err := observed(ctx, tx, from, until)
	if err != nil {
		return nil, err
	}
	// Registered now, or left after from: registered at some time in the
	// history.
	const inHistory = `(registered = 1 OR id IN (SELECT instance_id FROM registrations WHERE registered = 0 AND at_ms > ?))`
	registrations, err := queryRegistrations(ctx, tx, `WHERE instance_id IN (SELECT id FROM instances WHERE `+inHistory+`)`, from.UnixMilli())
	if err != nil {
		return nil, err
	}
	steps, err := queryCheckSteps(ctx, tx, from, "")
	if err != nil {
		return nil, err
	}
	serviceChecks := map[instanceKey][][]health.Step{}
	nodeChecks := map[string][][]health.Step{}
	for _, c := range steps {
		if c.serviceID == "" {
			nodeChecks[c.node] = append(nodeChecks[c.node], c.steps)
		} else {
			k := instanceKey{c.node, c.serviceID}
			serviceChecks[k] = append(serviceChecks[k], c.steps)
		}
	}

	rows, err := tx.QueryContext(ctx, `SELECT id, node, service_id, name, registered FROM instances WHERE `+inHistory, from.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: instances: %w", err)
	}
	defer rows.Close()
	out := map[string]InstanceRecording{}
	for rows.Next() {
		var id int64
		var node, serviceID, name string
		var registered bool
		if err := rows.Scan(&id, &node, &serviceID, &name, &registered); err != nil {
			return nil, fmt.Errorf("store: instances: %w", err)
		}
		own := serviceChecks[instanceKey{node, serviceID}]
		checks := make([][]health.Step, 0, len(own)+len(nodeChecks[node]))
		ir := InstanceRecording{
			Recording: health.Recording{
				Observed:   observed,
				Registered: registeredPeriods(registrations[id], until),
				Checks:     append(append(checks, own...), nodeChecks[node]...),
			},
			Node: node, ServiceID: serviceID, Name: name, Gone: !registered,
		}
		if ir.Gone {
			ir.DeregisteredAt = lastDeregistration(registrations[id])
		}
		out[health.InstanceID(node, serviceID)] = ir
	}
	return out, rows.Err()
}

// HistoryEnd is the moment history can speak for up to, given the clock
// reads now. While Consul is being watched that is the last certified
// moment: the query in flight has not said yet what happened since. When
// it is not, the time since is no data up to now; and should the clock
// have stepped back behind what is recorded, history still reaches the
// last recorded moment.
func (s *Store) HistoryEnd(now time.Time) time.Time {
	last := s.LastRecorded()
	if s.Observing() && !last.IsZero() {
		return last
	}
	if last.After(now) {
		return last
	}
	return now
}

// observed returns the observation periods that reach past from, as
// stored: each ends at the last moment it certified. They may overlap or
// run out of order if two writers or a clock step left them so; health
// normalises them.
func observed(ctx context.Context, tx *sql.Tx, from, until time.Time) ([]health.Period, error) {
	rows, err := tx.QueryContext(ctx, `SELECT start_ms, end_ms FROM observations WHERE end_ms > ? AND start_ms < ? ORDER BY start_ms, end_ms`,
		from.UnixMilli(), until.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: observations: %w", err)
	}
	defer rows.Close()
	var periods []health.Period
	for rows.Next() {
		var start, end int64
		if err := rows.Scan(&start, &end); err != nil {
			return nil, fmt.Errorf("store: observations: %w", err)
		}
		periods = append(periods, health.Period{Start: fromMillis(start), End: fromMillis(end)})
	}
	return periods, rows.Err()
}

type registration struct {
	at         time.Time
	registered bool
}

// queryRegistrations returns the registration rows the where clause
// selects, by instance, oldest first.
func queryRegistrations(ctx context.Context, tx *sql.Tx, where string, args ...any) (map[int64][]registration, error) {
	rows, err := tx.QueryContext(ctx, `SELECT instance_id, at_ms, registered FROM registrations `+where+` ORDER BY instance_id, at_ms`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: registrations: %w", err)
	}
	defer rows.Close()
	out := map[int64][]registration{}
	for rows.Next() {
		var id, at int64
		var registered bool
		if err := rows.Scan(&id, &at, &registered); err != nil {
			return nil, fmt.Errorf("store: registrations: %w", err)
		}
		out[id] = append(out[id], registration{fromMillis(at), registered})
	}
	return out, rows.Err()
}

// registeredPeriods turns an instance's registration rows, oldest first,
// into the periods in which it was in the catalog; one still open lasts
// until until.
func registeredPeriods(rows []registration, until time.Time) []health.Period {
	var periods []health.Period
	var openSince *time.Time
	for _, r := range rows {
		switch {
		case r.registered && openSince == nil:
			openSince = &r.at
		case !r.registered && openSince != nil:
			periods = append(periods, health.Period{Start: *openSince, End: r.at})
			openSince = nil
		}
	}
	if openSince != nil && until.After(*openSince) {
		periods = append(periods, health.Period{Start: *openSince, End: until})
	}
	return periods
}

// lastDeregistration is when the instance last left the catalog.
func lastDeregistration(rows []registration) time.Time {
	var last time.Time
	for _, r := range rows {
		if !r.registered && r.at.After(last) {
			last = r.at
		}
	}
	return last
}

type checkTimeline struct {
	node, serviceID string
	steps           []health.Step
}

// queryCheckSteps returns, for each check the filter on the checks table
// keeps (all when it is empty), its status changes from the one in force
// at from, in the order of the checks' rows. A maintenance check's status
// is Maintenance. It reads the step in force at from with one index
// look-up per check and the later ones in one ordered scan, so that the
// cost follows the rows returned.
func queryCheckSteps(ctx context.Context, tx *sql.Tx, from time.Time, filter string, args ...any) ([]checkTimeline, error) {
	where, inChecks := "", ""
	if filter != "" {
		where = " WHERE " + filter
		inChecks = " AND check_id IN (SELECT id FROM checks WHERE " + filter + ")"
	}
	var out []checkTimeline
	index := map[int64]int{}
	maintenance := map[int64]bool{}
	err := queryRows(ctx, tx, `SELECT id, node, service_id, check_id FROM checks`+where+` ORDER BY id`, args, func(rows *sql.Rows) error {
		var id int64
		var node, serviceID, checkID string
		if err := rows.Scan(&id, &node, &serviceID, &checkID); err != nil {
			return err
		}
		index[id] = len(out)
		out = append(out, checkTimeline{node: node, serviceID: serviceID})
		if (health.Check{CheckID: checkID}).IsMaintenance() {
			maintenance[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: checks: %w", err)
	}
	fromMs := from.UnixMilli()
	var status sql.RawBytes // reused from row to row
	add := func(rows *sql.Rows) error {
		var id, at int64
		if err := rows.Scan(&id, &at, &status); err != nil {
			return err
		}
		i, ok := index[id]
		if !ok {
			return nil // a check that appeared after the checks were read
		}
		st := stepStatus(status)
		if st != "" && maintenance[id] {
			// Consul stores maintenance as a critical check; incidents
			// tell it apart, and history counts it as critical anyway.
			st = health.Maintenance
		}
		out[i].steps = append(out[i].steps, health.Step{At: fromMillis(at), Status: st})
		return nil
	}
	err = queryRows(ctx, tx, `
		SELECT id, at_ms, (SELECT status FROM check_spans WHERE check_id = id AND at_ms = f.at_ms) FROM (
			SELECT c.id, (SELECT max(at_ms) FROM check_spans WHERE check_id = c.id AND at_ms <= ?) AS at_ms FROM checks c`+where+`
		) f WHERE at_ms IS NOT NULL`,
		append([]any{fromMs}, args...), add)
	if err != nil {
		return nil, fmt.Errorf("store: check spans: %w", err)
	}
	err = queryRows(ctx, tx, `SELECT check_id, at_ms, status FROM check_spans WHERE at_ms > ?`+inChecks+` ORDER BY check_id, at_ms`,
		append([]any{fromMs}, args...), add)
	if err != nil {
		return nil, fmt.Errorf("store: check spans: %w", err)
	}
	return slices.DeleteFunc(out, func(c checkTimeline) bool { return len(c.steps) == 0 }), nil
}

// stepStatus is a stored status without allocating for the usual ones:
// there is one per span read.
func stepStatus(b []byte) health.Status {
	for _, s := range []health.Status{health.Passing, health.Critical, health.Warning, ""} {
		if string(b) == string(s) {
			return s
		}
	}
	return health.Status(b)
}

// queryRows calls fn for each row the query returns.
func queryRows(ctx context.Context, tx *sql.Tx, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
