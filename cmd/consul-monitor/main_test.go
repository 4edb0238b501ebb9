package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
)

// The API as a client sees it.
type servicesBody struct {
	Status          string     `json:"status"`
	ConsulAvailable bool       `json:"consul_available"`
	LastPoll        *time.Time `json:"last_poll"`
	Error           *string    `json:"error"`
	Services        []struct {
		ID            string            `json:"id"`
		Name          string            `json:"name"`
		Node          string            `json:"node"`
		Address       string            `json:"address"`
		Port          int               `json:"port"`
		URL           *string           `json:"url"`
		Tags          []string          `json:"tags"`
		Meta          map[string]string `json:"meta"`
		CurrentStatus string            `json:"current_status"`
		Checks        []struct {
			ID        string `json:"id"`
			Status    string `json:"status"`
			Output    string `json:"output"`
			NodeCheck bool   `json:"node_check"`
		} `json:"checks"`
	} `json:"services"`
}

type historyBody struct {
	ServiceID   string `json:"service_id"`
	Granularity int    `json:"granularity"`
	Data        []struct {
		Timestamp time.Time `json:"timestamp"`
		Passing   float64   `json:"passing"`
		Warning   float64   `json:"warning"`
		Critical  float64   `json:"critical"`
		NoData    float64   `json:"nodata"`
		// The exact time in each status: history ends at the last
		// certified moment, not at now, so percentages of elapsed time
		// would not add up to it.
		PassingMs  int64 `json:"passing_ms"`
		WarningMs  int64 `json:"warning_ms"`
		CriticalMs int64 `json:"critical_ms"`
		NoDataMs   int64 `json:"nodata_ms"`
	} `json:"data"`
}

// seconds adds up, over all windows, the time spent in the statuses pick
// selects, from each window's exact durations.
func (h historyBody) seconds(pick func(passing, warning, critical, nodata float64) float64) float64 {
	var total float64
	for _, d := range h.Data {
		total += pick(float64(d.PassingMs)/1000, float64(d.WarningMs)/1000, float64(d.CriticalMs)/1000, float64(d.NoDataMs)/1000)
	}
	return total
}

func observed(p, w, c, _ float64) float64 { return p + w + c }

func getJSON(t *testing.T, rawURL string, v any) int {
	t.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	return resp.StatusCode
}

