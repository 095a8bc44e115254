// Package auditlog analyses Vault audit device logs (JSON lines, as the file, socket and
// syslog devices write them) for on-call: failed logins by ServiceAccount, namespace and role,
// enumeration through list operations, access outside working hours, tokens renewed too
// often, requests denied by policy, and the busiest paths and clients.
//
// It is read-only and prints nothing: Analyze returns a Report (and its Findings) for the
// CLI to render. Input is streamed line by line and decoded by a small scanner that reads
// only the fields the rules need (decode.go). Memory does not grow with the log: every table
// is a bounded Space-Saving counter (topk.go) of Options.Capacity keys, exact while a table
// has seen fewer distinct keys than that, an over-estimate flagged in Report.Approximate
// after.
package auditlog

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Options select and tune the rules.
type Options struct {
	// Since and Until bound entries by their time (Until exclusive); zero means unbounded.
	Since, Until time.Time
	// Hours enables the off-hours rule; nil leaves it out.
	Hours *Hours
	// RenewalThreshold: a token renewed more than this many times is reported (0: 100).
	RenewalThreshold int
	// Top is the number of rows per table (0: 10).
	Top int
	// Capacity is the number of distinct keys each table counts exactly (0: 10,000).
	Capacity int
}

// DefaultRenewalThreshold is how many renewals of one token are still ordinary: Vault Agent
// renews at about two thirds of the TTL, so a 1h token renewed every 40 minutes for three days
// stays under it.
const DefaultRenewalThreshold = 100

func (o Options) withDefaults() Options {
	if o.RenewalThreshold <= 0 {
		o.RenewalThreshold = DefaultRenewalThreshold
	}
	if o.Top <= 0 {
		o.Top = 10
	}
	if o.Capacity <= 0 {
		o.Capacity = 10_000
	}
	return o
}

// Hours is the working-hours window of the off-hours rule, in a time zone (audit times are
// UTC). A window whose end is before its start spans midnight (22:00-06:00).
type Hours struct {
	Start, End int // minutes after midnight
	Loc        *time.Location
}

// ParseHours reads "08:00-19:00" in the IANA zone tz ("Europe/Paris"; empty means UTC).
func ParseHours(spec, tz string) (*Hours, error) {
	from, to, ok := strings.Cut(spec, "-")
	if !ok {
		return nil, fmt.Errorf("hours %q: want START-END, e.g. 08:00-19:00", spec)
	}
	clock := func(s string) (int, error) {
		t, err := time.Parse("15:04", strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("hours %q: %q is not HH:MM", spec, s)
		}
		return t.Hour()*60 + t.Minute(), nil
	}
	h := &Hours{Loc: time.UTC}
	var err error
	if h.Start, err = clock(from); err != nil {
		return nil, err
	}
	if h.End, err = clock(to); err != nil {
		return nil, err
	}
	if h.Start == h.End {
		return nil, fmt.Errorf("hours %q: the window is empty", spec)
	}
	if tz != "" {
		if h.Loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("time zone %q: %v (use an IANA name such as Europe/Paris)", tz, err)
		}
	}
	return h, nil
}

// Inside reports whether t falls in the window, on the wall clock of h's zone.
func (h *Hours) Inside(t time.Time) bool {
	l := t.In(h.Loc)
	m := l.Hour()*60 + l.Minute()
	if h.Start < h.End {
		return m >= h.Start && m < h.End
	}
	return m >= h.Start || m < h.End
}

func (h *Hours) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d %s", h.Start/60, h.Start%60, h.End/60, h.End%60, h.Loc)
}

// Stats count what was read.
type Stats struct {
	Bytes     int64 `json:"bytes"`
	Lines     int64 `json:"lines"`
	Entries   int64 `json:"entries"`   // decoded audit entries in the time range
	Responses int64 `json:"responses"` // of which responses (the rules count those)
	// OutOfRange entries were outside --since/--until.
	OutOfRange int64 `json:"outOfRange"`
	// NotJSON lines are not JSON objects (server messages in a pod's log); Malformed ones
	// start like one but do not parse (a truncated last line); Oversized ones exceed
	// MaxLineBytes.
	NotJSON   int64 `json:"notJson"`
	Malformed int64 `json:"malformed"`
	Oversized int64 `json:"oversized"`
}

