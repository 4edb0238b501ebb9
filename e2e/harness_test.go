// Package e2e tests the dashboard as a person uses it: the real
// consul-monitor binary, a real Consul agent, and a real headless Chromium
// driven through the DevTools protocol.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binary builds consul-monitor once per test process.
func binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "consul-monitor-e2e")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "consul-monitor"), "../cmd/consul-monitor").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return filepath.Join(binDir, "consul-monitor")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// chromiumPath finds Debian's chromium (scripts/test installs it); without
// it browser tests skip, except under CI=true, where they fail.
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	consultest.Unavailable(tb, "no chromium: run scripts/test, which installs Debian's chromium package, or set CHROMIUM_BIN")
	return ""
}

// monitor is a consul-monitor process.
type monitor struct {
	tb   testing.TB
	cmd  *exec.Cmd
	out  *bytes.Buffer
	addr string
	db   string
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startMonitor runs the binary on dbPath against consulAddr, with extra
// arguments, and waits until it serves.
func startMonitor(tb testing.TB, consulAddr, dbPath string, extra ...string) *monitor {
	tb.Helper()
	m := &monitor{tb: tb, addr: freeAddr(tb), db: dbPath, out: &bytes.Buffer{}}
	m.cmd = exec.Command(binary(tb), "--listen", m.addr, "--db", dbPath, "--poll-interval", "5s", "--min-query-gap", "100ms", "--consul-addr", consulAddr)
	m.cmd.Args = append(m.cmd.Args, extra...)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		m.stop()
		if tb.Failed() {
			tb.Logf("consul-monitor output:\n%s", m.out)
		}
	})
	consultest.WaitFor(tb, 20*time.Second, "consul-monitor serving", func() error {
		resp, err := http.Get(m.url("/healthz"))
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return m
}

func (m *monitor) url(path string) string { return "http://" + m.addr + path }

func (m *monitor) stop() {
	if m.cmd.ProcessState == nil {
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
	}
}

// apiPart is one of /api/services' facts: consul, catalog or recording.
type apiPart struct {
	OK     bool    `json:"ok"`
	Error  *string `json:"error"`
	Since  *string `json:"since"`
	LastOK *string `json:"last_ok"`
}

// apiServices is /api/services as the dashboard reads it.
type apiServices struct {
	ConsulAvailable bool    `json:"consul_available"`
	LastPoll        *string `json:"last_poll"`
	Consul          apiPart `json:"consul"`
	Catalog         apiPart `json:"catalog"`
	Recording       apiPart `json:"recording"`
	Services        []struct {
		ID            string     `json:"id"`
		Name          string     `json:"name"`
		Node          string     `json:"node"`
		CurrentStatus string     `json:"current_status"`
		Checks        []apiCheck `json:"checks"`
	} `json:"services"`
	// Nodes holds each node's checks once; an instance's checks are its own.
	Nodes map[string]struct {
		Checks []apiCheck `json:"checks"`
	} `json:"nodes"`
}

type apiCheck struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	Output          string `json:"output"`
	OutputTruncated bool   `json:"output_truncated"`
	NodeCheck       bool   `json:"node_check"`
}

// status is an instance's current status, or "" if it is not listed.
func (s apiServices) status(instance string) string {
	for _, svc := range s.Services {
		if svc.ID == instance {
			return svc.CurrentStatus
		}
	}
	return ""
}

// checkOutput is the output of an instance's check, its own or its
// node's, or "" if there is none.
func (s apiServices) checkOutput(instance, check string) string {
	for _, svc := range s.Services {
		if svc.ID != instance {
			continue
		}
		for _, c := range slices.Concat(svc.Checks, s.Nodes[svc.Node].Checks) {
			if c.ID == check {
				return c.Output
			}
		}
	}
	return ""
}

func (m *monitor) services(tb testing.TB) apiServices {
	tb.Helper()
	resp, err := http.Get(m.url("/api/services"))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var body apiServices
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		tb.Fatal(err)
	}
	return body
}

// waitAPI polls /api/services until cond accepts it.
func (m *monitor) waitAPI(tb testing.TB, what string, cond func(apiServices) error) {
	tb.Helper()
	consultest.WaitFor(tb, 20*time.Second, what, func() error { return cond(m.services(tb)) })
}

func (m *monitor) statusOf(tb testing.TB, id string) string {
	tb.Helper()
	for _, s := range m.services(tb).Services {
		if s.ID == id {
			return s.CurrentStatus
		}
	}
	return ""
}

// browser is a headless Chromium tab that records what a test must check:
// console errors, uncaught exceptions, every request and any dialog.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	errors   []string
	requests []string
	dialogs  []string
}

