package check

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Formats accepted by Write.
var Formats = []string{"text", "json", "sarif", "junit"}

// Write renders a report in one of Formats.
func Write(w io.Writer, format string, r *Report) error {
	switch format {
	case "text", "":
		return WriteText(w, r)
	case "json":
		return WriteJSON(w, r)
	case "sarif":
		return WriteSARIF(w, r)
	case "junit":
		return WriteJUnit(w, r)
	}
	return fmt.Errorf("unknown output format %q (want %s)", format, strings.Join(Formats, ", "))
}

func (f *Finding) object() string {
	if f.Kind == "" {
		return ""
	}
	if f.Name == "" {
		return f.Kind
	}
	return f.Kind + " " + f.Namespace + "/" + f.Name
}

func (f *Finding) position() string {
	if f.Column > 0 {
		return fmt.Sprintf("%s:%d:%d", f.File, f.Line, f.Column)
	}
	return fmt.Sprintf("%s:%d", f.File, f.Line)
}

// WriteText writes one finding per line (file:line:col: severity rule: object: message) with its
// fix indented below, then a summary line.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	for i := range r.Findings {
		f := &r.Findings[i]
		obj := f.object()
		if obj != "" {
			obj += ": "
		}
		fmt.Fprintf(bw, "%s: %s %s: %s%s\n", f.position(), f.Severity, f.Rule, obj, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(bw, "    fix: %s\n", f.Fix)
		}
	}
	fmt.Fprintln(bw, summary(r))
	return bw.Flush()
}

func summary(r *Report) string {
	files := plural(r.Files, "file")
	objs := plural(r.Objects, "object")
	if len(r.Findings) == 0 {
		return fmt.Sprintf("no findings in %s (%s)%s", files, objs, configNote(r))
	}
	byRule := map[string]int{}
	for _, f := range r.Findings {
		byRule[f.Rule]++
	}
	var parts []string
	for _, rule := range rules {
		if n := byRule[rule.ID]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", rule.ID, n))
		}
	}
	return fmt.Sprintf("%s in %s (%s)%s: %s; vaultctl check --explain RULE tells how to fix them",
		plural(len(r.Findings), "finding"), files, objs, configNote(r), strings.Join(parts, ", "))
}

