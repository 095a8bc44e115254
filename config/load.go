package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes environment overrides: vault.address is VAULTCTL_VAULT_ADDRESS.
const EnvPrefix = "VAULTCTL"

// LoadOptions says where a config comes from. Precedence: file, then VAULTCTL_* environment
// variables, then flags.
type LoadOptions struct {
	Path string
	// Environ is the environment to read overrides from; nil means os.Environ().
	Environ []string
	// Flags maps a config key path to the command-line flag that overrides it (only flags the
	// user actually set count), e.g. "cluster.kubeconfig" -> --kubeconfig.
	Flags map[string]*pflag.Flag
	// CheckFiles also confirms that the files the config reads exist (cluster.kubeconfig,
	// vault.tls.caCert, kubernetesAuth.caCert, vault.init.pgpKeys), so that a typo fails
	// `config validate` instead of a phase halfway through apply. Commands that use those files
	// set it; `check`, which reads only policies and roles, and the wizard, which writes the
	// config before the files may exist, do not.
	CheckFiles bool
}

// MaxFileSize bounds a config file: a vaultctl config is a few KiB, and YAML decoding holds
// the whole tree in memory, so a file this large is the wrong file (or an attack), never a config.
const MaxFileSize = 4 << 20

func tooLarge(name string, size int64) *ValidationError {
	return &ValidationError{Problems: []Problem{{File: name, Message: fmt.Sprintf(
		"is %s, over the %s limit for a config file (a vaultctl config is a few KiB): is -c/--config pointing at the right file?",
		humanSize(size), humanSize(MaxFileSize))}}}
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/(1<<20)), ".0") + " MiB"
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Loaded is a validated config with what is worth telling the user about it.
type Loaded struct {
	*Config
	Source   *Source
	Warnings []Problem
}

// LoadFile loads and validates one file with no overrides.
func LoadFile(path string) (*Config, error) {
	l, err := Load(LoadOptions{Path: path, Environ: []string{}})
	if err != nil {
		return nil, err
	}
	return l.Config, nil
}

// Load reads, layers, defaults and validates a config. Every problem found is reported in one
// *ValidationError, which also carries the warnings found beside them.
func Load(o LoadOptions) (*Loaded, error) {
	data, err := readConfigFile(o.Path)
	if err != nil {
		return nil, err
	}
	return Parse(o.Path, data, o)
}

// readConfigFile reads at most MaxFileSize bytes, refusing a larger file before reading it.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, &ValidationError{Problems: []Problem{{File: path, Message: "config file not found; create one with `vaultctl init` or copy config.example.yaml"}}}
		}
		return nil, &ValidationError{Problems: []Problem{{File: path, Message: err.Error()}}}
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, tooLarge(path, st.Size())
	}
	// A pipe or device has no size to check up front: read one byte past the limit to know.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &ValidationError{Problems: []Problem{{File: path, Message: err.Error()}}}
	}
	if len(data) > MaxFileSize {
		return nil, &ValidationError{Problems: []Problem{{File: path, Message: fmt.Sprintf(
			"is over the %s limit for a config file (a vaultctl config is a few KiB): is -c/--config pointing at the right file?", humanSize(MaxFileSize))}}}
	}
	return data, nil
}

// Parse is Load for bytes already in hand; name is used in messages, and relative paths in the
// config resolve against its directory.
func Parse(name string, data []byte, o LoadOptions) (*Loaded, error) {
	if len(data) > MaxFileSize {
		return nil, tooLarge(name, int64(len(data)))
	}
	cfg, src, ps := decode(name, data)
	if cfg == nil {
		return nil, ps.err()
	}
	environ := o.Environ
	if environ == nil {
		environ = os.Environ()
	}
	applyOverrides(cfg, src, ps, environ, o.Flags)
	ApplyDefaults(cfg)
	resolvePaths(cfg, src, filepath.Dir(name))
	nErrs, nWarn := len(ps.errs), len(ps.warn)
	validate(cfg, ps, validation{getenv: lookupIn(environ), checkFiles: o.CheckFiles})
	ps.dropConsequences(nErrs, nWarn)
	if err := ps.err(); err != nil {
		return nil, err
	}
	sortProblems(ps.warn)
	return &Loaded{Config: cfg, Source: src, Warnings: ps.warn}, nil
}