// Report is the result of Analyze. Every list is sorted by count, largest first.
type Report struct {
	Inputs []string   `json:"inputs"`
	Stats  Stats      `json:"stats"`
	First  *time.Time `json:"first,omitempty"` // oldest and newest entry seen
	Last   *time.Time `json:"last,omitempty"`

	AuthFailures []AuthFailure `json:"authFailures"`
	SecretLists  []Access      `json:"secretLists"`
	OffHours     *OffHours     `json:"offHours,omitempty"`
	Renewals     Renewals      `json:"renewals"`
	Denied       []Denial      `json:"denied"`
	TopPaths     []Count       `json:"topPaths"`
	TopClients   []Count       `json:"topClients"`
	TopAddresses []Count       `json:"topAddresses"`
	// Approximate names the tables that saw more distinct keys than Options.Capacity: their
	// counts are upper bounds (each row's overcount says by how much at most).
	Approximate []string `json:"approximate"`
}

// AuthFailure is a group of failed logins.
type AuthFailure struct {
	Mount string `json:"mount"` // auth/kubernetes/
	// Role is the role the login asked for: its name when the mount lists "role" in
	// audit_non_hmac_request_keys, else "hmac:" and the start of Vault's HMAC (RoleHMAC).
	Role     string `json:"role"`
	RoleHMAC bool   `json:"roleHmac,omitempty"`
	// ServiceAccount and Namespace of the login. A failed login carries no identity (its JWT
	// is HMAC'd and no token was issued), so they are only filled when every other request
	// from the same remote address in the log came from one ServiceAccount (Attribution
	// "remote-address"); otherwise they are empty (Attribution "none").
	ServiceAccount  string    `json:"serviceAccount"`
	Namespace       string    `json:"namespace"`
	Attribution     string    `json:"attribution"`
	Error           string    `json:"error"`
	Count           int64     `json:"count"`
	Overcount       int64     `json:"overcount,omitempty"`
	First           time.Time `json:"first"`
	Last            time.Time `json:"last"`
	RemoteAddresses []string  `json:"remoteAddresses"`
}

// Access is a count of one client on one path.
type Access struct {
	Path      string    `json:"path"`
	Operation string    `json:"operation"`
	Client    string    `json:"client"`
	Count     int64     `json:"count"`
	Overcount int64     `json:"overcount,omitempty"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}

// OffHours lists the clients seen outside the working hours.
type OffHours struct {
	Window  string       `json:"window"`
	Total   int64        `json:"total"`
	Clients []OffHourUse `json:"clients"`
}

// OffHourUse is one client's requests outside the window.
type OffHourUse struct {
	Client     string    `json:"client"`
	Count      int64     `json:"count"`
	Overcount  int64     `json:"overcount,omitempty"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
	SamplePath string    `json:"samplePath"`
}

// Renewals lists the tokens renewed more than Threshold times.
type Renewals struct {
	Threshold int            `json:"threshold"`
	Total     int64          `json:"total"`
	Tokens    []TokenRenewal `json:"tokens"`
}

// TokenRenewal is one token's renewals, named by its accessor (HMAC'd by default).
type TokenRenewal struct {
	Accessor  string    `json:"accessor"`
	Client    string    `json:"client"`
	Count     int64     `json:"count"`
	Overcount int64     `json:"overcount,omitempty"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}

// Denial is a group of requests refused by policy ("permission denied").
type Denial struct {
	Path      string    `json:"path"`
	Operation string    `json:"operation"`
	Client    string    `json:"client"`
	Policies  []string  `json:"policies"` // the token's policies, none of which grants it
	Count     int64     `json:"count"`
	Overcount int64     `json:"overcount,omitempty"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}

// Count is a key and how often it was seen.
type Count struct {
	Key       string `json:"key"`
	Count     int64  `json:"count"`
	Overcount int64  `json:"overcount,omitempty"`
}

// span is the detail most tables keep: first and last time seen.
type span struct{ first, last time.Time }

