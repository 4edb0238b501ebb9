package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// Fleet size of the events benchmark: issue 10's cluster of 1,000 nodes ×
// 10 instances in 13 services (11,000 checks with the nodes'), and 30
// days of history in which every service check changes every 6 hours.
const (
	benchNodes        = 1000
	benchPerNode      = 10
	benchServices     = 13
	benchDays         = 30
	benchChangeEvery  = 6 * time.Hour
	benchEventsTarget = 50 * time.Millisecond
)

// fillEventsFleet writes the benchmark's history straight into the tables,
// in a few statements: recording 1.2 million changes poll by poll would
// take hours. The rows are the ones Record writes.
func fillEventsFleet(b *testing.B, s *Store, end time.Time) (spans int) {
	b.Helper()
	ctx := context.Background()
	instances := benchNodes * benchPerNode
	start := end.Add(-benchDays * 24 * time.Hour)
	perCheck := int(benchDays * 24 * time.Hour / benchChangeEvery)
	period := benchChangeEvery.Milliseconds()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
			INSERT INTO instances (id, node, service_id, name, address, port, tags, meta, registered)
			SELECT i + 1, 'node-' || (i / ?2), 'inst-' || i, 'service-' || (i % ?3), '10.0.0.1', 8080, '[]', '{}', 1 FROM n`,
			[]any{instances, benchPerNode, benchServices}},
		// One service of a single instance, among the 13 large ones.
		{`UPDATE instances SET name = 'rare' WHERE id = 5000`, nil},
		{`INSERT INTO registrations (instance_id, at_ms, registered) SELECT id, ?, 1 FROM instances`, []any{start.UnixMilli()}},
		// A service check per instance, with the instance's row id; then a
		// node check per node.
		{`INSERT INTO checks (id, node, check_id, service_id, name, status, output)
			SELECT id, node, 'service:' || service_id, service_id, 'http', 'passing', 'HTTP GET: 200 OK' FROM instances`, nil},
		{`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?2 - 1)
			INSERT INTO checks (id, node, check_id, service_id, name, status, output)
			SELECT ?1 + 1 + i, 'node-' || i, 'serfHealth', '', 'Serf Health Status', 'passing', 'Agent alive and reachable' FROM n`,
			[]any{instances, benchNodes}},
		// Each service check changes every period, at its own offset:
		// passing, critical, passing, warning, ...
		{`WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < ?3 - 1)
			INSERT INTO check_spans (check_id, at_ms, status, from_status, output)
			SELECT c.id, ?1 + k.j * ?2 + (c.id * 7919) % ?2,
				CASE k.j % 4 WHEN 1 THEN 'critical' WHEN 3 THEN 'warning' ELSE 'passing' END,
				CASE WHEN k.j = 0 THEN '' WHEN k.j % 4 = 1 OR k.j % 4 = 3 THEN 'passing' WHEN k.j % 4 = 2 THEN 'critical' ELSE 'warning' END,
				CASE k.j % 4 WHEN 1 THEN 'HTTP GET http://10.0.0.1:8080/health: 503 Service Unavailable Output: upstream timed out'
					WHEN 3 THEN 'HTTP GET http://10.0.0.1:8080/health: 429 Too Many Requests'
					ELSE 'HTTP GET http://10.0.0.1:8080/health: 200 OK Output: ok' END
			FROM checks c, k WHERE c.service_id != ''`,
			[]any{start.UnixMilli(), period, perCheck}},
		{`INSERT INTO check_spans (check_id, at_ms, status, from_status, output)
			SELECT id, ?, 'passing', '', 'Agent alive and reachable' FROM checks WHERE service_id = ''`, []any{start.UnixMilli()}},
		// Every 100th instance enters maintenance every three days, for 36 h.
		{`INSERT INTO checks (node, check_id, service_id, name, status, output)
			SELECT node, '_service_maintenance:' || service_id, service_id, 'Service Maintenance Mode', '', '' FROM instances WHERE id % 100 = 0`, nil},
		{`WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < ?2 - 1)
			INSERT INTO check_spans (check_id, at_ms, status, from_status, output)
			SELECT c.id, ?1 + k.j * 36 * 3600000 + (c.id * 7919) % 3600000,
				CASE k.j % 2 WHEN 0 THEN 'critical' ELSE '' END, CASE k.j % 2 WHEN 0 THEN '' ELSE 'critical' END,
				CASE k.j % 2 WHEN 0 THEN 'upgrading' ELSE '' END
			FROM checks c, k WHERE c.check_id LIKE '\_service\_maintenance:%' ESCAPE '\'`,
			[]any{start.UnixMilli(), benchDays * 24 / 36}},
		{`INSERT INTO observations (start_ms, end_ms) VALUES (?, ?)`, []any{start.UnixMilli(), end.UnixMilli()}},
	} {
		if _, err := s.writer.ExecContext(ctx, q.sql, q.args...); err != nil {
			b.Fatalf("%v\n%s", err, q.sql)
		}
	}
	return countRows(b, s, "check_spans")
}

