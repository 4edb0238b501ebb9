package consul

import (
	"io"
	"net/http"
	"strings"
)

// Consul puts no limit on what a check registered through the catalog may
// carry: a single 64 MB output was accepted, and the API client decodes a
// whole response into memory. The transport below cuts every JSON string
// while the body streams in, so no string longer than the cap is ever held,
// whatever a registration contains.

// boundedTransport caps every string of the JSON bodies it passes on, and
// the values of "Output" keys (check outputs) at their own, smaller cap.
type boundedTransport struct {
	next      http.RoundTripper
	cap       int
	outputCap int
}

func (t boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	// Consul does not label its JSON answers (Go's server sniffs them as
	// text/plain), so every successful answer is filtered; error bodies are
	// text that the client reads as such.
	if err != nil || resp.Body == nil {
		return resp, err
	}
	if resp.StatusCode/100 != 2 {
		// The API client reads a whole error body into memory and keeps it
		// in the error; a proxy's error page can be of any size, and only
		// MaxErrorLength of it is ever shown.
		resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, errorBodyMax), Closer: resp.Body}
		return resp, nil
	}
	outputMax := t.outputCap
	if req.URL.Path == nodesEndpoint.path {
		// The instance list carries every check again, outputs included,
		// and uses none of them: they are cut to a byte.
		outputMax = 1
	}
	// Consul bounds meta but not tags: one registration carried 5,000,000
	// of them, repeated in every check. Only the first MaxTags of any tag
	// list are passed on; the catalog's answer is nothing but tag lists.
	// A registration may also carry a proxy configuration of any size and
	// shape, which Consul serves indented (one line per array element): one
	// of 3 MB made the instance list 31 MB. The values the monitor does not
	// read are dropped, and white space with them.
	skip := unusedValues
	if req.URL.Path == nodesEndpoint.path {
		skip = unusedNodeValues
	}
	resp.Body = &stringCapper{body: resp.Body, max: t.cap, outputMax: outputMax, maxTags: MaxTags, allArraysTags: req.URL.Path == catalogEndpoint.path, compact: true, skipKeys: skip}
	// The length changes with what is cut.
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	return resp, nil
}

// unusedValues are keys whose values the monitor never reads and a
// registration can make of any size; they become null. The health answer
// repeats a service's tags in each of its checks. The instance list
// also repeats every check, which the monitor reads from the health answer.
var (
	unusedValues     = map[string]bool{"Proxy": true, "Connect": true, "TaggedAddresses": true, "Definition": true, "ServiceTags": true}
	unusedNodeValues = map[string]bool{"Proxy": true, "Connect": true, "TaggedAddresses": true, "Definition": true, "ServiceTags": true, "Checks": true}
)

// errorBodyMax is how much of an error answer is read: room for Consul's
// message (an ACL refusal is recognised by its text) well past what is shown.
const errorBodyMax = 16 << 10

type limitedBody struct {
	io.Reader
	io.Closer
}

// stringCapper is a byte-level JSON string filter: outside strings bytes
// pass as they are; inside one, bytes pass until the next whole character
// or escape would take the string's raw length past max, then the rest of
// the string is dropped and the string is closed. A cut never splits a
// UTF-8 sequence, an escape or a surrogate pair, so valid JSON stays valid
// JSON with the same structure, its strings being prefixes of the
// originals. It keeps a few bytes of state, never the string.
//
// The value of an "Output" key is capped at outputMax (when set) instead,
// and a cut one ends with cutMarker, so that the reader knows it was cut
// however many bytes its escapes decode to.
type stringCapper struct {
	body      io.ReadCloser
	max       int
	outputMax int

	// maxTags bounds the strings kept of a "Tags" or "ServiceTags" array
	// (of every array, with allArraysTags); tagArray is set inside one,
	// tagCount counts its strings, dropTags is set once the rest is dropped,
	// silent while a dropped string is skipped.
	maxTags       int
	allArraysTags bool
	tagArray      bool
	tagCount      int
	dropTags      bool
	silent        bool

	// compact drops white space outside strings, and the values of
	// skipKeys, replaced by null: skipping is set inside such a value,
	// skipDepth counts its open brackets, skipStr and skipEsc follow its
	// strings.
	compact  bool
	skipKeys map[string]bool
	// depth counts the brackets open outside strings: the keys skipped are
	// those of a node or check (depth 2) or of a service in a node's list
	// (depth 4), never the keys of a Meta map (3 or 5), which a service may
	// name as it likes.
	depth     int
	skipVal   bool
	skipDepth int
	skipStr   bool
	skipEsc   bool

	inString bool
	limit    int  // the current string's cap
	isOutput bool // the current string is an "Output" value
	// key is the raw text of the last string while it may be "Output"
	// (keyShort); colon is set once a ':' follows it with only white space
	// between.
	key      []byte
	keyShort bool
	colon    bool
	skipping bool // past the cap: dropping bytes until the closing quote
	escaped  bool // while skipping: the previous byte was a backslash
	used     int  // raw bytes of the current string kept so far
	// seq holds a UTF-8 sequence being read and need the bytes it lacks,
	// so that it is kept or dropped whole.
	seq  []byte
	need int
	// esc holds an escape being read, up to a surrogate pair (12 bytes),
	// so that it is kept or dropped whole.
	esc []byte

	in  []byte
	out []byte
	err error
}

