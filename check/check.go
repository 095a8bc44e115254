// Package check is the CI guard over Kubernetes manifest trees: it parses every YAML and JSON
// document (multi-document streams, Lists) and reports raw Secrets, workloads that do not get
// their secrets from the Vault Agent Injector, and injection annotations that would fail at run
// time. It never prints; renderers write a Report to an io.Writer.
package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/vaultctl/vaultctl/config"
)

// Severity of a finding. Any finding fails the check; the severity only guides readers and SARIF.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// StdinName is the file name findings carry for input read from "-".
const StdinName = "<stdin>"

// Options select what check enforces. Zero values are usable: every namespace is required and
// secret/ is the only KV v2 mount.
type Options struct {
	// Namespaces where injection is required (path.Match globs). Empty means the config's
	// check.requiredNamespaces, or every namespace when that is empty too.
	Namespaces []string
	// DefaultNamespace is the namespace of objects without metadata.namespace ("default" if empty).
	DefaultNamespace string
	// AllowSecretTypes are Secret types that are not findings; added to the config's.
	AllowSecretTypes []string
	// KVMounts are KV version 2 mount paths; added to the config's kv list. With neither, "secret".
	KVMounts []string
	// Exclude are path globs to skip; added to the config's check.exclude. A glob without a slash
	// matches any path element ("templates", "*.tpl.yaml"); one with a slash matches the path from
	// the checked directory or as given, "**" matching any number of elements.
	Exclude []string
	// Config, when set, enables policy-mismatch and supplies defaults for the fields above.
	Config *config.Config
	// ConfigFile names Config's file in the report; see LoadConfig.
	ConfigFile string
	// Workers bounds parallel parsing; 0 means runtime.GOMAXPROCS(0).
	Workers int
}

