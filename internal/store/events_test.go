package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
)

// eventsFleet is three instances on two nodes, recorded a minute apart
// from t0 as:
//
//	10:00 first poll: three registrations, five checks added
//	10:01 web-1 goes critical ("HTTP 500")
//	10:02 node n1 enters maintenance (a node check, Consul's status critical)
//	10:03 web-2 leaves the catalog, with its check
//	10:04 web-1 recovers; n1 leaves maintenance
//	10:05 db-1 goes warning ("slow")
func eventsFleet(t *testing.T) *Store {
	t.Helper()
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	instances := []health.Instance{
		{Node: "n1", ServiceID: "web-1", Name: "web"},
		{Node: "n2", ServiceID: "web-2", Name: "web"},
		{Node: "n1", ServiceID: "db-1", Name: "db"},
	}
	serf1 := health.Check{Node: "n1", CheckID: "serfHealth", Name: "Serf", Status: health.Passing, Output: "Agent alive"}
	serf2 := health.Check{Node: "n2", CheckID: "serfHealth", Name: "Serf", Status: health.Passing, Output: "Agent alive"}
	web1 := health.Check{Node: "n1", CheckID: "service:web-1", ServiceID: "web-1", Name: "http", Status: health.Passing, Output: "200 OK"}
	web2 := health.Check{Node: "n2", CheckID: "service:web-2", ServiceID: "web-2", Name: "http", Status: health.Passing, Output: "200 OK"}
	db1 := health.Check{Node: "n1", CheckID: "service:db-1", ServiceID: "db-1", Name: "tcp", Status: health.Passing, Output: "accepting"}
	maint := health.Check{Node: "n1", CheckID: "_node_maintenance", Name: "Node Maintenance Mode", Status: health.Critical, Output: "Maintenance mode is enabled"}
	web1Down := web1
	web1Down.Status, web1Down.Output = health.Critical, "HTTP 500"
	db1Slow := db1
	db1Slow.Status, db1Slow.Output = health.Warning, "slow"

	polls := []health.Snapshot{
		{Instances: instances, Checks: []health.Check{serf1, serf2, web1, web2, db1}},
		{Instances: instances, Checks: []health.Check{serf1, serf2, web1Down, web2, db1}},
		{Instances: instances, Checks: []health.Check{serf1, serf2, web1Down, web2, db1, maint}},
		{Instances: []health.Instance{instances[0], instances[2]}, Checks: []health.Check{serf1, serf2, web1Down, db1, maint}},
		{Instances: []health.Instance{instances[0], instances[2]}, Checks: []health.Check{serf1, serf2, web1, db1}},
		{Instances: []health.Instance{instances[0], instances[2]}, Checks: []health.Check{serf1, serf2, web1, db1Slow}},
	}
	for i, p := range polls {
		mustRecord(t, s, t0.Add(time.Duration(i)*time.Minute), p)
	}
	return s
}

// allEvents is every event of eventsFleet, newest first: within a
// millisecond, check changes (latest check row first) before
// (de)registrations (latest instance row first).
var allEvents = []string{
	`10:05:00.000 status node=n1 instance=n1/db-1 service=db check=service:db-1/tcp passing>warning "slow"`,
	`10:04:00.000 check_removed node=n1 instance= service= check=_node_maintenance/Node Maintenance Mode maintenance> ""`,
	`10:04:00.000 status node=n1 instance=n1/web-1 service=web check=service:web-1/http critical>passing "200 OK"`,
	`10:03:00.000 check_removed node=n2 instance=n2/web-2 service=web check=service:web-2/http passing> ""`,
	`10:03:00.000 deregistered node=n2 instance=n2/web-2 service=web check=/ > ""`,
	`10:02:00.000 check_added node=n1 instance= service= check=_node_maintenance/Node Maintenance Mode >maintenance "Maintenance mode is enabled"`,
	`10:01:00.000 status node=n1 instance=n1/web-1 service=web check=service:web-1/http passing>critical "HTTP 500"`,
	`10:00:00.000 check_added node=n1 instance=n1/db-1 service=db check=service:db-1/tcp >passing "accepting"`,
	`10:00:00.000 check_added node=n2 instance=n2/web-2 service=web check=service:web-2/http >passing "200 OK"`,
	`10:00:00.000 check_added node=n1 instance=n1/web-1 service=web check=service:web-1/http >passing "200 OK"`,
	`10:00:00.000 check_added node=n2 instance= service= check=serfHealth/Serf >passing "Agent alive"`,
	`10:00:00.000 check_added node=n1 instance= service= check=serfHealth/Serf >passing "Agent alive"`,
	`10:00:00.000 registered node=n1 instance=n1/db-1 service=db check=/ > ""`,
	`10:00:00.000 registered node=n2 instance=n2/web-2 service=web check=/ > ""`,
	`10:00:00.000 registered node=n1 instance=n1/web-1 service=web check=/ > ""`,
}

