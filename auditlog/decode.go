package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// Entry is one audit record, reduced to the fields the rules read. Byte slices point into the
// line being decoded (or into the Entry's own scratch buffer when a string had escapes): they
// are valid only until the next line is decoded, so rules copy what they keep.
type Entry struct {
	Type  []byte // "request" or "response"
	Time  time.Time
	Error []byte // top-level "error": "permission denied", "service account name not authorized"

	// auth: the token that made the request (empty for a login, which carries no token).
	DisplayName []byte
	Accessor    []byte // HMAC'd unless the device has hmac_accessor=false
	Policies    [][]byte
	SAName      []byte // auth.metadata.service_account_name
	SANamespace []byte // auth.metadata.service_account_namespace
	Role        []byte // auth.metadata.role

	// request
	Operation     []byte
	Path          []byte
	MountType     []byte
	MountPoint    []byte
	RemoteAddress []byte
	DataRole      []byte // request.data.role: the role a login asked for (HMAC'd unless listed in audit_non_hmac_request_keys)

	// response
	RespDataError bool // response.data.error present: a 4xx answer such as "invalid role name" (its text is HMAC'd)
	// response.auth of a successful login: the identity the new token carries.
	LoginSAName      []byte
	LoginSANamespace []byte
	LoginRole        []byte
	LoginDisplayName []byte

	scratch []byte
}

func (e *Entry) reset() {
	pol, scratch := e.Policies[:0], e.scratch[:0]
	*e = Entry{Policies: pol, scratch: scratch}
}

var errSyntax = errors.New("not a JSON object")

// decoder is a hand-written scanner for one line: it walks the top-level object, descends
// only into the keys the rules read, and skips every other value with byte searches (no
// allocation, no reflection). encoding/json's Unmarshal into a struct of the same fields
// spends most of its time validating and tokenising what is skipped here (see bench_test.go).
// Skipped values are checked for structure (balanced brackets, terminated strings), not for
// full JSON grammar.
type decoder struct {
	b []byte
	i int
	e *Entry
}

// decodeEntry fills e from one JSON line.
func decodeEntry(line []byte, e *Entry) error {
	e.reset()
	d := decoder{b: line, e: e}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return errSyntax
	}
	var timeRaw []byte
	err := d.object(func(key []byte) error {
		switch string(key) {
		case "type":
			return d.str(&e.Type)
		case "time":
			return d.str(&timeRaw)
		case "error":
			return d.strOrNull(&e.Error)
		case "auth":
			return d.auth(&e.DisplayName, &e.Accessor, &e.Policies, &e.SAName, &e.SANamespace, &e.Role)
		case "request":
			return d.request()
		case "response":
			return d.response()
		}
		return d.skip()
	})
	if err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.b) {
		return errSyntax
	}
	if len(timeRaw) > 0 {
		t, ok := parseTime(timeRaw)
		if !ok {
			return errors.New("time is not RFC 3339")
		}
		e.Time = t
	}
	return nil
}

func (d *decoder) auth(display, accessor *[]byte, policies *[][]byte, sa, ns, role *[]byte) error {
	if d.null() {
		return nil
	}
	return d.object(func(key []byte) error {
		switch string(key) {
		case "display_name":
			return d.strOrNull(display)
		case "accessor":
			return d.strOrNull(accessor)
		case "policies":
			if policies == nil {
				return d.skip()
			}
			return d.strings(policies)
		case "metadata":
			if d.null() {
				return nil
			}
			return d.object(func(key []byte) error {
				switch string(key) {
				case "service_account_name":
					return d.strOrNull(sa)
				case "service_account_namespace":
					return d.strOrNull(ns)
				case "role":
					return d.strOrNull(role)
				}
				return d.skip()
			})
		}
		return d.skip()
	})
}

func (d *decoder) request() error {
	if d.null() {
		return nil
	}
	e := d.e
	return d.object(func(key []byte) error {
		switch string(key) {
		case "operation":
			return d.strOrNull(&e.Operation)
		case "path":
			return d.strOrNull(&e.Path)
		case "mount_type":
			return d.strOrNull(&e.MountType)
		case "mount_point":
			return d.strOrNull(&e.MountPoint)
		case "remote_address":
			return d.strOrNull(&e.RemoteAddress)
		case "data":
			if d.null() {
				return nil
			}
			return d.object(func(key []byte) error {
				if string(key) == "role" && d.peek() == '"' {
					return d.str(&e.DataRole)
				}
				return d.skip()
			})
		}
		return d.skip()
	})
}

func (d *decoder) response() error {
	if d.null() {
		return nil
	}
	e := d.e
	return d.object(func(key []byte) error {
		switch string(key) {
		case "data":
			if d.null() {
				return nil
			}
			return d.object(func(key []byte) error {
				if string(key) == "error" {
					e.RespDataError = true
				}
				return d.skip()
			})
		case "auth":
			var ignore []byte
			return d.auth(&e.LoginDisplayName, &ignore, nil, &e.LoginSAName, &e.LoginSANamespace, &e.LoginRole)
		}
		return d.skip()
	})
}

