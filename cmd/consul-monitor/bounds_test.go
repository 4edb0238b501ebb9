package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consultest"
)

// TestNodeCheckOutputBounded is the promise that one registration cannot
// exhaust the monitor: with one node check of 64 MB output on a node of 40
// services, registered through the catalog (where Consul sets no limit),
// the real binary's peak RSS and the size of /api/services both stay within
// twice their values without it.
func TestNodeCheckOutputBounded(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	const node, services = "fat-node", 40
	register := func(i int, status string) {
		id := fmt.Sprintf("svc-%d", i)
		consultest.RegisterExternal(t, c, node, "10.0.0.7",
			&api.AgentService{ID: id, Service: fmt.Sprintf("service-%d", i%8), Port: 8000 + i},
			&api.HealthCheck{CheckID: id + "-check", Name: "http", ServiceID: id, Status: status, Output: "HTTP GET: 200 OK"})
	}
	for i := range services {
		register(i, api.HealthPassing)
	}
	nodeCheck := func(output string) {
		reg := &api.CatalogRegistration{Node: node, Address: "10.0.0.7",
			Checks: api.HealthChecks{{Node: node, CheckID: "node-agent", Name: "node agent", Status: api.HealthWarning, Output: output}}}
		if _, err := c.Catalog().Register(reg, nil); err != nil {
			t.Fatal(err)
		}
	}
	nodeCheck("agent alive")

	addr := freeAddr(t)
	cmd, out := startProcess(t, "--listen", addr, "--db", filepath.Join(t.TempDir(), "h.db"), "--consul-addr", agent.Addr(),
		"--poll-interval", "1s", "--min-query-gap", "20ms")
	waitServing(t, addr, out)

	// settle flips one service check and waits until the API shows it and
	// the node check's output begins with prefix: each round is a full
	// health read by the monitor, 64 MB output included once it is there.
	round := 0
	settle := func(prefix string) (size int) {
		for range 3 {
			round++
			status := []string{api.HealthCritical, api.HealthPassing}[round%2]
			register(0, status)
			consultest.WaitFor(t, 60*time.Second, "round shown", func() error {
				body, raw, err := servicesPlain(addr)
				if err != nil {
					return err
				}
				size = len(raw)
				var seen int
				var flipped bool
				for _, s := range body.Services {
					if s.Node == node {
						seen++
						if s.ID == node+"/svc-0" && len(s.Checks) == 1 && s.Checks[0].Status == status {
							flipped = true
						}
					}
				}
				nc := body.Nodes[node].Checks
				if seen != services || !flipped || len(nc) != 1 || !strings.HasPrefix(nc[0].Output, prefix) {
					return fmt.Errorf("%d of %d instances, svc-0 flipped %v, node checks %d", seen, services, flipped, len(nc))
				}
				return nil
			})
		}
		return size
	}
	sizeBefore := settle("agent alive")
	rssBefore, hwmBefore := memory(t, cmd.Process.Pid)

	big := strings.Repeat("0123456789abcdef", 64<<20/16)
	nodeCheck(big)
	big = ""
	sizeAfter := settle("0123456789abcdef")
	rssAfter, hwmAfter := memory(t, cmd.Process.Pid)
	body, _, err := servicesPlain(addr)
	if err != nil {
		t.Fatal(err)
	}
	if nc := body.Nodes[node].Checks[0]; !nc.OutputTruncated || len(nc.Output) != 4096 || !nc.NodeCheck {
		t.Errorf("node check: %d B of output, truncated %v, node_check %v", len(nc.Output), nc.OutputTruncated, nc.NodeCheck)
	}

	t.Logf("without / with a 64 MB node check output: /api/services %d / %d B, VmHWM %d / %d kB, VmRSS %d / %d kB",
		sizeBefore, sizeAfter, hwmBefore, hwmAfter, rssBefore, rssAfter)
	if sizeAfter > 2*sizeBefore {
		t.Errorf("/api/services grew from %d to %d B", sizeBefore, sizeAfter)
	}
	if hwmAfter > 2*hwmBefore || rssAfter > 2*rssBefore {
		t.Errorf("memory grew: VmHWM %d to %d kB, VmRSS %d to %d kB", hwmBefore, hwmAfter, rssBefore, rssAfter)
	}
}

// boundsBody is the part of /api/services this test reads.
type boundsBody struct {
	Services []struct {
		ID     string       `json:"id"`
		Node   string       `json:"node"`
		Checks []boundCheck `json:"checks"`
	} `json:"services"`
	Nodes map[string]struct {
		Checks []boundCheck `json:"checks"`
	} `json:"nodes"`
}

type boundCheck struct {
	Status          string `json:"status"`
	Output          string `json:"output"`
	OutputTruncated bool   `json:"output_truncated"`
	NodeCheck       bool   `json:"node_check"`
}