func eventLine(e Event) string {
	return fmt.Sprintf("%s %s node=%s instance=%s service=%s check=%s/%s %s>%s %q",
		e.At.Format("15:04:05.000"), e.Kind, e.Node, e.Instance(), e.Service, e.CheckID, e.CheckName, e.From, e.To, e.Output)
}

func eventLines(events []Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = eventLine(e)
	}
	return out
}

func mustEvents(t *testing.T, s *Store, f EventFilter) EventPage {
	t.Helper()
	page, err := s.Events(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// pick returns the lines of allEvents at the given positions.
func pick(idx ...int) []string {
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = allEvents[j]
	}
	return out
}

// bothWays runs a test with instance and service filters read check by
// check, and read from the index on time as for a large service.
func bothWays(t *testing.T, test func(t *testing.T)) {
	t.Run("check by check", test)
	t.Run("by time", func(t *testing.T) {
		saved := perCheckMax
		perCheckMax = 0
		defer func() { perCheckMax = saved }()
		test(t)
	})
}

func TestEventsFilters(t *testing.T) { bothWays(t, testEventsFilters) }

func testEventsFilters(t *testing.T) {
	s := eventsFleet(t)
	for _, tc := range []struct {
		name string
		f    EventFilter
		want []string
	}{
		{"all", EventFilter{}, allEvents},
		// The instance's own checks, its node's checks and its (de)registrations.
		{"instance", EventFilter{Instance: "n1/web-1"}, pick(1, 2, 5, 6, 9, 11, 14)},
		{"gone instance", EventFilter{Instance: "n2/web-2"}, pick(3, 4, 8, 10, 13)},
		{"unknown instance", EventFilter{Instance: "n9/x"}, nil},
		{"malformed instance", EventFilter{Instance: "no-slash"}, nil},
		// The service's instances, and the node checks on their nodes.
		{"service", EventFilter{Service: "web"}, pick(1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14)},
		{"service db", EventFilter{Service: "db"}, pick(0, 1, 5, 7, 11, 12)},
		{"unknown service", EventFilter{Service: "nope"}, nil},
		{"to critical", EventFilter{Statuses: []health.Status{health.Critical}}, pick(6)},
		// A maintenance check is stored as critical but changes to maintenance.
		{"to maintenance", EventFilter{Statuses: []health.Status{health.Maintenance}}, pick(5)},
		{"to warning or critical", EventFilter{Statuses: []health.Status{health.Warning, health.Critical}}, pick(0, 6)},
		{"to passing", EventFilter{Statuses: []health.Status{health.Passing}}, pick(2, 7, 8, 9, 10, 11)},
		// since ≤ at < until.
		{"since and until", EventFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)}, pick(3, 4, 5)},
		{"until excludes its own moment", EventFilter{Until: t0.Add(time.Minute)}, allEvents[7:]},
		// A bound between two milliseconds is the later one.
		{"since a nanosecond after", EventFilter{Since: t0.Add(4*time.Minute + time.Nanosecond)}, allEvents[:1]},
		{"until a nanosecond after", EventFilter{Until: t0.Add(time.Nanosecond)}, allEvents[7:]},
		{"since includes its own moment", EventFilter{Since: t0.Add(4 * time.Minute)}, allEvents[:3]},
		{"instance to maintenance", EventFilter{Instance: "n1/web-1", Statuses: []health.Status{health.Maintenance}}, pick(5)},
		{"instance to warning", EventFilter{Instance: "n1/web-1", Statuses: []health.Status{health.Warning}}, nil},
		{"service to critical or maintenance", EventFilter{Service: "web", Statuses: []health.Status{health.Critical, health.Maintenance}}, pick(5, 6)},
		{"filters together", EventFilter{Service: "web", Statuses: []health.Status{health.Passing}, Since: t0.Add(time.Minute)}, pick(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Limit = 100
			page := mustEvents(t, s, f)
			if got := eventLines(page.Events); !slices.Equal(got, tc.want) {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if page.Next != nil {
				t.Errorf("next %v with everything on the page", page.Next)
			}
		})
	}
}

