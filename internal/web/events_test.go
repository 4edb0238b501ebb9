package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
	"github.com/consul-monitor/consul-monitor/internal/watch"
)

// newEventsServer serves a store that recorded, a minute apart from
// pollTime (12:00):
//
//	12:00 web-1 and db-1 on n1 register; serfHealth, web-1's and db-1's checks appear passing
//	12:01 web-1 goes critical ("HTTP 500")
//	12:02 db-1 enters maintenance (Consul registers a critical check for it)
//	12:03 web-1 recovers; db-1 leaves maintenance
//	12:04 db-1 leaves the catalog, with its check
func newEventsServer(t *testing.T) *httptest.Server {
	ts, _ := newEventsServerAndStore(t)
	return ts
}

func newEventsServerAndStore(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	web1 := health.Instance{Node: "n1", ServiceID: "web-1", Name: "web"}
	db1 := health.Instance{Node: "n1", ServiceID: "db-1", Name: "db"}
	serf := health.Check{Node: "n1", CheckID: "serfHealth", Name: "Serf", Status: health.Passing, Output: "Agent alive"}
	web1Up := health.Check{Node: "n1", CheckID: "service:web-1", ServiceID: "web-1", Name: "http", Status: health.Passing, Output: "200 OK"}
	web1Down := web1Up
	web1Down.Status, web1Down.Output = health.Critical, "HTTP 500"
	db1Check := health.Check{Node: "n1", CheckID: "service:db-1", ServiceID: "db-1", Name: "tcp", Status: health.Passing}
	maint := health.Check{Node: "n1", CheckID: "_service_maintenance:db-1", ServiceID: "db-1", Name: "Service Maintenance Mode", Status: health.Critical, Output: "down for upgrade"}
	polls := []health.Snapshot{
		{Instances: []health.Instance{web1, db1}, Checks: []health.Check{serf, web1Up, db1Check}},
		{Instances: []health.Instance{web1, db1}, Checks: []health.Check{serf, web1Down, db1Check}},
		{Instances: []health.Instance{web1, db1}, Checks: []health.Check{serf, web1Down, db1Check, maint}},
		{Instances: []health.Instance{web1, db1}, Checks: []health.Check{serf, web1Up, db1Check}},
		{Instances: []health.Instance{web1}, Checks: []health.Check{serf, web1Up}},
	}
	for i, p := range polls {
		if _, err := st.Record(context.Background(), pollTime.Add(time.Duration(i)*time.Minute), p); err != nil {
			t.Fatal(err)
		}
	}
	w := &fixedWatcher{status: watch.Status{
		Consul:    watch.Part{OK: true, Since: pollTime, LastOK: pollTime.Add(4 * time.Minute)},
		Catalog:   watch.Part{OK: true, Since: pollTime, LastOK: pollTime.Add(4 * time.Minute)},
		Recording: watch.Part{OK: true, Since: pollTime, LastOK: pollTime.Add(4 * time.Minute)},
		LastPoll:  pollTime.Add(4 * time.Minute),
	}}
	srv := New(st, w, []byte("test key"), slog.New(slog.DiscardHandler))
	srv.Now = func() time.Time { return pollTime.Add(5 * time.Minute) }
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, st
}

func getEvents(t *testing.T, ts *httptest.Server, query string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(ts.URL + "/api/events" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", query, ct)
	}
	return resp.StatusCode, body
}

