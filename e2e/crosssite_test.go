package e2e

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// TestCrossSitePageCannotChangeSettings is the attack POST /api/config
// refuses, in a real Chromium: a page on another site, visited by a wall
// display's browser, submits a form whose text/plain body is valid JSON,
// and sends a no-cors fetch. The settings must stay as they were. The same
// browser changing them from the dashboard's own origin is the control
// that shows the cookie would have kept a change.
func TestCrossSitePageCannotChangeSettings(t *testing.T) {
	b := newBrowser(t, 800, 600)
	// No Consul is needed to serve settings; nothing listens at this address.
	m := startMonitor(t, freeAddr(t), filepath.Join(t.TempDir(), "history.db"))
	target := m.url("/api/config")

	// name + "=" + value is the text/plain body: {..."granularityOptions":["="]}
	// is a valid patch, as the option lists are accepted and ignored.
	name := `{"autoRefresh":{"enabled":true,"interval":600},"display":{"historyGranularity":60,"granularityOptions":["`
	value := `"]}}`
	attackPage := fmt.Sprintf(`<!doctype html><title>cat pictures</title>
<form id="f" method="POST" action="%s" enctype="text/plain"><input name="%s" value="%s"></form>
<script>
fetch(%q, {method: 'POST', mode: 'no-cors', credentials: 'include', headers: {'Content-Type': 'text/plain'},
	body: '{"autoRefresh":{"enabled":true,"interval":30}}'})
	.catch(() => {})
	.finally(() => document.getElementById('f').submit());
</script>`, html.EscapeString(target), html.EscapeString(name), html.EscapeString(value), target)
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, attackPage)
	}))
	t.Cleanup(attacker.Close)
	// localhost is another site than 127.0.0.1, where the monitor listens.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(attacker.URL, "http://"))
	b.run(t, chromedp.Navigate("http://localhost:"+port+"/"))
	// The form's submission navigates to the monitor's answer.
	b.waitJS(t, "the form's answer", fmt.Sprintf(`location.href === %q`, target))
	var answer string
	b.eval(t, `document.body.innerText`, &answer)
	if !strings.Contains(answer, "cross-origin request refused") {
		t.Errorf("the cross-site form got %q", answer)
	}

	settings := func() string {
		t.Helper()
		b.run(t, chromedp.Navigate(target))
		var body string
		b.eval(t, `document.body.innerText`, &body)
		return body
	}
	if got := settings(); !strings.Contains(got, `"autoRefresh":{"enabled":false,"interval":60`) || !strings.Contains(got, `"historyGranularity":15`) {
		t.Errorf("after the cross-site page, settings are %s", got)
	}

	// The control: the dashboard's own origin can change them, and the
	// browser keeps the change.
	b.run(t, chromedp.Navigate(m.url("/")))
	var status int
	b.run(t, chromedp.Evaluate(`fetch('/api/config', {method: 'POST', headers: {'Content-Type': 'application/json'},
		body: '{"autoRefresh":{"enabled":true,"interval":600}}'}).then(r => r.status)`, &status, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	if status != 200 {
		t.Fatalf("same-origin change: %d", status)
	}
	if got := settings(); !strings.Contains(got, `"autoRefresh":{"enabled":true,"interval":600`) {
		t.Errorf("after a same-origin change, settings are %s", got)
	}
}
