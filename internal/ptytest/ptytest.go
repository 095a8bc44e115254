// Package ptytest drives terminal programs in a pseudo-terminal for tests: it types keys into
// the terminal and waits for text to appear on its screen.
package ptytest

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/creack/pty"

	"github.com/vaultctl/vaultctl/internal/testreq"
)

// Keys as a terminal sends them.
const (
	Enter    = "\r"
	Up       = "\x1b[A"
	Down     = "\x1b[B"
	Tab      = "\t"
	Space    = " "
	CtrlC    = "\x03"
	CtrlU    = "\x15" // delete to the start of the line
	Timeout  = 20 * time.Second
	pollTime = 10 * time.Millisecond
)

// Terminal is the master side of a pseudo-terminal; TTY is the side a program runs on.
type Terminal struct {
	TTY *os.File

	t    testing.TB
	ptmx *os.File

	mu     sync.Mutex
	raw    []byte
	seen   int // offset in the stripped screen text that Expect has consumed
	closed chan struct{}
}

// New opens a pseudo-terminal of the given size; it is closed when the test ends.
func New(t testing.TB, rows, cols uint16) *Terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		testreq.Missing(t, "no pseudo-terminal available: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	if ptmx, err = pollable(ptmx); err != nil {
		t.Fatal(err)
	}
	term := &Terminal{TTY: tty, t: t, ptmx: ptmx, closed: make(chan struct{})}
	go term.read()
	// Only the master side is closed (which ends read): bubbletea can leave a goroutine reading
	// the terminal's size for a moment after its program returned, and closing the TTY under it
	// is a data race. The TTY is closed when it is garbage.
	t.Cleanup(func() {
		_ = ptmx.Close()
		<-term.closed
	})
	return term
}

func (term *Terminal) read() {
	defer close(term.closed)
	buf := make([]byte, 4096)
	for {
		n, err := term.ptmx.Read(buf)
		term.mu.Lock()
		term.raw = append(term.raw, buf[:n]...)
		term.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Screen is everything written to the terminal so far, without escape sequences.
func (term *Terminal) Screen() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return ansi.Strip(string(term.raw))
}

// Expect waits until text appears after what earlier Expects matched, and consumes it.
func (term *Terminal) Expect(text string) {
	term.t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		screen := term.Screen()
		term.mu.Lock()
		seen := min(term.seen, len(screen))
		if i := strings.Index(screen[seen:], text); i >= 0 {
			term.seen = seen + i + len(text)
			term.mu.Unlock()
			return
		}
		term.mu.Unlock()
		if time.Now().After(deadline) {
			term.t.Fatalf("%q did not appear on the terminal; it shows, since the last match:\n%s", text, tail(screen[seen:], 3000))
		}
		time.Sleep(pollTime)
	}
}

// Type sends keys to the program, as one write.
func (term *Terminal) Type(keys ...string) {
	term.t.Helper()
	if _, err := term.ptmx.WriteString(strings.Join(keys, "")); err != nil {
		term.t.Fatal(err)
	}
}

// Press sends keys one write at a time, pausing between them so that a program reading the
// terminal sees each as its own key press.
func (term *Terminal) Press(keys ...string) {
	term.t.Helper()
	for _, k := range keys {
		term.Type(k)
		time.Sleep(30 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
