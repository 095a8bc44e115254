package migrate

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Templates the Vault Agent renders (consul-template syntax, which is Go's text/template plus
// functions such as secret, base64Decode and replaceAll). Each reads one KV v2 entry per
// migrated Secret, one KV key per Secret key; keys are read with index because Secret keys may
// hold "." or "-", which field syntax (.Data.data.KEY) cannot name.

// kvReadPath is the path the template's secret function reads: the KV v2 API path
// MOUNT/data/REST of the Source's logical path MOUNT/REST. consul-template would add data/ by
// itself, but writing it keeps the annotation and the workload's policy (which must name
// MOUNT/data/...) saying the same thing.
func kvReadPath(src Source) (string, error) {
	mount := strings.Trim(src.Mount, "/")
	if mount == "" {
		return "", fmt.Errorf("Secret %s: the KV mount is empty; the plan must give the KV v2 mount its path is on", src.Secret)
	}
	rest, ok := strings.CutPrefix(strings.Trim(src.KVPath, "/"), mount+"/")
	if !ok || rest == "" {
		return "", fmt.Errorf("Secret %s: KV path %q is not an entry under the mount %q; the plan's migration.kvPath must start with {mount}", src.Secret, src.KVPath, mount)
	}
	return mount + "/data/" + rest, nil
}

// valueExpr is the template expression for one key's value: the stored string, decoded first
// when the key is stored base64 because its value is not valid UTF-8.
func valueExpr(src Source, key string) string {
	expr := "index .Data.data " + strconv.Quote(key)
	if src.Binary[key] {
		expr += " | base64Decode"
	}
	return expr
}

// fileTemplate renders one key's value as the whole file, byte for byte: nothing outside the
// actions, so no newline is added.
func fileTemplate(readPath string, src Source, key string) string {
	return "{{ with secret " + strconv.Quote(readPath) + " }}{{ " + valueExpr(src, key) + " }}{{ end }}"
}

// envExport is one variable of a container's env file.
type envExport struct {
	Name   string
	Secret string
	Key    string
}

// envTemplate renders a file a POSIX shell sources: one `export NAME='VALUE'` line per
// variable, grouped by Secret in the order given. Inside single quotes a shell takes every byte
// literally (newlines, $, ", spaces, bytes that are not UTF-8) except ' itself, which the
// template replaces with a close quote, a backslash-escaped quote and an open quote.
func envTemplate(groups []envGroup) string {
	var b strings.Builder
	for _, g := range groups {
		b.WriteString("{{ with secret " + strconv.Quote(g.ReadPath) + " }}")
		for _, v := range g.Vars {
			b.WriteString("export " + v.Name + "='{{ " + valueExpr(g.Source, v.Key) + ` | replaceAll "'" "'\\''" }}'` + "\n")
		}
		b.WriteString("{{ end }}")
	}
	return b.String()
}

// envGroup is the variables of an env file that one Secret provides.
type envGroup struct {
	Source   Source
	ReadPath string
	Vars     []envExport
}

// shellName matches the names a POSIX shell can export. The kubelet also accepts names a shell
// cannot set (relaxed env var validation allows "tls.crt" from envFrom), which are manual.
var shellName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envReferences lists the variables a string refers to the way the kubelet expands env values,
// command and args (k8s third_party/forked/golang/expansion): $(NAME) is a reference, $$ is an
// escaped $, and a $( that is never closed, or $ before anything else, is literal text.
func envReferences(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			continue
		}
		if s[i+1] != '(' {
			i++ // $$ (an escaped $) or $x: the next byte starts nothing
			continue
		}
		end := strings.IndexByte(s[i+2:], ')')
		if end < 0 {
			return out // unclosed: the rest is literal
		}
		out = append(out, s[i+2:i+2+end])
		i += 2 + end
	}
	return out
}
