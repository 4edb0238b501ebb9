package health

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// URL is where a person reaches the instance, or "" when it has no usable
// address. Consul data is untrusted, so only http and https URLs are ever
// returned, and only ones that lead where they say (see linkable). A
// meta.url that is set but cannot be linked gives no URL at all: the
// operator named a place that cannot be linked to, and a link built from the
// address instead could lead somewhere else.
func URL(inst Instance) string {
	if raw, set := inst.Meta["url"]; set && strings.TrimSpace(raw) != "" {
		u, _ := webURL(raw)
		return u
	}
	if inst.Address == "" || inst.Port < 0 || inst.Port > 65535 {
		return ""
	}
	scheme, defaultPort := "http", 80
	if slices.Contains(inst.Tags, "https") || inst.Port == 443 || strings.EqualFold(inst.Meta["scheme"], "https") {
		scheme, defaultPort = "https", 443
	}
	host := inst.Address
	if inst.Port > 0 && inst.Port != defaultPort {
		host = net.JoinHostPort(inst.Address, strconv.Itoa(inst.Port))
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	built := (&url.URL{Scheme: scheme, Host: host}).String()
	// An address with characters that cannot stand in a host (a slash, an
	// '@', a space) would change what the link points at: give no link.
	parsed, err := url.Parse(built)
	if err != nil || parsed.Host != host || !linkable(parsed) {
		return ""
	}
	return built
}

// webURL accepts raw only as an absolute http or https URL with a host that
// linkable accepts.
func webURL(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || !linkable(u) {
		return "", false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u.String(), true
	}
	return "", false
}

// linkable refuses what would make a link mislead or lead nowhere:
//   - userinfo: "https://good.example@evil.example/" reads as good.example
//     but goes to evil.example, and "user:pass@" would show credentials;
//   - a port outside 1-65535, which no browser can reach;
//   - an IPv6 zone ("fe80::1%eth0"), which names an interface of the
//     viewer's own machine, not of the instance's;
//   - bidi or control characters in the host, which make the shown text
//     differ from where the link goes (U+202E reverses what follows it).
//   - characters a browser refuses in a host, or drops from it.
func linkable(u *url.URL) bool {
	if u.User != nil {
		return false
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	host := u.Hostname()
	if host == "" || strings.Contains(host, "%") { // "http://:80/" has no host
		return false
	}
	for _, r := range host {
		// Go's parser takes some hosts a browser refuses, which give a link
		// that does nothing: '<' and '>', separators (a no-break space, U+2028),
		// and invisible format characters (a zero-width space, which the
		// browser drops, so that the text shown is not where the link goes).
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || unicode.In(r, unicode.Cf, unicode.Z) || r == '<' || r == '>' {
			return false
		}
	}
	return true
}
