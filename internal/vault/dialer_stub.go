package vault

import (
	"errors"
	"time"
)

// HTTPDialer is a placeholder until the real client lands.
type HTTPDialer struct {
	Timeout    time.Duration
	MaxRetries int
}

// Dial is not implemented yet.
func (HTTPDialer) Dial(Endpoint) (Client, error) { return nil, errors.New("not implemented") }
