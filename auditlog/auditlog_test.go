package auditlog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// realLog is a Vault 1.21.1 dev server's file audit device output: Kubernetes logins failing
// with the role HMAC'd and (after `vault auth tune -audit-non-hmac-request-keys=role`) in
// clear, an invalid role, KV reads, a read and a list denied by policy, lists and a renewal.
const realLog = "testdata/vault-1.21.log"

// reference decodes a line with encoding/json into the same fields, to hold the scanner to.
type reference struct {
	Type  string  `json:"type"`
	Time  string  `json:"time"`
	Error *string `json:"error"`
	Auth  *struct {
		DisplayName string   `json:"display_name"`
		Accessor    string   `json:"accessor"`
		Policies    []string `json:"policies"`
		Metadata    struct {
			SA   string `json:"service_account_name"`
			NS   string `json:"service_account_namespace"`
			Role string `json:"role"`
		} `json:"metadata"`
	} `json:"auth"`
	Request *struct {
		Operation     string         `json:"operation"`
		Path          string         `json:"path"`
		MountType     string         `json:"mount_type"`
		MountPoint    string         `json:"mount_point"`
		RemoteAddress string         `json:"remote_address"`
		Data          map[string]any `json:"data"`
	} `json:"request"`
	Response *struct {
		Data map[string]any `json:"data"`
		Auth *struct {
			DisplayName string `json:"display_name"`
			Metadata    struct {
				SA   string `json:"service_account_name"`
				NS   string `json:"service_account_namespace"`
				Role string `json:"role"`
			} `json:"metadata"`
		} `json:"auth"`
	} `json:"response"`
}

func (r reference) fields() map[string]string {
	f := map[string]string{"type": r.Type}
	if r.Error != nil {
		f["error"] = *r.Error
	}
	if a := r.Auth; a != nil {
		f["display"], f["accessor"], f["policies"] = a.DisplayName, a.Accessor, strings.Join(a.Policies, ",")
		f["sa"], f["ns"], f["role"] = a.Metadata.SA, a.Metadata.NS, a.Metadata.Role
	}
	if q := r.Request; q != nil {
		f["op"], f["path"], f["mountType"], f["mountPoint"], f["addr"] = q.Operation, q.Path, q.MountType, q.MountPoint, q.RemoteAddress
		if s, ok := q.Data["role"].(string); ok {
			f["dataRole"] = s
		}
	}
	if p := r.Response; p != nil {
		if _, ok := p.Data["error"]; ok {
			f["respDataError"] = "true"
		}
		if a := p.Auth; a != nil {
			f["loginDisplay"], f["loginSA"], f["loginNS"], f["loginRole"] = a.DisplayName, a.Metadata.SA, a.Metadata.NS, a.Metadata.Role
		}
	}
	return prune(f)
}

func (e *Entry) fields() map[string]string {
	var pol []string
	for _, p := range e.Policies {
		pol = append(pol, string(p))
	}
	f := map[string]string{"type": string(e.Type), "error": string(e.Error), "display": string(e.DisplayName), "accessor": string(e.Accessor),
		"policies": strings.Join(pol, ","), "sa": string(e.SAName), "ns": string(e.SANamespace), "role": string(e.Role),
		"op": string(e.Operation), "path": string(e.Path), "mountType": string(e.MountType), "mountPoint": string(e.MountPoint),
		"addr": string(e.RemoteAddress), "dataRole": string(e.DataRole), "loginDisplay": string(e.LoginDisplayName),
		"loginSA": string(e.LoginSAName), "loginNS": string(e.LoginSANamespace), "loginRole": string(e.LoginRole)}
	if e.RespDataError {
		f["respDataError"] = "true"
	}
	return prune(f)
}

