package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/hashicorp/consul/api"
)

// MaxErrorLength bounds an error's message: a proxy's HTML error page must
// not fill the dashboard's banner or the log.
const MaxErrorLength = 512

// endpoint is one of the Consul HTTP endpoints the monitor reads, with
// what reading it is for and the ACL rights it needs.
type endpoint struct {
	path, reading string
	// needs is the ACL rights the token must grant, as a policy says them.
	needs string
	// blocked is another cause of a refusal, or empty.
	blocked string
}

const (
	nodeAndServiceRead = `node:read and service:read (node_prefix "" and service_prefix "" with policy read)`
	serviceRead        = `service:read (service_prefix "" with policy read)`
)

var (
	healthEndpoint  = endpoint{"/v1/health/state/any", "reading health checks", nodeAndServiceRead, ""}
	catalogEndpoint = endpoint{"/v1/catalog/services", "watching the catalog", serviceRead, ""}
	nodesEndpoint   = endpoint{"/v1/internal/ui/nodes", "reading the instance list", nodeAndServiceRead, "or a proxy blocks /v1/internal/"}
)

// refused explains a 401 or 403 from ep whose body is Consul's message.
func refused(ep endpoint, body string) string {
	if strings.Contains(body, "ACL not found") {
		return "Consul does not know the token (CONSUL_HTTP_TOKEN); the monitor's token needs " + ep.needs
	}
	hint := "the token lacks " + ep.needs
	if ep.blocked != "" {
		hint += ", " + ep.blocked
	}
	return hint
}

// Error is a failed read of Consul, worded so that a user can act on it:
// which endpoint, what Consul or the network said, and for a refusal, the
// ACL rights the token needs.
type Error struct {
	// Endpoint is the path read, such as /v1/health/state/any.
	Endpoint string
	// StatusCode is Consul's HTTP status, 0 when there was no answer.
	StatusCode int
	msg        string
	err        error
}

func (e *Error) Error() string { return e.msg }

func (e *Error) Unwrap() error { return e.err }

// describe turns err, from reading ep, into an *Error.
func describe(ep endpoint, err error) error {
	if err == nil {
		return nil
	}
	head := ep.reading + " (" + ep.path + ")"
	var status api.StatusError
	var urlErr *url.Error
	var netErr net.Error
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var detail, hint string
	code := 0
	switch {
	case errors.As(err, &status):
		code = status.Code
		head += fmt.Sprintf(": %d %s", code, http.StatusText(code))
		detail = status.Body
		switch {
		case code == http.StatusForbidden || code == http.StatusUnauthorized:
			hint = refused(ep, status.Body)
		case code == http.StatusTooManyRequests:
			hint = "Consul is rate limiting this client; it retries with backoff"
		case code >= 500:
			hint = "Consul or a proxy in front of it failed"
		}
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		head += ": no answer in time"
		hint = "Consul or the network to it is not responding"
	case errors.Is(err, syscall.ECONNREFUSED):
		head += ": connection refused"
		if errors.As(err, &urlErr) {
			if u, perr := url.Parse(urlErr.URL); perr == nil {
				head += " at " + u.Host
			}
		}
		hint = "is Consul running and listening there?"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &syntax) || errors.As(err, &typeErr) || strings.Contains(err.Error(), "unexpected EOF"):
		head += ": malformed answer (truncated or not the JSON Consul sends)"
		detail = err.Error()
	default:
		detail = err.Error()
	}
	return &Error{Endpoint: ep.path, StatusCode: code, msg: bound(head, detail, hint), err: err}
}

// bound joins head, detail and hint into at most MaxErrorLength bytes,
// shortening the detail, then the hint, never the head that names the
// endpoint and the status.
func bound(head, detail, hint string) string {
	detail = strings.Join(strings.Fields(detail), " ")
	tail := ""
	if hint != "" {
		tail = "; " + hint
	}
	room := MaxErrorLength - len(head) - len(tail)
	if detail != "" && room > len(": ")+len("…") {
		if len(": ")+len(detail) > room {
			detail = truncate(detail, room-len(": ")-len("…")) + "…"
		}
		head += ": " + detail
	}
	msg := head + tail
	if len(msg) > MaxErrorLength {
		msg = truncate(msg, MaxErrorLength-len("…")) + "…"
	}
	return msg
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
