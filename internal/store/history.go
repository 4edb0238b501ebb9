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
	if rec.Registered, err = registeredPeriods(ctx, tx, instanceID, now); err != nil {
		return health.Recording{}, err
	}
	checkIDs, err := queryInt64s(ctx, tx, `SELECT id FROM checks WHERE node = ? AND service_id IN (?, '') ORDER BY id`, node, serviceID)
	if err != nil {
		return health.Recording{}, fmt.Errorf("store: checks of %s: %w", id, err)
	}
	for _, checkID := range checkIDs {
		steps, err := checkSteps(ctx, tx, checkID, from)
		if err != nil {
			return health.Recording{}, err
		}
		rec.Checks = append(rec.Checks, steps)
	}
	return rec, nil
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

// registeredPeriods turns an instance's registration rows into the periods
// in which it was in the catalog.
func registeredPeriods(ctx context.Context, tx *sql.Tx, instanceID int64, now time.Time) ([]health.Period, error) {
	rows, err := tx.QueryContext(ctx, `SELECT at_ms, registered FROM registrations WHERE instance_id = ? ORDER BY at_ms`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("store: registrations: %w", err)
	}
	defer rows.Close()
	var periods []health.Period
	var openSince *time.Time
	for rows.Next() {
		var at int64
		var registered bool
		if err := rows.Scan(&at, &registered); err != nil {
			return nil, fmt.Errorf("store: registrations: %w", err)
		}
		t := fromMillis(at)
		switch {
		case registered && openSince == nil:
			openSince = &t
		case !registered && openSince != nil:
			periods = append(periods, health.Period{Start: *openSince, End: t})
			openSince = nil
		}
	}
	if openSince != nil && now.After(*openSince) {
		periods = append(periods, health.Period{Start: *openSince, End: now})
	}
	return periods, rows.Err()
}

// checkSteps returns a check's status changes from the one in force at from.
func checkSteps(ctx context.Context, tx *sql.Tx, checkID int64, from time.Time) ([]health.Step, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT at_ms, status FROM check_spans
		WHERE check_id = ?1 AND at_ms >= coalesce((SELECT max(at_ms) FROM check_spans WHERE check_id = ?1 AND at_ms <= ?2), 0)
		ORDER BY at_ms`, checkID, from.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: spans of check %d: %w", checkID, err)
	}
	defer rows.Close()
	var steps []health.Step
	for rows.Next() {
		var at int64
		var status string
		if err := rows.Scan(&at, &status); err != nil {
			return nil, fmt.Errorf("store: spans of check %d: %w", checkID, err)
		}
		steps = append(steps, health.Step{At: fromMillis(at), Status: health.Status(status)})
	}
	return steps, rows.Err()
}

func queryInt64s(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
