package config

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Gate names a migration wave may wait on (migration.waves[].gates).
const (
	GatePreviousWaveComplete = "previous-wave-complete"
	GateCheckPassing         = "check-passing"
	GateInjectorHealthy      = "injector-healthy"
	GateAdmissionPolicy      = "admission-policy"
	GateDynamicDBCredentials = "dynamic-db-credentials"
	// GateHealthyFor takes a duration: written `- healthy-for: 24h` in a gates list.
	GateHealthyFor = "healthy-for"
)

// ParseGate splits a gate as the config holds it: "check-passing", or "healthy-for: 24h" for a
// gate with a duration (the YAML mapping form is turned into that text when the file is read).
func ParseGate(s string) (name string, d time.Duration, err error) {
	name, arg, hasArg := strings.Cut(s, ":")
	name, arg = strings.TrimSpace(name), strings.TrimSpace(arg)
	known := false
	for _, g := range knownGates {
		known = known || g == name
	}
	switch {
	case name == GateHealthyFor && !hasArg:
		return name, 0, fmt.Errorf("healthy-for needs a duration: write `- healthy-for: 24h`")
	case name == GateHealthyFor:
		if d, err = ParseDuration(arg); err != nil {
			return name, 0, fmt.Errorf("healthy-for: %v", err)
		}
		if d <= 0 {
			return name, 0, fmt.Errorf("healthy-for must be positive, e.g. 24h")
		}
		return name, d, nil
	case !known:
		return name, 0, fmt.Errorf("unknown gate %q; use one of %s, or healthy-for: DURATION", s, strings.Join(knownGates, ", "))
	case hasArg:
		return name, 0, fmt.Errorf("gate %s takes no value", name)
	}
	return name, 0, nil
}

// KnownGates lists the gates without a value, for help texts.
func KnownGates() []string { return append([]string(nil), knownGates...) }

// normalizeGates rewrites each `- healthy-for: 24h` of migration.waves[].gates (a one-key
// mapping in YAML) into the scalar "healthy-for: 24h", keeping its line, so the rest of the
// loader sees a list of strings and validation reports on the gate's own line.
func normalizeGates(root *yaml.Node) {
	waves := mappingValue(mappingValue(root, "migration"), "waves")
	if waves == nil || waves.Kind != yaml.SequenceNode {
		return
	}
	for _, w := range waves.Content {
		gates := mappingValue(resolve(w), "gates")
		if gates == nil || gates.Kind != yaml.SequenceNode {
			continue
		}
		for i, g := range gates.Content {
			g = resolve(g)
			if g == nil || g.Kind != yaml.MappingNode || len(g.Content) != 2 {
				continue
			}
			k, v := g.Content[0], resolve(g.Content[1])
			if v == nil || v.Kind != yaml.ScalarNode {
				continue
			}
			gates.Content[i] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.Value + ": " + v.Value, Line: g.Line, Column: g.Column}
		}
	}
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return resolve(m.Content[i+1])
		}
	}
	return nil
}

// gatesSchema lets editors accept the healthy-for mapping next to the named gates.
func gatesSchema(props map[string]any) {
	at := func(m map[string]any, keys ...string) map[string]any {
		for _, k := range keys {
			m, _ = m[k].(map[string]any)
		}
		return m
	}
	gates := at(props, "migration", "properties", "waves", "items", "properties", "gates")
	if gates == nil {
		return
	}
	gates["items"] = map[string]any{"anyOf": []any{gates["items"], map[string]any{
		"type": "object", "additionalProperties": false,
		"properties": map[string]any{GateHealthyFor: schemaFor(durationType)},
		"required":   []string{GateHealthyFor},
	}}}
}