func prune(f map[string]string) map[string]string {
	for k, v := range f {
		if v == "" {
			delete(f, k)
		}
	}
	return f
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// The scanner reads what encoding/json reads, on Vault's real lines and on edge cases.
func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	lines := readLines(t, realLog)
	lines = append(lines,
		[]byte(`{"type":"response","error":"1 error occurred:\n\t* permission denied\n\n","request":{"path":"secret/data/a\"b\\\\","data":{"role":"we\u0062"}},"auth":{"policies":["a\/b","c"]},"time":"2026-12-01T11:18:19Z"}`),
		[]byte(` { "type" : "request" , "auth" : null , "request" : { "data" : null , "path" : "x" } , "response" : null , "error" : null , "time" : "2026-12-01T11:18:19.5+01:00" } `),
		[]byte(`{"request":{"data":{"role":["not","a","string"],"nested":{"role":"x"}}},"response":{"data":{"error":{"deep":[1,2,{"x":"}"}]}}},"type":"response"}`),
		[]byte(`{"auth":{"metadata":{"service_account_name":"s\u00e9","role":"r"}},"response":{"auth":{"metadata":{"service_account_name":"w","service_account_namespace":"n"}}}}`),
	)
	var e Entry
	for i, l := range lines {
		var ref reference
		if err := json.Unmarshal(l, &ref); err != nil {
			t.Fatalf("line %d: reference: %v", i, err)
		}
		if err := decodeEntry(l, &e); err != nil {
			t.Fatalf("line %d: %v\n%s", i, err, l)
		}
		if got, want := e.fields(), ref.fields(); !reflect.DeepEqual(got, want) {
			t.Errorf("line %d:\n got %v\nwant %v", i, got, want)
		}
		if ref.Time != "" {
			want, _ := time.Parse(time.RFC3339Nano, ref.Time)
			if !e.Time.Equal(want) {
				t.Errorf("line %d: time %v, want %v", i, e.Time, want)
			}
		}
	}
}

func TestDecodeRefusesBrokenLines(t *testing.T) {
	for _, l := range []string{
		`{"type":"response"`,                       // truncated
		`{"type":"response","request":{"path":"x}`, // unterminated string
		`{"type" "response"}`,
		`{"auth":{"policies":["a",]}}x`,
		`{"time":"yesterday"}`,
		`{"request":{"data":{"x":[1,2}}}`,
		`[]`,
	} {
		var e Entry
		if err := decodeEntry([]byte(l), &e); err == nil {
			t.Errorf("%s: accepted", l)
		}
	}
}

func TestParseTime(t *testing.T) {
	for _, s := range []string{"2026-12-01T11:18:19.286633762Z", "2026-12-01T11:18:19Z", "2026-12-01T11:18:19.5Z", "2026-12-01T12:18:19.25+01:00", "2026-02-28T23:59:59.000000001Z"} {
		want, _ := time.Parse(time.RFC3339Nano, s)
		got, ok := parseTime([]byte(s))
		if !ok || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"2026-13-01T11:18:19Z", "2026-12-01T11:18:19.Z", "2026-12-01 11:18:19Z"} {
		if _, ok := parseTime([]byte(s)); ok {
			t.Errorf("%s: accepted", s)
		}
	}
}

// line builds an audit entry in Vault's shape.
func line(typ, ts, path, op string, kv ...string) string {
	m := map[string]any{"type": typ, "time": ts}
	req := map[string]any{"path": path, "operation": op, "remote_address": "10.0.0.1", "mount_type": "kv", "mount_point": "secret/"}
	auth := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		switch k, v := kv[i], kv[i+1]; k {
		case "error":
			m["error"] = v
		case "role":
			req["data"] = map[string]any{"role": v, "jwt": "hmac-sha256:00"}
		case "addr":
			req["remote_address"] = v
		case "mount_type":
			req["mount_type"] = v
		case "mount_point":
			req["mount_point"] = v
		case "sa":
			ns, sa, _ := strings.Cut(v, "/")
			auth["metadata"] = map[string]any{"service_account_name": sa, "service_account_namespace": ns}
			auth["display_name"] = "kubernetes-" + ns + "-" + sa
		case "display":
			auth["display_name"] = v
		case "accessor":
			auth["accessor"] = v
		case "policies":
			auth["policies"] = strings.Split(v, ",")
		case "login_sa":
			ns, sa, _ := strings.Cut(v, "/")
			m["response"] = map[string]any{"auth": map[string]any{"metadata": map[string]any{"service_account_name": sa, "service_account_namespace": ns}}}
		case "resp_error":
			m["response"] = map[string]any{"data": map[string]any{"error": "hmac-sha256:ff"}}
		}
	}
	m["request"], m["auth"] = req, auth
	b, _ := json.Marshal(m)
	return string(b)
}

