//go:build unix

package ptytest

import (
	"os"
	"syscall"
)

// pollable returns f as a file whose reads go through Go's poller, so that closing it ends a
// read in progress. (pty.Open's file is in blocking mode, where Close does not.)
func pollable(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	_ = f.Close()
	return os.NewFile(uintptr(fd), f.Name()), nil
}
