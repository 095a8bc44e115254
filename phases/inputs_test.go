package phases

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
)

// A phase's checkpoint says "applied" until its input hash changes, so every config key a
// phase reads must be in its Inputs. This test finds what a phase reads by what it does: it
// mutates every leaf of the config, one at a time, runs each phase's Check on a fresh estate of
// fakes, and compares what the phase did (its diff or error, the Vault, Kubernetes and Helm
// calls it made, the Helm values it sent) with the unmutated run. A phase that behaves
// differently while its input hash stayed the same reads config it does not declare.
func TestEveryConfigKeyAPhaseReadsChangesItsInputHash(t *testing.T) {
	bases := map[string]func() *config.Config{
		"external":   func() *config.Config { return behaviourConfig(config.ModeExternal) },
		"in-cluster": func() *config.Config { return behaviourConfig(config.ModeInCluster) },
	}
	for mode, base := range bases {
		names := (&Runner{Phases: All(&Env{Config: base()})}).Names()
		want := map[string]observed{}
		for _, n := range names {
			want[n] = observe(t, base(), base(), n)
		}
		for _, path := range leafPaths(reflect.ValueOf(base()).Elem(), nil) {
			cfg := base()
			what := mutate(reflect.ValueOf(cfg).Elem(), path)
			for _, n := range names {
				got := observe(t, base(), cfg, n)
				if got.behaviour != want[n].behaviour && got.hash == want[n].hash {
					t.Errorf("%s mode: phase %s reads %s (its behaviour changed) but its Inputs do not hold it (hash unchanged)\nbefore: %s\nafter:  %s",
						mode, n, what, want[n].behaviour, got.behaviour)
				}
			}
		}
	}
}

// behaviourConfig is the example config with every section filled, so that every key has a
// value a phase can read.
func behaviourConfig(mode string) *config.Config {
	return exampleConfig(func(c *config.Config) {
		c.Vault.Mode = mode
		if mode == config.ModeInCluster {
			c.Vault.Address = ""
		}
		c.Vault.TLS.ExtraSANs = []string{"vault.example.com"}
		c.Vault.Seal.AWSKMS.IRSARoleARN = "arn:aws:iam::1:role/vault"
		c.NetworkPolicies.Enabled = true
		c.NetworkPolicies.AllowedClients = []config.AllowedClient{{Namespace: "production", PodSelector: map[string]string{"app": "webapp"}}}
		c.NetworkPolicies.APIServerCIDRs = []string{"10.0.0.0/24"}
		c.Databases = []config.Database{{Name: "production-db", Mount: "database", Plugin: "postgresql-database-plugin",
			Roles: []config.DatabaseRole{{Name: "webapp-role", DefaultTTL: config.Duration{Duration: 30 * time.Minute}}}}}
	})
}

type observed struct{ behaviour, hash string }

// observe runs phase name's Check built from cfg on a fresh estate set up from base (the
// session and handles come from base: only the phase's own reading of cfg may differ).
func observe(t *testing.T, base, cfg *config.Config, name string) observed {
	t.Helper()
	r := newRigWith(t, base)
	r.useRootToken()
	r.env.Config = cfg
	p := r.phase(name)
	r.vault.ResetCalls()
	r.kube.ClearActions()
	d, err := p.Check(context.Background())
	var b strings.Builder
	j, _ := json.Marshal(d)
	fmt.Fprintf(&b, "diff=%s err=%v vault=", j, err)
	for _, c := range r.vault.Calls() {
		if !strings.HasPrefix(c, "Dial ") {
			b.WriteString(c + ";")
		}
	}
	b.WriteString(" kube=")
	for _, a := range r.kube.Actions() {
		fmt.Fprintf(&b, "%s %s/%s %s;", a.GetVerb(), a.GetResource().Resource, a.GetSubresource(), a.GetNamespace())
		if n, ok := a.(interface{ GetName() string }); ok {
			b.WriteString(n.GetName() + ";")
		}
	}
	fmt.Fprintf(&b, " helm=%s", r.helm.lastStatusValues)
	return observed{behaviour: b.String(), hash: InputHash(p.Inputs())}
}

// leafPaths lists the paths (field or element indexes) to every scalar, map and nil pointer
// under v; slices contribute their first element.
func leafPaths(v reflect.Value, path []int) [][]int {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(config.Duration{}) {
			return [][]int{path}
		}
		var out [][]int
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out = append(out, leafPaths(v.Field(i), append(append([]int{}, path...), i))...)
			}
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 || v.Type().Elem().Kind() == reflect.String {
			return [][]int{path}
		}
		return leafPaths(v.Index(0), append(append([]int{}, path...), 0))
	case reflect.Pointer:
		if v.IsNil() {
			return [][]int{path}
		}
		return leafPaths(v.Elem(), path)
	}
	return [][]int{path}
}

// mutate changes the leaf at path and says which key it was.
func mutate(v reflect.Value, path []int) string {
	var name []string
	for _, i := range path {
		for v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.Struct:
			name = append(name, v.Type().Field(i).Name)
			v = v.Field(i)
		case reflect.Slice:
			name = append(name, "[0]")
			v = v.Index(i)
		}
	}
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	key := strings.Join(name, ".")
	switch {
	case v.Type() == reflect.TypeOf(config.Duration{}):
		d := v.Addr().Interface().(*config.Duration)
		d.Duration += 7 * time.Second
	case v.Kind() == reflect.String:
		v.SetString(v.String() + "x")
	case v.Kind() == reflect.Bool:
		v.SetBool(!v.Bool())
	case v.Kind() == reflect.Int:
		v.SetInt(v.Int() + 2)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		v.Set(reflect.Append(v, reflect.ValueOf("extra")))
	case v.Kind() == reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case v.Kind() == reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		if v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.String {
			v.SetMapIndex(reflect.ValueOf("extra"), reflect.ValueOf("x"))
		}
	case v.Kind() == reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	default:
		return key + " (not mutated)"
	}
	return key
}