// The first page in full, every field: nulls where a field does not apply.
func TestEventsFirstPageExactly(t *testing.T) {
	ts := newEventsServer(t)
	status, body := getEvents(t, ts, "?limit=6")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	next, _ := got["next"].(string)
	if next == "" {
		t.Fatalf("no next cursor: %s", body)
	}
	delete(got, "next") // opaque
	want := decodeAny(t, `{"events":[
		{"at":"2026-11-24T12:04:00Z","kind":"check_removed","instance":"n1/db-1","service":"db","node":"n1","check":"service:db-1","check_name":"tcp","from":"passing","to":null,"output":null,"output_truncated":false},
		{"at":"2026-11-24T12:04:00Z","kind":"deregistered","instance":"n1/db-1","service":"db","node":"n1","check":null,"check_name":null,"from":null,"to":null,"output":null,"output_truncated":false},
		{"at":"2026-11-24T12:03:00Z","kind":"check_removed","instance":"n1/db-1","service":"db","node":"n1","check":"_service_maintenance:db-1","check_name":"Service Maintenance Mode","from":"maintenance","to":null,"output":null,"output_truncated":false},
		{"at":"2026-11-24T12:03:00Z","kind":"status","instance":"n1/web-1","service":"web","node":"n1","check":"service:web-1","check_name":"http","from":"critical","to":"passing","output":"200 OK","output_truncated":false},
		{"at":"2026-11-24T12:02:00Z","kind":"check_added","instance":"n1/db-1","service":"db","node":"n1","check":"_service_maintenance:db-1","check_name":"Service Maintenance Mode","from":null,"to":"maintenance","output":"down for upgrade","output_truncated":false},
		{"at":"2026-11-24T12:01:00Z","kind":"status","instance":"n1/web-1","service":"web","node":"n1","check":"service:web-1","check_name":"http","from":"passing","to":"critical","output":"HTTP 500","output_truncated":false}
	]}`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("first page:\n%s", body)
	}

	// The rest, from the cursor: the first poll, node check with no
	// instance or service, check changes before registrations.
	status, body = getEvents(t, ts, "?limit=6&cursor="+url.QueryEscape(next))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	got = decodeAny(t, string(body))
	want = decodeAny(t, `{"next":null,"events":[
		{"at":"2026-11-24T12:00:00Z","kind":"check_added","instance":"n1/db-1","service":"db","node":"n1","check":"service:db-1","check_name":"tcp","from":null,"to":"passing","output":null,"output_truncated":false},
		{"at":"2026-11-24T12:00:00Z","kind":"check_added","instance":"n1/web-1","service":"web","node":"n1","check":"service:web-1","check_name":"http","from":null,"to":"passing","output":"200 OK","output_truncated":false},
		{"at":"2026-11-24T12:00:00Z","kind":"check_added","instance":null,"service":null,"node":"n1","check":"serfHealth","check_name":"Serf","from":null,"to":"passing","output":"Agent alive","output_truncated":false},
		{"at":"2026-11-24T12:00:00Z","kind":"registered","instance":"n1/db-1","service":"db","node":"n1","check":null,"check_name":null,"from":null,"to":null,"output":null,"output_truncated":false},
		{"at":"2026-11-24T12:00:00Z","kind":"registered","instance":"n1/web-1","service":"web","node":"n1","check":null,"check_name":null,"from":null,"to":null,"output":null,"output_truncated":false}
	]}`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("second page:\n%s", body)
	}
}

func decodeAny(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return v
}

// pageThrough follows next from query and returns each event as
// "15:04 kind check from>to" and the page sizes.
func pageThrough(t *testing.T, ts *httptest.Server, query string) (lines []string, sizes []int) {
	t.Helper()
	return pageThroughFrom(t, ts, query, "")
}