func analyze(t *testing.T, o Options, text string) *Report {
	t.Helper()
	r, err := Analyze(context.Background(), o, Input{Name: "t", R: strings.NewReader(text)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRules(t *testing.T) {
	const ts = "2026-12-01T10:00:00.5Z"
	login := func(kv ...string) string {
		kv = append([]string{"mount_type", "kubernetes", "mount_point", "auth/kubernetes/"}, kv...)
		return line("request", ts, "auth/kubernetes/login", "update", kv...) + "\n" + line("response", ts, "auth/kubernetes/login", "update", kv...) + "\n"
	}
	t.Run("failed logins are grouped by role and error, counted once per request", func(t *testing.T) {
		r := analyze(t, Options{}, login("role", "web", "error", "service account name not authorized")+
			login("role", "web", "error", "service account name not authorized")+
			login("role", "hmac-sha256:0d323111ed6eed34d7563660c52e", "error", "permission denied")+
			login("role", "nope", "resp_error", "")+
			login("role", "web", "login_sa", "prod/web-sa"))
		got := fmt.Sprint(r.AuthFailures)
		if len(r.AuthFailures) != 3 {
			t.Fatalf("failures: %s", got)
		}
		f := r.AuthFailures[0]
		if f.Role != "web" || f.Count != 2 || f.Error != "service account name not authorized" || f.Mount != "auth/kubernetes/" || f.RoleHMAC {
			t.Errorf("first group: %+v", f)
		}
		var sawHMAC, saw4xx bool
		for _, f := range r.AuthFailures[1:] {
			sawHMAC = sawHMAC || (f.Role == "hmac:0d323111ed6e" && f.RoleHMAC && f.Error == "permission denied")
			saw4xx = saw4xx || (f.Role == "nope" && strings.Contains(f.Error, "4xx"))
		}
		if !sawHMAC || !saw4xx {
			t.Errorf("HMAC'd role or 4xx missing: %s", got)
		}
	})
	t.Run("a failed login is attributed to the one ServiceAccount of its address, never to a shared one", func(t *testing.T) {
		r := analyze(t, Options{}, line("response", ts, "secret/data/x", "read", "sa", "prod/web-sa", "addr", "10.0.0.7")+"\n"+
			login("role", "web", "error", "permission denied", "addr", "10.0.0.7")+
			line("response", ts, "secret/data/x", "read", "sa", "prod/a", "addr", "10.0.0.8")+"\n"+
			line("response", ts, "secret/data/x", "read", "sa", "prod/b", "addr", "10.0.0.8")+"\n"+
			login("role", "api", "error", "permission denied", "addr", "10.0.0.8")+
			login("role", "mixed", "error", "permission denied", "addr", "10.0.0.7")+
			login("role", "mixed", "error", "permission denied", "addr", "10.0.0.9"))
		byRole := map[string]AuthFailure{}
		for _, f := range r.AuthFailures {
			byRole[f.Role] = f
		}
		if f := byRole["web"]; f.ServiceAccount != "web-sa" || f.Namespace != "prod" || f.Attribution != "remote-address" {
			t.Errorf("attributed: %+v", f)
		}
		if f := byRole["api"]; f.ServiceAccount != "" || f.Attribution != "none" {
			t.Errorf("shared address attributed: %+v", f)
		}
		if f := byRole["mixed"]; f.ServiceAccount != "" || len(f.RemoteAddresses) != 2 {
			t.Errorf("a group with an unknown address attributed: %+v", f)
		}
	})
	t.Run("denials name the path and the token's policies; lists on KV are reported, on sys/ not", func(t *testing.T) {
		denied := func(typ string) string {
			return line(typ, ts, "secret/data/other/x", "read", "sa", "prod/web-sa", "policies", "default,ro", "error", "1 error occurred:\n\t* permission denied\n\n") + "\n"
		}
		r := analyze(t, Options{}, denied("request")+denied("response")+
			line("response", ts, "secret/metadata/prod/", "list", "sa", "prod/web-sa")+"\n"+
			line("response", ts, "sys/policies/acl", "list", "display", "root", "mount_type", "system")+"\n")
		if len(r.Denied) != 1 || r.Denied[0].Count != 1 || r.Denied[0].Path != "secret/data/other/x" || strings.Join(r.Denied[0].Policies, ",") != "default,ro" || r.Denied[0].Client != "sa:prod/web-sa" {
			t.Errorf("denied: %+v", r.Denied)
		}
		if len(r.SecretLists) != 1 || r.SecretLists[0].Path != "secret/metadata/prod/" {
			t.Errorf("lists: %+v", r.SecretLists)
		}
	})
	t.Run("off hours are judged on the wall clock of --tz", func(t *testing.T) {
		h, err := ParseHours("08:00-19:00", "Europe/Paris")
		if err != nil {
			t.Fatal(err)
		}
		// 06:30Z is 07:30 in Paris (winter): outside; 07:30Z is 08:30: inside; 18:30Z is 19:30: outside.
		r := analyze(t, Options{Hours: h}, line("response", "2026-12-01T06:30:00Z", "secret/data/a", "read", "sa", "prod/night")+"\n"+
			line("response", "2026-12-01T07:30:00Z", "secret/data/a", "read", "sa", "prod/day")+"\n"+
			line("response", "2026-12-01T18:30:00Z", "secret/data/a", "read", "sa", "prod/night")+"\n")
		if r.OffHours == nil || r.OffHours.Total != 2 || len(r.OffHours.Clients) != 1 || r.OffHours.Clients[0].Client != "sa:prod/night" {
			t.Errorf("off hours: %+v", r.OffHours)
		}
		wrap, _ := ParseHours("22:00-06:00", "")
		if !wrap.Inside(time.Date(2026, 1, 1, 23, 0, 0, 0, time.UTC)) || wrap.Inside(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)) {
			t.Error("a window across midnight")
		}
		for _, bad := range [][2]string{{"8-19", ""}, {"08:00-08:00", ""}, {"08:00-19:00", "Mars/Olympus"}} {
			if _, err := ParseHours(bad[0], bad[1]); err == nil {
				t.Errorf("ParseHours(%q, %q) accepted", bad[0], bad[1])
			}
		}
	})
	t.Run("renewals beyond the threshold", func(t *testing.T) {
		var b strings.Builder
		for i := range 5 {
			acc := "hmac-sha256:busy"
			if i == 4 {
				acc = "hmac-sha256:calm"
			}
			b.WriteString(line("response", ts, "auth/token/renew-self", "update", "sa", "prod/web-sa", "accessor", acc, "mount_type", "token") + "\n")
		}
		r := analyze(t, Options{RenewalThreshold: 3}, b.String())
		if r.Renewals.Total != 5 || len(r.Renewals.Tokens) != 1 || r.Renewals.Tokens[0].Accessor != "hmac-sha256:busy" || r.Renewals.Tokens[0].Count != 4 {
			t.Errorf("renewals: %+v", r.Renewals)
		}
	})
	t.Run("since and until", func(t *testing.T) {
		r := analyze(t, Options{Since: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Until: time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)},
			line("response", "2026-12-01T09:59:59.999Z", "a", "read")+"\n"+line("response", "2026-12-01T10:00:00Z", "b", "read")+"\n"+line("response", "2026-12-01T11:00:00Z", "c", "read")+"\n")
		if r.Stats.Entries != 1 || r.Stats.OutOfRange != 2 || len(r.TopPaths) != 1 || r.TopPaths[0].Key != "b" {
			t.Errorf("range: %+v %+v", r.Stats, r.TopPaths)
		}
	})
	t.Run("server messages, truncated lines and gzip", func(t *testing.T) {
		text := "==> Vault server started! Log data will stream in below:\n" +
			line("response", ts, "a", "read") + "\n" + `{"type":"response","tim` + "\n"
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(text))
		zw.Close()
		for name, in := range map[string]string{"plain": text, "gzip": gz.String()} {
			r := analyze(t, Options{}, in)
			if r.Stats.Lines != 3 || r.Stats.NotJSON != 1 || r.Stats.Malformed != 1 || r.Stats.Responses != 1 {
				t.Errorf("%s: %+v", name, r.Stats)
			}
		}
	})
}