// configNote says which config roles and policies were checked against, so that a run without
// one does not pass for a policy check.
func configNote(r *Report) string {
	if r.Config == "" {
		return ""
	}
	return "; roles and policies checked against " + r.Config
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// WriteJSON writes {"findings": [...], "files": N, "objects": N, "summary": {...}}.
func WriteJSON(w io.Writer, r *Report) error {
	byRule := map[string]int{}
	for _, f := range r.Findings {
		byRule[f.Rule]++
	}
	out := struct {
		Findings []Finding      `json:"findings"`
		Files    int            `json:"files"`
		Objects  int            `json:"objects"`
		Summary  map[string]int `json:"summary"`
		ExitCode int            `json:"exitCode"`
		Config   string         `json:"config"`
	}{r.Findings, r.Files, r.Objects, byRule, r.ExitCode(), r.Config}
	if out.Findings == nil {
		out.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // <stdin> and & stay readable
	return enc.Encode(out)
}

// SARIF 2.1.0, the subset GitHub code scanning reads.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool               sarifTool                   `json:"tool"`
	OriginalURIBaseIDs map[string]sarifArtifactLoc `json:"originalUriBaseIds,omitempty"`
	Results            []sarifResult               `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	ShortDescription     sarifText         `json:"shortDescription"`
	FullDescription      sarifText         `json:"fullDescription"`
	Help                 sarifText         `json:"help"`
	DefaultConfiguration sarifRuleConfig   `json:"defaultConfiguration"`
	Properties           sarifRuleProperty `json:"properties"`
}

type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifRuleProperty struct {
	Tags             []string `json:"tags"`
	Precision        string   `json:"precision"`
	ProblemSeverity  string   `json:"problem.severity"`
	SecuritySeverity string   `json:"security-severity"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifactLoc `json:"artifactLocation"`
	Region           sarifRegion      `json:"region"`
}

type sarifArtifactLoc struct {
	URI         string     `json:"uri"`
	URIBaseID   string     `json:"uriBaseId,omitempty"`
	Description *sarifText `json:"description,omitempty"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

// stdinURI locates findings in input read from "-". SARIF has no name for a stream; this is where
// POSIX systems expose it, an absolute URI that cannot be mistaken for a file in the checkout.
const stdinURI = "file:///dev/stdin"

// srcRoot is the base of relative artifact URIs: the directory check ran in, which in CI is the
// checkout code scanning places alerts in.
const srcRoot = "%SRCROOT%"

// sarifURI locates a file for code scanning: relative to base (the working directory), with
// forward slashes, when the file is under it; an absolute file URI otherwise, since "../x" would
// name a file outside the checkout.
func sarifURI(name, base string) sarifArtifactLoc {
	if name == StdinName {
		return sarifArtifactLoc{URI: stdinURI, Description: &sarifText{
			Text: "standard input: the manifests piped to vaultctl check - (for example helm template output), not a file in the repository"}}
	}
	abs := name
	if !filepath.IsAbs(abs) && base != "" {
		abs = filepath.Join(base, name)
	}
	if base != "" {
		if rel, err := filepath.Rel(base, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return sarifArtifactLoc{URI: (&url.URL{Path: filepath.ToSlash(rel)}).String(), URIBaseID: srcRoot}
		}
	}
	return sarifArtifactLoc{URI: fileURI(abs)}
}

// fileURI is the file: URI of an absolute path (C:\x becomes file:///C:/x).
func fileURI(abs string) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return (&url.URL{Scheme: "file", Path: p}).String()
}

// WriteSARIF writes a SARIF 2.1.0 log for GitHub code scanning and other SARIF viewers.
func WriteSARIF(w io.Writer, r *Report) error {
	return WriteSARIFFor(w, r, SARIFTool{Name: "vaultctl check", Rules: rules, Tags: []string{"security", "kubernetes", "vault"}})
}

// SARIFTool is the tool a SARIF log names: another vaultctl command (policies audit) writes
// its own rules' findings with the same writer.
type SARIFTool struct {
	Name  string
	Rules []Rule
	Tags  []string
}

// WriteSARIFFor is WriteSARIF for the findings of tool t, whose rules they name.
func WriteSARIFFor(w io.Writer, r *Report, t SARIFTool) error {
	driver := sarifDriver{Name: t.Name, Version: r.ToolVersion,
		InformationURI: "https://github.com/vaultctl/vaultctl"}
	index := map[string]int{}
	for i, rule := range t.Rules {
		index[rule.ID] = i
		level, sev := "error", "7.5"
		if rule.Severity == SeverityWarning {
			level, sev = "warning", "4.0"
		}
		help := rule.Checks + "\n\nHow to fix:\n" + rule.Fix
		driver.Rules = append(driver.Rules, sarifRule{
			ID: rule.ID, Name: rule.Name,
			ShortDescription:     sarifText{Text: rule.Summary},
			FullDescription:      sarifText{Text: oneParagraph(rule.Checks)},
			Help:                 sarifText{Text: help, Markdown: "**What it checks.** " + oneParagraph(rule.Checks) + "\n\n**How to fix.**\n\n```\n" + rule.Fix + "\n```"},
			DefaultConfiguration: sarifRuleConfig{Level: level},
			Properties:           sarifRuleProperty{Tags: t.Tags, Precision: "high", ProblemSeverity: level, SecuritySeverity: sev},
		})
	}
	base := r.BaseDir
	if base == "" {
		base, _ = os.Getwd()
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	if base != "" {
		// Say what relative URIs are relative to; a base URI ends with a slash.
		run.OriginalURIBaseIDs = map[string]sarifArtifactLoc{srcRoot: {
			URI:         strings.TrimSuffix(fileURI(base), "/") + "/",
			Description: &sarifText{Text: "the working directory " + t.Name + " ran in"},
		}}
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		msg := f.Message
		if obj := f.object(); obj != "" {
			msg = obj + ": " + msg
		}
		if f.Fix != "" {
			msg += ". Fix: " + f.Fix
		}
		loc := sarifURI(f.File, base)
		// The URI, not the name as typed: ./k8s/x and k8s/x are one alert.
		sum := sha256.Sum256([]byte(f.Rule + "\x00" + loc.URI + "\x00" + f.object() + "\x00" + f.Message))
		run.Results = append(run.Results, sarifResult{
			RuleID: f.Rule, RuleIndex: index[f.Rule], Level: string(f.Severity),
			Message: sarifText{Text: msg},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: loc,
				Region:           sarifRegion{StartLine: max(f.Line, 1), StartColumn: f.Column},
			}}},
			// Stable across line moves, so code scanning tracks one alert rather than closing and reopening.
			PartialFingerprints: map[string]string{"vaultctlFinding/v1": hex.EncodeToString(sum[:16])},
		})
	}
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // <stdin> and & stay readable
	return enc.Encode(log)
}

func oneParagraph(s string) string { return strings.Join(strings.Fields(s), " ") }

// JUnit XML in the common (Ant / Jenkins / GitLab) shape: a testsuite per file, a failing
// testcase per finding (an error for parse errors), a passing testcase for a clean file.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes JUnit XML for CI test-report viewers.
func WriteJUnit(w io.Writer, r *Report) error {
	out := junitSuites{Name: "vaultctl check", Time: "0"}
	byFile := map[string][]*Finding{}
	var order []string
	for i := range r.Findings {
		f := &r.Findings[i]
		if _, ok := byFile[f.File]; !ok {
			order = append(order, f.File)
		}
		byFile[f.File] = append(byFile[f.File], f)
	}
	for _, file := range order {
		s := junitSuite{Name: file, Time: "0"}
		for _, f := range byFile[file] {
			name := f.Rule
			if obj := f.object(); obj != "" {
				name += ": " + obj
			}
			name += " (line " + strconv.Itoa(f.Line) + ")"
			p := &junitProblem{Message: f.Message, Type: f.Rule,
				Text: fmt.Sprintf("%s: %s\nfix: %s\nsee: vaultctl check --explain %s", f.position(), f.Message, f.Fix, f.Rule)}
			c := junitCase{Name: name, Classname: file, File: file, Line: f.Line, Time: "0"}
			if f.Rule == RuleParseError {
				c.Error = p
				s.Errors++
			} else {
				c.Failure = p
				s.Failures++
			}
			s.Cases = append(s.Cases, c)
		}
		s.Tests = len(s.Cases)
		out.Suites = append(out.Suites, s)
	}
	if clean := r.Files - len(order); clean > 0 {
		// Files without findings are not listed one by one (a tree has thousands); one passing
		// case says how many passed, so the viewer's totals add up.
		out.Suites = append(out.Suites, junitSuite{Name: "clean files", Tests: 1, Time: "0",
			Cases: []junitCase{{Name: fmt.Sprintf("%s without findings", plural(clean, "file")), Classname: "vaultctl.check", Time: "0"}}})
	}
	for _, s := range out.Suites {
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
