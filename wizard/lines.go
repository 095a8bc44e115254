package wizard

import (
	"bufio"
	"errors"
	"io"
)

// errInputEnded is returned when the answers piped to the accessible mode run out.
var errInputEnded = errors.New("input ended before every question was answered; nothing was written")

// lineReader hands out its input one line per Read. huh's accessible mode starts a new
// bufio.Scanner for every question, and a Scanner that read ahead would swallow the answers to
// the next questions. It also notes when input ends while a question waits for its answer: huh
// would quietly take the default for that and every later question.
type lineReader struct {
	r       *bufio.Reader
	pending []byte
	midLine bool // the last bytes handed out did not end a line
	ended   bool // a Read found no more input at the start of a line
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: bufio.NewReader(r)} }

func (l *lineReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(l.pending) == 0 {
		line, err := l.r.ReadBytes('\n')
		if len(line) == 0 {
			if err == nil {
				err = io.ErrUnexpectedEOF // unreachable: ReadBytes returns data or an error
			}
			if l.midLine {
				l.midLine = false // this EOF ends the last, unterminated answer
			} else {
				l.ended = true
			}
			return 0, err
		}
		l.pending = line
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	l.midLine = p[n-1] != '\n'
	return n, nil
}