func startMonitor(t *testing.T, agent *consultest.Agent, dbPath string) *Main {
	t.Helper()
	m := &Main{
		Config: Config{Listen: "127.0.0.1:0", DB: dbPath, PollInterval: time.Second, MinQueryGap: 50 * time.Millisecond, Retention: 720 * time.Hour, LogFormat: "text", ConsulAddr: agent.Addr()},
		Log:    slog.New(slog.DiscardHandler),
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *Main) services(t *testing.T) servicesBody {
	t.Helper()
	var body servicesBody
	if code := getJSON(t, "http://"+m.Addr+"/api/services", &body); code != 200 {
		t.Fatalf("/api/services: %d", code)
	}
	return body
}

func (m *Main) history(t *testing.T, id string, granularity int) historyBody {
	t.Helper()
	var body historyBody
	u := fmt.Sprintf("http://%s/api/services/%s/history?granularity=%d", m.Addr, url.PathEscape(id), granularity)
	if code := getJSON(t, u, &body); code != 200 {
		t.Fatalf("%s: %d", u, code)
	}
	return body
}

// waitService polls /api/services until instance id satisfies cond.
func (m *Main) waitService(t *testing.T, id, what string, cond func(status, address string) bool) {
	t.Helper()
	consultest.WaitFor(t, 15*time.Second, id+" "+what, func() error {
		for _, s := range m.services(t).Services {
			if s.ID == id {
				if cond(s.CurrentStatus, s.Address) {
					return nil
				}
				return fmt.Errorf("%s is %s at %q", id, s.CurrentStatus, s.Address)
			}
		}
		return fmt.Errorf("%s not listed", id)
	})
}

func statusIs(want string) func(string, string) bool {
	return func(status, _ string) bool { return status == want }
}

func registerWeb(t *testing.T, c *api.Client) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Port: 8080,
		Check: &api.AgentServiceCheck{CheckID: "web-1-ttl", TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEndToEnd(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	dbPath := filepath.Join(t.TempDir(), "history.db")
	m := startMonitor(t, agent, dbPath)
	defer func() { m.Close() }()
	web := consultest.NodeName + "/web-1"

	t.Run("TTL check passing, warning, critical", func(t *testing.T) {
		registerWeb(t, c)
		m.waitService(t, web, "passing", statusIs("passing"))
		statusSeconds := map[string]func(p, w, c, n float64) float64{
			"warning":  func(_, w, _, _ float64) float64 { return w },
			"critical": func(_, _, c, _ float64) float64 { return c },
		}
		for _, status := range []string{"warning", "critical"} {
			if err := c.Agent().UpdateTTL("web-1-ttl", "now "+status, status); err != nil {
				t.Fatal(err)
			}
			m.waitService(t, web, status, statusIs(status))
			// History holds time in the status (held until it shows, as a
			// state shorter than 0.05% of a window rounds to nothing).
			consultest.WaitFor(t, 10*time.Second, status+" time in history", func() error {
				h := m.history(t, web, 5)
				if seconds := h.seconds(statusSeconds[status]); len(h.Data) < 288 || seconds <= 0 {
					return fmt.Errorf("%d windows, %.2fs %s", len(h.Data), seconds, status)
				}
				return nil
			})
		}
		if err := c.Agent().UpdateTTL("web-1-ttl", "ok", "passing"); err != nil {
			t.Fatal(err)
		}
		m.waitService(t, web, "passing again", statusIs("passing"))
	})

	t.Run("same service ID on two nodes, a service without address, a critical node", func(t *testing.T) {
		consultest.RegisterExternal(t, c, "node-b", "10.0.0.2", &api.AgentService{ID: "web-1", Service: "web", Port: 8080},
			&api.HealthCheck{Node: "node-b", CheckID: "web-1-http", ServiceID: "web-1", Status: api.HealthPassing})
		consultest.RegisterExternal(t, c, "node-c", "10.0.0.3", &api.AgentService{ID: "db-1", Service: "db", Address: "10.0.0.30", Port: 5432},
			&api.HealthCheck{Node: "node-c", CheckID: "db-1-tcp", ServiceID: "db-1", Status: api.HealthPassing},
			&api.HealthCheck{Node: "node-c", CheckID: "node-ok", Status: api.HealthPassing})
		m.waitService(t, "node-b/web-1", "with the node's address", func(s, a string) bool { return s == "passing" && a == "10.0.0.2" })
		m.waitService(t, web, "still listed beside it", statusIs("passing"))
		m.waitService(t, "node-c/db-1", "with its own address", func(s, a string) bool { return s == "passing" && a == "10.0.0.30" })

		consultest.RegisterExternal(t, c, "node-c", "10.0.0.3", nil,
			&api.HealthCheck{Node: "node-c", CheckID: "node-ok", Status: api.HealthCritical, Output: "disk full"})
		m.waitService(t, "node-c/db-1", "critical through its node", statusIs("critical"))
	})

	t.Run("maintenance", func(t *testing.T) {
		if err := c.Agent().EnableServiceMaintenance("web-1", "deploy"); err != nil {
			t.Fatal(err)
		}
		m.waitService(t, web, "in maintenance", statusIs("maintenance"))
		if err := c.Agent().DisableServiceMaintenance("web-1"); err != nil {
			t.Fatal(err)
		}
		m.waitService(t, web, "back", statusIs("passing"))
	})

	t.Run("deregistration keeps history", func(t *testing.T) {
		// First let it have history enough to survive rounding.
		consultest.WaitFor(t, 10*time.Second, "node-b/web-1 has history", func() error {
			if seen := m.history(t, "node-b/web-1", 5).seconds(observed); seen < 1 {
				return fmt.Errorf("%.2fs observed", seen)
			}
			return nil
		})
		if _, err := c.Catalog().Deregister(&api.CatalogDeregistration{Node: "node-b", ServiceID: "web-1"}, nil); err != nil {
			t.Fatal(err)
		}
		consultest.WaitFor(t, 15*time.Second, "node-b/web-1 to leave /api/services", func() error {
			for _, s := range m.services(t).Services {
				if s.ID == "node-b/web-1" {
					return fmt.Errorf("still listed")
				}
			}
			return nil
		})
		h := m.history(t, "node-b/web-1", 5)
		if h.seconds(observed) < 0.5 {
			t.Error("the deregistered instance lost its history")
		}
	})

	t.Run("consul stopped mid-run", func(t *testing.T) {
		before := m.services(t)
		agent.Stop()
		consultest.WaitFor(t, 10*time.Second, "outage reported", func() error {
			if b := m.services(t); b.ConsulAvailable || b.Error == nil {
				return fmt.Errorf("consul_available %v", b.ConsulAvailable)
			}
			return nil
		})
		during := m.services(t)
		if len(during.Services) != len(before.Services) || during.LastPoll == nil {
			t.Errorf("last known data not served: %d services (had %d), last poll %v", len(during.Services), len(before.Services), during.LastPoll)
		}
		// Over two seconds of outage, observed time must not grow: the
		// outage is no data, not the last status stretched on.
		startSeen := m.history(t, web, 5).seconds(observed)
		time.Sleep(2 * time.Second)
		outageSeen := m.history(t, web, 5).seconds(observed) - startSeen
		if outageSeen > 0.5 {
			t.Errorf("%.2fs of the 2s outage counted as observed", outageSeen)
		}

		agent.Restart()
		registerWeb(t, c) // a dev agent forgets its catalog
		// The last known web-1 was listed as passing all along, so wait for
		// Consul itself first.
		consultest.WaitFor(t, 15*time.Second, "recovery reported", func() error {
			if b := m.services(t); !b.ConsulAvailable || b.Error != nil {
				return fmt.Errorf("consul_available %v", b.ConsulAvailable)
			}
			return nil
		})
		m.waitService(t, web, "back after the outage", statusIs("passing"))
		// Observed time grows again as answers certify it: 2 s of it
		// within a bounded wait, however the answers are spaced.
		startSeen = m.history(t, web, 5).seconds(observed)
		consultest.WaitFor(t, 20*time.Second, "observed time to grow by 2s after recovery", func() error {
			if grown := m.history(t, web, 5).seconds(observed) - startSeen; grown < 2 {
				return fmt.Errorf("grown by %.2fs", grown)
			}
			return nil
		})
	})

	t.Run("restart of consul-monitor keeps history", func(t *testing.T) {
		// 5-minute windows: each share is rounded to 0.1% of at most 300 s,
		// and at most two windows hold data, so sums agree within 0.3 s.
		seenBefore := m.history(t, web, 5).seconds(observed)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		m = startMonitor(t, agent, dbPath)
		h := m.history(t, web, 5)
		if seen := h.seconds(observed); seen < seenBefore-0.4 {
			t.Errorf("history after restart: %.2fs observed, had %.2fs", seen, seenBefore)
		}
		m.waitService(t, web, "polled by the new process", statusIs("passing"))
	})
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds consul-monitor once for the tests that run it as a process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "consul-monitor-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "consul-monitor")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// startProcess runs the binary and waits until it answers on addr.
func startProcess(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	return startProcessEnv(t, nil, args...)
}

// startProcessEnv is startProcess with variables added to the environment.
func startProcessEnv(t *testing.T, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(append(os.Environ(), "CONSUL_HTTP_TOKEN="), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &out
}

// syncBuffer collects a process's output while a test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func integrityCheck(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var result string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&result); err != nil {
		t.Fatal(err)
	}
	return result
}

func TestProcessSignalsAndFlags(t *testing.T) {
	agent := consultest.Start(t)
	addr := freeAddr(t)
	cmd, out := startProcess(t, "--listen", addr, "--db", filepath.Join(t.TempDir(), "h.db"), "--consul-addr", agent.Addr(), "--log-format", "json")
	consultest.WaitFor(t, 15*time.Second, "serving", func() error {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, out)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15s after SIGTERM\n%s", out)
	}
	if !strings.Contains(out.String(), `"msg":"shutting down"`) {
		t.Errorf("no JSON shutdown log:\n%s", out)
	}

	bad := exec.Command(binary(t), "--poll-interval", "often")
	output, err := bad.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 2 || !strings.Contains(string(output), "poll-interval") {
		t.Errorf("invalid flag: err %v, output %s", err, output)
	}
	version, err := exec.Command(binary(t), "--version").Output()
	if err != nil || !strings.HasPrefix(string(version), "consul-monitor ") {
		t.Errorf("--version: %q %v", version, err)
	}
}

// runToExit runs the binary, which is expected to refuse to start, and
// returns its exit status and output.
func runToExit(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("%v: err %v, want an exit status; output:\n%s", args, err, out)
	}
	return exit.ExitCode(), string(out)
}

func waitServing(t *testing.T, addr string, out *syncBuffer) {
	t.Helper()
	consultest.WaitFor(t, 15*time.Second, "serving on "+addr, func() error {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return fmt.Errorf("%v; output:\n%s", err, out)
		}
		resp.Body.Close()
		return nil
	})
}

