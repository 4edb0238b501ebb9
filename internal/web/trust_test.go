package web

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
	"github.com/consul-monitor/consul-monitor/internal/watch"
)

// holdLockEnv names the database a re-executed test binary locks: see
// TestMain.
const holdLockEnv = "CONSUL_MONITOR_TEST_HOLD_WRITE_LOCK"

// TestMain lets the test binary act as another process that holds the
// database's write lock: it takes it, says "locked" on stdout and keeps it
// until its stdin closes.
func TestMain(m *testing.M) {
	if path := os.Getenv(holdLockEnv); path != "" {
		os.Exit(holdWriteLock(path))
	}
	os.Exit(m.Run())
}

func holdWriteLock(path string) int {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
	return 0
}

// lockHolder starts another process that holds path's write lock, and
// returns once it does, with a function that releases it.
func lockHolder(t *testing.T, path string) (release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if !released {
			released = true
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("lock holder: %v", err)
			}
		}
	}
	t.Cleanup(release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder said %q, err %v", line, err)
	}
	return release
}

// liveServer is the real watcher, store and server on a real Consul.
type liveServer struct {
	url     string
	path    string
	store   *store.Store
	watcher *watch.Watcher
}

func startLive(t *testing.T, agent *consultest.Agent, dir string) *liveServer {
	t.Helper()
	path := filepath.Join(dir, "h.db")
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	client, err := consul.New(agent.Config())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	w := watch.New(client, st, watch.Config{Reconcile: time.Hour, MinQueryGap: 20 * time.Millisecond, MaxWait: 500 * time.Millisecond}, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := httptest.NewServer(New(st, w, []byte("key"), quiet))
	t.Cleanup(srv.Close)
	return &liveServer{url: srv.URL, path: path, store: st, watcher: w}
}

func getJSON[T any](t *testing.T, url string) T {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func serviceStatus(r servicesResponse, id string) health.Status {
	for _, s := range r.Services {
		if s.ID == id {
			return s.CurrentStatus
		}
	}
	return ""
}

func TestDatabaseLockedByAnotherProcess(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web",
		Check: &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "10m", Status: api.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	ls := startLive(t, agent, t.TempDir())
	id := consultest.NodeName + "/web-1"
	consultest.WaitFor(t, 10*time.Second, "web-1 passing and recorded", func() error {
		r := getJSON[servicesResponse](t, ls.url+"/api/services")
		if serviceStatus(r, id) != health.Passing || !r.Recording.OK || !r.ConsulAvailable {
			return fmt.Errorf("web-1 %q, recording %+v", serviceStatus(r, id), r.Recording)
		}
		return nil
	})

	release := lockHolder(t, ls.path)
	// No write can commit from here on: the last certified moment stored
	// is final until the lock goes.
	lastBefore := ls.store.LastRecorded()
	changed := time.Now()
	if err := c.Agent().UpdateTTL("web-ttl", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	// Each write waits the busy timeout before it fails.
	consultest.WaitFor(t, 40*time.Second, "the failing recording shown with Consul's live state", func() error {
		r := getJSON[servicesResponse](t, ls.url+"/api/services")
		if r.Recording.OK || r.Recording.Error == nil || r.Recording.Since == nil {
			return fmt.Errorf("recording %+v", r.Recording)
		}
		if !r.ConsulAvailable || !r.Consul.OK || r.Error != nil {
			return fmt.Errorf("a write error made Consul look unavailable: %+v", r.Consul)
		}
		if s := serviceStatus(r, id); s != health.Critical {
			return fmt.Errorf("web-1 shown %q, Consul says critical", s)
		}
		return nil
	})
	h := getJSON[healthzResponse](t, ls.url+"/healthz")
	if h.Database.OK || h.Database.Error == nil || h.Recording.OK || !h.Consul.Available {
		t.Errorf("healthz while another process holds the lock: %+v", h)
	} else {
		t.Logf("healthz database error: %s", *h.Database.Error)
	}
	if r := getJSON[servicesResponse](t, ls.url+"/api/services"); r.Recording.Since.Before(changed) || !strings.Contains(*r.Recording.Error, "locked") {
		t.Errorf("recording failing since %v (%v), before the change it could not write at %v", r.Recording.Since, *r.Recording.Error, changed)
	}

	release()
	consultest.WaitFor(t, 40*time.Second, "recording resumed with the change", func() error {
		r := getJSON[servicesResponse](t, ls.url+"/api/services")
		if !r.Recording.OK || serviceStatus(r, id) != health.Critical || r.LastPoll == nil || !r.LastPoll.After(lastBefore) {
			return fmt.Errorf("recording %+v, web-1 %q, last poll %v", r.Recording, serviceStatus(r, id), r.LastPoll)
		}
		return nil
	})
	if h := getJSON[healthzResponse](t, ls.url+"/healthz"); !h.Database.OK {
		t.Errorf("healthz after the lock was released: %+v", h.Database)
	}
	// The time the database could not be written is no data: the period
	// observed before the lock ends at its last stored answer, and the next
	// begins with an answer that came after the change the lock held back.
	rec, err := ls.store.Recording(context.Background(), id, lastBefore.Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var next *health.Period
	for i, p := range rec.Observed {
		if p.Start.After(lastBefore) {
			next = &rec.Observed[i]
			break
		}
		if p.End.After(lastBefore) {
			t.Errorf("the period observed before the lock, %v to %v, goes past its last stored answer %v", p.Start, p.End, lastBefore)
		}
	}
	if next == nil || next.Start.Before(changed.Truncate(time.Millisecond)) {
		t.Fatalf("observed %+v; want a period from after %v", rec.Observed, changed)
	}
	t.Logf("last stored answer before the lock %v, observed again from %v: %v of no data",
		lastBefore.Format(time.StampMilli), next.Start.Format(time.StampMilli), next.Start.Sub(lastBefore).Round(time.Millisecond))
}

func TestServicesShowLiveStateOnlyWhileRecordingFails(t *testing.T) {
	ts := newTestServer(t)
	live := health.Evaluate(health.Snapshot{
		Instances: []health.Instance{{Node: "n1", ServiceID: "web-1", Name: "web"}},
		Checks:    []health.Check{{Node: "n1", CheckID: "web-ttl", ServiceID: "web-1", Status: health.Critical}},
	})
	ts.watcher.live = store.Published{Instances: live.Instances, NodeChecks: live.NodeChecks, Version: ts.store.Published().Version}
	get := func() servicesResponse {
		_, _, body := ts.do(t, "GET", "/api/services", "")
		return decode[servicesResponse](t, body)
	}
	if r := get(); len(r.Services) != 3 || serviceStatus(r, "n1/web-1") != health.Warning {
		t.Errorf("while recording works, the committed state must show: %+v", r.Services)
	}
	failing := ts.watcher.status
	failing.Recording = watch.Part{Error: "recording history failed: database is locked", Since: pollTime.Add(31 * time.Minute), LastOK: pollTime.Add(29 * time.Minute)}
	ts.watcher.status = failing
	r := get()
	if len(r.Services) != 1 || serviceStatus(r, "n1/web-1") != health.Critical {
		t.Errorf("while recording fails, Consul's live state must show: %+v", r.Services)
	}
	if r.Recording.OK || r.Recording.Error == nil || !strings.Contains(*r.Recording.Error, "locked") ||
		!r.Recording.Since.Equal(pollTime.Add(31*time.Minute)) || !r.Recording.LastOK.Equal(pollTime.Add(29*time.Minute)) || !r.ConsulAvailable {
		t.Errorf("recording part %+v, consul available %v", r.Recording, r.ConsulAvailable)
	}
	_, _, body := ts.do(t, "GET", "/api/services", "")
	for _, part := range []string{`"consul":{"ok":true,"error":null,"since":`, `"catalog":{"ok":true,`, `"recording":{"ok":false,"error":"recording history failed: database is locked"`} {
		if !strings.Contains(string(body), part) {
			t.Errorf("body lacks %s: %s", part, body)
		}
	}
}

// smallDisk mounts a 1 MB tmpfs for the test, so that the database can
// really fill its disk.
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		consultest.Unavailable(t, fmt.Sprintf("cannot mount a 1 MB tmpfs (root needed; TestWatcherSurvivesDatabaseErrors injects ENOSPC instead): %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the disk is full, and returns it.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for range 1024 {
		if _, err := f.Write(block); err != nil {
			return path
		}
	}
	t.Fatal("a 1 MB disk took 4 MB")
	return ""
}

func TestDiskFull(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	disk := smallDisk(t)
	ls := startLive(t, agent, disk)
	consultest.WaitFor(t, 10*time.Second, "recording", func() error {
		if r := getJSON[servicesResponse](t, ls.url+"/api/services"); !r.Recording.OK || r.LastPoll == nil {
			return fmt.Errorf("recording %+v", r.Recording)
		}
		return nil
	})
	filler := fill(t, disk)
	// Enough new rows that the write needs pages the disk has no room for.
	for i := range 40 {
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: fmt.Sprintf("svc-%d", i), Name: "svc",
			Meta:  map[string]string{"padding": strings.Repeat("x", 400)},
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthCritical, Notes: strings.Repeat("n", 200)}}); err != nil {
			t.Fatal(err)
		}
	}
	consultest.WaitFor(t, 30*time.Second, "the full disk shown with Consul's live state", func() error {
		r := getJSON[servicesResponse](t, ls.url+"/api/services")
		if r.Recording.OK || r.Recording.Error == nil || !r.ConsulAvailable {
			return fmt.Errorf("recording %+v, consul available %v", r.Recording, r.ConsulAvailable)
		}
		if n := len(r.Services); n < 40 {
			return fmt.Errorf("%d services shown, Consul has 40 more", n)
		}
		return nil
	})
	// Small writes may still fit in pages the database has; from the
	// first that did not, the last certified moment stored is final.
	lastBefore := ls.store.LastRecorded()
	r := getJSON[servicesResponse](t, ls.url+"/api/services")
	t.Logf("recording error: %s", *r.Recording.Error)
	if h := getJSON[healthzResponse](t, ls.url+"/healthz"); h.Database.OK || h.Database.Error == nil {
		t.Errorf("healthz on a full disk: %+v", h.Database)
	} else {
		t.Logf("healthz database error: %s", *h.Database.Error)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	consultest.WaitFor(t, 30*time.Second, "recording resumed", func() error {
		r := getJSON[servicesResponse](t, ls.url+"/api/services")
		if !r.Recording.OK || len(ls.store.Current()) < 40 || r.LastPoll == nil || !r.LastPoll.After(lastBefore) {
			return fmt.Errorf("recording %+v, %d instances committed", r.Recording, len(ls.store.Current()))
		}
		return nil
	})
	if h := getJSON[healthzResponse](t, ls.url+"/healthz"); !h.Database.OK {
		t.Errorf("healthz once space is back: %+v", h.Database)
	}
	rec, err := ls.store.Recording(context.Background(), consultest.NodeName+"/svc-0", lastBefore.Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resumed := false
	for _, p := range rec.Observed {
		if !p.Start.After(lastBefore) && p.End.After(lastBefore) {
			t.Errorf("observed %v to %v, past the last answer stored before the disk filled (%v)", p.Start, p.End, lastBefore)
		}
		resumed = resumed || p.Start.After(lastBefore)
	}
	if !resumed {
		t.Errorf("no observation after the disk had room again: %+v", rec.Observed)
	}
}
