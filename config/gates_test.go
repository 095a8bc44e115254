package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// The gates of a wave are strings or the one-key mapping healthy-for; every mistake names the
// gate's own line.
func TestWaveGates(t *testing.T) {
	const waves = `migration:
  waves:
    - week: 1
      name: pilot
      namespaces: [tools]
      gates: [injector-healthy]
    - week: 2
      name: staging
      namespaces: [staging]
      gates:
        - previous-wave-complete
        - healthy-for: %s
        - %s
`
	cases := []struct {
		name, healthy, other string
		want                 []string
	}{
		{"valid", "24h", "check-passing", nil},
		{"unknown gate", "24h", "checks-passing", []string{`config.yaml:38: migration.waves[1].gates[2]: unknown gate "checks-passing"`}},
		{"bad duration", "soon", "check-passing", []string{`config.yaml:37: migration.waves[1].gates[1]: healthy-for: must be a duration`}},
		{"zero duration", "0s", "check-passing", []string{`config.yaml:37: migration.waves[1].gates[1]: healthy-for must be positive`}},
		{"listed twice", "1h", "previous-wave-complete", []string{`config.yaml:38: migration.waves[1].gates[2]: gate previous-wave-complete is listed twice`}},
		{"value on a plain gate", "1h", "check-passing: yes", []string{`config.yaml:38: migration.waves[1].gates[2]: gate check-passing takes no value`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := base + fmt.Sprintf(waves, tc.healthy, tc.other)
			cfg, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				g := cfg.Migration.Waves[1].Gates
				if !slices.Equal(g, []string{"previous-wave-complete", "healthy-for: 24h", "check-passing"}) {
					t.Fatalf("gates = %q", g)
				}
				if name, d, err := ParseGate(g[1]); name != GateHealthyFor || d != 24*time.Hour || err != nil {
					t.Errorf("ParseGate(%q) = %s %s %v", g[1], name, d, err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a validation error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestFirstWaveCannotWaitOnAPreviousOne(t *testing.T) {
	text := base + "migration:\n  waves:\n    - week: 1\n      name: pilot\n      gates: [previous-wave-complete]\n"
	_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
	if err == nil || !strings.Contains(err.Error(), "config.yaml:30: migration.waves[0].gates[0]: the first wave has no previous wave") {
		t.Fatalf("got %v", err)
	}
}

func TestSchemaAcceptsHealthyFor(t *testing.T) {
	b, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"healthy-for"`) {
		t.Error("the JSON schema does not describe the healthy-for gate")
	}
}

// config.example.yaml's five-week plan writes healthy-for inside a flow list.
func TestExamplePlanGates(t *testing.T) {
	cfg, err := LoadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, w := range cfg.Migration.Waves {
		all = append(all, w.Gates...)
	}
	if !slices.Contains(all, "healthy-for: 72h") {
		t.Errorf("gates %q lack production's healthy-for: 72h", all)
	}
}

func TestWaveWorkloads(t *testing.T) {
	for _, tc := range []struct{ workload, want string }{
		{"tools/Deployment/wiki", ""},
		{"tools/deploy/wiki", `config.yaml:30: migration.waves[0].workloads[0]: kind "deploy" is not one migrate rewrites`},
		{"Tools/Deployment/wiki", `"Tools" is not a namespace name`},
		{"tools/wiki", "must be namespace/kind/name"},
	} {
		text := base + "migration:\n  waves:\n    - week: 1\n      name: pilot\n      workloads: [" + tc.workload + "]\n"
		_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.workload, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.workload, err, tc.want)
		}
	}
}