// object calls fn for each key of the object at d.i; fn must consume the value.
func (d *decoder) object(fn func(key []byte) error) error {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return errSyntax
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return nil
	}
	for {
		d.ws()
		var key []byte
		if err := d.str(&key); err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return errSyntax
		}
		d.i++
		d.ws()
		if err := fn(key); err != nil {
			return err
		}
		d.ws()
		if d.i >= len(d.b) {
			return errSyntax
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// strings reads an array of strings (non-strings are skipped).
func (d *decoder) strings(out *[][]byte) error {
	if d.null() {
		return nil
	}
	if d.peek() != '[' {
		return d.skip()
	}
	d.i++
	d.ws()
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		d.ws()
		if d.peek() == '"' {
			var s []byte
			if err := d.str(&s); err != nil {
				return err
			}
			*out = append(*out, s)
		} else if err := d.skip(); err != nil {
			return err
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return errSyntax
		}
	}
}

func (d *decoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

// null consumes a JSON null.
func (d *decoder) null() bool {
	if bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		d.i += 4
		return true
	}
	return false
}

func (d *decoder) strOrNull(out *[]byte) error {
	if d.null() {
		*out = nil
		return nil
	}
	if d.peek() != '"' {
		// Not a string where Vault writes one: keep going, the field stays empty.
		return d.skip()
	}
	return d.str(out)
}

// str reads the string at d.i. Without escapes it is a sub-slice of the line; with escapes
// it is unquoted by encoding/json into the Entry's scratch buffer (rare in audit lines).
func (d *decoder) str(out *[]byte) error {
	if d.peek() != '"' {
		return errSyntax
	}
	start := d.i + 1
	end, escaped := stringEnd(d.b, start, true)
	if end < 0 {
		return errSyntax
	}
	d.i = end + 1
	if !escaped {
		*out = d.b[start:end]
		return nil
	}
	var s string
	if err := json.Unmarshal(d.b[start-1:end+1], &s); err != nil {
		return errSyntax
	}
	off := len(d.e.scratch)
	d.e.scratch = append(d.e.scratch, s...)
	// The scratch buffer may have moved: earlier slices into it stay valid (they keep the
	// old array alive), and this one points into the new one.
	*out = d.e.scratch[off:len(d.e.scratch):len(d.e.scratch)]
	return nil
}

// stringEnd returns the index of the closing quote of a string whose body starts at i (-1
// when it is not terminated) and, if wantEscaped, whether the body has escapes.
func stringEnd(b []byte, i int, wantEscaped bool) (int, bool) {
	escaped := false
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return -1, escaped
		}
		j += i
		if wantEscaped && !escaped && bytes.IndexByte(b[i:j], '\\') >= 0 {
			escaped = true
		}
		// A quote preceded by an odd number of backslashes is escaped. The run cannot
		// start before i: b[i-1] is a quote.
		n := 0
		for k := j - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return j, escaped
		}
		escaped = true
		i = j + 1
	}
}

// skip consumes any value.
func (d *decoder) skip() error {
	if d.i >= len(d.b) {
		return errSyntax
	}
	switch c := d.b[d.i]; c {
	case '"':
		end, _ := stringEnd(d.b, d.i+1, false)
		if end < 0 {
			return errSyntax
		}
		d.i = end + 1
		return nil
	case '{', '[':
		return d.skipComposite()
	default:
		start := d.i
		for d.i < len(d.b) {
			switch d.b[d.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				if d.i == start {
					return errSyntax
				}
				return nil
			}
			d.i++
		}
		if d.i == start {
			return errSyntax
		}
		return nil
	}
}

// skipComposite skips a nested object or array, jumping over strings.
func (d *decoder) skipComposite() error {
	depth := 0
	b := d.b
	for i := d.i; i < len(b); i++ {
		switch b[i] {
		case '"':
			end, _ := stringEnd(b, i+1, false)
			if end < 0 {
				return errSyntax
			}
			i = end
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				d.i = i + 1
				return nil
			}
		}
	}
	return errSyntax
}

// parseTime reads Vault's "2026-12-01T11:18:19.286633762Z" without allocating; anything else
// (an offset instead of Z, no fraction) goes through time.Parse.
func parseTime(b []byte) (time.Time, bool) {
	if len(b) >= 20 && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' && b[16] == ':' && b[len(b)-1] == 'Z' {
		num := func(s []byte) (int, bool) {
			n := 0
			for _, c := range s {
				if c < '0' || c > '9' {
					return 0, false
				}
				n = n*10 + int(c-'0')
			}
			return n, true
		}
		y, ok1 := num(b[0:4])
		mo, ok2 := num(b[5:7])
		dd, ok3 := num(b[8:10])
		h, ok4 := num(b[11:13])
		mi, ok5 := num(b[14:16])
		s, ok6 := num(b[17:19])
		ns := 0
		frac := b[19 : len(b)-1]
		ok7 := true
		if len(frac) > 0 {
			if frac[0] != '.' || len(frac) > 10 || len(frac) < 2 {
				ok7 = false
			} else {
				n, ok := num(frac[1:])
				for k := len(frac) - 1; k < 9; k++ {
					n *= 10
				}
				ns, ok7 = n, ok
			}
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && mo >= 1 && mo <= 12 && dd >= 1 && dd <= 31 && h < 24 && mi < 60 && s < 60 {
			return time.Date(y, time.Month(mo), dd, h, mi, s, ns, time.UTC), true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}