func (s *span) see(t time.Time, isNew bool) {
	if isNew || t.Before(s.first) {
		s.first = t
	}
	if isNew || t.After(s.last) {
		s.last = t
	}
}

type failKey struct{ mount, role, err string }

// failDetail keeps a few of a group's remote addresses, to show and to attribute.
type failDetail struct {
	span
	addrs []string
	more  bool // more distinct addresses than kept
}

// maxFailAddrs is how many distinct remote addresses a failed-login group keeps.
const maxFailAddrs = 5

type accessKey struct{ path, op, client string }
type denyKey struct{ path, op, client, policies string }
type offDetail struct {
	span
	sample string
}
type renewDetail struct {
	span
	client string
}

// addrIdentity is what the log says about one remote address: the one ServiceAccount its
// authenticated requests carried, or ambiguous when there were several.
type addrIdentity struct {
	ns, sa    string
	ambiguous bool
}

// maxAddresses bounds the remote-address attribution map; addresses beyond it are not
// attributed.
const maxAddresses = 65_536

// analyzer holds the bounded tables while inputs stream through.
type analyzer struct {
	o                    Options
	rep                  *Report
	first, last          time.Time
	failures             *topK[failKey, failDetail]
	lists                *topK[accessKey, span]
	off                  *topK[string, offDetail]
	offTotal             int64
	renewals             *topK[string, renewDetail]
	renewTotal           int64
	denied               *topK[denyKey, span]
	paths, clients, addr *topK[string, struct{}]
	identities           map[string]addrIdentity
	polBuf               []byte
}

// Analyze reads every input in turn and returns the report.
func Analyze(ctx context.Context, o Options, inputs ...Input) (*Report, error) {
	o = o.withDefaults()
	c := o.Capacity
	a := &analyzer{
		o:          o,
		rep:        &Report{},
		failures:   newTopK[failKey, failDetail](c),
		lists:      newTopK[accessKey, span](c),
		off:        newTopK[string, offDetail](c),
		renewals:   newTopK[string, renewDetail](c),
		denied:     newTopK[denyKey, span](c),
		paths:      newTopK[string, struct{}](c),
		clients:    newTopK[string, struct{}](c),
		addr:       newTopK[string, struct{}](c),
		identities: map[string]addrIdentity{},
	}
	for _, in := range inputs {
		a.rep.Inputs = append(a.rep.Inputs, in.Name)
		if err := scan(ctx, in, &a.rep.Stats, a.entry); err != nil {
			return nil, err
		}
	}
	return a.report(), nil
}

func (a *analyzer) entry(e *Entry) {
	if !e.Time.IsZero() {
		if (!a.o.Since.IsZero() && e.Time.Before(a.o.Since)) || (!a.o.Until.IsZero() && !e.Time.Before(a.o.Until)) {
			a.rep.Stats.OutOfRange++
			return
		}
	} else if !a.o.Since.IsZero() || !a.o.Until.IsZero() {
		a.rep.Stats.OutOfRange++
		return
	}
	a.rep.Stats.Entries++
	if !e.Time.IsZero() {
		if a.first.IsZero() || e.Time.Before(a.first) {
			a.first = e.Time
		}
		if e.Time.After(a.last) {
			a.last = e.Time
		}
	}
	a.learnAddress(e)
	// Each request is logged twice, as it arrives and with its outcome; the rules count the
	// outcome only.
	if string(e.Type) != "response" {
		return
	}
	a.rep.Stats.Responses++
	t := e.Time
	login := isLogin(e.Path)
	client := clientOf(e, login)
	failed := len(e.Error) > 0 || e.RespDataError

	a.paths.add(string(e.Path))
	a.clients.add(client)
	if len(e.RemoteAddress) > 0 {
		a.addr.add(string(e.RemoteAddress))
	}

	if login && failed {
		msg := string(e.Error)
		if msg == "" {
			msg = "(a 4xx answer; Vault HMACs its text in response.data.error)"
		}
		mount := string(e.MountPoint)
		if mount == "" {
			mount = string(e.Path[:bytes.LastIndex(e.Path, []byte("/login"))+1])
		}
		d, isNew := a.failures.add(failKey{mount: mount, role: roleName(e.DataRole), err: msg})
		d.see(t, isNew)
		if isNew {
			d.addrs, d.more = d.addrs[:0], false
		}
		if addr := e.RemoteAddress; len(addr) > 0 && !slices.Contains(d.addrs, string(addr)) {
			if len(d.addrs) < maxFailAddrs {
				d.addrs = append(d.addrs, string(addr))
			} else {
				d.more = true
			}
		}
	}
	if string(e.Operation) == "list" && isSecretMount(e.MountType) {
		s, isNew := a.lists.add(accessKey{path: string(e.Path), op: "list", client: client})
		s.see(t, isNew)
	}
	if a.o.Hours != nil && !t.IsZero() && !a.o.Hours.Inside(t) {
		a.offTotal++
		d, isNew := a.off.add(client)
		d.see(t, isNew)
		if isNew {
			d.sample = string(e.Path)
		}
	}
	if !failed && isTokenRenewal(e.Path) {
		a.renewTotal++
		d, isNew := a.renewals.add(string(e.Accessor))
		d.see(t, isNew)
		if isNew {
			d.client = client
		}
	}
	if failed && bytes.Contains(e.Error, []byte("permission denied")) && !login {
		a.polBuf = a.polBuf[:0]
		for i, p := range e.Policies {
			if i > 0 {
				a.polBuf = append(a.polBuf, ',')
			}
			a.polBuf = append(a.polBuf, p...)
		}
		s, isNew := a.denied.add(denyKey{path: string(e.Path), op: string(e.Operation), client: client, policies: string(a.polBuf)})
		s.see(t, isNew)
	}
}

