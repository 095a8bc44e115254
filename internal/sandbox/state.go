package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

const (
	stateFile    = "state.json"
	stateVersion = 1
	lockFile     = ".lock"
)

// ErrNoSandbox is returned by Load when the directory holds no sandbox state.
var ErrNoSandbox = errors.New("no sandbox state")

// Sandbox is a running (or stopped) sandbox, as recorded in DIR/state.json.
type Sandbox struct {
	Version int    `json:"version"`
	Dir     string `json:"dir"`

	Kubeconfig   string `json:"kubeconfig"`   // admin kubeconfig path
	APIServerURL string `json:"apiServerURL"` // https://127.0.0.1:PORT
	CACertFile   string `json:"caCertFile"`   // sandbox CA (signs apiserver and vault certs)
	CAKeyFile    string `json:"caKeyFile"`

	VaultAddrs  []string `json:"vaultAddrs,omitempty"` // https://127.0.0.1:PORT for node 0..2
	VaultCACert string   `json:"vaultCACert,omitempty"`

	KMSEndpoint string `json:"kmsEndpoint"` // http://127.0.0.1:PORT
	KMSRegion   string `json:"kmsRegion"`
	KMSKeyAlias string `json:"kmsKeyAlias"` // alias/vault-unseal-key
	KMSKeyARN   string `json:"kmsKeyARN,omitempty"`
	// KMSKeyRotation records whether EnableKeyRotation succeeded on the emulator.
	KMSKeyRotation bool `json:"kmsKeyRotation"`

	// PostgresURL carries the admin password: this file is 0600 and the sandbox is throwaway.
	PostgresURL string `json:"postgresURL,omitempty"`

	ToolsDir       string         `json:"toolsDir"`
	PostgresBinDir string         `json:"postgresBinDir,omitempty"`
	WithVault      bool           `json:"withVault"`
	WithPostgres   bool           `json:"withPostgres"`
	Ports          map[string]int `json:"ports"`
	Processes      []Process      `json:"processes"`
	StartedAt      time.Time      `json:"startedAt"`
	// ReadyAfter is how long the last `up` took until every component was ready.
	ReadyAfter time.Duration `json:"readyAfter"`

	// AlreadyRunning is set by Up when it found this sandbox up and healthy and changed nothing.
	AlreadyRunning bool `json:"-"`

	mu            sync.Mutex
	running       map[string]*started // processes this Go process started (to reap and watch them)
	dieWithParent bool
}

// Load reads DIR/state.json of a sandbox started earlier (possibly by another process).
func Load(dir string) (*Sandbox, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(abs, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoSandbox, abs)
	}
	if err != nil {
		return nil, err
	}
	s := &Sandbox{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(abs, stateFile), err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("%s: state version %d, this vaultctl-sandbox understands %d; run `vaultctl-sandbox down --purge` with the vaultctl-sandbox that created it",
			filepath.Join(abs, stateFile), s.Version, stateVersion)
	}
	// The directory may have been moved; the recorded absolute paths would then be stale, and
	// Dir must at least be where we found it.
	s.Dir = abs
	return s, nil
}

// save writes state.json atomically (0600: it holds the Postgres URL with its password).
func (s *Sandbox) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

func (s *Sandbox) saveLocked() error {
	s.Version = stateVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.Dir, stateFile), append(b, '\n'), 0o600)
}

// record adds or replaces the process entry of p.Name and saves the state, so that a crash
// halfway through `up` still leaves every started PID for `down`.
func (s *Sandbox) record(st *started) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		s.running = map[string]*started{}
	}
	s.running[st.Name] = st
	replaced := false
	for i := range s.Processes {
		if s.Processes[i].Name == st.Name {
			s.Processes[i] = st.Process
			replaced = true
		}
	}
	if !replaced {
		s.Processes = append(s.Processes, st.Process)
	}
	return s.saveLocked()
}

// markStopped records that name was stopped on purpose (PID 0): status then says "stopped"
// rather than "not running".
func (s *Sandbox) markStopped(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.Processes {
		if s.Processes[i].Name == name {
			s.Processes[i].PID, s.Processes[i].StartTime = 0, 0
		}
	}
	return s.saveLocked()
}

// process returns the recorded entry of name.
func (s *Sandbox) process(name string) (Process, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.Processes {
		if p.Name == name {
			return p, true
		}
	}
	return Process{}, false
}

// processes returns a copy of the recorded processes.
func (s *Sandbox) processes() []Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Process(nil), s.Processes...)
}

// lockDir takes an exclusive flock on DIR/.lock so two `up`/`down` never race on one sandbox.
// The lock dies with the process.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another vaultctl is starting or stopping the sandbox in %s", dir)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
