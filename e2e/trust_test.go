package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/hashicorp/consul/api"

	"github.com/consul-monitor/consul-monitor/internal/consul"
	"github.com/consul-monitor/consul-monitor/internal/consultest"
	"github.com/consul-monitor/consul-monitor/internal/faultproxy"
	"github.com/consul-monitor/consul-monitor/internal/health"
	"github.com/consul-monitor/consul-monitor/internal/store"
)

// apiHistory is /api/history as the dashboard reads it.
type apiHistory struct {
	Granularity int                     `json:"granularity"`
	Start       time.Time               `json:"start"`
	Windows     int                     `json:"windows"`
	Until       time.Time               `json:"until"`
	Services    map[string][][9]float64 `json:"services"`
	Gone        map[string]struct {
		Name           string    `json:"name"`
		Node           string    `json:"node"`
		ServiceID      string    `json:"service_id"`
		DeregisteredAt time.Time `json:"deregistered_at"`
	} `json:"gone"`
	Groups map[string][][9]float64 `json:"groups"`
}

func (m *monitor) history(tb testing.TB, granularity int) apiHistory {
	tb.Helper()
	resp, err := http.Get(m.url(fmt.Sprintf("/api/history?granularity=%d", granularity)))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var body apiHistory
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		tb.Fatal(err)
	}
	return body
}

// totalMs adds up one status's milliseconds over a run list; status is 0
// for passing up to 3 for no data.
func totalMs(runs [][9]float64, status int) float64 {
	var sum float64
	for _, r := range runs {
		sum += r[0] * r[5+status]
	}
	return sum
}

// durationText is how the page writes a duration, computed here by hand
// rules so that the test does not trust the page's own formatter.
func durationText(ms int64) string {
	if ms == 0 {
		return "0 s"
	}
	var parts []string
	if h := ms / 3_600_000; h > 0 {
		parts = append(parts, fmt.Sprintf("%d h", h))
	}
	if m := ms % 3_600_000 / 60_000; m > 0 {
		parts = append(parts, fmt.Sprintf("%d min", m))
	}
	if s := ms % 60_000; s > 0 {
		parts = append(parts, strings.TrimRight(strings.TrimRight(fmt.Sprintf("%d.%03d", s/1000, s%1000), "0"), ".")+" s")
	}
	return strings.Join(parts, " ")
}

func TestDurationText(t *testing.T) {
	for ms, want := range map[int64]string{0: "0 s", 1: "0.001 s", 1500: "1.5 s", 200_000: "3 min 20 s", 3_600_000: "1 h", 3_661_250: "1 h 1 min 1.25 s"} {
		if got := durationText(ms); got != want {
			t.Errorf("durationText(%d) = %q, want %q", ms, got, want)
		}
	}
}

// shown reports whether the element with id is displayed.
func (b *browser) shown(tb testing.TB, id string) bool {
	tb.Helper()
	var ok bool
	b.eval(tb, fmt.Sprintf(`getComputedStyle(document.getElementById(%q)).display !== 'none'`, id), &ok)
	return ok
}

func (b *browser) text(tb testing.TB, id string) string {
	tb.Helper()
	var s string
	b.eval(tb, fmt.Sprintf(`document.getElementById(%q).textContent.replace(/\s+/g, ' ').trim()`, id), &s)
	return s
}