func (c *stringCapper) Close() error { return c.body.Close() }

func (c *stringCapper) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			if len(c.esc)+len(c.seq) > 0 {
				// A body that ends inside an escape or a character is
				// not JSON; pass what came rather than invent.
				c.out = append(append(c.out, c.esc...), c.seq...)
				c.esc, c.seq = nil, nil
				continue
			}
			return 0, c.err
		}
		if c.in == nil {
			c.in = make([]byte, 32*1024)
		}
		n, err := c.body.Read(c.in)
		c.out = c.filter(c.out[:0], c.in[:n])
		c.err = err
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// filter appends to dst what src becomes.
func (c *stringCapper) filter(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		b := src[i]
		switch {
		case c.skipVal:
			switch {
			case c.skipStr:
				switch {
				case c.skipEsc:
					c.skipEsc = false
				case b == '\\':
					c.skipEsc = true
				case b == '"':
					c.skipStr = false
					c.skipVal = c.skipDepth > 0
				}
			case c.skipDepth > 0:
				switch b {
				case '"':
					c.skipStr = true
				case '{', '[':
					c.skipDepth++
				case '}', ']':
					c.skipDepth--
					c.skipVal = c.skipDepth > 0
				}
			case b == ',' || b == '}' || b == ']' || b == ' ' || b == '\t' || b == '\n' || b == '\r':
				// The end of a number, true, false or null.
				c.skipVal = false
				i-- // b is read again, outside the value

			}
		case !c.inString && c.compact && (b == ' ' || b == '\t' || b == '\n' || b == '\r'):
		case !c.inString && c.compact && c.colon && c.keyShort && c.depth <= 4 && c.depth%2 == 0 && c.skipKeys[string(c.key)]:
			dst = append(dst, "null"...)
			c.key, c.keyShort, c.colon = c.key[:0], false, false
			c.skipVal, c.skipDepth, c.skipStr, c.skipEsc = true, 0, false, false
			switch b {
			case '"':
				c.skipStr = true
			case '{', '[':
				c.skipDepth = 1
			}
		case !c.inString && c.tagArray && c.dropTags:
			switch b {
			case ']':
				c.tagArray, c.dropTags = false, false
				c.depth--
				dst = append(dst, b)
			case '"':
				c.inString, c.skipping, c.escaped, c.silent = true, true, false, true
			}
		case !c.inString && c.tagArray && b == ',' && c.tagCount >= c.maxTags:
			c.dropTags = true
		case !c.inString && c.tagArray && b == '"':
			c.tagCount++
			dst = append(dst, b)
			c.inString, c.used, c.limit, c.isOutput = true, 0, c.max, false
			c.key, c.keyShort, c.colon = c.key[:0], false, false
		case !c.inString:
			if c.tagArray && b != ',' && b != ' ' && b != '\t' && b != '\n' && b != '\r' {
				c.tagArray = false // a list that is not of strings only
			}
			if b == '[' && c.maxTags > 0 && c.colon && (c.allArraysTags || c.keyShort && (string(c.key) == "Tags" || string(c.key) == "ServiceTags")) {
				c.tagArray, c.tagCount, c.dropTags = true, 0, false
			}
			switch b {
			case '{', '[':
				c.depth++
			case '}', ']':
				c.depth--
			}
			dst = append(dst, b)
			switch b {
			case '"':
				c.isOutput = c.outputMax > 0 && c.colon && c.keyShort && string(c.key) == "Output"
				c.inString, c.used, c.limit = true, 0, c.max
				if c.isOutput {
					c.limit = c.outputMax
				}
				c.key, c.keyShort, c.colon = c.key[:0], true, false
			case ':':
				c.colon = true
			case ' ', '\t', '\n', '\r':
			default:
				c.keyShort, c.colon = false, false
			}
		case c.skipping:
			switch {
			case c.escaped:
				c.escaped = false
			case b == '\\':
				c.escaped = true
			case b == '"':
				c.inString, c.skipping, c.keyShort = false, false, false
				if c.silent {
					c.silent = false
				} else {
					dst = append(dst, '"')
				}
			}
		case len(c.esc) > 0:
			dst = c.escapeByte(dst, b)
		case c.need > 0 && b >= 0x80 && b < 0xC0:
			c.seq = append(c.seq, b)
			if c.need--; c.need == 0 {
				dst = c.flushSeq(dst)
			}
		case len(c.seq) > 0:
			// A sequence cut short (invalid UTF-8) is kept or dropped as it came.
			dst = c.flushSeq(dst)
			dst = c.filter(dst, []byte{b})
		case b == '\\':
			c.esc = append(c.esc, b)
		case b == '"':
			c.inString = false
			dst = append(dst, b)
		case utf8Len(b) > 1:
			c.seq, c.need = append(c.seq, b), utf8Len(b)-1
		default:
			dst = c.keep(dst, 1, b)
		}
	}
	return dst
}

