// Package devagent runs a Consul agent in dev mode on loopback ports chosen
// at random, for tests and benchmarks. The binary is found in $CONSUL_BIN,
// then where scripts/consul caches its build, then on $PATH.
package devagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// Version is the Consul release the tools module pins and scripts/consul builds.
const Version = "v1.21.0"

// NodeName is the name of the agent's own node.
const NodeName = "consul-dev"

// ErrNoBinary is returned when no consul binary can be found.
var ErrNoBinary = errors.New("no consul binary: run scripts/test, or build it with scripts/consul and set CONSUL_BIN")

// Binary returns the path of the consul binary.
func Binary() (string, error) {
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
			return c, nil
		}
	}
	return "", ErrNoBinary
}

// Agent is a consul agent -dev process.
type Agent struct {
	bin     string
	dataDir string
	logPath string
	ports   [4]int // http, serf lan, serf wan, server RPC

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts an agent that keeps its files in dataDir, and waits until
// it has a leader and its own node is in the catalog.
func Start(ctx context.Context, bin, dataDir string) (*Agent, error) {
	a := &Agent{bin: bin, dataDir: dataDir, logPath: filepath.Join(dataDir, "agent.log")}
	for i := range a.ports {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		a.ports[i] = port
	}
	if err := a.Restart(ctx); err != nil {
		a.Stop()
		return nil, err
	}
	return a, nil
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
func (a *Agent) Client() (*api.Client, error) { return api.NewClient(a.Config()) }

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
func (a *Agent) Restart(ctx context.Context) error {
	a.mu.Lock()
	if a.cmd != nil {
		a.mu.Unlock()
		return errors.New("devagent: agent is already running")
	}
	logFile, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.mu.Unlock()
		return err
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
		return fmt.Errorf("devagent: start consul: %w", err)
	}
	a.cmd = cmd
	a.mu.Unlock()
	return a.waitReady(ctx)
}

func (a *Agent) waitReady(ctx context.Context) error {
	client, err := a.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		leader, err := client.Status().Leader()
		if err == nil && leader != "" {
			node, _, err := client.Catalog().Node(NodeName, nil)
			if err == nil && node != nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devagent: consul not ready: %w\n%s", ctx.Err(), a.LogTail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LogTail returns the last lines of the agent's log.
func (a *Agent) LogTail(lines int) string {
	b, _ := os.ReadFile(a.logPath)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