// TestRecordingBanner makes the database refuse writes for real, with an
// exclusive SQLite lock held from this process on the monitor's file: the
// page must keep showing Consul's live state and say since when history is
// not recorded and why; when the lock goes, the banner goes.
func TestRecordingBanner(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	agent := consultest.Start(t)
	c := agent.Client()
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "rec", Name: "rec", Port: 7000,
		Check: &api.AgentServiceCheck{CheckID: "rec-ttl", TTL: "30m", Status: api.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "history.db")
	m := startMonitor(t, agent.Addr(), dbPath)
	recID := consultest.NodeName + "/rec"
	m.waitAPI(t, "rec passing", func(s apiServices) error {
		if got := s.status(recID); got != "passing" {
			return fmt.Errorf("rec is %q", got)
		}
		return nil
	})
	b.open(t, m)
	if b.shown(t, "recording-banner") {
		t.Fatal("recording banner shown while the database takes writes")
	}

	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	lock, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			_, _ = lock.ExecContext(ctx, "ROLLBACK")
		}
	}()
	if err := c.Agent().UpdateTTL("rec-ttl", "disk on fire", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	var failing apiServices
	// The monitor's write waits out its busy timeout (10 s) before failing.
	consultest.WaitFor(t, 45*time.Second, "recording failing and rec critical in the API", func() error {
		failing = m.services(t)
		if failing.Recording.OK || failing.Recording.Error == nil || failing.Recording.Since == nil {
			return fmt.Errorf("recording %+v", failing.Recording)
		}
		if got := failing.status(recID); got != "critical" {
			return fmt.Errorf("rec is %q", got)
		}
		return nil
	})
	b.clickRefresh(t)
	if !b.shown(t, "recording-banner") {
		t.Fatal("no recording banner while the database refuses writes")
	}
	headline, reason := b.text(t, "recording-headline"), b.text(t, "recording-error")
	var since string
	b.eval(t, fmt.Sprintf(`new Date(%q).toLocaleString()`, *failing.Recording.Since), &since)
	if headline != "History is not being recorded since "+since+":" || reason != strings.Join(strings.Fields(*failing.Recording.Error), " ") {
		t.Errorf("recording banner %q / %q; API since %s, error %q", headline, reason, *failing.Recording.Since, *failing.Recording.Error)
	}
	var role, status, connection string
	b.eval(t, `document.getElementById('recording-banner').getAttribute('role')`, &role)
	b.eval(t, `document.querySelector('tbody[data-service="rec"] .status-text').textContent`, &status)
	b.eval(t, `document.getElementById('connection-state').textContent`, &connection)
	if role != "alert" || status != "critical" || connection != "Consul connected" || b.shown(t, "consul-banner") {
		t.Errorf("with the database locked: role %q, rec shows %q (live state is critical), connection %q, consul banner %v", role, status, connection, b.shown(t, "consul-banner"))
	}

	t.Run("a long error wraps inside the banner at phone width", func(t *testing.T) {
		b.run(t, emulation.SetDeviceMetricsOverride(390, 844, 2, true))
		defer b.run(t, emulation.ClearDeviceMetricsOverride())
		// The server bounds errors to 512 characters; one word of that
		// length is the worst case for layout.
		b.run(t, chromedp.Evaluate(`(() => {
			const d = Alpine.$data(document.querySelector('.app'));
			d.recording = Object.assign({}, d.recording, {error: 'x'.repeat(512)});
		})()`, nil))
		b.waitJS(t, "long error shown", `document.getElementById('recording-error').textContent.length === 512`)
		var layout struct{ Overflow, BannerHeight, BannerWidth float64 }
		b.eval(t, `(() => { const r = document.getElementById('recording-banner').getBoundingClientRect();
			return {Overflow: document.documentElement.scrollWidth - window.innerWidth, BannerHeight: r.height, BannerWidth: r.width}; })()`, &layout)
		if layout.Overflow > 0 || layout.BannerWidth > 390 || layout.BannerHeight > 300 {
			t.Errorf("a 512-character error: page %v px too wide, banner %vx%v px", layout.Overflow, layout.BannerWidth, layout.BannerHeight)
		}
	})

	if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	locked = false
	m.waitAPI(t, "recording again", func(s apiServices) error {
		if !s.Recording.OK {
			return fmt.Errorf("recording %+v", s.Recording)
		}
		return nil
	})
	b.clickRefresh(t)
	if b.shown(t, "recording-banner") {
		t.Errorf("recording banner still shown after writes resumed: %q", b.text(t, "recording-banner"))
	}
	if errs, _, _ := b.recorded(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// TestGoneInstanceKeepsItsHistory is a rolling deploy: api-a is critical,
// then replaced by api-b. The service's bar keeps api-a's critical time,
// and the expanded row lists api-a as gone, with its own bar.
func TestGoneInstanceKeepsItsHistory(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	agent := consultest.Start(t)
	c := agent.Client()
	consultest.RegisterExternal(t, c, "node-a", "10.0.0.1",
		&api.AgentService{ID: "api-a", Service: "api", Port: 9000},
		&api.HealthCheck{Node: "node-a", CheckID: "api-a-http", Name: "http", ServiceID: "api-a", Status: api.HealthCritical, Output: "connection refused"})
	// A whole service that is removed: its row stays for the day, as gone.
	consultest.RegisterExternal(t, c, "node-c", "10.0.0.3",
		&api.AgentService{ID: "old-1", Service: "old", Port: 9000},
		&api.HealthCheck{Node: "node-c", CheckID: "old-1-http", Name: "http", ServiceID: "old-1", Status: api.HealthWarning, Output: "slow"})
	m := startMonitor(t, agent.Addr(), filepath.Join(t.TempDir(), "history.db"))
	// Wait until api-a's critical time is certified, so that there is
	// something for the group to keep.
	consultest.WaitFor(t, 20*time.Second, "api-a's critical time recorded", func() error {
		h := m.history(t, 15)
		if ms := totalMs(h.Services["node-a/api-a"], 2); ms < 500 {
			return fmt.Errorf("api-a critical for %v ms", ms)
		}
		if ms := totalMs(h.Services["node-c/old-1"], 1); ms < 500 {
			return fmt.Errorf("old-1 warning for %v ms", ms)
		}
		return nil
	})
	consultest.RegisterExternal(t, c, "node-b", "10.0.0.2",
		&api.AgentService{ID: "api-b", Service: "api", Port: 9000},
		&api.HealthCheck{Node: "node-b", CheckID: "api-b-http", Name: "http", ServiceID: "api-b", Status: api.HealthPassing, Output: "200 OK"})
	for _, node := range []string{"node-a", "node-c"} {
		if _, err := c.Catalog().Deregister(&api.CatalogDeregistration{Node: node}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var h apiHistory
	// History runs up to the last certified moment: once that is past
	// api-a's deregistration, its critical time no longer changes.
	consultest.WaitFor(t, 20*time.Second, "api-a gone and api-b in the history", func() error {
		h = m.history(t, 15)
		gone, ok := h.Gone["node-a/api-a"]
		if !ok {
			return fmt.Errorf("gone: %v", h.Gone)
		}
		if h.Until.Before(gone.DeregisteredAt) {
			return fmt.Errorf("history until %v, api-a left at %v", h.Until, gone.DeregisteredAt)
		}
		if _, ok := h.Gone["node-c/old-1"]; !ok {
			return fmt.Errorf("old-1 not gone: %v", h.Gone)
		}
		if _, ok := h.Services["node-b/api-b"]; !ok {
			return fmt.Errorf("no api-b")
		}
		return nil
	})
	groupCritical := totalMs(h.Groups["api"], 2)
	if groupCritical < 500 {
		t.Fatalf("the api group keeps %v ms of critical after api-a left", groupCritical)
	}
	b.open(t, m)
	b.run(t, chromedp.Click(`tbody[data-service="api"] .expander`, chromedp.ByQuery))
	b.waitJS(t, "api expanded with its gone instance", `document.querySelectorAll('tbody[data-service="api"] tr.instance-row').length === 2`)
	var rows []struct{ ID, Gone, Status string }
	b.eval(t, `[...document.querySelectorAll('tbody[data-service="api"] tr.instance-row')].map(r =>
		({ID: r.dataset.instance, Gone: r.dataset.gone || '', Status: r.querySelector('.status-text').textContent}))`, &rows)
	if len(rows) != 2 || rows[0].ID != "node-b/api-b" || rows[0].Gone != "" || rows[0].Status != "passing" ||
		rows[1].ID != "node-a/api-a" || rows[1].Gone != "true" || rows[1].Status != "gone" {
		t.Errorf("api's instances: %+v", rows)
	}
	var label string
	b.eval(t, `document.querySelector('tbody[data-service="api"] .service-row .instances').textContent`, &label)
	if !strings.Contains(label, "1 gone") {
		t.Errorf("api's row says %q", label)
	}
	b.waitJS(t, "charts of api, api-b and api-a", `['group:api', 'instance:node-b/api-b', 'instance:node-a/api-a'].every(k => Chart.getChart(document.querySelector('canvas[data-chart="' + k + '"]')))`)
	// What each bar carries in critical: exact ms in the series behind it,
	// and a drawn bar wherever it is not zero.
	var drawn map[string]struct {
		CriticalMs  float64
		ZeroDrawn   int
		Tooltip     string
		WindowCount int
	}
	b.eval(t, `Object.fromEntries(['group:api', 'instance:node-a/api-a', 'instance:node-b/api-b'].map(k => {
		const ch = Chart.getChart(document.querySelector('canvas[data-chart="' + k + '"]'));
		const ms = ch.$series.ms.critical;
		let zeroDrawn = 0, tooltip = '';
		ms.forEach((v, i) => {
			if (v > 0 && !(ch.data.datasets[2].data[i] > 0)) zeroDrawn++;
			if (v > 0) tooltip = ch.options.plugins.tooltip.callbacks.label({datasetIndex: 2, dataIndex: i});
		});
		return [k, {CriticalMs: ms.reduce((a, b) => a + b, 0), ZeroDrawn: zeroDrawn, Tooltip: tooltip, WindowCount: ms.length}];
	}))`, &drawn)
	if g := drawn["group:api"]; g.CriticalMs != groupCritical || g.ZeroDrawn != 0 || !strings.HasPrefix(g.Tooltip, "critical ") {
		t.Errorf("the api group's bar: %+v, API says %v ms critical", g, groupCritical)
	}
	if a := drawn["instance:node-a/api-a"]; a.CriticalMs != totalMs(h.Services["node-a/api-a"], 2) || a.CriticalMs < 500 || a.ZeroDrawn != 0 {
		t.Errorf("api-a's own bar: %+v", a)
	}
	if bb := drawn["instance:node-b/api-b"]; bb.CriticalMs != 0 {
		t.Errorf("api-b's bar has critical time: %+v", bb)
	}

	var old struct {
		Status, Count string
		Rows          []string
		Warning       float64
		Last          bool
	}
	b.run(t, chromedp.Click(`tbody[data-service="old"] .expander`, chromedp.ByQuery))
	b.waitJS(t, "old expanded", `document.querySelectorAll('tbody[data-service="old"] tr.gone-row').length === 1`)
	b.waitJS(t, "old's chart", `Boolean(Chart.getChart(document.querySelector('canvas[data-chart="group:old"]')))`)
	b.eval(t, `(() => { const g = document.querySelector('tbody[data-service="old"]');
		const ch = Chart.getChart(g.querySelector('canvas[data-chart="group:old"]'));
		return {Status: g.querySelector('.service-row .status-text').textContent, Count: g.querySelector('.instances').textContent,
			Rows: [...g.querySelectorAll('tr.instance-row')].map(r => r.dataset.instance + ' ' + r.querySelector('.status-text').textContent),
			Warning: ch.$series.ms.warning.reduce((a, b) => a + b, 0),
			Last: document.querySelector('#services tbody.group:last-of-type') === g}; })()`, &old)
	if old.Status != "gone" || !strings.Contains(old.Count, "1 gone") || len(old.Rows) != 1 || old.Rows[0] != "node-c/old-1 gone" ||
		old.Warning != totalMs(h.Groups["old"], 1) || old.Warning < 500 || !old.Last {
		t.Errorf("the removed service old: %+v; API group warning %v ms", old, totalMs(h.Groups["old"], 1))
	}
	if errs, _, _ := b.recorded(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// TestFailureSliver seeds exactly 1.5 s of critical inside an otherwise
// passing hour: 0.04 % of the window, far below a pixel. The bar must still
// show it, and hovering the bar must give its exact length.
func TestFailureSliver(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	agent := consultest.Start(t)
	c := agent.Client()
	consultest.RegisterExternal(t, c, "node-blip", "10.0.0.9",
		&api.AgentService{ID: "blip-1", Service: "blip", Port: 80},
		&api.HealthCheck{Node: "node-blip", CheckID: "blip-http", Name: "http", ServiceID: "blip-1", Status: api.HealthPassing})
	dbPath := filepath.Join(t.TempDir(), "history.db")

	client, err := consul.New(agent.Config())
	if err != nil {
		t.Fatal(err)
	}
	var snap health.Snapshot
	consultest.WaitFor(t, 10*time.Second, "blip in the catalog", func() error {
		snap, err = client.Snapshot(context.Background())
		if err != nil {
			return err
		}
		for _, ch := range snap.Checks {
			if ch.CheckID == "blip-http" {
				return nil
			}
		}
		return fmt.Errorf("no blip-http check yet")
	})
	with := func(status health.Status) health.Snapshot {
		s := snap
		s.Checks = make([]health.Check, len(snap.Checks))
		for i, ch := range snap.Checks {
			if ch.CheckID == "blip-http" {
				ch.Status = status
			}
			s.Checks[i] = ch
		}
		return s
	}
	st, err := store.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	// In the hour that began three hours ago (UTC): observed from :00 to
	// :40, critical from :20:00 to :20:01.5.
	hour := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)
	fail := hour.Add(20 * time.Minute)
	for _, p := range []struct {
		at     time.Time
		status health.Status
	}{
		{hour, health.Passing},
		{fail, health.Passing},
		{fail, health.Critical},
		{fail.Add(1500 * time.Millisecond), health.Passing},
		{hour.Add(40 * time.Minute), health.Passing},
	} {
		if _, err := st.Record(context.Background(), p.at, with(p.status)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	m := startMonitor(t, agent.Addr(), dbPath)
	const id = "node-blip/blip-1"
	m.waitAPI(t, "blip listed", func(s apiServices) error {
		if s.status(id) != "passing" {
			return fmt.Errorf("blip is %q", s.status(id))
		}
		return nil
	})
	h := m.history(t, 60)
	if ms := totalMs(h.Services[id], 2); ms != 1500 {
		t.Fatalf("the API has %v ms of critical for blip, want 1500", ms)
	}
	b.open(t, m)
	b.setField(t, "granularity", "60", "change")
	b.waitJS(t, "hourly bars", `(() => { const ch = Chart.getChart(document.querySelector('canvas[data-chart="group:blip"]')); return ch && ch.data.labels.length <= 25; })()`)

	var bar struct {
		Index            int
		Critical, Height float64
		X, Y             float64
		Windows          int
	}
	b.eval(t, `(() => {
		const canvas = document.querySelector('canvas[data-chart="group:blip"]');
		canvas.scrollIntoView({block: 'center'});
		const ch = Chart.getChart(canvas);
		const i = ch.$series.ms.critical.findIndex(v => v > 0);
		const meta = ch.getDatasetMeta(2).data[i];
		const r = canvas.getBoundingClientRect();
		return {Index: i, Critical: ch.data.datasets[2].data[i], Height: meta ? Math.abs(meta.height) : 0,
			X: r.left + meta.x, Y: r.top + r.height / 2, Windows: ch.data.labels.length};
	})()`, &bar)
	wantIndex := int(hour.Sub(h.Start) / time.Hour)
	if bar.Index != wantIndex {
		t.Fatalf("critical found in window %d of %d, want %d", bar.Index, bar.Windows, wantIndex)
	}
	if bar.Height < 2 {
		t.Errorf("1.5 s of critical is drawn %v px high (value %v), want a sliver of at least 2 px", bar.Height, bar.Critical)
	}
	// Hover the bar as a person would and read the tooltip Chart.js shows.
	b.run(t, chromedp.MouseEvent(input.MouseMoved, math.Round(bar.X), math.Round(bar.Y)))
	b.waitJS(t, "tooltip shown", `(() => { const t = Chart.getChart(document.querySelector('canvas[data-chart="group:blip"]')).tooltip; return t.opacity > 0 && t.body && t.body.length > 0; })()`)
	var tooltip struct {
		Title string
		Lines []string
	}
	b.eval(t, `(() => { const t = Chart.getChart(document.querySelector('canvas[data-chart="group:blip"]')).tooltip;
		return {Title: t.title.join(' '), Lines: t.body.flatMap(b => b.lines)}; })()`, &tooltip)
	want := "critical " + durationText(1500) + " ("
	found := false
	for _, l := range tooltip.Lines {
		if strings.HasPrefix(l, want) {
			found = true
		}
	}
	if !found || !strings.Contains(tooltip.Title, " – ") {
		t.Errorf("tooltip %+v, want a line starting %q", tooltip, want)
	}
	if errs, _, _ := b.recorded(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// TestCatalogBanner puts a fault proxy between the monitor and Consul that
// answers 403 on the catalog index while health reads pass: the page must
// say that the instance list is not read, with Consul's message, instead of
// "no services yet"; and, once it was read, since when it is not refreshed.
func TestCatalogBanner(t *testing.T) {
	const catalogEndpoint = "/v1/catalog/services"
	b := newBrowser(t, 1280, 900)
	agent := consultest.Start(t)
	c := agent.Client()
	consultest.RegisterExternal(t, c, "node-1", "10.0.0.1",
		&api.AgentService{ID: "web-1", Service: "web", Port: 80},
		&api.HealthCheck{Node: "node-1", CheckID: "web-1-http", Name: "http", ServiceID: "web-1", Status: api.HealthPassing})
	proxy, err := faultproxy.New(agent.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.Set(catalogEndpoint, faultproxy.StatusFault(http.StatusForbidden))
	m := startMonitor(t, proxy.Addr(), filepath.Join(t.TempDir(), "history.db"))

	var s apiServices
	m.waitAPI(t, "catalog failing from the start", func(got apiServices) error {
		s = got
		if got.Catalog.OK || got.Catalog.Error == nil || !strings.Contains(*got.Catalog.Error, "403") {
			return fmt.Errorf("catalog %+v", got.Catalog)
		}
		return nil
	})
	b.open(t, m)
	if !b.shown(t, "catalog-banner") || b.shown(t, "empty-state") {
		t.Errorf("catalog never read: banner shown %v, empty state shown %v", b.shown(t, "catalog-banner"), b.shown(t, "empty-state"))
	}
	if got := b.text(t, "catalog-headline"); got != "The instance list has not been read from Consul yet:" {
		t.Errorf("headline %q", got)
	}
	if got := b.text(t, "catalog-error"); got != strings.Join(strings.Fields(*s.Catalog.Error), " ") || !strings.Contains(got, "403") {
		t.Errorf("banner reason %q, API error %q", got, *s.Catalog.Error)
	}

	proxy.Clear(catalogEndpoint)
	m.waitAPI(t, "catalog read", func(got apiServices) error {
		if !got.Catalog.OK || got.status("node-1/web-1") != "passing" {
			return fmt.Errorf("catalog %+v, web-1 %q", got.Catalog, got.status("node-1/web-1"))
		}
		return nil
	})
	b.clickRefresh(t)
	if b.shown(t, "catalog-banner") {
		t.Errorf("catalog banner still shown once the catalog was read: %q", b.text(t, "catalog-banner"))
	}

	proxy.Set(catalogEndpoint, faultproxy.StatusFault(http.StatusForbidden))
	// A registration moves the catalog's index, so the blocking query in
	// flight returns and the next one meets the fault.
	consultest.RegisterExternal(t, c, "node-2", "10.0.0.2",
		&api.AgentService{ID: "web-2", Service: "web", Port: 80},
		&api.HealthCheck{Node: "node-2", CheckID: "web-2-http", Name: "http", ServiceID: "web-2", Status: api.HealthPassing})
	consultest.WaitFor(t, 40*time.Second, "catalog failing after a success", func() error {
		s = m.services(t)
		if s.Catalog.OK || s.Catalog.Error == nil || !strings.Contains(*s.Catalog.Error, "403") || s.Catalog.LastOK == nil {
			return fmt.Errorf("catalog %+v", s.Catalog)
		}
		return nil
	})
	b.clickRefresh(t)
	var lastOK string
	b.eval(t, fmt.Sprintf(`new Date(%q).toLocaleString()`, *s.Catalog.LastOK), &lastOK)
	if got, want := b.text(t, "catalog-headline"), "Instance list not refreshed since "+lastOK+":"; got != want || !b.shown(t, "catalog-banner") {
		t.Errorf("headline %q (shown %v), want %q", got, b.shown(t, "catalog-banner"), want)
	}
	if got := b.text(t, "catalog-error"); got != strings.Join(strings.Fields(*s.Catalog.Error), " ") {
		t.Errorf("banner reason %q, API error %q", got, *s.Catalog.Error)
	}
	var rows, connection string
	b.eval(t, `String(document.querySelectorAll('#services tbody.group').length)`, &rows)
	b.eval(t, `document.getElementById('connection-state').textContent`, &connection)
	if rows == "0" || connection != "Consul connected" || b.shown(t, "consul-banner") {
		t.Errorf("with only the catalog failing: %s rows, connection %q, consul banner %v", rows, connection, b.shown(t, "consul-banner"))
	}
	if errs, _, _ := b.recorded(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}