// escapeByte takes the next byte of an escape sequence in c.esc.
func (c *stringCapper) escapeByte(dst []byte, b byte) []byte {
	// Only a high surrogate waits at 6 bytes, for its low half, so that a
	// cut never leaves one half alone.
	switch {
	case len(c.esc) == 6 && b != '\\':
		dst = c.flush(dst, 6)
		return c.filter(dst, []byte{b})
	case len(c.esc) == 7 && b != 'u':
		dst = c.flush(dst, 6)
		if c.skipping {
			return dst // b is the escaped character, dropped with the rest
		}
	}
	c.esc = append(c.esc, b)
	e := c.esc
	switch {
	case len(e) == 2 && b != 'u':
		return c.flush(dst, 2)
	case len(e) == 6 && !isHighSurrogate(e):
		return c.flush(dst, 6)
	case len(e) == 12:
		if isLowSurrogate(e[6:]) {
			return c.flush(dst, 12)
		}
		dst = c.flush(dst, 6)
		if !c.skipping && !isHighSurrogate(c.esc) {
			dst = c.flush(dst, 6)
		}
	}
	return dst
}

// flush keeps the first n bytes of c.esc as one unit; the rest stays.
func (c *stringCapper) flush(dst []byte, n int) []byte {
	dst = c.keep(dst, n, c.esc[:n]...)
	if c.skipping {
		c.esc = c.esc[:0]
		return dst
	}
	c.esc = append(c.esc[:0], c.esc[n:]...)
	return dst
}

func (c *stringCapper) flushSeq(dst []byte) []byte {
	dst = c.keep(dst, len(c.seq), c.seq...)
	c.seq, c.need = c.seq[:0], 0
	return dst
}

// keep appends a unit of n raw bytes, or starts skipping the string when it
// does not fit under the cap.
func (c *stringCapper) keep(dst []byte, n int, unit ...byte) []byte {
	if c.used+n > c.limit {
		c.skipping, c.escaped = true, false
		c.seq, c.need = c.seq[:0], 0
		if c.isOutput {
			dst = append(dst, cutMarker...)
		}
		return dst
	}
	c.used += n
	if c.keyShort && len(c.key)+len(unit) <= len("TaggedAddresses") {
		c.key = append(c.key, unit...)
	} else {
		c.keyShort = false
	}
	return append(dst, unit...)
}

// cutMarker ends an "Output" value that was cut: a lone high surrogate
// escape, which Consul's encoder (Go's encoding/json) never writes, so it
// cannot be part of a real output.
const cutMarker = `\udbff`

func utf8Len(b byte) int {
	switch {
	case b >= 0xF0 && b < 0xF8:
		return 4
	case b >= 0xE0 && b < 0xF0:
		return 3
	case b >= 0xC0 && b < 0xE0:
		return 2
	}
	return 1
}

func isHighSurrogate(e []byte) bool { return surrogate(e, 'd', "89ab") }
func isLowSurrogate(e []byte) bool  { return surrogate(e, 'd', "cdef") }

// surrogate reports whether e starts with \u<first><one of second>.
func surrogate(e []byte, first byte, second string) bool {
	return len(e) >= 6 && e[0] == '\\' && e[1] == 'u' && lower(e[2]) == first && strings.IndexByte(second, lower(e[3])) >= 0
}

func lower(b byte) byte { return b | 0x20 }
