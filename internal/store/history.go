package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// Recording returns what is stored about the instance with API identifier
// id from the moment from until now, or ErrNotFound. Check timelines start
// with the step in force at from.
func (s *Store) Recording(ctx context.Context, id string, from, now time.Time) (health.Recording, error) {
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
	if rec.Observed, err = s.observed(ctx, tx, from, now); err != nil {
		return health.Recording{}, err
	}
	registrations, err := queryRegistrations(ctx, tx, `WHERE instance_id = ?`, instanceID)
	if err != nil {
		return health.Recording{}, err
	}
	rec.Registered = registeredPeriods(registrations[instanceID], now)
	steps, err := queryCheckSteps(ctx, tx, from, `AND s.check_id IN (SELECT id FROM checks WHERE node = ? AND service_id IN (?, ''))`, node, serviceID)
	if err != nil {
		return health.Recording{}, err
	}
	for _, checkSteps := range steps {
		rec.Checks = append(rec.Checks, checkSteps.steps)
	}
	return rec, nil
}

// Recordings returns Recording for every instance in Consul at the last
// poll, keyed by API identifier, read in a fixed number of queries.
func (s *Store) Recordings(ctx context.Context, from, now time.Time) (map[string]health.Recording, error) {
	tx, err := s.reader.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	observed, err := s.observed(ctx, tx, from, now)
	if err != nil {
		return nil, err
	}
	registrations, err := queryRegistrations(ctx, tx, `WHERE instance_id IN (SELECT id FROM instances WHERE registered = 1)`)
	if err != nil {
		return nil, err
	}
	steps, err := queryCheckSteps(ctx, tx, from, "")
	if err != nil {
		return nil, err
	}
	type instanceKey struct{ node, serviceID string }
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

	rows, err := tx.QueryContext(ctx, `SELECT id, node, service_id FROM instances WHERE registered = 1`)
	if err != nil {
		return nil, fmt.Errorf("store: instances: %w", err)
	}
	defer rows.Close()
	out := map[string]health.Recording{}
	for rows.Next() {
		var id int64
		var node, serviceID string
		if err := rows.Scan(&id, &node, &serviceID); err != nil {
			return nil, fmt.Errorf("store: instances: %w", err)
		}
		own := serviceChecks[instanceKey{node, serviceID}]
		checks := make([][]health.Step, 0, len(own)+len(nodeChecks[node]))
		out[health.InstanceID(node, serviceID)] = health.Recording{
			Observed:   observed,
			Registered: registeredPeriods(registrations[id], now),
			Checks:     append(append(checks, own...), nodeChecks[node]...),
		}
	}
	return out, rows.Err()
}

// observed returns the observation periods that reach past from. The one
// being extended by the running watcher lasts until now.
func (s *Store) observed(ctx context.Context, tx *sql.Tx, from, now time.Time) ([]health.Period, error) {
	open := s.openObservation.Load()
	rows, err := tx.QueryContext(ctx, `SELECT id, start_ms, end_ms FROM observations WHERE end_ms >= ? ORDER BY start_ms`, from.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: observations: %w", err)
	}
	defer rows.Close()
	var periods []health.Period
	for rows.Next() {
		var id, start, end int64
		if err := rows.Scan(&id, &start, &end); err != nil {
			return nil, fmt.Errorf("store: observations: %w", err)
		}
		p := health.Period{Start: fromMillis(start), End: fromMillis(end)}
		if id == open && now.After(p.End) {
			p.End = now
		}
		periods = append(periods, p)
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

// registeredPeriods turns an instance's registration rows into the periods
// in which it was in the catalog.
func registeredPeriods(rows []registration, now time.Time) []health.Period {
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
	if openSince != nil && now.After(*openSince) {
		periods = append(periods, health.Period{Start: *openSince, End: now})
	}
	return periods
}

type checkTimeline struct {
	node, serviceID string
	steps           []health.Step
}

// queryCheckSteps returns, for each check the extra condition keeps (all
// when it is empty), its status changes from the one in force at from, in
// the order the checks were first seen.
func queryCheckSteps(ctx context.Context, tx *sql.Tx, from time.Time, condition string, args ...any) ([]checkTimeline, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT s.check_id, c.node, c.service_id, s.at_ms, s.status
		FROM check_spans s JOIN checks c ON c.id = s.check_id
		WHERE s.at_ms >= coalesce((SELECT max(p.at_ms) FROM check_spans p WHERE p.check_id = s.check_id AND p.at_ms <= ?), 0)
		`+condition+`
		ORDER BY s.check_id, s.at_ms`, append([]any{from.UnixMilli()}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("store: check spans: %w", err)
	}
	defer rows.Close()
	var out []checkTimeline
	lastID := int64(-1)
	for rows.Next() {
		var id, at int64
		var node, serviceID, status string
		if err := rows.Scan(&id, &node, &serviceID, &at, &status); err != nil {
			return nil, fmt.Errorf("store: check spans: %w", err)
		}
		if id != lastID {
			out = append(out, checkTimeline{node: node, serviceID: serviceID})
			lastID = id
		}
		last := &out[len(out)-1]
		last.steps = append(last.steps, health.Step{At: fromMillis(at), Status: health.Status(status)})
	}
	return out, rows.Err()
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
