package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// referenceParse is yaml.v3 alone: the documents it returns, or an error.
func referenceParse(data []byte) (docs []*yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml.v3 panicked: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		if root := documentRoot(&doc); root != nil {
			docs = append(docs, root)
		}
	}
}

// sameTree compares what the rules read: kind, style, resolved tag, value, position, children.
func sameTree(a, b *yaml.Node, where string) error {
	if a.Kind != b.Kind || a.Style != b.Style || a.ShortTag() != b.ShortTag() || a.Value != b.Value ||
		a.Line != b.Line || a.Column != b.Column || len(a.Content) != len(b.Content) {
		return fmt.Errorf("%s: fast {kind %v style %v tag %s value %q at %d:%d, %d children} != yaml.v3 {kind %v style %v tag %s value %q at %d:%d, %d children}",
			where, a.Kind, a.Style, a.ShortTag(), a.Value, a.Line, a.Column, len(a.Content),
			b.Kind, b.Style, b.ShortTag(), b.Value, b.Line, b.Column, len(b.Content))
	}
	for i := range a.Content {
		if err := sameTree(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", where, i)); err != nil {
			return err
		}
	}
	return nil
}

// checkFastAgrees fails if the fast parser accepts data but disagrees with yaml.v3.
func checkFastAgrees(t testing.TB, data []byte) (fast bool) {
	t.Helper()
	docs, ok := fastParse(data)
	if !ok {
		return false
	}
	ref, err := referenceParse(data)
	if err != nil {
		t.Fatalf("fast parser accepted input yaml.v3 rejects (%v):\n%s", err, data)
	}
	if len(docs) != len(ref) {
		t.Fatalf("fast parser found %d documents, yaml.v3 %d:\n%s", len(docs), len(ref), data)
	}
	for i := range docs {
		if err := sameTree(docs[i], ref[i], fmt.Sprintf("doc%d", i)); err != nil {
			t.Fatalf("%v\ninput:\n%s", err, data)
		}
	}
	return true
}

// fastCases are inputs the fast parser must take (and get right), covering its whole subset.
var fastCases = []string{
	"a: 1\n",
	"a: 1\nb: two\nc: \"three\"\nd: 'fo''ur'\n",
	"a:\nb: 2\n",
	"a:   \nb: # c\nc:\n",
	"a:\n  b:\n    c: d\n  e: f\n",
	"a:\n- x\n- \n-\n- # c\nb: 1\n",
	"a:\n  - x\n  - y: 1\n    z: 2\n",
	"- a\n- b: c\n  d: e\n-\n  f: g\n",
	"a: []\nb: {}\nc: [x, \"y\", 'z']\nd: [ 1 ,2 ]  # c\n",
	"a: |\n  x\n  y\n",
	"a: |-\n  x\n\n  y\n\n\nb: 1\n",
	"a: | # c\n    indented\n      more\n    back\nb: c\n",
	"- |\n  x\n- b\n",
	"k:\n  - name: x\n    value: |\n      line one\n      line two\n  - name: y\n",
	"# comment\n---\na: 1\n---\n\n# only a comment\n---\nb: 2\n--- # c\nc: 3\n",
	"  a: 1\n  b: 2\n",
	"a: b\n   # indented comment\nc: d\n",
	"a: -1\nb: -x\nc: x:y\nd: x#y\ne: x # c\nf: true\ng: null\nh: ~\ni: 1.5\nj: 0x1F\n",
	"url: http://example.com:8080/x?y=z\nimage: nginx:1.25\n",
	"key with spaces: v\n",
	"a: \"\"\nb: ''\n",
	"a:\n  -   spaced\n  -  b: 1\n     c: 2\n",
	"a: 1\n\n\n",
	"",
	"---\n",
	"# only\n# comments\n",
}

func TestFastParseAgreesWithYAML(t *testing.T) {
	for i, c := range fastCases {
		if !checkFastAgrees(t, []byte(c)) {
			t.Errorf("case %d: fast parser gave up on input it should handle:\n%s", i, c)
		}
	}
}

