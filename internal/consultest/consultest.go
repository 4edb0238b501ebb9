// Package consultest runs a real Consul agent in dev mode for tests, on
// loopback ports chosen at random and a temporary data directory.
//
// The agent binary is found in $CONSUL_BIN, then where scripts/consul caches
// the build, then on $PATH. scripts/test builds it from the tools/consul
// module. Without it a test skips, except under CI=true, where it fails.
package consultest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Version is the Consul release the tools module pins and scripts/consul builds.
const Version = "v1.21.0"

// NodeName is the name of the agent's own node.
const NodeName = "consul-dev"

// Binary returns the path of the consul binary, or ends the test.
func Binary(tb testing.TB) string {
	tb.Helper()
	candidates := []string{os.Getenv("CONSUL_BIN")}
	if dir, err := os.UserCacheDir(); err == nil {
		candidates = append(candidates, filepath.Join(dir, "consul-monitor", "consul-"+Version))
	}
	if p, err := exec.LookPath("consul"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if info, err := os.Stat(c); err == nil && !info.IsDir() {
			return c
		}
	}
	const why = "no consul binary: run scripts/test, or build it with scripts/consul and set CONSUL_BIN"
	if os.Getenv("CI") != "" {
		tb.Fatal(why)
	}
	tb.Skip(why)
	return ""
}

// Agent is a running consul agent -dev.
type Agent struct {
	tb      testing.TB
	bin     string
	dataDir string
	logPath string
	ports   [4]int // http, serf lan, serf wan, server RPC

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts an agent and waits until it has a leader and its own node is
// in the catalog. The agent is stopped when the test ends.
func Start(tb testing.TB) *Agent {
	tb.Helper()
	a := &Agent{tb: tb, bin: Binary(tb), dataDir: tb.TempDir()}
	a.logPath = filepath.Join(a.dataDir, "agent.log")
	for i := range a.ports {
		a.ports[i] = freePort(tb)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("consul agent log, last lines:\n%s", a.logTail(40))
		}
		a.Stop()
	})
	a.Restart()
	return a
}

// Addr is the agent's HTTP address, host:port.
func (a *Agent) Addr() string { return "127.0.0.1:" + strconv.Itoa(a.ports[0]) }

// Config is an API client configuration for this agent.
func (a *Agent) Config() *api.Config {
	cfg := api.DefaultConfig()
	cfg.Address = a.Addr()
	cfg.Token = ""
	return cfg
}

// Client is an API client for this agent.
func (a *Agent) Client() *api.Client {
	c, err := api.NewClient(a.Config())
	if err != nil {
		a.tb.Fatal(err)
	}
	return c
}

// Stop kills the agent, as a crash or a lost host would. A dev agent keeps
// its catalog in memory, so it is empty after a Restart.
func (a *Agent) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	_ = a.cmd.Wait()
	a.cmd = nil
}

// Restart starts the agent again on the same ports and waits for it.
func (a *Agent) Restart() {
	a.tb.Helper()
	a.mu.Lock()
	if a.cmd != nil {
		a.mu.Unlock()
		a.tb.Fatal("consultest: agent is already running")
	}
	logFile, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.mu.Unlock()
		a.tb.Fatal(err)
	}
	cmd := exec.Command(a.bin, "agent", "-dev",
		"-node="+NodeName,
		"-bind=127.0.0.1", "-client=127.0.0.1", "-advertise=127.0.0.1",
		"-http-port="+strconv.Itoa(a.ports[0]),
		"-serf-lan-port="+strconv.Itoa(a.ports[1]),
		"-serf-wan-port="+strconv.Itoa(a.ports[2]),
		"-server-port="+strconv.Itoa(a.ports[3]),
		"-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1",
		"-data-dir="+filepath.Join(a.dataDir, "data"),
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		a.mu.Unlock()
		a.tb.Fatalf("consultest: start consul: %v", err)
	}
	a.cmd = cmd
	a.mu.Unlock()

	client := a.Client()
	WaitFor(a.tb, 60*time.Second, "consul agent ready", func() error {
		leader, err := client.Status().Leader()
		if err != nil || leader == "" {
			return fmt.Errorf("no leader yet (%v)", err)
		}
		node, _, err := client.Catalog().Node(NodeName, nil)
		if err != nil || node == nil {
			return fmt.Errorf("own node not in catalog yet (%v)", err)
		}
		return nil
	})
}

func (a *Agent) logTail(lines int) string {
	b, _ := os.ReadFile(a.logPath)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// WaitFor polls cond until it returns nil, failing the test with cond's last
// error once timeout has passed. Tests wait on conditions, never on sleeps.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RegisterExternal registers an instance on a node of its own through the
// catalog API, the way external services and other agents' services appear.
// checks may include node checks (no ServiceID).
func RegisterExternal(tb testing.TB, c *api.Client, node, address string, svc *api.AgentService, checks ...*api.HealthCheck) {
	tb.Helper()
	reg := &api.CatalogRegistration{Node: node, Address: address, Service: svc, Checks: checks, SkipNodeUpdate: false}
	if _, err := c.Catalog().Register(reg, nil); err != nil {
		tb.Fatalf("catalog register %s/%v: %v", node, svc, err)
	}
}
