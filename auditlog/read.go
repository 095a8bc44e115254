package auditlog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
)

// MaxLineBytes bounds one audit line held in memory. Vault writes a request's whole body on
// one line; a line longer than this (a huge KV write) is counted as skipped, not decoded.
const MaxLineBytes = 16 << 20

// Input is one stream of audit lines: a file, a .gz file, stdin or a pod's log.
type Input struct {
	Name string // for errors: the file name, "-", "vault-0"
	R    io.Reader
}

// scan calls fn for each decodable audit line of in, transparently gunzipping (by the gzip
// magic, so a compressed stdin works too). Lines that are not JSON objects (a pod log's
// server messages, a truncated last line) are counted in stats, not returned as errors.
func scan(ctx context.Context, in Input, stats *Stats, fn func(*Entry)) error {
	br := bufio.NewReaderSize(in.R, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", in.Name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	var (
		e         Entry
		long      []byte // a line that did not fit in the reader's buffer
		oversized bool
		n         int
	)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			stats.Bytes += int64(len(line))
			if !oversized && len(long)+len(line) <= MaxLineBytes {
				long = append(long, line...)
			} else {
				oversized, long = true, long[:0]
			}
			continue
		}
		if oversized || len(long) > 0 {
			if len(long)+len(line) > MaxLineBytes {
				oversized = true
			}
			if oversized {
				stats.Bytes += int64(len(line))
				stats.Lines++
				stats.Oversized++
				line = nil
			} else {
				stats.Bytes -= int64(len(long))
				long = append(long, line...)
				line = long
			}
			oversized = false
			long = long[:0]
			if cap(long) > 4<<20 {
				long = nil // do not keep one huge line's buffer for the rest of the file
			}
		}
		stats.Bytes += int64(len(line))
		if t := bytes.TrimSpace(line); len(t) > 0 {
			stats.Lines++
			if t[0] != '{' {
				stats.NotJSON++
			} else if derr := decodeEntry(t, &e); derr != nil {
				stats.Malformed++
			} else {
				fn(&e)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", in.Name, err)
		}
		if n++; n&0xfff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
}