// A line longer than the reader's buffer is decoded whole; one over MaxLineBytes is skipped
// and the next line is read normally.
func TestLongLines(t *testing.T) {
	big := line("response", "2026-12-01T10:00:00Z", "secret/data/big", "update", "role", strings.Repeat("x", 3<<20))
	huge := `{"x":"` + strings.Repeat("y", MaxLineBytes) + `"}`
	r := analyze(t, Options{}, big+"\n"+huge+"\n"+line("response", "2026-12-01T10:00:00Z", "after", "read")+"\n")
	if r.Stats.Responses != 2 || r.Stats.Oversized != 1 || r.Stats.Lines != 3 {
		t.Fatalf("%+v", r.Stats)
	}
}

// Tables stay within Capacity, keep the heavy hitters exactly and say when they are estimates.
func TestTablesAreBounded(t *testing.T) {
	var b strings.Builder
	for i := range 2000 {
		b.WriteString(line("response", "2026-12-01T10:00:00Z", fmt.Sprintf("secret/data/rare-%d", i), "read") + "\n")
		if i%4 == 0 {
			b.WriteString(line("response", "2026-12-01T10:00:00Z", "secret/data/hot", "read") + "\n")
		}
	}
	r := analyze(t, Options{Capacity: 50, Top: 1}, b.String())
	if len(r.TopPaths) != 1 || r.TopPaths[0].Key != "secret/data/hot" || r.TopPaths[0].Count-r.TopPaths[0].Overcount > 500 || r.TopPaths[0].Count < 500 {
		t.Fatalf("top path: %+v", r.TopPaths)
	}
	if !strings.Contains(strings.Join(r.Approximate, ","), "topPaths") {
		t.Fatalf("approximate: %v", r.Approximate)
	}
	exact := analyze(t, Options{}, b.String())
	if exact.TopPaths[0].Count != 500 || exact.TopPaths[0].Overcount != 0 || len(exact.Approximate) != 0 {
		t.Fatalf("exact: %+v %v", exact.TopPaths[0], exact.Approximate)
	}
}