// Finding is one problem at one place.
type Finding struct {
	File      string   `json:"file"`
	Line      int      `json:"line"`
	Column    int      `json:"column,omitempty"`
	Kind      string   `json:"kind,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	Rule      string   `json:"rule"`
	Severity  Severity `json:"severity"`
	Message   string   `json:"message"`
	Fix       string   `json:"fix"`

	// secretRef is "namespace/name" of the Secret a secret-reference finding points at, so that a
	// reference to a Secret of an allowed type, defined elsewhere in the input, can be dropped.
	secretRef string
}

// Report is the result of a run.
type Report struct {
	Findings []Finding `json:"findings"`
	Files    int       `json:"files"`
	Objects  int       `json:"objects"`
	// Config is the config file policy-mismatch was checked against; "" when none was used.
	Config string `json:"config"`
	// BaseDir is what SARIF URIs are relative to; the working directory when empty.
	BaseDir string `json:"-"`
	// ToolVersion is shown in SARIF and JUnit output when set.
	ToolVersion string `json:"-"`
}

// HasParseErrors reports whether any input could not be parsed.
func (r *Report) HasParseErrors() bool {
	for _, f := range r.Findings {
		if f.Rule == RuleParseError {
			return true
		}
	}
	return false
}

// ExitCode is 0 when clean, 1 with findings, 2 when some input could not be parsed.
func (r *Report) ExitCode() int {
	switch {
	case r.HasParseErrors():
		return 2
	case len(r.Findings) > 0:
		return 1
	}
	return 0
}

// UsageError is an error in the options or paths given, as opposed to a finding.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, a ...any) error { return &UsageError{fmt.Errorf(format, a...)} }

// settings are Options merged with the config and validated.
type settings struct {
	namespaces   []string
	defaultNS    string
	allowTypes   map[string]bool
	kvMounts     []string
	exclude      []string
	cfg          *config.Config
	roles        map[string]*roleACL // with cfg: each role's policies, evaluated once
	allNamespace bool
}

func (o *Options) settings() (*settings, error) {
	s := &settings{defaultNS: o.DefaultNamespace, cfg: o.Config, allowTypes: map[string]bool{}}
	if s.defaultNS == "" {
		s.defaultNS = "default"
	}
	s.namespaces = o.Namespaces
	var cfgTypes, cfgExclude []string
	if c := o.Config; c != nil {
		// Flags replace the config's namespaces (they name a scope) but add to its lists.
		if len(s.namespaces) == 0 {
			s.namespaces = c.Check.RequiredNamespaces
		}
		cfgTypes, cfgExclude = c.Check.AllowSecretTypes, c.Check.Exclude
		for _, m := range c.KV {
			s.kvMounts = append(s.kvMounts, m.Path)
		}
	}
	for _, ns := range s.namespaces {
		if _, err := path.Match(ns, ""); err != nil {
			return nil, usagef("bad namespace glob %q: %v", ns, err)
		}
	}
	s.allNamespace = len(s.namespaces) == 0
	for _, t := range append(append([]string(nil), cfgTypes...), o.AllowSecretTypes...) {
		s.allowTypes[t] = true
	}
	s.kvMounts = append(s.kvMounts, o.KVMounts...)
	for i, m := range s.kvMounts {
		s.kvMounts[i] = strings.Trim(m, "/")
	}
	if len(s.kvMounts) == 0 {
		s.kvMounts = []string{"secret"}
	}
	// Longest mount first so that secret/team wins over secret for secret/team/x.
	sort.Slice(s.kvMounts, func(i, j int) bool { return len(s.kvMounts[i]) > len(s.kvMounts[j]) })
	if s.cfg != nil {
		s.roles = buildRoles(s.cfg, s.kvMounts)
	}
	s.exclude = append(append([]string(nil), cfgExclude...), o.Exclude...)
	for _, g := range s.exclude {
		if err := validGlob(g); err != nil {
			return nil, usagef("bad --exclude glob %q: %v", g, err)
		}
	}
	return s, nil
}

// required reports whether injection is required in namespace ns.
func (s *settings) required(ns string) bool {
	if s.allNamespace {
		return true
	}
	for _, g := range s.namespaces {
		if ok, _ := path.Match(g, ns); ok {
			return true
		}
	}
	return false
}

// LoadConfig returns the config check uses and its file name. An explicit --config must load
// ("" turns the config off); the default file (vaultctl.yaml) is used when it exists, so that
// policy-mismatch runs in the repository the config lives in, and is no error when absent.
func LoadConfig(path string, explicit bool) (*config.Config, string, error) {
	if path == "" {
		return nil, "", nil
	}
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, "", nil
		}
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		if !explicit {
			return nil, "", usagef("%v\n(%s is read by default because it exists; fix it, name another with --config, or check without one: --config '')", err, path)
		}
		return nil, "", &UsageError{err}
	}
	return cfg, path, nil
}

// input is one file to check.
type input struct {
	name  string // as reported
	path  string // to open; empty for stdin
	chart string // the Helm chart whose templates/ holds the file, if any
}

// Run checks paths: files, directories (walked for .yaml, .yml and .json) and "-" for stdin.
// It returns a *UsageError for bad options or paths that do not exist; problems inside files,
// including syntax errors, are findings.
func Run(ctx context.Context, opts Options, paths []string, stdin io.Reader) (*Report, error) {
	s, err := opts.settings()
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, usagef("no paths to check; give files, directories or - for stdin")
	}
	inputs, err := collect(s, paths)
	if err != nil {
		return nil, err
	}

	results := make([]fileResult, len(inputs))
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(inputs))
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fc := newFileChecker(s)
			for {
				// Hand out files one at a time: sizes vary, a static split would idle a worker.
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(inputs) || ctx.Err() != nil {
					return
				}
				in := inputs[i]
				var data []byte
				var rerr error
				if in.path == "" {
					data, rerr = io.ReadAll(stdin)
				} else {
					data, rerr = fc.readFile(in.path)
				}
				if rerr != nil {
					results[i] = fileResult{findings: []Finding{{
						File: in.name, Line: 1, Rule: RuleParseError, Severity: SeverityError,
						Message: "cannot read file: " + rerr.Error(),
						Fix:     "make the file readable, or --exclude it",
					}}}
					continue
				}
				fc.chart = in.chart
				results[i] = fc.checkFile(in.name, data)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	rep := &Report{Files: len(inputs)}
	if opts.Config != nil {
		rep.Config = opts.ConfigFile
	}
	allowedSecrets := map[string]bool{}
	for _, r := range results {
		for _, sec := range r.secrets {
			if s.allowTypes[sec.typ] {
				allowedSecrets[sec.ref] = true
			}
		}
	}
	for _, r := range results {
		rep.Objects += r.objects
		for _, f := range r.findings {
			if f.secretRef != "" && allowedSecrets[f.secretRef] {
				continue
			}
			rep.Findings = append(rep.Findings, f)
		}
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		a, b := &rep.Findings[i], &rep.Findings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Rule < b.Rule
	})
	if rep.Findings == nil {
		rep.Findings = []Finding{} // JSON [] rather than null
	}
	return rep, nil
}

// manifestExt reports whether a walked file is a manifest by its name.
func manifestExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// collect expands paths into inputs in a deterministic order.
func collect(s *settings, paths []string) ([]input, error) {
	var inputs []input
	sawStdin := false
	for _, p := range paths {
		if p == "-" {
			if sawStdin {
				return nil, usagef("- (stdin) given twice")
			}
			sawStdin = true
			inputs = append(inputs, input{name: StdinName})
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, usagef("%s: no such file or directory", p)
			}
			return nil, usagef("%v", err)
		}
		if !fi.IsDir() {
			// A file named explicitly is checked whatever its extension, unless excluded.
			if !excluded(s.exclude, filepath.ToSlash(filepath.Clean(p)), filepath.Base(p)) {
				inputs = append(inputs, input{name: p, path: p})
			}
			continue
		}
		err = filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
			if err != nil {
				// An unreadable directory is reported like an unreadable file.
				inputs = append(inputs, input{name: fp, path: fp})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			rel, _ := filepath.Rel(p, fp)
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if fp != p && (d.Name() == ".git" || excluded(s.exclude, filepath.ToSlash(fp), rel)) {
					return fs.SkipDir
				}
				return nil
			}
			if !manifestExt(d.Name()) || excluded(s.exclude, filepath.ToSlash(fp), rel) {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				if fi, err := os.Stat(fp); err == nil && fi.IsDir() {
					return nil // WalkDir does not follow directory links; neither do we
				}
			}
			inputs = append(inputs, input{name: fp, path: fp})
			return nil
		})
		if err != nil {
			return nil, usagef("%s: %v", p, err)
		}
	}
	charts := map[string]string{}
	for i := range inputs {
		if inputs[i].path != "" {
			inputs[i].chart = helmChart(inputs[i].path, charts)
		}
	}
	return inputs, nil
}

// validGlob checks an --exclude pattern.
func validGlob(g string) error {
	if g == "" {
		return errors.New("empty pattern")
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return err
		}
	}
	return nil
}

// excluded reports whether a walked path matches an exclude glob. full is the path as reported,
// rel the path from the walked directory; both use slashes.
func excluded(globs []string, full, rel string) bool {
	for _, g := range globs {
		if !strings.Contains(g, "/") {
			// No slash: match any single element, like .gitignore.
			for _, el := range strings.Split(rel, "/") {
				if ok, _ := path.Match(g, el); ok {
					return true
				}
			}
			continue
		}
		g = strings.TrimPrefix(g, "./")
		for _, p := range []string{rel, strings.TrimPrefix(full, "./")} {
			if globMatchPath(strings.Split(strings.TrimSuffix(g, "/"), "/"), strings.Split(p, "/")) {
				return true
			}
		}
	}
	return false
}

// globMatchPath matches slash-separated segments, "**" standing for any number of them. A pattern
// that matches a directory excludes everything below it, so a prefix match is enough.
func globMatchPath(pat, segs []string) bool {
	if len(pat) == 0 {
		return true // the pattern matched a parent directory
	}
	if pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if globMatchPath(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	if ok, _ := path.Match(pat[0], segs[0]); !ok {
		return false
	}
	return globMatchPath(pat[1:], segs[1:])
}
