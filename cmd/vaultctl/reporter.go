package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/vaultctl/vaultctl/phases"
)

// reporter renders phase progress: a live line with elapsed time on a terminal, plain lines in
// logs and CI, nothing with -o json (the one JSON document is the whole output).
type reporter struct {
	w     io.Writer
	tty   bool
	quiet bool
	apply bool

	mu      sync.Mutex
	stop    chan struct{}
	done    chan struct{}
	started time.Time
	detail  string // latest progress line of the running phase
}

// progress shows what a long phase is doing: in the live line on a terminal, as an indented
// line otherwise.
func (r *reporter) progress(line string) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tty {
		r.detail = line
		return
	}
	fmt.Fprintf(r.w, "    ... %s\n", line)
}

func newReporter(opts *rootOptions, apply bool) *reporter {
	r := &reporter{w: opts.stdout, quiet: opts.Output == "json", apply: apply}
	if f, ok := opts.terminal.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("CI") == "" {
		r.tty = true
	}
	return r
}

func (r *reporter) Started(phase, description string) {
	if r.quiet {
		return
	}
	r.started = time.Now()
	r.detail = ""
	if !r.tty {
		fmt.Fprintf(r.w, "--> %s: %s\n", phase, description)
		return
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.spin(phase, description)
}

// spin redraws the live line until Finished stops it.
func (r *reporter) spin(phase, description string) {
	defer close(r.done)
	frames := []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		r.mu.Lock()
		what := description
		if r.detail != "" {
			what = r.detail
		}
		fmt.Fprintf(r.w, "\r\033[K%c %-18s %s  %.1fs", frames[i%len(frames)], phase, what, time.Since(r.started).Seconds())
		r.mu.Unlock()
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

func (r *reporter) Finished(res phases.Result) {
	if r.quiet {
		return
	}
	if r.stop != nil {
		close(r.stop)
		<-r.done
		r.stop = nil
		fmt.Fprint(r.w, "\r\033[K")
	}
	mark := map[phases.Status]string{phases.UpToDate: "✓", phases.Changed: "✓", phases.WouldChange: "~", phases.Failed: "✗", phases.Skipped: "-", phases.NotRun: "-", phases.Blocked: "…"}[res.Status]
	line := fmt.Sprintf("%s %-18s %s", mark, res.Phase, res.Status)
	if res.Status == phases.UpToDate || res.Status == phases.Changed || res.Status == phases.WouldChange || res.Status == phases.Failed {
		line += fmt.Sprintf(" (%.1fs)", res.Duration.Seconds())
	}
	if len(res.Facts) > 0 {
		line += "  " + joinFacts(res.Facts)
	}
	if res.WaitsFor != "" {
		line += " for " + res.WaitsFor + " to be applied"
	}
	fmt.Fprintln(r.w, line)
	for _, c := range res.Changes {
		sign := map[phases.Action]string{phases.Create: "+", phases.Update: "~", phases.Delete: "-", phases.Restart: "!"}[c.Action]
		verb := "will"
		if res.Status == phases.Changed {
			verb = "did"
		}
		fmt.Fprintf(r.w, "    %s %s %s\n", sign, verb, c)
	}
	if res.Error != nil {
		fmt.Fprintf(r.w, "    error: %s\n", res.Error.What)
		if res.Error.Hint != "" {
			fmt.Fprintf(r.w, "    fix:   %s\n", res.Error.Hint)
		}
	}
}

func (r *reporter) summary(res runResult) {
	changed, upToDate := 0, 0
	for _, p := range res.Phases {
		switch p.Status {
		case phases.Changed, phases.WouldChange:
			changed++
		case phases.UpToDate:
			upToDate++
		}
	}
	switch {
	case !res.OK:
		fmt.Fprintf(r.w, "\n%s failed. Fix the error above and run it again; finished phases are re-checked, not redone.\n", res.Command)
	case !r.apply && res.Changes > 0:
		fmt.Fprintf(r.w, "\nPlan: %s in %s. Run `vaultctl apply` to make them.\n", plural(res.Changes, "change"), plural(changed, "phase"))
	case !r.apply:
		fmt.Fprintf(r.w, "\nNo changes. %s up to date.\n", plural(upToDate, "phase"))
	case res.Changes > 0:
		fmt.Fprintf(r.w, "\nApply complete: %s made in %s; %s already up to date.\n", plural(res.Changes, "change"), plural(changed, "phase"), plural(upToDate, "phase"))
	default:
		fmt.Fprintf(r.w, "\nNothing to do: %s up to date.\n", plural(upToDate, "phase"))
	}
}

// newDebugLog is -v: a timestamped line on stderr for each step an action takes (connect,
// preflight, lock taken, renewed and released, each phase's outcome, progress lines). It goes to
// stderr so that stdout stays the one JSON document with -o json. nil without -v.
func newDebugLog(opts *rootOptions) func(string) {
	if opts.Verbose == 0 {
		return nil
	}
	var mu sync.Mutex // the lock's renewal goroutine logs too
	return func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(opts.stderr, "%s vaultctl: %s\n", time.Now().Format("15:04:05.000"), line)
	}
}
