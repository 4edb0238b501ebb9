package web

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"unicode/utf8"
)

// Hosts is the set of names and addresses a request's Host may carry.
//
// A page on another site can make a browser resolve its own name to this
// machine (DNS rebinding) and then read the API as if it were same-origin:
// the browser only compares names. The Host header still carries the
// attacker's name, so answering only the names the monitor is served as
// closes that door.
type Hosts struct {
	any   bool
	names map[string]bool
	addrs []netip.Prefix
}

// loopback is always allowed: a browser never lets a page rebind these
// names or addresses, so they cannot carry an attack.
var loopback = []string{"localhost", "127.0.0.0/8", "::1"}

// NewHosts accepts each entry as a host name, an IP address or an IP prefix
// ("10.0.0.0/8"), with an optional :port that is ignored; "*" accepts any
// host, for setups where something in front checks it.
func NewHosts(entries ...string) (*Hosts, error) {
	h := &Hosts{names: map[string]bool{}}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if e == "*" {
			h.any = true
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			h.addrs = append(h.addrs, p.Masked())
			continue
		}
		name, addr, ok := parseHost(e)
		switch {
		case !ok:
			return nil, fmt.Errorf("%q is not a host name or IP address", e)
		case addr.IsValid():
			h.addrs = append(h.addrs, netip.PrefixFrom(addr, addr.BitLen()))
		default:
			h.names[name] = true
		}
	}
	return h, nil
}

// DefaultHosts are the hosts a monitor listening on listen is served as:
// loopback, the listen host, and when that is a wildcard (every
// interface), this machine's host name and its interfaces' addresses.
// extra adds to them.
func DefaultHosts(listen string, extra ...string) (*Hosts, error) {
	entries := append([]string(nil), loopback...)
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	if ip, perr := netip.ParseAddr(host); host == "" || perr == nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			entries = append(entries, name)
		}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					entries = append(entries, n.IP.String())
				}
			}
		}
	} else {
		entries = append(entries, host)
	}
	return NewHosts(append(entries, extra...)...)
}

// Allows reports whether a request's Host header (r.Host) names this
// server. Case, a trailing dot and the port do not matter.
func (h *Hosts) Allows(hostHeader string) bool {
	if h.any {
		return true
	}
	name, addr, ok := parseHost(hostHeader)
	if !ok {
		return false
	}
	if !addr.IsValid() {
		return h.names[name]
	}
	for _, p := range h.addrs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// parseHost splits a Host header or an allowed-hosts entry into a
// lower-case name without trailing dot, or an IP address. The port is
// dropped. An address with a zone names an interface of the client's own
// machine, not this server, and is refused.
func parseHost(s string) (name string, addr netip.Addr, ok bool) {
	host := s
	switch colons := strings.Count(s, ":"); {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 || !validPort(s[end+1:]) {
			return "", netip.Addr{}, false
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", netip.Addr{}, false // brackets hold only an IPv6 address
		}
		return "", a.Unmap(), true
	case colons == 1:
		i := strings.IndexByte(s, ':')
		if !validPort(s[i:]) {
			return "", netip.Addr{}, false
		}
		host = s[:i]
	case colons > 1: // an IPv6 address without brackets, and so without port
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return "", netip.Addr{}, false
		}
		return "", a.Unmap(), true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return "", a, true
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || strings.ContainsAny(host, "[]/@% ") {
		return "", netip.Addr{}, false
	}
	return host, netip.Addr{}, true
}

// validPort accepts "" or ":" followed by digits only.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	if p[0] != ':' {
		return false
	}
	for _, c := range p[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// truncate cuts s to at most n bytes without splitting a character, so
// that a client's long header cannot flood the log.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
