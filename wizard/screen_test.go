package wizard

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// recordingTTY is the terminal the wizard writes to, keeping a copy of every byte so that a test
// can replay them into a screen and see what is left on it, which the stream alone (where huh's
// erased forms still read as text) cannot tell. It is still a terminal file for bubbletea.
type recordingTTY struct {
	*os.File
	mu  sync.Mutex
	raw []byte
}

func (r *recordingTTY) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.raw = append(r.raw, p...)
	r.mu.Unlock()
	return r.File.Write(p)
}

// screen replays what was written into the lines a terminal of the given width shows (with no
// height limit: bubbletea moves the cursor only within what it drew). It knows the sequences
// bubbletea uses to redraw inline: cursor up/down/left/right/column, erase line and erase below;
// every other escape sequence is skipped.
func (r *recordingTTY) screen(t *testing.T, width int) []string {
	t.Helper()
	r.mu.Lock()
	raw := string(r.raw)
	r.mu.Unlock()
	rows := [][]rune{{}}
	row, col := 0, 0
	put := func(c rune) {
		if col >= width { // deferred wrap, as terminals do
			row, col = row+1, 0
		}
		for row >= len(rows) {
			rows = append(rows, []rune{})
		}
		for len(rows[row]) <= col {
			rows[row] = append(rows[row], ' ')
		}
		rows[row][col] = c
		col++
	}
	for i := 0; i < len(raw); {
		c, size := utf8.DecodeRuneInString(raw[i:])
		switch {
		case c == '\r':
			col = 0
		case c == '\n':
			row++
			for row >= len(rows) {
				rows = append(rows, []rune{})
			}
		case c == 0x1b && i+1 < len(raw) && raw[i+1] == '[':
			j := i + 2
			for j < len(raw) && (raw[j] < 0x40 || raw[j] > 0x7e) {
				j++
			}
			if j == len(raw) {
				t.Fatalf("unterminated escape sequence at %d", i)
			}
			params, final := raw[i+2:j], raw[j]
			n := 1
			if p, err := strconv.Atoi(params); err == nil {
				n = p
			}
			switch {
			case strings.HasPrefix(params, "?"): // modes: cursor, mouse, paste, focus
			case final == 'A':
				row = max(0, row-n)
			case final == 'B':
				row += n
				for row >= len(rows) {
					rows = append(rows, []rune{})
				}
			case final == 'C':
				col += n
			case final == 'D':
				col = max(0, col-n)
			case final == 'G':
				col = n - 1
			case final == 'K' && (params == "" || params == "0"):
				if col < len(rows[row]) {
					rows[row] = rows[row][:col]
				}
			case final == 'K' && params == "2":
				rows[row] = rows[row][:0]
			case final == 'J' && (params == "" || params == "0"):
				if col < len(rows[row]) {
					rows[row] = rows[row][:col]
				}
				rows = rows[:row+1]
			case final == 'm': // colours
			default:
				t.Fatalf("the screen replay does not know ESC[%s%c; teach it", params, final)
			}
			i = j + 1
			continue
		case c == 0x1b && i+1 < len(raw) && raw[i+1] == ']': // OSC (queries, titles): draws nothing
			end := len(raw)
			if j := strings.IndexAny(raw[i:], "\a"); j >= 0 {
				end = i + j + 1
			}
			if j := strings.Index(raw[i:], "\x1b\\"); j >= 0 && i+j+2 < end {
				end = i + j + 2
			}
			i = end
			continue
		case c == 0x1b: // two-byte escapes (save/restore cursor, keypad modes)
			i += 2
			continue
		case c < ' ':
		default:
			put(c)
		}
		i += size
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.TrimRight(string(r), " ")
	}
	return out
}