// learnAddress records which ServiceAccount the authenticated requests (and successful
// logins) from an address carried, to attribute that address's failed logins.
func (a *analyzer) learnAddress(e *Entry) {
	sa, ns := e.SAName, e.SANamespace
	if len(e.LoginSAName) > 0 {
		sa, ns = e.LoginSAName, e.LoginSANamespace
	}
	if len(e.RemoteAddress) == 0 {
		return
	}
	id, ok := a.identities[string(e.RemoteAddress)]
	if len(sa) == 0 {
		// A token without ServiceAccount metadata (root, userpass, an operator) from the
		// same address makes the address shared.
		if len(e.DisplayName) > 0 && ok && !id.ambiguous {
			id.ambiguous = true
			a.identities[string(e.RemoteAddress)] = id
		} else if len(e.DisplayName) > 0 && !ok && len(a.identities) < maxAddresses {
			a.identities[string(e.RemoteAddress)] = addrIdentity{ambiguous: true}
		}
		return
	}
	switch {
	case !ok:
		if len(a.identities) < maxAddresses {
			a.identities[string(e.RemoteAddress)] = addrIdentity{ns: string(ns), sa: string(sa)}
		}
	case !id.ambiguous && (id.sa != string(sa) || id.ns != string(ns)):
		id.ambiguous = true
		a.identities[string(e.RemoteAddress)] = id
	}
}

