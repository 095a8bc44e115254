// Command auditgen writes a synthetic Vault audit log shaped like Vault 1.21's file device
// output (keys, nesting, HMAC'd values and sizes taken from a real log of a dev server with a
// Kubernetes auth mount): request and response entries for Kubernetes logins (most succeed,
// some fail with "service account name not authorized" or "permission denied", some with the
// role HMAC'd as on a mount without audit_non_hmac_request_keys), KV v2 reads, metadata lists,
// reads denied by policy and token renewals. Used by bench/audit.sh.
//
//	go run ./bench/auditgen -size 1073741824 > audit.log
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

func main() {
	size := flag.Int64("size", 1<<30, "bytes to write (approximately)")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	g := gen{r: rand.New(rand.NewPCG(*seed, 2)), t: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), w: w}
	for g.n < *size {
		g.one()
	}
}

type gen struct {
	r *rand.Rand
	t time.Time
	w *bufio.Writer
	n int64
}

func (g *gen) hmac(s string) string {
	h := sha256.Sum256([]byte(s))
	return "hmac-sha256:" + hex.EncodeToString(h[:])
}

var (
	namespaces = []string{"production", "staging", "payments", "search", "web"}
	apps       = []string{"webapp", "api", "worker", "billing", "indexer", "frontend", "cron", "gateway"}
)

func (g *gen) printf(format string, a ...any) {
	n, _ := fmt.Fprintf(g.w, format, a...)
	g.n += int64(n)
}

