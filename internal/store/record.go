package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

type instanceKey struct{ node, serviceID string }

type checkKey struct{ node, checkID string }

type storedInstance struct {
	id int64
	health.Instance
	// seen is the generation of the last Apply that found the instance,
	// which tells, after a delivery, which instances have gone.
	seen uint64
}

type storedCheck struct {
	id int64
	health.Check
	seen uint64
}

// Written counts the rows one Record inserted or updated.
type Written struct {
	// Spans are check status changes and instance (de)registrations: the
	// rows that make the database grow.
	Spans int
	// Catalog are instances and checks rows updated in place (a new
	// address, tag or check output) or added.
	Catalog int
	// Observations is 1: the period of observation is extended, or a new
	// one begins.
	Observations int
}

// Total is the number of rows written.
func (w Written) Total() int { return w.Spans + w.Catalog + w.Observations }

// loadCurrent reads the instances and checks still in Consul at the last
// poll, so that the first poll after a restart writes only what changed
// while the monitor was down.
func (s *Store) loadCurrent(ctx context.Context) error {
	s.instances = make(map[instanceKey]*storedInstance)
	s.checks = make(map[checkKey]*storedCheck)
	rows, err := s.reader.QueryContext(ctx, `SELECT id, node, service_id, name, address, port, tags, meta FROM instances WHERE registered = 1`)
	if err != nil {
		return fmt.Errorf("store: load instances: %w", err)
	}
	for rows.Next() {
		si := &storedInstance{}
		var tags, meta string
		if err := rows.Scan(&si.id, &si.Node, &si.ServiceID, &si.Name, &si.Address, &si.Port, &tags, &meta); err != nil {
			rows.Close()
			return fmt.Errorf("store: load instances: %w", err)
		}
		if err := json.Unmarshal([]byte(tags), &si.Tags); err != nil {
			rows.Close()
			return fmt.Errorf("store: instance %d tags: %w", si.id, err)
		}
		if err := json.Unmarshal([]byte(meta), &si.Meta); err != nil {
			rows.Close()
			return fmt.Errorf("store: instance %d meta: %w", si.id, err)
		}
		s.instances[instanceKey{si.Node, si.ServiceID}] = si
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: load instances: %w", err)
	}

	rows, err = s.reader.QueryContext(ctx, `SELECT id, node, check_id, service_id, name, status, output, output_truncated FROM checks WHERE status != ''`)
	if err != nil {
		return fmt.Errorf("store: load checks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		sc := &storedCheck{}
		if err := rows.Scan(&sc.id, &sc.Node, &sc.CheckID, &sc.ServiceID, &sc.Name, &sc.Status, &sc.Output, &sc.OutputTruncated); err != nil {
			return fmt.Errorf("store: load checks: %w", err)
		}
		s.checks[checkKey{sc.Node, sc.CheckID}] = sc
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: load checks: %w", err)
	}
	var lastMs, floorMs sql.NullInt64
	if err := s.reader.QueryRowContext(ctx, `SELECT max(end_ms) FROM observations`).Scan(&lastMs); err != nil {
		return fmt.Errorf("store: last observation: %w", err)
	}
	s.lastRecordedMs.Store(lastMs.Int64)
	// The newest time anything was recorded at: a clock that stepped back
	// while the monitor was down must not write before it.
	if err := s.reader.QueryRowContext(ctx, `SELECT max(
		coalesce((SELECT max(end_ms) FROM observations), 0),
		coalesce((SELECT max(at_ms) FROM check_spans), 0),
		coalesce((SELECT max(at_ms) FROM registrations), 0))`).Scan(&floorMs); err != nil {
		return fmt.Errorf("store: last recorded time: %w", err)
	}
	s.floorMs, s.clockMs = floorMs.Int64, floorMs.Int64
	s.publishCurrent()
	return nil
}

// Current returns the instances in Consul at the last successful poll, or
// as the database last knew them before a restart. The slice is shared:
// callers must not modify it.
func (s *Store) Current() []health.InstanceHealth { return s.current.Load().Instances }

// Published is Current, with each node's checks once, and a version that
// changes whenever they do, so that what is derived from them (an encoded
// response) can be kept until then.
type Published struct {
	Instances []health.InstanceHealth
	// NodeChecks are the node checks of the nodes Instances run on; they
	// count in those instances' Status.
	NodeChecks map[string][]health.Check
	Version    uint64
}

// Published returns Current and its version, read together.
func (s *Store) Published() Published { return *s.current.Load() }

func (s *Store) publishCurrent() {
	snap := health.Snapshot{
		Instances: make([]health.Instance, 0, len(s.instances)),
		Checks:    make([]health.Check, 0, len(s.checks)),
	}
	for _, si := range s.instances {
		snap.Instances = append(snap.Instances, si.Instance)
	}
	for _, sc := range s.checks {
		snap.Checks = append(snap.Checks, sc.Check)
	}
	var version uint64
	if old := s.current.Load(); old != nil {
		version = old.Version + 1
	}
	ev := health.Evaluate(snap)
	s.current.Store(&Published{Instances: ev.Instances, NodeChecks: ev.NodeChecks, Version: version})
}

// LastRecorded is the last certified moment recorded: the return of the
// newest successful health answer stored, zero if none was. After a restart
// it is the last one before it, so it always tells how old Current is.
func (s *Store) LastRecorded() time.Time {
	if ms := s.lastRecordedMs.Load(); ms != 0 {
		return fromMillis(ms)
	}
	return time.Time{}
}

// EndObservation records that Consul is not being observed from now on, so
// that the time until the next certified Apply counts as no data.
func (s *Store) EndObservation() { s.openObservation.Store(0) }

// Observing reports whether the last Record succeeded and no
// EndObservation came after it.
func (s *Store) Observing() bool { return s.openObservation.Load() != 0 }

// Changes is one delivery from Consul. A nil part has not changed since the
// last Apply and is not compared again; an empty one means Consul has none.
type Changes struct {
	Instances []health.Instance
	Checks    []health.Check
	// Certified is set when the delivery comes with a successful health
	// answer, which vouches for the state from the previous answer up to
	// its own return. Only such a delivery opens or extends observation: a
	// catalog read alone says nothing about the checks in between.
	Certified bool
	// Resumes is set on a certified delivery that does not vouch for the
	// time since the previous one (a change found by a query sent late):
	// the observation ends at the previous answer and a new one begins.
	Resumes bool
}

// Record stores a full snapshot of Consul certified at the moment at: a
// certified Apply with both parts.
func (s *Store) Record(ctx context.Context, at time.Time, snap health.Snapshot) (Written, error) {
	c := Changes{Instances: snap.Instances, Checks: snap.Checks, Certified: true}
	if c.Instances == nil {
		c.Instances = []health.Instance{}
	}
	if c.Checks == nil {
		c.Checks = []health.Check{}
	}
	return s.Apply(ctx, at, c)
}

// Apply stores what Consul showed at the moment at, in one transaction:
// rows for instances and checks that appeared, changed or went away since
// the last Apply, and, when c is certified, the extension of the current
// observation period up to at. Only the parts c carries are compared, so a
// health change costs nothing for the catalog. A failed Apply leaves the
// database and the in-memory state as they were, and ends the observation
// period, since what happened since is unknown.
//
// Recorded times never go backwards: an at before the newest time already
// recorded (the wall clock stepped back) is taken as that time, and the
// step is logged once. A second change of one check or instance within a
// millisecond is stored a millisecond after the first, never over it.
func (s *Store) Apply(ctx context.Context, at time.Time, c Changes) (Written, error) {
	s.recordMu.Lock()
	defer s.recordMu.Unlock()
	written, err := s.apply(ctx, s.clamp(at), c)
	if err != nil {
		s.EndObservation()
		return Written{}, fmt.Errorf("store: record poll: %w", err)
	}
	return written, nil
}

// clamp returns at in Unix milliseconds, or the newest time recorded when
// at is before it. A clock step is logged when it begins, not at every Apply
// until the clock has caught up; a change moved a millisecond on is no step.
func (s *Store) clamp(at time.Time) int64 {
	ms := at.UnixMilli()
	switch {
	case ms >= s.clockMs:
		s.clockBehind = false
	case !s.clockBehind:
		s.clockBehind = true
		s.logger().Warn("the clock is behind the newest recorded time; recording at that time until it catches up",
			"clock", at.UTC(), "last_recorded", fromMillis(s.clockMs), "behind", time.Duration(s.clockMs-ms)*time.Millisecond)
	}
	return max(ms, s.floorMs)
}

// pendingChanges are the in-memory updates that an Apply makes once its
// transaction has committed.
type pendingChanges struct {
	instances       map[instanceKey]*storedInstance
	goneInstances   []instanceKey
	checks          map[checkKey]*storedCheck
	goneChecks      []checkKey
	openObservation int64
}

func (s *Store) apply(ctx context.Context, atMs int64, c Changes) (Written, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return Written{}, err
	}
	defer tx.Rollback()
	w := &txWriter{ctx: ctx, tx: tx, atMs: atMs, newestMs: atMs}
	pending := pendingChanges{instances: map[instanceKey]*storedInstance{}, checks: map[checkKey]*storedCheck{}}
	// Entries still present are marked with this Apply's generation; the
	// marks are not state, so a rolled back Apply leaves nothing wrong.
	s.generation++
	gen := s.generation

	if c.Instances != nil {
		for _, inst := range c.Instances {
			k := instanceKey{inst.Node, inst.ServiceID}
			old := s.instances[k]
			if old != nil {
				old.seen = gen
				if sameCatalogEntry(old.Instance, inst) {
					continue
				}
			}
			id, err := w.saveInstance(inst, old == nil)
			if err != nil {
				return Written{}, err
			}
			pending.instances[k] = &storedInstance{id: id, Instance: inst, seen: gen}
		}
		for k, old := range s.instances {
			if old.seen != gen {
				if err := w.deregisterInstance(old.id); err != nil {
					return Written{}, err
				}
				pending.goneInstances = append(pending.goneInstances, k)
			}
		}
	}

	if c.Checks != nil {
		for _, check := range c.Checks {
			k := checkKey{check.Node, check.CheckID}
			old := s.checks[k]
			if old != nil {
				old.seen = gen
				if old.Check == check {
					continue
				}
			}
			id, err := w.saveCheck(check, old)
			if err != nil {
				return Written{}, err
			}
			pending.checks[k] = &storedCheck{id: id, Check: check, seen: gen}
		}
		for k, old := range s.checks {
			if old.seen != gen {
				if err := w.removeCheck(old); err != nil {
					return Written{}, err
				}
				pending.goneChecks = append(pending.goneChecks, k)
			}
		}
	}

	pending.openObservation = s.openObservation.Load()
	if c.Resumes {
		pending.openObservation = 0
	}
	if c.Certified {
		pending.openObservation, err = w.extendObservation(pending.openObservation)
		if err != nil {
			return Written{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return Written{}, err
	}
	s.applyPending(pending)
	s.floorMs = max(s.floorMs, w.newestMs)
	s.clockMs = max(s.clockMs, atMs)
	if c.Certified {
		s.lastRecordedMs.Store(atMs)
	}
	return w.written, nil
}

func (s *Store) applyPending(p pendingChanges) {
	changed := len(p.instances)+len(p.goneInstances)+len(p.checks)+len(p.goneChecks) > 0
	maps.Copy(s.instances, p.instances)
	for _, k := range p.goneInstances {
		delete(s.instances, k)
	}
	maps.Copy(s.checks, p.checks)
	for _, k := range p.goneChecks {
		delete(s.checks, k)
	}
	s.openObservation.Store(p.openObservation)
	if changed {
		s.publishCurrent()
	}
}

func sameCatalogEntry(a, b health.Instance) bool {
	return a.Name == b.Name && a.Address == b.Address && a.Port == b.Port &&
		slices.Equal(a.Tags, b.Tags) && maps.Equal(a.Meta, b.Meta)
}

// txWriter writes one poll's rows and counts them.
type txWriter struct {
	ctx     context.Context
	tx      *sql.Tx
	atMs    int64
	written Written
	// newestMs is the latest time a row was written at: atMs, or after it
	// when a change had to be moved past one in the same millisecond.
	newestMs int64
}

// saveInstance writes the instance's catalog entry and, when it was not in
// the catalog at the last poll, a registration row.
func (w *txWriter) saveInstance(inst health.Instance, registering bool) (int64, error) {
	tags, err := json.Marshal(nonNil(inst.Tags))
	if err != nil {
		return 0, err
	}
	meta, err := json.Marshal(nonNilMap(inst.Meta))
	if err != nil {
		return 0, err
	}
	var id int64
	err = w.tx.QueryRowContext(w.ctx, `
		INSERT INTO instances (node, service_id, name, address, port, tags, meta, registered)
		VALUES (?, ?, ?, ?, ?, ?, ?, 1)
		ON CONFLICT (node, service_id) DO UPDATE SET
			name = excluded.name, address = excluded.address, port = excluded.port,
			tags = excluded.tags, meta = excluded.meta, registered = 1
		RETURNING id`,
		inst.Node, inst.ServiceID, inst.Name, inst.Address, inst.Port, string(tags), string(meta)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("save instance %s: %w", inst.ID(), err)
	}
	w.written.Catalog++
	if registering {
		if err := w.registration(id, true); err != nil {
			return 0, err
		}
	}
	return id, nil
}

func (w *txWriter) deregisterInstance(id int64) error {
	// Its history needs only its node, id and name: tags and meta, which
	// a registration can make megabytes long, are not kept past it.
	if _, err := w.tx.ExecContext(w.ctx, `UPDATE instances SET registered = 0, tags = '[]', meta = '{}' WHERE id = ?`, id); err != nil {
		return fmt.Errorf("deregister instance %d: %w", id, err)
	}
	w.written.Catalog++
	return w.registration(id, false)
}

func (w *txWriter) registration(id int64, registered bool) error {
	// Two changes within one millisecond: the later one is stored a
	// millisecond after the earlier, so neither is lost and their order stays.
	var at int64
	if err := w.tx.QueryRowContext(w.ctx, `
		INSERT INTO registrations (instance_id, at_ms, registered)
		VALUES (?1, max(?2, coalesce((SELECT max(at_ms) + 1 FROM registrations WHERE instance_id = ?1), ?2)), ?3)
		RETURNING at_ms`,
		id, w.atMs, registered).Scan(&at); err != nil {
		return fmt.Errorf("registration of instance %d: %w", id, err)
	}
	w.newestMs = max(w.newestMs, at)
	w.written.Spans++
	return nil
}

// saveCheck writes a check that is new (old is nil) or differs from old,
// and a span when its status changed.
func (w *txWriter) saveCheck(c health.Check, old *storedCheck) (int64, error) {
	known := old != nil
	var id int64
	if known {
		id = old.id
		if _, err := w.tx.ExecContext(w.ctx, `UPDATE checks SET service_id = ?, name = ?, status = ?, output = ?, output_truncated = ? WHERE id = ?`,
			c.ServiceID, c.Name, string(c.Status), c.Output, c.OutputTruncated, id); err != nil {
			return 0, fmt.Errorf("update check %s on %s: %w", c.CheckID, c.Node, err)
		}
	} else {
		err := w.tx.QueryRowContext(w.ctx, `
			INSERT INTO checks (node, check_id, service_id, name, status, output, output_truncated) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (node, check_id) DO UPDATE SET
				service_id = excluded.service_id, name = excluded.name, status = excluded.status,
				output = excluded.output, output_truncated = excluded.output_truncated
			RETURNING id`,
			c.Node, c.CheckID, c.ServiceID, c.Name, string(c.Status), c.Output, c.OutputTruncated).Scan(&id)
		if err != nil {
			return 0, fmt.Errorf("save check %s on %s: %w", c.CheckID, c.Node, err)
		}
	}
	w.written.Catalog++
	if !known || old.Status != c.Status {
		var from health.Status
		if known {
			from = old.Status
		}
		if err := w.span(id, from, c.Status, c.Output, c.OutputTruncated); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// removeCheck marks a check gone. Its row stays while its spans are
// history, but its output goes: a removed check's current output is not
// shown again (each span keeps the output at its own change), so keeping
// it would only fill the disk.
func (w *txWriter) removeCheck(old *storedCheck) error {
	if _, err := w.tx.ExecContext(w.ctx, `UPDATE checks SET status = '', output = '', output_truncated = 0 WHERE id = ?`, old.id); err != nil {
		return fmt.Errorf("remove check %d: %w", old.id, err)
	}
	w.written.Catalog++
	return w.span(old.id, old.Status, "", "", false)
}

// span writes a check's status change from one status to another ("" for
// none), with the check's output at the change (truncated when it was cut
// when read), which the row keeps as an event whatever retention later
// deletes before it.
func (w *txWriter) span(checkID int64, from, to health.Status, output string, truncated bool) error {
	output, cut := health.EventOutput(output)
	cut = cut || truncated
	// As for registrations: a second change in the same millisecond goes
	// one millisecond later.
	var at int64
	if err := w.tx.QueryRowContext(w.ctx, `
		INSERT INTO check_spans (check_id, at_ms, status, from_status, output, output_truncated)
		VALUES (?1, max(?2, coalesce((SELECT max(at_ms) + 1 FROM check_spans WHERE check_id = ?1), ?2)), ?3, ?4, ?5, ?6)
		RETURNING at_ms`,
		checkID, w.atMs, string(to), string(from), output, cut).Scan(&at); err != nil {
		return fmt.Errorf("span of check %d: %w", checkID, err)
	}
	w.newestMs = max(w.newestMs, at)
	w.written.Spans++
	return nil
}

// extendObservation moves the end of the open observation period to now, or
// opens a new one, and returns its id.
func (w *txWriter) extendObservation(open int64) (int64, error) {
	w.written.Observations++
	if open != 0 {
		_, err := w.tx.ExecContext(w.ctx, `UPDATE observations SET end_ms = ? WHERE id = ?`, w.atMs, open)
		return open, err
	}
	var id int64
	err := w.tx.QueryRowContext(w.ctx, `INSERT INTO observations (start_ms, end_ms) VALUES (?, ?) RETURNING id`, w.atMs, w.atMs).Scan(&id)
	return id, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
