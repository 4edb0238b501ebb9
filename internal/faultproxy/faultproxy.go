// Package faultproxy is a test-support HTTP reverse proxy on loopback that
// stands between consul-monitor and a real Consul agent and breaks chosen
// endpoints on demand: refused connections, a silent partition, 403, 429 or
// 500 answers with Consul's kind of body, truncated bodies, delays and an
// X-Consul-Index older than the real one.
//
// Without a fault every request, blocking queries included, passes through
// unchanged and is streamed, and a client that gives up cancels the request
// to Consul. The proxy keeps a log of what it answered, so a test can
// compare what the monitor recorded with what actually reached it.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is a sort of fault.
type Kind string

// The faults a proxy can inject.
const (
	// Refuse resets the connection as soon as the request has been read,
	// as a firewall rejecting the endpoint would.
	Refuse Kind = "refuse"
	// Hang holds the request without an answer, as a network partition
	// does, until the client gives up or the fault is cleared. On clearing
	// the partition heals: the held request goes on to Consul late, as TCP
	// retransmission would deliver it, and its answer comes back. (Dropping
	// it instead would change nothing for a Go client on a kept-alive
	// connection: net/http resends an idempotent request whose reused
	// connection closed before any answer, without telling the caller.)
	Hang Kind = "hang"
	// Status answers with Fault.Status and Fault.Body instead of asking Consul.
	Status Kind = "status"
	// Truncate passes Consul's answer on but cuts the body after
	// Fault.Keep bytes and drops the connection.
	Truncate Kind = "truncate"
	// Delay waits Fault.Delay before passing the request on.
	Delay Kind = "delay"
	// RefuseAllKind marks in the log the moment RefuseAll closed the port.
	RefuseAllKind Kind = "refuse-all"
	// OldIndex passes Consul's answer on with X-Consul-Index rewritten to
	// Fault.Index, as a lagging stale server or a restored snapshot would.
	OldIndex Kind = "old-index"
)

// Fault is what happens to the requests of one endpoint.
type Fault struct {
	Kind   Kind
	Status int           // Status: the HTTP status to answer with
	Body   string        // Status: the body; Consul's usual text for Status when empty
	Keep   int           // Truncate: bytes of the body passed on
	Delay  time.Duration // Delay: how long each request waits
	Index  uint64        // OldIndex: the X-Consul-Index served
	// Times makes the fault apply to that many requests only, after which
	// the endpoint works again; 0 keeps it until it is cleared.
	Times int
}

// RefuseFault resets connections to the endpoint.
func RefuseFault() Fault { return Fault{Kind: Refuse} }

// HangFault holds requests to the endpoint without answering.
func HangFault() Fault { return Fault{Kind: Hang} }

// StatusFault answers with status and Consul's usual body for it.
func StatusFault(status int) Fault { return Fault{Kind: Status, Status: status} }

// ErrorPageFault answers with status and an HTML error page of size bytes,
// as a proxy in front of Consul does: an upstream text far longer than any
// screen or log line should carry.
func ErrorPageFault(status, size int) Fault {
	return Fault{Kind: Status, Status: status, Body: ErrorPage(status, size)}
}