func (a *analyzer) report() *Report {
	r := a.rep
	o := a.o
	if !a.first.IsZero() {
		f, l := a.first, a.last
		r.First, r.Last = &f, &l
	}
	approx := func(name string, evicted bool) {
		if evicted {
			r.Approximate = append(r.Approximate, name)
		}
	}
	r.Approximate = []string{}

	r.AuthFailures = []AuthFailure{}
	for _, c := range a.failures.sorted(0, compareFailKey) {
		f := AuthFailure{Mount: c.key.mount, Role: c.key.role, RoleHMAC: strings.HasPrefix(c.key.role, "hmac:"), Error: c.key.err,
			Count: c.count, Overcount: c.overcount, First: c.val.first, Last: c.val.last, Attribution: "none", RemoteAddresses: slices.Clone(c.val.addrs)}
		if f.RemoteAddresses == nil {
			f.RemoteAddresses = []string{}
		}
		f.Namespace, f.ServiceAccount = a.attribute(c.val)
		if f.ServiceAccount != "" {
			f.Attribution = "remote-address"
		}
		r.AuthFailures = append(r.AuthFailures, f)
	}
	sortByCount(r.AuthFailures, func(f AuthFailure) int64 { return f.Count }, func(f AuthFailure) string {
		return f.Mount + "\x00" + f.Role + "\x00" + f.Namespace + "\x00" + f.ServiceAccount + "\x00" + f.Error
	})
	if len(r.AuthFailures) > o.Top {
		r.AuthFailures = r.AuthFailures[:o.Top]
	}
	approx("authFailures", a.failures.evicted)

	r.SecretLists = []Access{}
	for _, c := range a.lists.sorted(o.Top, compareAccessKey) {
		r.SecretLists = append(r.SecretLists, Access{Path: c.key.path, Operation: c.key.op, Client: c.key.client, Count: c.count, Overcount: c.overcount, First: c.val.first, Last: c.val.last})
	}
	approx("secretLists", a.lists.evicted)

	if o.Hours != nil {
		oh := &OffHours{Window: o.Hours.String(), Total: a.offTotal, Clients: []OffHourUse{}}
		for _, c := range a.off.sorted(o.Top, strings.Compare) {
			oh.Clients = append(oh.Clients, OffHourUse{Client: c.key, Count: c.count, Overcount: c.overcount, First: c.val.first, Last: c.val.last, SamplePath: c.val.sample})
		}
		r.OffHours = oh
		approx("offHours", a.off.evicted)
	}

	r.Renewals = Renewals{Threshold: o.RenewalThreshold, Total: a.renewTotal, Tokens: []TokenRenewal{}}
	for _, c := range a.renewals.sorted(0, strings.Compare) {
		if c.count <= int64(o.RenewalThreshold) || len(r.Renewals.Tokens) == o.Top {
			break
		}
		r.Renewals.Tokens = append(r.Renewals.Tokens, TokenRenewal{Accessor: c.key, Client: c.val.client, Count: c.count, Overcount: c.overcount, First: c.val.first, Last: c.val.last})
	}
	approx("renewals", a.renewals.evicted)

	r.Denied = []Denial{}
	for _, c := range a.denied.sorted(o.Top, compareDenyKey) {
		pol := []string{}
		if c.key.policies != "" {
			pol = strings.Split(c.key.policies, ",")
		}
		r.Denied = append(r.Denied, Denial{Path: c.key.path, Operation: c.key.op, Client: c.key.client, Policies: pol, Count: c.count, Overcount: c.overcount, First: c.val.first, Last: c.val.last})
	}
	approx("denied", a.denied.evicted)

	counts := func(t *topK[string, struct{}], name string) []Count {
		out := []Count{}
		for _, c := range t.sorted(o.Top, strings.Compare) {
			out = append(out, Count{Key: c.key, Count: c.count, Overcount: c.overcount})
		}
		approx(name, t.evicted)
		return out
	}
	r.TopPaths = counts(a.paths, "topPaths")
	r.TopClients = counts(a.clients, "topClients")
	r.TopAddresses = counts(a.addr, "topAddresses")
	return r
}

// Finding is one problem the report shows, for exit codes and a summary.
type Finding struct {
	Severity string `json:"severity"` // warning or info
	Code     string `json:"code"`
	Message  string `json:"message"`
	Count    int64  `json:"count"`
}

// Findings summarise the report: one per rule that found something.
func (r *Report) Findings() []Finding {
	out := []Finding{}
	sum := func(n int, f func(i int) int64) int64 {
		var s int64
		for i := range n {
			s += f(i)
		}
		return s
	}
	if n := sum(len(r.AuthFailures), func(i int) int64 { return r.AuthFailures[i].Count }); n > 0 {
		out = append(out, Finding{"warning", "auth-failures", fmt.Sprintf("%d failed logins in %d groups", n, len(r.AuthFailures)), n})
	}
	if n := sum(len(r.Denied), func(i int) int64 { return r.Denied[i].Count }); n > 0 {
		out = append(out, Finding{"warning", "policy-denied", fmt.Sprintf("%d requests denied by policy", n), n})
	}
	if n := sum(len(r.SecretLists), func(i int) int64 { return r.SecretLists[i].Count }); n > 0 {
		out = append(out, Finding{"warning", "secret-lists", fmt.Sprintf("%d list operations on secret paths (enumeration?)", n), n})
	}
	if r.OffHours != nil && r.OffHours.Total > 0 {
		out = append(out, Finding{"warning", "off-hours", fmt.Sprintf("%d requests outside %s", r.OffHours.Total, r.OffHours.Window), r.OffHours.Total})
	}
	if n := int64(len(r.Renewals.Tokens)); n > 0 {
		out = append(out, Finding{"warning", "excess-renewals", fmt.Sprintf("%d tokens renewed more than %d times", n, r.Renewals.Threshold), n})
	}
	return out
}

