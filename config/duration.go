package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as Go duration text ("30m", "1h") in YAML and JSON.
type Duration struct{ time.Duration }

// UnmarshalYAML accepts Go duration text.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("must be a duration such as 30m or 1h")
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes Go duration text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes Go duration text.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// String renders the shortest form: "1h", "30m", "1h30m".
func (d Duration) String() string {
	if d.Duration == 0 {
		return "0s"
	}
	s := d.Duration.String()
	// time.Duration prints 1h0m0s; trim the zero units users never write.
	for _, suffix := range []string{"m0s", "h0m"} {
		if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
			s = s[:len(s)-len(suffix)+1]
		}
	}
	return s
}

// Seconds returns the duration in whole seconds, as Vault's API takes it.
func (d Duration) Seconds() int64 { return int64(d.Duration / time.Second) }

// ParseDuration parses Go duration text and rejects negative values.
func ParseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("must be a duration such as 30m or 1h, got %q", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	return v, nil
}