// ErrorPage is a proxy's HTML error page for status, padded to size bytes.
func ErrorPage(status, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html><html><head><title>%d %s</title></head><body><h1>%[1]d %[2]s</h1>\n", status, http.StatusText(status))
	for i := 0; b.Len() < size-len("</body></html>\n"); i++ {
		line := fmt.Sprintf("<p>upstream proxy: line %d of the error page</p>\n", i)
		if b.Len()+len(line) > size-len("</body></html>\n") {
			line = strings.Repeat(" ", size-len("</body></html>\n")-b.Len())
		}
		b.WriteString(line)
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// TruncateFault cuts answers after keep bytes.
func TruncateFault(keep int) Fault { return Fault{Kind: Truncate, Keep: keep} }

// DelayFault makes every request wait d before it reaches Consul.
func DelayFault(d time.Duration) Fault { return Fault{Kind: Delay, Delay: d} }

// OldIndexFault serves index as X-Consul-Index.
func OldIndexFault(index uint64) Fault { return Fault{Kind: OldIndex, Index: index} }

// ConsulBody is the plain-text body Consul sends with an error status.
func ConsulBody(status int) string {
	switch status {
	case http.StatusForbidden:
		return "ACL not found"
	case http.StatusTooManyRequests:
		return "rate limit exceeded, try again later or against a different server"
	case http.StatusInternalServerError:
		return "rpc error making call: No cluster leader"
	case http.StatusServiceUnavailable:
		return "rpc error making call: Raft leadership lost"
	}
	return http.StatusText(status)
}

// AllPaths is the Path of a log entry that concerns every endpoint.
const AllPaths = "*"

// Event is one request the proxy has finished with.
type Event struct {
	Path string
	// Index is the request's index parameter: 0 for a read that does not block.
	Index uint64
	// Fault is the fault applied, or "" when the request passed through.
	Fault Kind
	// Status is the HTTP status the client got; 0 when it got none.
	Status int
	// OK is true when a 2xx answer reached the client whole.
	OK bool
	// ConsulIndex is the X-Consul-Index the client got.
	ConsulIndex uint64
	// Start is when the request arrived, End when the proxy was done with it.
	Start, End time.Time
}

// Proxy is a fault-injecting reverse proxy on a loopback address.
type Proxy struct {
	target *url.URL
	rp     *httputil.ReverseProxy
	srv    *http.Server

	mu        sync.Mutex
	addr      string
	listener  net.Listener
	refuseAll bool
	faults    map[string]*activeFault
	conns     map[net.Conn]struct{}
	events    []Event
	holding   int
	served    sync.WaitGroup
}

type activeFault struct {
	Fault
	left    int
	cleared chan struct{}
}

// New starts a proxy in front of the Consul agent at target (host:port).
func New(target string) (*Proxy, error) {
	u, err := url.Parse("http://" + target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		target:   u,
		addr:     l.Addr().String(),
		listener: l,
		faults:   map[string]*activeFault{},
		conns:    map[net.Conn]struct{}{},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = u.Host
		},
		// Loopback only, whatever the environment's proxy settings say.
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
		// A blocking query's answer goes on as soon as Consul sends it.
		FlushInterval: -1,
		ErrorLog:      nil,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "faultproxy: "+err.Error())
		},
	}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serve),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         p.connState,
	}
	p.startServing(l)
	return p, nil
}

func (p *Proxy) startServing(l net.Listener) {
	p.served.Go(func() { _ = p.srv.Serve(l) })
}

// Addr is the proxy's address, host:port, to give the monitor as Consul's.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Close stops the proxy and drops every connection.
func (p *Proxy) Close() error {
	p.ClearAll()
	err := p.srv.Close()
	p.served.Wait()
	return err
}

// Set makes requests whose path starts with prefix meet f, replacing any
// fault set on that prefix. Where prefixes overlap the longest one wins.
func (p *Proxy) Set(prefix string, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.faults[prefix]; old != nil {
		close(old.cleared)
	}
	p.faults[prefix] = &activeFault{Fault: f, left: f.Times, cleared: make(chan struct{})}
}

// Clear lets requests under prefix through again; requests held by a Hang
// fault there go on to Consul.
func (p *Proxy) Clear(prefix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.faults[prefix]; f != nil {
		close(f.cleared)
		delete(p.faults, prefix)
	}
}

// ClearAll clears every fault, and accepts connections again after RefuseAll.
func (p *Proxy) ClearAll() {
	p.mu.Lock()
	for prefix, f := range p.faults {
		close(f.cleared)
		delete(p.faults, prefix)
	}
	p.mu.Unlock()
	_ = p.AcceptAll()
}

// RefuseAll closes the listening socket and every open connection, so
// that new connections are refused, as when Consul's port is closed.
func (p *Proxy) RefuseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuseAll {
		return
	}
	p.refuseAll = true
	// Refused connections never reach the handler: this event marks in
	// the log that nothing answered from here on.
	now := time.Now()
	p.events = append(p.events, Event{Path: AllPaths, Fault: RefuseAllKind, Start: now, End: now})
	_ = p.listener.Close()
	for c := range p.conns {
		_ = c.Close()
	}
}

// AcceptAll listens again on the same address after RefuseAll.
func (p *Proxy) AcceptAll() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.refuseAll {
		return nil
	}
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
	}
	p.refuseAll = false
	p.listener = l
	p.startServing(l)
	return nil
}

// Events returns the requests finished so far, in the order they finished.
func (p *Proxy) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Holding is the number of requests a Hang fault holds now.
func (p *Proxy) Holding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holding
}

// EventsFor returns the finished requests whose path starts with prefix,
// and the entries that concern every endpoint.
func (p *Proxy) EventsFor(prefix string) []Event {
	var out []Event
	for _, e := range p.Events() {
		if strings.HasPrefix(e.Path, prefix) || e.Path == AllPaths {
			out = append(out, e)
		}
	}
	return out
}

func (p *Proxy) connState(c net.Conn, state http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch state {
	case http.StateNew:
		if p.refuseAll {
			_ = c.Close()
			return
		}
		p.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(p.conns, c)
	}
}