// servicesPlain reads /api/services uncompressed, as its size is measured.
func servicesPlain(addr string) (boundsBody, []byte, error) {
	var body boundsBody
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/services", nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return body, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return body, nil, err
	}
	if resp.StatusCode != 200 {
		return body, raw, fmt.Errorf("/api/services: %d", resp.StatusCode)
	}
	return body, raw, json.Unmarshal(raw, &body)
}

// memory reads a process's resident set size and its peak, in kB.
func memory(t *testing.T, pid int) (rss, hwm int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		name, value, _ := strings.Cut(line, ":")
		kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")))
		switch {
		case name != "VmRSS" && name != "VmHWM":
		case err != nil:
			t.Fatalf("%s: %v", line, err)
		case name == "VmRSS":
			rss = kb
		default:
			hwm = kb
		}
	}
	if rss == 0 || hwm == 0 {
		t.Fatal(errors.New("no VmRSS or VmHWM in /proc status"))
	}
	return rss, hwm
}

// TestMaximalOutputsCost measures what maximal check outputs cost the real
// binary: 1,000 instances whose checks all have an output past every cap
// (64 KiB), against the same instances with short outputs. The README's
// worst case ("N instances with maximal outputs cost at most ...") is this
// figure per instance; the test holds the binary to it.
func TestMaximalOutputsCost(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 1,000 instances twice")
	}
	agent := consultest.Start(t)
	c := agent.Client()
	const nodes, perNode = 50, 20
	const maxCostPerInstanceKB = 160 // the README states this bound
	registerAll := func(output string) {
		for n := range nodes {
			node := fmt.Sprintf("node-%d", n)
			for i := range perNode {
				id := fmt.Sprintf("svc-%d", i)
				consultest.RegisterExternal(t, c, node, fmt.Sprintf("10.0.1.%d", n),
					&api.AgentService{ID: id, Service: fmt.Sprintf("service-%d", i), Port: 8000 + i},
					&api.HealthCheck{CheckID: id + "-check", Name: "http", ServiceID: id, Status: api.HealthPassing, Output: output})
			}
		}
	}
	registerAll("ok")
	addr := freeAddr(t)
	cmd, out := startProcess(t, "--listen", addr, "--db", filepath.Join(t.TempDir(), "h.db"), "--consul-addr", agent.Addr(),
		"--poll-interval", "1s", "--min-query-gap", "20ms")
	waitServing(t, addr, out)
	waitAll := func(truncated bool) {
		consultest.WaitFor(t, 120*time.Second, "all outputs shown", func() error {
			body, _, err := servicesPlain(addr)
			if err != nil {
				return err
			}
			n := 0
			for _, s := range body.Services {
				if len(s.Checks) == 1 && s.Checks[0].OutputTruncated == truncated {
					n++
				}
			}
			if n != nodes*perNode {
				return fmt.Errorf("%d of %d instances", n, nodes*perNode)
			}
			return nil
		})
	}
	waitAll(false)
	sizeBefore := 0
	if _, raw, err := servicesPlain(addr); err == nil {
		sizeBefore = len(raw)
	}
	_, hwmBefore := memory(t, cmd.Process.Pid)
	registerAll(strings.Repeat("x", 64<<10))
	waitAll(true)
	// A few more reads of Consul, each carrying every output: flip one
	// check and wait for the API to show it, three times.
	for round := range 3 {
		status := []string{api.HealthCritical, api.HealthPassing}[round%2]
		consultest.RegisterExternal(t, c, "node-0", "10.0.1.0", &api.AgentService{ID: "svc-0", Service: "service-0", Port: 8000},
			&api.HealthCheck{CheckID: "svc-0-check", Name: "http", ServiceID: "svc-0", Status: status, Output: strings.Repeat("x", 64<<10)})
		consultest.WaitFor(t, 30*time.Second, "flip shown", func() error {
			body, _, err := servicesPlain(addr)
			if err != nil {
				return err
			}
			for _, s := range body.Services {
				if s.ID == "node-0/svc-0" && s.Checks[0].Status == status {
					return nil
				}
			}
			return errors.New("not yet")
		})
	}
	_, raw, err := servicesPlain(addr)
	if err != nil {
		t.Fatal(err)
	}
	_, hwmAfter := memory(t, cmd.Process.Pid)
	perInstance := float64(hwmAfter-hwmBefore) / (nodes * perNode)
	t.Logf("1,000 instances, outputs short / 64 KiB: VmHWM %d / %d kB (%.1f kB an instance), /api/services %d / %d B",
		hwmBefore, hwmAfter, perInstance, sizeBefore, len(raw))
	if perInstance > maxCostPerInstanceKB {
		t.Errorf("maximal outputs cost %.1f kB an instance, more than the %d kB the README states", perInstance, maxCostPerInstanceKB)
	}
}