// fallbackCases are outside the subset: the fast parser must give up (yaml.v3 takes them).
var fallbackCases = []string{
	"a: &x 1\nb: *x\n",
	"base: &b {x: 1}\nm:\n  <<: *b\n",
	"a: !!str 1\n",
	"a: >\n  folded\n",
	"a: |+\n  keep\n\n",
	"a: |2\n   x\n",
	"a: \"esc\\n\"\n",
	"a: plain\n  continued\n",
	"a: \"multi\n  line\"\n",
	"{\"kind\": \"Secret\"}\n",
	"a:\tb\n",
	"a: caf\xc3\xa9\n",
	"a: 1\r\nb: 2\r\n",
	"%YAML 1.2\n---\na: 1\n",
	"a: 1\n...\n",
	"? a\n: b\n",
	"a: b: c\n",
	"a: 1\n b: 2\n",
	"a: 1\nb:2\n",
	"- a\nb: 1\n",
	"a: [1, [2]]\n",
	"a: {b: 1}\n",
	"--- a: 1\n",
	"a: |\n\n  leading blank\n",
	"a:\n  - - nested\n",
	"\"quoted\": key\n",
}

func TestFastParseFallsBack(t *testing.T) {
	for i, c := range fallbackCases {
		if _, ok := fastParse([]byte(c)); ok {
			t.Errorf("case %d: fast parser accepted input outside its subset:\n%s", i, c)
		}
		// Whatever path it takes, parseDocuments must agree with yaml.v3 on validity.
		_, serr := parseDocuments([]byte(c), nil)
		_, rerr := referenceParse([]byte(c))
		if (serr != nil) != (rerr != nil) {
			t.Errorf("case %d: parseDocuments error %v, yaml.v3 error %v", i, serr, rerr)
		}
	}
}

// Edge cases where either answer is fine, as long as the fast path agrees with yaml.v3 when it
// answers at all.
func TestFastParseEdges(t *testing.T) {
	for _, c := range []string{
		"- |\n x\n", "a:\n- |\n x\n", "a: |\n x\n", "- a: |\n   x\n", "- a: |\n  x\n",
		"a: |\n  x\n \n  y\n", "a: |\n  x\n   \n  y\n", "a: |-\n  x", "a: |\n  x\n# c\nb: 1\n",
		"a: 'x'' '\n", "a: ''''\n", "a: [a b]\n", "a: [a, b,]\n", "a: [\"x,y\", z]\n", "a: []  # c\n",
		"a: x # c\n  # d\nb: y\n", "a:\n  # c\n  b: 1\n", "-\n  - a\n", "- -1\n- +2\n", "a: 0o17\nb: .5\n",
		"a: x\n---\nb: y\n", "a: x\n--- # c\n", "a:\n\n  b: 1\n", "a: b # c: d\n", "a: b#: c\n",
	} {
		checkFastAgrees(t, []byte(c))
	}
}

// The benchmark's files and every fixture must parse on the fast path or fall back correctly.
func TestFastParseFixtures(t *testing.T) {
	if !checkFastAgrees(t, []byte(benchManifest(7))) {
		t.Fatal("the benchmark manifest is not on the fast path")
	}
	filepath.WalkDir("testdata", func(f string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkFastAgrees(t, data)
		return nil
	})
}

// FuzzParse feeds arbitrary bytes to the document parser: it must never panic, must report a
// line for every error, and the fast path must agree with yaml.v3 whenever it answers.
func FuzzParse(f *testing.F) {
	for _, c := range fastCases {
		f.Add([]byte(c))
	}
	for _, c := range fallbackCases {
		f.Add([]byte(c))
	}
	f.Add([]byte(benchManifest(1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, serr := parseDocuments(data, nil)
		if serr != nil && serr.Line < 1 {
			t.Fatalf("error without a line: %v", serr)
		}
		_ = docs
		checkFastAgrees(t, data)
		// The rules must not panic on whatever parsed either.
		fc := newFileChecker(&settings{defaultNS: "default", allowTypes: map[string]bool{}, kvMounts: []string{"secret"}, allNamespace: true})
		fc.checkFile("fuzz.yaml", data)
	})
}
