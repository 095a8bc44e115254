package testreq

import (
	"testing"
)

// recorder stands in for *testing.T to see which of Skip and Fatal Missing calls.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Skip(...any)           { r.skipped = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestMissingSkipsByHandAndFailsWhenMustRun(t *testing.T) {
	t.Setenv(MustRunEnv, "")
	r := &recorder{}
	Missing(r, "no %s", "thing")
	if !r.skipped || r.failed {
		t.Errorf("without %s: skipped=%t failed=%t, want a skip", MustRunEnv, r.skipped, r.failed)
	}
	t.Setenv(MustRunEnv, "1")
	r = &recorder{}
	Missing(r, "no %s", "thing")
	if r.skipped || !r.failed {
		t.Errorf("with %s=1: skipped=%t failed=%t, want a failure", MustRunEnv, r.skipped, r.failed)
	}
}