// collect pages through f's events limit at a time and returns them with
// the size of each page.
func collect(t *testing.T, s *Store, f EventFilter, limit int) (lines []string, sizes []int) {
	t.Helper()
	f.Limit = limit
	for range 100 {
		page := mustEvents(t, s, f)
		lines = append(lines, eventLines(page.Events)...)
		sizes = append(sizes, len(page.Events))
		if page.Next == nil {
			return lines, sizes
		}
		f.After = page.Next
	}
	t.Fatal("paging did not end")
	return nil, nil
}

func TestEventsPaging(t *testing.T) { bothWays(t, testEventsPaging) }

func testEventsPaging(t *testing.T) {
	s := eventsFleet(t)
	for _, tc := range []struct {
		name  string
		f     EventFilter
		limit int
		want  []string
		sizes []int
	}{
		// Pages end inside the first poll's millisecond, between check
		// changes and between registrations.
		{"by 4", EventFilter{}, 4, allEvents, []int{4, 4, 4, 3}},
		// A last page that is exactly full says there is no more.
		{"by 5", EventFilter{}, 5, allEvents, []int{5, 5, 5}},
		{"one at a time", EventFilter{}, 1, allEvents, slices.Repeat([]int{1}, 15)},
		// A page ending on the last check change of a millisecond, before its registrations.
		{"by 12", EventFilter{}, 12, allEvents, []int{12, 3}},
		{"filtered by 2", EventFilter{Service: "web"}, 2, pick(1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14), []int{2, 2, 2, 2, 2, 2}},
		{"filtered by 3 within a window", EventFilter{Instance: "n1/web-1", Until: t0.Add(4 * time.Minute)}, 3, pick(5, 6, 9, 11, 14), []int{3, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, sizes := collect(t, s, tc.f, tc.limit)
			if !slices.Equal(lines, tc.want) {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
			}
			if !slices.Equal(sizes, tc.sizes) {
				t.Errorf("page sizes %v, want %v", sizes, tc.sizes)
			}
		})
	}
}