// lookupIn reads variables from environ as os.Getenv would (the last setting wins).
func lookupIn(environ []string) func(string) string {
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) string { return m[k] }
}

// leaf is a scalar config key that the environment or a flag can override.
type leaf struct {
	path  string
	index []int
	typ   reflect.Type
}

// overridableLeaves lists scalar keys outside lists and maps: list entries have no stable name
// to override them by.
func overridableLeaves(t reflect.Type, prefix string, index []int) []leaf {
	var out []leaf
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		p := joinPath(prefix, name)
		idx := append(append([]int{}, index...), i)
		ft := f.Type
		switch {
		case ft == durationType:
			out = append(out, leaf{p, idx, ft})
		case ft.Kind() == reflect.Struct:
			out = append(out, overridableLeaves(ft, p, idx)...)
		case ft.Kind() == reflect.String, ft.Kind() == reflect.Int, ft.Kind() == reflect.Bool,
			ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Bool:
			out = append(out, leaf{p, idx, ft})
		}
	}
	return out
}

// EnvName is the environment variable that overrides a key path.
func EnvName(path string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// applyOverrides layers environment variables and flags through viper. viper lower-cases and
// dot-splits keys, so it is used only for precedence, never to decode the file.
func applyOverrides(cfg *Config, src *Source, ps *problems, environ []string, flags map[string]*pflag.Flag) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix+"_") {
			env[k] = v
		}
	}
	v := viper.New()
	for _, l := range overridableLeaves(configType, "", nil) {
		if val, ok := env[EnvName(l.path)]; ok {
			v.Set(l.path, val)
			src.overrides[l.path] = "env " + EnvName(l.path)
		}
		if f, ok := flags[l.path]; ok && f != nil && f.Changed {
			if err := v.BindPFlag(l.path, f); err == nil {
				src.overrides[l.path] = "flag --" + f.Name
			}
		}
		if !v.IsSet(l.path) {
			continue
		}
		if err := setLeaf(cfg, l, v.GetString(l.path)); err != nil {
			ps.errorf(l.path, "%v", err)
			// The file's value stays, but it is not what the user asked for: say nothing about it.
			ps.damage(l.path)
		} else {
			delete(ps.damaged, l.path) // whatever the file held there, the override replaced it
		}
	}
	for k := range env {
		if !isKnownEnv(k) && !nonConfigEnv[strings.TrimPrefix(k, EnvPrefix+"_")] && !strings.HasPrefix(k, EnvPrefix+"_E2E") {
			ps.warn = append(ps.warn, Problem{Source: "env " + k, Message: "not a known config key; ignored"})
		}
	}
}

// nonConfigEnv are VAULTCTL_* variables that belong to the tooling (sandbox, tests), not the
// config; they are not typos worth a warning.
var nonConfigEnv = map[string]bool{"TOOLS_DIR": true, "TOOLS_CACHE": true, "SANDBOX_DIR": true, "PG_URL": true,
	// Set by make and the test harness, never config: warning about them would put a warning
	// in every config loaded under `make test`.
	"TEST_MUST_RUN": true, "E2E_KEEP": true, "SANDBOX_POD_INIT": true, "SANDBOX_RUNNER": true, "TEST_NS_HELPER": true}

func isKnownEnv(name string) bool {
	for _, l := range overridableLeaves(configType, "", nil) {
		if EnvName(l.path) == name {
			return true
		}
	}
	return false
}

func setLeaf(cfg *Config, l leaf, raw string) error {
	f := reflect.ValueOf(cfg).Elem().FieldByIndex(l.index)
	switch {
	case l.typ == durationType:
		d, err := ParseDuration(raw)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(Duration{d}))
	case l.typ.Kind() == reflect.String:
		f.SetString(raw)
	case l.typ.Kind() == reflect.Int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("must be a whole number, got %q", raw)
		}
		f.SetInt(int64(n))
	case l.typ.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", raw)
		}
		f.SetBool(b)
	case l.typ.Kind() == reflect.Pointer:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", raw)
		}
		f.Set(reflect.ValueOf(&b))
	}
	return nil
}
