package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// TestRebindingPageReadsNothing is DNS rebinding in a real Chromium: the
// browser resolves evil.test, a name the attacker controls, to the
// monitor's loopback address, so a page from evil.test is same-origin with
// whatever answers there. The monitor answers that name with 421 and no
// data, to the navigation and to the page's fetches; a name added with
// --web.allowed-hosts is served, and so is the listen address.
func TestRebindingPageReadsNothing(t *testing.T) {
	// No Consul is needed: what matters is what is answered, not its data.
	m := startMonitor(t, freeAddr(t), filepath.Join(t.TempDir(), "history.db"), "--web.allowed-hosts", "monitor.test")
	_, port, _ := net.SplitHostPort(m.addr)
	b := newBrowser(t, 800, 600, chromedp.Flag("host-resolver-rules", "MAP evil.test 127.0.0.1, MAP monitor.test 127.0.0.1"))

	fetchStatus := func(path string) (status int, body string) {
		t.Helper()
		var got struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		}
		b.run(t, chromedp.Evaluate(`fetch(`+jsString(path)+`, {method: 'GET'}).then(async r => ({status: r.status, body: await r.text()}))`, &got,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
		return got.Status, got.Body
	}

	b.run(t, chromedp.Navigate("http://evil.test:"+port+"/"))
	var text, origin string
	b.eval(t, `document.body.innerText`, &text)
	b.eval(t, `location.origin`, &origin)
	if origin != "http://evil.test:"+port || !strings.Contains(text, "--web.allowed-hosts") || strings.Contains(text, "Consul") {
		t.Errorf("evil.test's page: origin %s, text %q", origin, text)
	}
	for _, path := range []string{"/api/services", "/api/history", "/healthz", "/api/config", "/static/js/main.js"} {
		if status, body := fetchStatus(path); status != 421 || !strings.Contains(body, `"error"`) || strings.Contains(body, "consul") {
			t.Errorf("rebinding page fetching %s: %d %s", path, status, body)
		}
	}
	var postStatus int
	b.run(t, chromedp.Evaluate(`fetch('/api/config', {method: 'POST', headers: {'Content-Type': 'application/json'},
		body: '{"display":{"historyGranularity":60}}'}).then(r => r.status)`, &postStatus,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if postStatus != 421 {
		t.Errorf("rebinding page posting settings: %d", postStatus)
	}

	// The names the monitor is served as work in the same browser.
	for _, base := range []string{"http://monitor.test:" + port, m.url("")} {
		b.run(t, chromedp.Navigate(base+"/"))
		b.waitJS(t, base+" dashboard ready", `document.documentElement.dataset.ready === 'true'`)
		if status, body := fetchStatus("/api/config"); status != 200 || !strings.Contains(body, `"historyGranularity":15`) {
			t.Errorf("%s /api/config: %d %s (the refused POST must have changed nothing)", base, status, body)
		}
	}
	m.stop() // its output is complete, and no longer written to
	if !strings.Contains(m.out.String(), "refused a request for a host not served here") {
		t.Errorf("the refusals were not logged:\n%s", m.out)
	}
}

func jsString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + `'`
}