// pageThroughFrom is pageThrough from cursor on.
func pageThroughFrom(t *testing.T, ts *httptest.Server, query, cursor string) (lines []string, sizes []int) {
	t.Helper()
	for range 50 {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		status, body := getEvents(t, ts, q)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", q, status, body)
		}
		var page struct {
			Events []struct {
				At       time.Time `json:"at"`
				Kind     string    `json:"kind"`
				Instance *string   `json:"instance"`
				Check    *string   `json:"check"`
				From     *string   `json:"from"`
				To       *string   `json:"to"`
			} `json:"events"`
			Next *string `json:"next"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			lines = append(lines, fmt.Sprintf("%s %s %s %s %s>%s", e.At.Format("15:04"), e.Kind, deref(e.Instance), deref(e.Check), deref(e.From), deref(e.To)))
		}
		sizes = append(sizes, len(page.Events))
		if page.Next == nil {
			return lines, sizes
		}
		cursor = *page.Next
	}
	t.Fatal("paging did not end")
	return nil, nil
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func TestEventsFiltersAndPaging(t *testing.T) {
	ts := newEventsServer(t)
	all := []string{
		"12:04 check_removed n1/db-1 service:db-1 passing>-",
		"12:04 deregistered n1/db-1 - ->-",
		"12:03 check_removed n1/db-1 _service_maintenance:db-1 maintenance>-",
		"12:03 status n1/web-1 service:web-1 critical>passing",
		"12:02 check_added n1/db-1 _service_maintenance:db-1 ->maintenance",
		"12:01 status n1/web-1 service:web-1 passing>critical",
		"12:00 check_added n1/db-1 service:db-1 ->passing",
		"12:00 check_added n1/web-1 service:web-1 ->passing",
		"12:00 check_added - serfHealth ->passing",
		"12:00 registered n1/db-1 - ->-",
		"12:00 registered n1/web-1 - ->-",
	}
	pick := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, all[i])
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
		sizes []int
	}{
		{"?", all, []int{11}},
		{"?limit=4", all, []int{4, 4, 3}},
		{"?limit=1", all, slices.Repeat([]int{1}, 11)},
		// The instance's events and its node's checks'.
		{"?instance=n1/web-1&limit=2", pick(3, 5, 7, 8, 10), []int{2, 2, 1}},
		{"?instance=n1%2Fdb-1", pick(0, 1, 2, 4, 6, 8, 9), []int{7}},
		{"?service=web&limit=3", pick(3, 5, 7, 8, 10), []int{3, 2}},
		{"?service=nothing", nil, []int{0}},
		{"?status=critical", pick(5), []int{1}},
		{"?status=maintenance", pick(4), []int{1}},
		{"?status=critical,maintenance&limit=1", pick(4, 5), []int{1, 1}},
		{"?status=passing&limit=2", pick(3, 6, 7, 8), []int{2, 2}},
		// since ≤ at < until.
		{"?since=2026-11-24T12:01:00Z&until=2026-11-24T12:03:00Z", pick(4, 5), []int{2}},
		{"?since=2026-11-24T13:01:00%2B01:00&until=2026-11-24T12:03:00.001Z&limit=2", pick(2, 3, 4, 5), []int{2, 2}},
		{"?since=2026-11-24T12:00:00Z&service=web&status=passing", pick(3, 7, 8), []int{3}},
		// Empty parameters are as good as absent.
		{"?since=&until=&service=&instance=&status=&limit=&cursor=", all, []int{11}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			lines, sizes := pageThrough(t, ts, tc.query)
			if !slices.Equal(lines, tc.want) {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
			}
			if !slices.Equal(sizes, tc.sizes) {
				t.Errorf("page sizes %v, want %v", sizes, tc.sizes)
			}
		})
	}
}

// A client paging while changes are recorded gets the rest of the listing
// it began, neither repeated nor skipped; a new listing starts with them.
func TestEventsCursorOverNewChanges(t *testing.T) {
	ts, st := newEventsServerAndStore(t)
	_, body := getEvents(t, ts, "?limit=4")
	var first struct {
		Next string `json:"next"`
	}
	if err := json.Unmarshal(body, &first); err != nil || first.Next == "" {
		t.Fatalf("first page %s: %v", body, err)
	}
	// 12:05: web-1 fails again; a new instance registers.
	if _, err := st.Record(context.Background(), pollTime.Add(5*time.Minute), health.Snapshot{
		Instances: []health.Instance{{Node: "n1", ServiceID: "web-1", Name: "web"}, {Node: "n2", ServiceID: "web-2", Name: "web"}},
		Checks: []health.Check{
			{Node: "n1", CheckID: "serfHealth", Name: "Serf", Status: health.Passing, Output: "Agent alive"},
			{Node: "n1", CheckID: "service:web-1", ServiceID: "web-1", Name: "http", Status: health.Warning, Output: "slow"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	rest, sizes := pageThroughFrom(t, ts, "?limit=4", first.Next)
	want := []string{
		"12:02 check_added n1/db-1 _service_maintenance:db-1 ->maintenance",
		"12:01 status n1/web-1 service:web-1 passing>critical",
		"12:00 check_added n1/db-1 service:db-1 ->passing",
		"12:00 check_added n1/web-1 service:web-1 ->passing",
		"12:00 check_added - serfHealth ->passing",
		"12:00 registered n1/db-1 - ->-",
		"12:00 registered n1/web-1 - ->-",
	}
	if !slices.Equal(rest, want) || !slices.Equal(sizes, []int{4, 3}) {
		t.Errorf("the rest (pages %v):\n%s\nwant:\n%s", sizes, strings.Join(rest, "\n"), strings.Join(want, "\n"))
	}
	fresh, _ := pageThrough(t, ts, "?since=2026-11-24T12:04:00Z")
	want = []string{
		"12:05 status n1/web-1 service:web-1 passing>warning",
		"12:05 registered n2/web-2 - ->-",
		"12:04 check_removed n1/db-1 service:db-1 passing>-",
		"12:04 deregistered n1/db-1 - ->-",
	}
	if !slices.Equal(fresh, want) {
		t.Errorf("a new listing:\n%s\nwant:\n%s", strings.Join(fresh, "\n"), strings.Join(want, "\n"))
	}
}

func TestEventsRefusesBadParameters(t *testing.T) {
	ts := newEventsServer(t)
	for _, tc := range []struct{ query, want string }{
		{"?since=yesterday", `since: "yesterday" is not a time; RFC 3339 required, e.g. 2026-11-24T12:00:00Z`},
		{"?until=2026-11-24", `until: "2026-11-24" is not a time; RFC 3339 required`},
		{"?since=1732449600", `since: "1732449600" is not a time`},
		{"?since=2026-11-24T12:03:00Z&until=2026-11-24T12:01:00Z", "since: 2026-11-24T12:03:00Z is not before until (2026-11-24T12:01:00Z)"},
		{"?since=2026-11-24T12:03:00Z&until=2026-11-24T12:03:00Z", "since: 2026-11-24T12:03:00Z is not before until"},
		{"?limit=0", `limit: "0" is not a whole number from 1 to 1000`},
		{"?limit=1001", `limit: "1001" is not a whole number from 1 to 1000`},
		{"?limit=-1", `limit: "-1" is not`},
		{"?limit=ten", `limit: "ten" is not`},
		{"?limit=1.5", `limit: "1.5" is not`},
		{"?status=down", `status: "down" is not one of passing, warning, critical, maintenance`},
		{"?status=passing,unknown", `status: "unknown" is not one of passing, warning, critical, maintenance`},
		{"?status=critical,", `status: "" is not one of`},
		{"?instance=no-slash", `instance: "no-slash" is not an instance id`},
		{"?instance=n1/a/b", `instance: "n1/a/b" is not an instance id`},
		{"?cursor=garbage", "cursor: not a cursor this server gave; use the next value of the previous page"},
		{"?cursor=MS4yLjM", "cursor: not a cursor this server gave"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			status, body := getEvents(t, ts, tc.query)
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			if status != http.StatusBadRequest || !strings.HasPrefix(e.Error, tc.want) {
				t.Errorf("%d %q, want 400 %q…", status, e.Error, tc.want)
			}
		})
	}
	// The bounds of limit are accepted.
	for _, q := range []string{"?limit=1", "?limit=1000"} {
		if status, body := getEvents(t, ts, q); status != http.StatusOK {
			t.Errorf("%s: %d %s", q, status, body)
		}
	}
}

// A store that fails is a 500 with no detail, logged.
func TestEventsStoreErrorIsInternal(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv := New(st, &fixedWatcher{}, []byte("k"), slog.New(slog.DiscardHandler))
	st.Close()
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/api/events", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"internal error"`) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}