// BenchmarkEvents reads the newest 100 events of a 10,000-instance fleet
// with 30 days of history, unfiltered, by each filter, and deep in the
// history through a cursor, and says whether each is within 50 ms.
func BenchmarkEvents(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "h.db"))
	end := t0.Add(benchDays * 24 * time.Hour)
	built := time.Now()
	spans := fillEventsFleet(b, s, end)
	b.Logf("%d instances, %d checks, %d check changes over %d days (built in %v)",
		benchNodes*benchPerNode, countRows(b, s, "checks"), spans, benchDays, time.Since(built).Round(time.Second))
	middle := EventKey{AtMs: end.Add(-benchDays * 12 * time.Hour).UnixMilli(), Source: sourceCheck, ID: 1 << 40}
	for _, tc := range []struct {
		name string
		f    EventFilter
	}{
		{"newest", EventFilter{}},
		{"service", EventFilter{Service: "service-7"}},
		{"rare-service", EventFilter{Service: "rare"}},
		{"rare-service-to-critical", EventFilter{Service: "rare", Statuses: []health.Status{health.Critical}}},
		{"instance", EventFilter{Instance: "node-500/inst-5005"}},
		{"to-critical", EventFilter{Statuses: []health.Status{health.Critical}}},
		{"to-warning-or-critical", EventFilter{Statuses: []health.Status{health.Warning, health.Critical}}},
		{"to-maintenance", EventFilter{Statuses: []health.Status{health.Maintenance}}},
		{"last-day-of-a-service", EventFilter{Service: "service-7", Since: end.Add(-24 * time.Hour)}},
		{"15-days-back-by-cursor", EventFilter{After: &middle}},
		{"instance-15-days-back", EventFilter{Instance: "node-500/inst-5005", After: &middle}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := tc.f
			f.Limit = 100
			b.Logf("plan:%s", queryPlans(b, s, f))
			var worst time.Duration
			var got int
			for b.Loop() {
				began := time.Now()
				page, err := s.Events(context.Background(), f)
				if err != nil {
					b.Fatal(err)
				}
				worst = max(worst, time.Since(began))
				if got = len(page.Events); got == 0 {
					b.Fatal("no events")
				}
			}
			mean := b.Elapsed() / time.Duration(b.N)
			verdict := "MET"
			if mean > benchEventsTarget {
				verdict = "MISSED"
			}
			b.ReportMetric(float64(mean.Microseconds())/1000, "ms/page")
			b.Logf("%s: a page of the newest 100 events (%s; %d there) in %v on average, %v at worst, over %d reads (target %v)",
				verdict, tc.name, got, mean.Round(10*time.Microsecond), worst.Round(10*time.Microsecond), b.N, benchEventsTarget)
		})
	}
}

// queryPlans is the plan SQLite chooses for both queries of f, which the
// benchmark logs so that a slow figure names its cause.
func queryPlans(b *testing.B, s *Store, f EventFilter) string {
	b.Helper()
	node, serviceID, _ := health.ParseInstanceID(f.Instance)
	statuses := f.Statuses
	if len(statuses) == 0 {
		statuses = []health.Status{""}
	}
	var queries []func() (string, []any)
	for _, st := range statuses {
		queries = append(queries, func() (string, []any) { return checkEventsQuery(f, st, node, serviceID) })
	}
	if len(f.Statuses) == 0 {
		queries = append(queries, func() (string, []any) { return registrationEventsQuery(f, node, serviceID) })
	}
	var out strings.Builder
	if f.Instance != "" || f.Service != "" {
		tx, err := s.reader.Begin()
		if err != nil {
			b.Fatal(err)
		}
		checks, err := filteredChecks(context.Background(), tx, f, node, serviceID)
		tx.Rollback()
		if err != nil {
			b.Fatal(err)
		}
		if len(checks) <= perCheckMax {
			fmt.Fprintf(&out, " %d checks, each read by itself, as:", len(checks))
			queries[0] = func() (string, []any) { q, a, _ := oneCheckEventsQuery(f, checks[0]); return q, a }
			queries = append(queries[:1], queries[len(queries)-1])
		}
	}
	for _, build := range queries {
		query, args := build()
		rows, err := s.reader.Query("EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(&out, "\n\t%s", detail)
		}
		rows.Close()
	}
	return out.String()
}