// newBrowser starts a headless Chromium; extra adds command-line options.
func newBrowser(tb testing.TB, width, height int, extra ...chromedp.ExecAllocatorOption) *browser {
	tb.Helper()
	// Not tb.TempDir: Chromium may still be writing to its profile when the
	// testing package removes temporary directories, so this one is removed
	// after the browser has exited.
	profile, err := os.MkdirTemp("", "consul-monitor-chromium")
	if err != nil {
		tb.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(tb)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(width, height),
		// This machine has no network but loopback: keep Chromium from
		// trying to reach Google's services in the background.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelCtx()
		cancelAlloc()
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	b := &browser{ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeWarning {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.errors = append(b.errors, string(e.Type)+": "+strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, "exception: "+e.ExceptionDetails.Error())
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, e.Request.URL)
		case *page.EventJavascriptDialogOpening:
			b.dialogs = append(b.dialogs, e.Message)
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(false))
		}
	})
	if err := chromedp.Run(ctx, network.Enable(), runtime.Enable(), page.Enable()); err != nil {
		tb.Fatal(err)
	}
	return b
}

func (b *browser) run(tb testing.TB, actions ...chromedp.Action) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		tb.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in the page into out.
func (b *browser) eval(tb testing.TB, expr string, out any) {
	tb.Helper()
	b.run(tb, chromedp.Evaluate(expr, out))
}

// waitJS polls a JavaScript condition until it is true.
func (b *browser) waitJS(tb testing.TB, what, expr string) {
	tb.Helper()
	consultest.WaitFor(tb, 20*time.Second, what, func() error {
		var ok bool
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		if err := chromedp.Run(ctx, chromedp.Evaluate(expr, &ok)); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is false", expr)
		}
		return nil
	})
}

// open loads the dashboard and waits for its first render.
func (b *browser) open(tb testing.TB, m *monitor) {
	tb.Helper()
	b.run(tb, chromedp.Navigate(m.url("/")))
	b.waitJS(tb, "dashboard ready", `document.documentElement.dataset.ready === 'true'`)
}

func (b *browser) reload(tb testing.TB) {
	tb.Helper()
	b.run(tb, chromedp.Evaluate(`delete document.documentElement.dataset.ready`, nil), chromedp.Reload())
	b.waitJS(tb, "dashboard ready after reload", `document.documentElement.dataset.ready === 'true'`)
}

// setField sets a form field's value and sends the event the page listens
// for, as typing or choosing would.
func (b *browser) setField(tb testing.TB, id, value, event string) {
	tb.Helper()
	b.run(tb, chromedp.Evaluate(fmt.Sprintf(`(() => { const f = document.getElementById(%q); f.value = %q; f.dispatchEvent(new Event(%q)); })()`, id, value, event), nil))
}

func (b *browser) refreshes(tb testing.TB) int {
	tb.Helper()
	var n int
	b.eval(tb, `Number(document.documentElement.dataset.refreshes || 0)`, &n)
	return n
}

// clickRefresh presses the refresh button and waits for the refresh it starts.
func (b *browser) clickRefresh(tb testing.TB) {
	tb.Helper()
	before := b.refreshes(tb)
	b.run(tb, chromedp.Click("#refresh", chromedp.ByID))
	b.waitJS(tb, "refresh done", fmt.Sprintf(`Number(document.documentElement.dataset.refreshes) > %d && document.documentElement.dataset.ready === 'true'`, before))
}

// heapAfterGC collects garbage in the page and returns the JS heap in use.
func (b *browser) heapAfterGC(tb testing.TB) float64 {
	tb.Helper()
	var used float64
	b.run(tb, chromedp.ActionFunc(func(ctx context.Context) error {
		if err := heapprofiler.CollectGarbage().Do(ctx); err != nil {
			return err
		}
		u, _, _, _, err := runtime.GetHeapUsage().Do(ctx)
		used = u
		return err
	}))
	return used
}

func (b *browser) recorded() (errors, requests, dialogs []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...), append([]string(nil), b.requests...), append([]string(nil), b.dialogs...)
}

// seedHistory writes 24 hours of polls, five minutes apart and ending a
// minute ago, through the store's own write path with an injected clock.
// vary returns the status a check had at poll i, given its real one.
func seedHistory(tb testing.TB, agent *consultest.Agent, dbPath string, vary func(i int, c health.Check) health.Status) {
	tb.Helper()
	client, err := consul.New(agent.Config())
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := client.Snapshot(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(context.Background(), dbPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	end := time.Now().Add(-time.Minute)
	const polls = 24 * 12
	for i := range polls {
		at := end.Add(-time.Duration(polls-1-i) * 5 * time.Minute)
		poll := snap
		poll.Checks = make([]health.Check, len(snap.Checks))
		for j, c := range snap.Checks {
			c.Status = vary(i, c)
			poll.Checks[j] = c
		}
		if _, err := st.Record(context.Background(), at, poll); err != nil {
			tb.Fatal(err)
		}
	}
}
