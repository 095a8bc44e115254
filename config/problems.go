package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one finding about a config: an error or a warning, tied to a key path and to the
// place the value came from (file:line, an environment variable, or a flag).
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Source  string `json:"source,omitempty"` // "env VAULTCTL_X" or "flag --x" when not from the file
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	var where string
	switch {
	case p.Source != "":
		where = p.Source + ": "
	case p.File != "" && p.Line > 0:
		where = fmt.Sprintf("%s:%d: ", p.File, p.Line)
	case p.File != "":
		where = p.File + ": "
	}
	if p.Path == "" {
		return where + p.Message
	}
	return where + p.Path + ": " + p.Message
}

// ValidationError carries every problem found, so users fix them all in one round, and the
// warnings found beside them (Error() renders only the problems; show Warnings too).
type ValidationError struct {
	Problems []Problem
	Warnings []Problem
}

func (e *ValidationError) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	if len(e.Problems) > 1 {
		lines = append(lines, fmt.Sprintf("%d problems in config:", len(e.Problems)))
	}
	for _, p := range e.Problems {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

// problems collects findings while walking or validating.
type problems struct {
	src  *Source
	errs []Problem
	warn []Problem
	// damaged are key paths whose value was rejected (or is missing because a key was
	// misspelt): what validation finds at or under them is a consequence already reported.
	damaged map[string]bool
}

func (ps *problems) damage(path string) {
	if ps.damaged == nil {
		ps.damaged = map[string]bool{}
	}
	ps.damaged[path] = true
}

// isDamaged reports whether path is at or under a damaged path.
func (ps *problems) isDamaged(path string) bool {
	for p := path; ; p = parentPath(p) {
		if ps.damaged[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// dropConsequences removes the problems found since errs[:nErrs] and warn[:nWarn] that lie
// under a damaged path.
func (ps *problems) dropConsequences(nErrs, nWarn int) {
	keep := func(list []Problem, from int) []Problem {
		out := list[:from]
		for _, p := range list[from:] {
			if p.Path == "" || !ps.isDamaged(p.Path) {
				out = append(out, p)
			}
		}
		return out
	}
	ps.errs = keep(ps.errs, nErrs)
	ps.warn = keep(ps.warn, nWarn)
}

func (ps *problems) errorf(path, format string, args ...any) {
	ps.errs = append(ps.errs, ps.src.problem(path, fmt.Sprintf(format, args...)))
}

func (ps *problems) warnf(path, format string, args ...any) {
	ps.warn = append(ps.warn, ps.src.problem(path, fmt.Sprintf(format, args...)))
}

func (ps *problems) err() error {
	if len(ps.errs) == 0 {
		return nil
	}
	sortProblems(ps.errs)
	sortProblems(ps.warn)
	return &ValidationError{Problems: ps.errs, Warnings: ps.warn}
}

func sortProblems(list []Problem) {
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].Line != list[j].Line {
			return list[i].Line < list[j].Line
		}
		return list[i].Path < list[j].Path
	})
}