// Changes recorded while a client pages do not move it: the rest of the
// listing is what it was, and the new events are at the top of a new one.
func TestEventsCursorIsStableUnderInserts(t *testing.T) {
	s := eventsFleet(t)
	first := mustEvents(t, s, EventFilter{Limit: 6})
	if got := eventLines(first.Events); !slices.Equal(got, allEvents[:6]) {
		t.Fatalf("first page:\n%s", strings.Join(got, "\n"))
	}
	// db-1 recovers at 10:06, and a new instance registers with its check.
	snap := health.Snapshot{
		Instances: []health.Instance{{Node: "n1", ServiceID: "web-1", Name: "web"}, {Node: "n1", ServiceID: "db-1", Name: "db"}, {Node: "n3", ServiceID: "web-3", Name: "web"}},
		Checks: []health.Check{
			{Node: "n1", CheckID: "serfHealth", Name: "Serf", Status: health.Passing, Output: "Agent alive"},
			{Node: "n2", CheckID: "serfHealth", Name: "Serf", Status: health.Passing, Output: "Agent alive"},
			{Node: "n1", CheckID: "service:web-1", ServiceID: "web-1", Name: "http", Status: health.Passing, Output: "200 OK"},
			{Node: "n1", CheckID: "service:db-1", ServiceID: "db-1", Name: "tcp", Status: health.Passing, Output: "accepting"},
			{Node: "n3", CheckID: "service:web-3", ServiceID: "web-3", Name: "http", Status: health.Critical, Output: "starting"},
		},
	}
	mustRecord(t, s, t0.Add(6*time.Minute), snap)

	rest, _ := collect(t, s, EventFilter{After: first.Next}, 4)
	if !slices.Equal(rest, allEvents[6:]) {
		t.Errorf("the rest after inserts:\n%s\nwant:\n%s", strings.Join(rest, "\n"), strings.Join(allEvents[6:], "\n"))
	}
	fresh := mustEvents(t, s, EventFilter{Limit: 4})
	want := []string{
		`10:06:00.000 check_added node=n3 instance=n3/web-3 service=web check=service:web-3/http >critical "starting"`,
		`10:06:00.000 status node=n1 instance=n1/db-1 service=db check=service:db-1/tcp warning>passing "accepting"`,
		`10:06:00.000 registered node=n3 instance=n3/web-3 service=web check=/ > ""`,
		allEvents[0],
	}
	if got := eventLines(fresh.Events); !slices.Equal(got, want) {
		t.Errorf("a new listing:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEventOutputIsKeptBounded(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "h.db"))
	snap := cluster(1)
	big := strings.Repeat("x", health.EventOutputMax+500)
	snap.Checks[1].Status, snap.Checks[1].Output = health.Critical, big
	mustRecord(t, s, t0, snap)
	page := mustEvents(t, s, EventFilter{Statuses: []health.Status{health.Critical}, Limit: 10})
	if len(page.Events) != 1 {
		t.Fatalf("%d events", len(page.Events))
	}
	if e := page.Events[0]; e.Output != big[:health.EventOutputMax] || !e.OutputTruncated {
		t.Errorf("kept %d bytes of output, truncated %v; want %d, true", len(e.Output), e.OutputTruncated, health.EventOutputMax)
	}
	// The check's current output is kept whole, as before.
	if got := s.Current()[0].Checks[0].Output; got != big {
		t.Errorf("current output %d bytes, want %d", len(got), len(big))
	}
	// An output already cut when read from Consul is marked so too.
	snap.Checks[1].Status, snap.Checks[1].Output, snap.Checks[1].OutputTruncated = health.Warning, "short", true
	mustRecord(t, s, t0.Add(time.Minute), snap)
	page = mustEvents(t, s, EventFilter{Limit: 1})
	if e := page.Events[0]; e.Output != "short" || !e.OutputTruncated {
		t.Errorf("an output cut when read: %q, truncated %v", e.Output, e.OutputTruncated)
	}
}

// Retention deletes a change's output with the change: outputs are columns
// of the spans Prune deletes, and the change kept at the cutoff says what
// it went from.
func TestPruneDeletesEventsWithTheirSpans(t *testing.T) {
	s := eventsFleet(t)
	if _, err := s.Prune(context.Background(), t0.Add(150*time.Second)); err != nil {
		t.Fatal(err)
	}
	var outputs int
	if err := s.reader.QueryRow(`SELECT count(*) FROM check_spans WHERE output IN ('HTTP 500', '200 OK')`).Scan(&outputs); err != nil {
		t.Fatal(err)
	}
	// web-1's 200 OK of 10:00 goes with its span; its 10:01 HTTP 500 is the
	// status at the cutoff and stays, as does its 200 OK of 10:04; web-2's
	// first span stays as its status at the cutoff.
	if outputs != 3 {
		t.Errorf("%d spans with those outputs after pruning, want 3", outputs)
	}
	page := mustEvents(t, s, EventFilter{Instance: "n1/web-1", Limit: 100})
	want := pick(1, 2, 5, 6, 11, 14)
	if got := eventLines(page.Events); !slices.Equal(got, want) {
		t.Errorf("after pruning:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEventKeyCursor(t *testing.T) {
	for _, k := range []EventKey{{0, 0, 0}, {t0.UnixMilli(), sourceCheck, 42}, {-5, sourceRegistration, 1 << 40}} {
		got, err := ParseEventKey(k.String())
		if err != nil || got != k {
			t.Errorf("%+v: read back %+v, %v", k, got, err)
		}
	}
	for _, bad := range []string{"", "!!", "MS4yLjM", // 1.2.3: no such source
		"MS4xLi0z",   // 1.1.-3: no such row
		"MS4xLjMK",   // a trailing newline
		"MS4xLjM=",   // padded
		"MS4xLjMuNA", // four parts
		"YS4xLjM",    // a.1.3
	} {
		if k, err := ParseEventKey(bad); err == nil {
			t.Errorf("%q read as %+v", bad, k)
		}
	}
}

// A database from before events were kept gets each span's from status
// from the span before it.
func TestMigrationFillsFromStatus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := migrations.ReadFile("migrations/0001_history.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT '')`,
		string(schema),
		`INSERT INTO schema_migrations (version) VALUES (1)`,
		`INSERT INTO checks (id, node, check_id, service_id, name, status, output) VALUES (1, 'n1', 'c', '', 'c', 'warning', 'now')`,
		`INSERT INTO check_spans (check_id, at_ms, status) VALUES (1, 1000, 'passing'), (1, 2000, 'critical'), (1, 3000, 'warning')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s := mustOpen(t, path)
	page := mustEvents(t, s, EventFilter{Limit: 10})
	var got []string
	for _, e := range page.Events {
		got = append(got, fmt.Sprintf("%d %s %s>%s %q", e.At.UnixMilli(), e.Kind, e.From, e.To, e.Output))
	}
	want := []string{`3000 status critical>warning ""`, `2000 status passing>critical ""`, `1000 check_added >passing ""`}
	if !slices.Equal(got, want) {
		t.Errorf("migrated events %q, want %q", got, want)
	}
}