// take returns the fault for path, counting one use of it.
func (p *Proxy) take(path string) *activeFault {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best string
	var found *activeFault
	for prefix, f := range p.faults {
		if strings.HasPrefix(path, prefix) && (found == nil || len(prefix) > len(best)) {
			best, found = prefix, f
		}
	}
	if found != nil && found.Times > 0 {
		found.left--
		if found.left == 0 {
			delete(p.faults, best)
			// Not closed: a request it holds keeps its fault to the end.
		}
	}
	return found
}

func (p *Proxy) record(e Event) {
	e.End = time.Now()
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	ev := Event{Path: r.URL.Path, Start: time.Now()}
	ev.Index, _ = strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	f := p.take(r.URL.Path)
	if f == nil {
		p.pass(w, r, ev, nil)
		return
	}
	ev.Fault = f.Kind
	switch f.Kind {
	case Refuse:
		p.record(ev)
		reset(w)
	case Hang:
		p.mu.Lock()
		p.holding++
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.holding--
			p.mu.Unlock()
		}()
		select {
		case <-r.Context().Done():
			p.record(ev)
			return
		case <-f.cleared:
		}
		p.pass(w, r, ev, nil)
	case Status:
		body := f.Body
		if body == "" {
			body = ConsulBody(f.Status)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if f.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, body)
		ev.Status = f.Status
		p.record(ev)
	case Delay:
		t := time.NewTimer(f.Delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			p.record(ev)
			return
		case <-t.C:
		}
		p.pass(w, r, ev, nil)
	case Truncate, OldIndex:
		p.pass(w, r, ev, f)
	default:
		p.pass(w, r, ev, nil)
	}
}

// pass sends the request to Consul, applying f's changes to the answer.
func (p *Proxy) pass(w http.ResponseWriter, r *http.Request, ev Event, f *activeFault) {
	rec := &recorder{ResponseWriter: w}
	rp := p.rp
	if f != nil {
		copied := *p.rp
		copied.ModifyResponse = func(resp *http.Response) error {
			switch f.Kind {
			case OldIndex:
				if resp.Header.Get("X-Consul-Index") != "" {
					resp.Header.Set("X-Consul-Index", strconv.FormatUint(f.Index, 10))
				}
			case Truncate:
				resp.Body = &truncated{ReadCloser: resp.Body, left: f.Keep}
			}
			return nil
		}
		rp = &copied
	}
	defer func() {
		ev.Status = rec.status
		ev.ConsulIndex, _ = strconv.ParseUint(rec.Header().Get("X-Consul-Index"), 10, 64)
		v := recover()
		// Without a panic, ReverseProxy copied the whole answer to the
		// client; a context cancelled by then only means the client has
		// closed the connection since.
		ev.OK = v == nil && rec.status >= 200 && rec.status < 300
		p.record(ev)
		if v != nil {
			panic(v)
		}
	}()
	rp.ServeHTTP(rec, r)
}

// reset drops the client's connection with a TCP reset.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// recorder notes the status sent to the client.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush keeps blocking answers streaming through the recorder.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// errTruncated ends a truncated body; ReverseProxy then aborts the
// connection, so the client sees a body shorter than announced.
var errTruncated = errors.New("faultproxy: body truncated")

type truncated struct {
	io.ReadCloser
	left int
}

func (t *truncated) Read(b []byte) (int, error) {
	if t.left <= 0 {
		return 0, errTruncated
	}
	if len(b) > t.left {
		b = b[:t.left]
	}
	n, err := t.ReadCloser.Read(b)
	t.left -= n
	return n, err
}

// Period is a span of time, from Start to End.
type Period struct{ Start, End time.Time }

// Certified returns the periods that the successful answers in events
// vouch for, by the monitor's rule: an answer that reached the client whole
// certifies the time from the previous answer up to its own end, and a
// failed or unanswered request breaks the chain, so the next answer only
// opens a new period. Pass the events of one watch's endpoint.
func Certified(events []Event) []Period {
	sorted := append([]Event(nil), events...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].End.Before(sorted[j].End) })
	var out []Period
	open := false
	for _, e := range sorted {
		switch {
		case !e.OK:
			open = false
		case open:
			out[len(out)-1].End = e.End
		default:
			out = append(out, Period{Start: e.End, End: e.End})
			open = true
		}
	}
	return out
}

// Overlap is the time periods spend inside [from, to].
func Overlap(periods []Period, from, to time.Time) time.Duration {
	var total time.Duration
	for _, p := range periods {
		s, e := p.Start, p.End
		if s.Before(from) {
			s = from
		}
		if e.After(to) {
			e = to
		}
		if e.After(s) {
			total += e.Sub(s)
		}
	}
	return total
}