// isLogin: auth/<mount>/login, or auth/<mount>/login/<name> (userpass, ldap).
func isLogin(path []byte) bool {
	if !bytes.HasPrefix(path, []byte("auth/")) {
		return false
	}
	return bytes.HasSuffix(path, []byte("/login")) || bytes.Contains(path, []byte("/login/"))
}

func isTokenRenewal(path []byte) bool {
	switch string(path) {
	case "auth/token/renew", "auth/token/renew-self", "auth/token/renew-accessor":
		return true
	}
	return false
}

// isSecretMount: KV (v1 and v2) and its old name; list on sys/ or auth/ is not enumeration of
// secrets.
func isSecretMount(t []byte) bool {
	switch string(t) {
	case "kv", "generic":
		return true
	}
	return false
}

// roleName is the role a login asked for, as the report shows it.
func roleName(b []byte) string {
	if h, ok := bytes.CutPrefix(b, []byte("hmac-sha256:")); ok {
		if len(h) > 12 {
			h = h[:12]
		}
		return "hmac:" + string(h)
	}
	return string(b)
}

// clientOf names who made a request: namespace/ServiceAccount for Kubernetes-auth tokens (for
// a successful login, the identity it obtained), else the token's display name, else the
// address of an anonymous caller.
func clientOf(e *Entry, login bool) string {
	switch {
	case login && len(e.LoginSAName) > 0:
		return "sa:" + string(e.LoginSANamespace) + "/" + string(e.LoginSAName)
	case len(e.SAName) > 0:
		return "sa:" + string(e.SANamespace) + "/" + string(e.SAName)
	case login && len(e.LoginDisplayName) > 0:
		return string(e.LoginDisplayName)
	case len(e.DisplayName) > 0:
		return string(e.DisplayName)
	case len(e.RemoteAddress) > 0:
		return "anonymous@" + string(e.RemoteAddress)
	}
	return "anonymous"
}

func compareFailKey(a, b failKey) int {
	return strings.Compare(a.mount+"\x00"+a.role+"\x00"+a.err, b.mount+"\x00"+b.role+"\x00"+b.err)
}

// attribute names the ServiceAccount of a failed-login group when every one of its remote
// addresses (all of them kept) is known to belong to that one ServiceAccount alone.
func (a *analyzer) attribute(d failDetail) (ns, sa string) {
	if d.more || len(d.addrs) == 0 {
		return "", ""
	}
	for i, addr := range d.addrs {
		id, ok := a.identities[addr]
		if !ok || id.ambiguous || id.sa == "" || (i > 0 && (id.sa != sa || id.ns != ns)) {
			return "", ""
		}
		ns, sa = id.ns, id.sa
	}
	return ns, sa
}

func compareAccessKey(a, b accessKey) int {
	return strings.Compare(a.path+"\x00"+a.op+"\x00"+a.client, b.path+"\x00"+b.op+"\x00"+b.client)
}

func compareDenyKey(a, b denyKey) int {
	return strings.Compare(a.path+"\x00"+a.op+"\x00"+a.client+"\x00"+a.policies, b.path+"\x00"+b.op+"\x00"+b.client+"\x00"+b.policies)
}

// sortByCount sorts largest count first, ties by key, so reports are deterministic.
func sortByCount[T any](s []T, count func(T) int64, key func(T) string) {
	slices.SortFunc(s, func(a, b T) int {
		if c := cmp.Compare(count(b), count(a)); c != 0 {
			return c
		}
		return strings.Compare(key(a), key(b))
	})
}