func (g *gen) one() {
	g.t = g.t.Add(time.Duration(g.r.IntN(200)) * time.Millisecond)
	ns := namespaces[g.r.IntN(len(namespaces))]
	app := apps[g.r.IntN(len(apps))]
	sa := app + "-sa"
	role := ns + "-" + app
	addr := fmt.Sprintf("10.%d.%d.%d", g.r.IntN(4), g.r.IntN(256), g.r.IntN(256))
	port := 30000 + g.r.IntN(30000)
	id := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", g.r.Uint32(), g.r.IntN(65536), g.r.IntN(65536), g.r.IntN(65536), g.r.Uint64()&0xffffffffffff)
	tok := g.hmac(id + "tok")
	acc := g.hmac(ns + sa + fmt.Sprint(g.r.IntN(2000)))
	issue := g.t.Add(-time.Duration(g.r.IntN(3600)) * time.Second).Format(time.RFC3339)
	clientID := hex.EncodeToString([]byte(id))[:43] + "="
	ts := func(d time.Duration) string { return g.t.Add(d).Format(time.RFC3339Nano) }
	tokenAuth := func(allowed bool) string {
		return fmt.Sprintf(`{"accessor":"%s","client_token":"%s","display_name":"kubernetes-%s-%s","entity_id":"%s","metadata":{"role":"%s","service_account_name":"%s","service_account_namespace":"%s","service_account_secret_name":"","service_account_uid":"%s"},"policies":["default","%s-read"],"policy_results":{"allowed":%t,"granting_policies":[{"name":"%s-read","namespace_id":"root","type":"acl"}]},"token_policies":["default","%s-read"],"token_issue_time":"%s","token_ttl":3600,"token_type":"service"}`,
			acc, tok, ns, sa, id, role, sa, ns, id, role, allowed, role, role, issue)
	}
	req := func(op, path, mountType, mountPoint, data string, extra string) string {
		if data != "" {
			data = `"data":` + data + `,`
		}
		return fmt.Sprintf(`{"client_id":"%s","client_token":"%s","client_token_accessor":"%s",%s"headers":{"user-agent":["Go-http-client/1.1"]},"id":"%s","mount_accessor":"%s_%08x","mount_class":"secret","mount_point":"%s","mount_running_version":"v0.25.0+builtin","mount_type":"%s","namespace":{"id":"root"},"operation":"%s","path":"%s","remote_address":"%s","remote_port":%d%s}`,
			clientID, tok, acc, data, id, mountType, g.r.Uint32(), mountPoint, mountType, op, path, addr, port, extra)
	}
	switch k := g.r.IntN(100); {
	case k < 12: // Kubernetes login
		r := role
		if g.r.IntN(4) == 0 {
			r = g.hmac(role) // a mount without audit_non_hmac_request_keys
		}
		data := fmt.Sprintf(`{"jwt":"%s","role":"%s"}`, g.hmac(id+"jwt"), r)
		rq := fmt.Sprintf(`{"client_id":"","headers":{"user-agent":["vault-agent/1.21.1"]},"data":%s,"id":"%s","mount_accessor":"auth_kubernetes_7ccce843","mount_class":"auth","mount_point":"auth/kubernetes/","mount_running_version":"v0.23.1+builtin","mount_type":"kubernetes","namespace":{"id":"root"},"operation":"update","path":"auth/kubernetes/login","remote_address":"%s","remote_port":%d}`, data, id, addr, port)
		noAuth := `{"policy_results":{"allowed":true},"token_type":"default"}`
		g.printf(`{"auth":%s,"request":%s,"time":"%s","type":"request"}`+"\n", noAuth, rq, ts(0))
		switch f := g.r.IntN(10); {
		case f < 2:
			g.printf(`{"auth":%s,"error":"service account name not authorized","request":%s,"time":"%s","type":"response"}`+"\n", noAuth, rq, ts(2*time.Millisecond))
		case f < 3:
			g.printf(`{"auth":%s,"error":"permission denied","request":%s,"time":"%s","type":"response"}`+"\n", noAuth, rq, ts(2*time.Millisecond))
		default:
			resp := fmt.Sprintf(`{"auth":{"accessor":"%s","client_token":"%s","display_name":"kubernetes-%s-%s","entity_id":"%s","metadata":{"role":"%s","service_account_name":"%s","service_account_namespace":"%s","service_account_secret_name":"","service_account_uid":"%s"},"policies":["default","%s-read"],"token_policies":["default","%s-read"],"token_issue_time":"%s","token_ttl":3600,"token_type":"service"},"mount_accessor":"auth_kubernetes_7ccce843","mount_class":"auth","mount_point":"auth/kubernetes/","mount_running_plugin_version":"v0.23.1+builtin","mount_type":"kubernetes"}`,
				acc, tok, ns, sa, id, role, sa, ns, id, role, role, issue)
			g.printf(`{"auth":%s,"request":%s,"response":%s,"time":"%s","type":"response"}`+"\n", noAuth, rq, resp, ts(3*time.Millisecond))
		}
	case k < 75: // KV v2 read
		rq := req("read", "secret/data/"+ns+"/"+app+"/db-credentials", "kv", "secret/", "", "")
		g.printf(`{"auth":%s,"request":%s,"time":"%s","type":"request"}`+"\n", tokenAuth(true), rq, ts(0))
		resp := fmt.Sprintf(`{"data":{"data":{"password":"%s","username":"%s"},"metadata":{"created_time":"%s","custom_metadata":null,"deletion_time":"","destroyed":false,"version":3}},"mount_accessor":"kv_%08x","mount_class":"secret","mount_point":"secret/","mount_running_plugin_version":"v0.25.0+builtin","mount_type":"kv"}`,
			g.hmac(id+"pw"), g.hmac(id+"user"), g.hmac(issue), g.r.Uint32())
		g.printf(`{"auth":%s,"request":%s,"response":%s,"time":"%s","type":"response"}`+"\n", tokenAuth(true), rq, resp, ts(time.Millisecond))
	case k < 80: // list
		rq := req("list", "secret/metadata/"+ns+"/", "kv", "secret/", "", `,"request_uri":"/v1/secret/metadata/`+ns+`?list=true"`)
		g.printf(`{"auth":%s,"request":%s,"time":"%s","type":"request"}`+"\n", tokenAuth(true), rq, ts(0))
		resp := fmt.Sprintf(`{"data":{"keys":["%s","%s"]},"mount_class":"secret","mount_point":"secret/","mount_running_plugin_version":"v0.25.0+builtin","mount_type":"kv"}`, g.hmac(app), g.hmac(app+"x"))
		g.printf(`{"auth":%s,"request":%s,"response":%s,"time":"%s","type":"response"}`+"\n", tokenAuth(true), rq, resp, ts(time.Millisecond))
	case k < 85: // denied
		rq := req("read", "secret/data/"+namespaces[g.r.IntN(len(namespaces))]+"/admin", "kv", "secret/", "", "")
		g.printf(`{"auth":%s,"error":"1 error occurred:\n\t* permission denied\n\n","request":%s,"time":"%s","type":"request"}`+"\n", tokenAuth(false), rq, ts(0))
		resp := fmt.Sprintf(`{"data":{"error":"%s"},"mount_class":"secret","mount_point":"secret/","mount_running_plugin_version":"v0.25.0+builtin","mount_type":"kv"}`, g.hmac("permission denied"))
		g.printf(`{"auth":%s,"error":"1 error occurred:\n\t* permission denied\n\n","request":%s,"response":%s,"time":"%s","type":"response"}`+"\n", tokenAuth(false), rq, resp, ts(time.Millisecond))
	default: // renewal
		rq := req("update", "auth/token/renew-self", "token", "auth/token/", fmt.Sprintf(`{"increment":"%s"}`, g.hmac("0")), "")
		g.printf(`{"auth":%s,"request":%s,"time":"%s","type":"request"}`+"\n", tokenAuth(true), rq, ts(0))
		resp := fmt.Sprintf(`{"auth":{"accessor":"%s","client_token":"%s","display_name":"kubernetes-%s-%s","metadata":{"role":"%s","service_account_name":"%s","service_account_namespace":"%s"},"policies":["default","%s-read"],"token_policies":["default","%s-read"],"token_issue_time":"%s","token_ttl":3600,"token_type":"service"},"mount_accessor":"auth_token_b9f13db1","mount_class":"auth","mount_point":"auth/token/","mount_running_plugin_version":"v1.21.1+builtin.vault","mount_type":"token"}`,
			acc, tok, ns, sa, role, sa, ns, role, role, issue)
		g.printf(`{"auth":%s,"request":%s,"response":%s,"time":"%s","type":"response"}`+"\n", tokenAuth(true), rq, resp, ts(time.Millisecond))
	}
}