// The report of the real log, as JSON (go test ./auditlog -update rewrites it).
func TestGoldenReport(t *testing.T) {
	f, err := os.Open(realLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, _ := ParseHours("08:00-12:00", "Europe/Paris")
	r, err := Analyze(context.Background(), Options{Hours: h, RenewalThreshold: 0}, Input{Name: filepath.Base(realLog), R: bufio.NewReader(f)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(struct {
		Report   *Report   `json:"report"`
		Findings []Finding `json:"findings"`
	}{r, r.Findings()}, "", "  ")
	golden := "testdata/vault-1.21.golden.json"
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(bytes.TrimSpace(want)) != string(got) {
		t.Errorf("report differs from %s (go test ./auditlog -update):\n%s", golden, got)
	}
}

func TestTopKNeverHoldsMoreThanItsCapacity(t *testing.T) {
	k := newTopK[string, span](8)
	for i := range 10_000 {
		k.add(fmt.Sprint(i % 977))
		k.add("hot")
		if len(k.index) > 8 || len(k.h.items) > 8 {
			t.Fatalf("after %d keys: %d counters", i, len(k.h.items))
		}
	}
	top := k.sorted(1, strings.Compare)
	if top[0].key != "hot" || top[0].count-top[0].overcount > 10_000 || top[0].count < 10_000 {
		t.Fatalf("heavy hitter: %+v", top[0])
	}
	for key, i := range k.index {
		if k.h.items[i].key != key {
			t.Fatalf("index out of step at %q", key)
		}
	}
}

// Where encoding/json accepts a line into the reference fields, the scanner accepts it and
// reads the same; it never panics on anything.
func FuzzDecode(f *testing.F) {
	for _, l := range readLines(&testing.T{}, realLog) {
		f.Add(l)
	}
	f.Add([]byte(`{"type":"response","error":"a\"b","request":{"path":"x\\\\"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var e Entry
		err := decodeEntry(line, &e)
		var ref reference
		// encoding/json matches keys case-insensitively and lets a repeated key win; Vault
		// writes each key once, in lower case, which is what the scanner reads.
		if json.Unmarshal(line, &ref) != nil || !bytes.Equal(bytes.ToLower(line), line) || hasRepeatedKey(line) {
			return
		}
		if ref.Time != "" {
			if _, perr := time.Parse(time.RFC3339Nano, ref.Time); perr != nil {
				return
			}
		}
		if err != nil {
			t.Fatalf("refused a line encoding/json reads: %v\n%q", err, line)
		}
		if got, want := e.fields(), ref.fields(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %v\nwant %v", line, got, want)
		}
	})
}

// hasRepeatedKey reports a key name seen twice at the same depth (conservative: two
// sibling objects with the same key count too).
func hasRepeatedKey(line []byte) bool {
	seen := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(line))
	type frame struct{ obj, wantKey bool }
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		top := len(stack) - 1
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top >= 0 && stack[top].obj {
					stack[top].wantKey = true
				}
				stack = append(stack, frame{obj: v == '{', wantKey: v == '{'})
			default:
				stack = stack[:top]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].wantKey = true
				}
			}
			continue
		case string:
			if top >= 0 && stack[top].obj && stack[top].wantKey {
				key := fmt.Sprintf("%d/%s", len(stack), v)
				if seen[key] {
					return true
				}
				seen[key] = true
				stack[top].wantKey = false
				continue
			}
		}
		if top >= 0 && stack[top].obj {
			stack[top].wantKey = true
		}
	}
}