func TestSecondProcessOnOneDatabaseExits2(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "history.db")
	// No Consul is needed to hold the database: nothing listens here.
	consulAddr := freeAddr(t)
	addr := freeAddr(t)
	// The first also shows a flag winning over an invalid variable.
	first, out := startProcessEnv(t, []string{"CONSUL_MONITOR_RETENTION=bogus"}, "--listen", addr, "--db", dbPath, "--consul-addr", consulAddr, "--retention", "48h")
	waitServing(t, addr, out)

	host, _ := os.Hostname()
	code, msg := runToExit(t, nil, "--listen", freeAddr(t), "--db", dbPath, "--consul-addr", consulAddr)
	if code != 2 || !strings.Contains(msg, dbPath) || !strings.Contains(msg, fmt.Sprintf("process %d on host %s", first.Process.Pid, host)) {
		t.Errorf("second process: exit %d, output:\n%s", code, msg)
	}

	// kill -9 releases the lock with the process.
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	addr = freeAddr(t)
	_, out = startProcess(t, "--listen", addr, "--db", dbPath, "--consul-addr", consulAddr)
	waitServing(t, addr, out)
}

func TestInvalidInputsExit2(t *testing.T) {
	dir := t.TempDir()
	notSQLite := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notSQLite, []byte("not a database, only some words"), 0o644); err != nil {
		t.Fatal(err)
	}
	consulAddr := freeAddr(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	roDir := readOnlyMount(t)

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"missing directory", nil, []string{"--db", filepath.Join(dir, "nope", "h.db")}, []string{filepath.Join(dir, "nope", "h.db"), "directory " + filepath.Join(dir, "nope") + " does not exist"}},
		{"a directory", nil, []string{"--db", dir}, []string{"database " + dir + ": it is a directory"}},
		{"not SQLite", nil, []string{"--db", notSQLite}, []string{"database " + notSQLite + ": it is not an SQLite database"}},
		{"read-only mount", nil, []string{"--db", filepath.Join(roDir, "h.db")}, []string{filepath.Join(roDir, "h.db"), "directory " + roDir + " is not writable: read-only file system"}},
		{"listen address in use", nil, []string{"--listen", busy.Addr().String()}, []string{"--listen " + busy.Addr().String() + ": bind: address already in use"}},
		{"malformed --consul-addr", nil, []string{"--consul-addr", "localhost:85OO"}, []string{`--consul-addr: "localhost:85OO" is not a Consul address: port "85OO"`}},
		{"malformed CONSUL_HTTP_ADDR", []string{"CONSUL_HTTP_ADDR=http//consul:8500"}, nil, []string{`CONSUL_HTTP_ADDR: "http//consul:8500" is not a Consul address`}},
		{"invalid variable in use", []string{"CONSUL_MONITOR_RETENTION=bogus"}, nil, []string{`CONSUL_MONITOR_RETENTION: "bogus" is not a duration`}},
		{"check output max out of range", nil, []string{"--check-output-max", "100"}, []string{"--check-output-max: 100 is not between 256 and 1048576 bytes"}},
		{"check output max variable", []string{"CONSUL_MONITOR_CHECK_OUTPUT_MAX=4KB"}, nil, []string{`CONSUL_MONITOR_CHECK_OUTPUT_MAX: "4KB" is not a number of bytes`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--listen", freeAddr(t), "--db", filepath.Join(t.TempDir(), "h.db")}
			if tc.env == nil {
				args = append(args, "--consul-addr", consulAddr)
			}
			args = append(args, tc.args...)
			code, out := runToExit(t, tc.env, args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; output:\n%s", code, out)
			}
			for _, part := range tc.want {
				if !strings.Contains(out, part) {
					t.Errorf("output does not say %q:\n%s", part, out)
				}
			}
		})
	}
}

// readOnlyMount mounts a small tmpfs read-only: as root, permission bits
// do not stop writes, a read-only mount does. Without the right to mount,
// the test skips, or fails under CI=true.
func readOnlyMount(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, args := range [][]string{{"-t", "tmpfs", "-o", "size=1m", "tmpfs", dir}, {"-o", "remount,ro", dir}} {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			if i > 0 {
				_ = exec.Command("umount", dir).Run()
			}
			consultest.Unavailable(t, fmt.Sprintf("mount %v: %v %s", args, err, out))
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}
