package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// pgIdentity is who PostgreSQL runs as. It refuses to run as root, so as root we run it as the
// machine's `postgres` user (setuid) when that user can reach the state directory, and otherwise
// (the default state directory lives under /root, mode 0700) as uid `postgres` inside a user
// namespace that maps it to root outside: postgres sees a non-root owner of its data directory
// and the files stay reachable and owned by root on the host.
type pgIdentity struct {
	cred     *syscall.Credential
	userns   *[2]int
	uid, gid int // owner of files prepared for postgres; -1 leaves ownership alone
	desc     string
}

func postgresIdentity(dir string) (pgIdentity, error) {
	if os.Geteuid() != 0 {
		return pgIdentity{uid: -1, gid: -1, desc: "the current user"}, nil
	}
	pu, err := user.Lookup("postgres")
	if err != nil {
		return pgIdentity{}, errors.New("running as root, and PostgreSQL refuses root: create a `postgres` user or run as another user")
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	if ancestorsTraversable(filepath.Dir(dir), uid, gid) {
		return pgIdentity{
			cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
			uid:  uid, gid: gid, desc: "user postgres",
		}, nil
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return pgIdentity{}, fmt.Errorf("user postgres cannot reach %s and user namespaces are disabled: use a --dir that user postgres can traverse (e.g. under /tmp)", dir)
	}
	return pgIdentity{userns: &[2]int{uid, gid}, uid: -1, gid: -1, desc: "user postgres in a user namespace"}, nil
}

// ancestorsTraversable reports whether uid/gid may search every directory from / down to dir.
func ancestorsTraversable(dir string, uid, gid int) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || !canSearch(fi.Mode(), int(st.Uid), int(st.Gid), uid, gid) {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// canSearch applies the owner/group/other execute bit the way the kernel does for a non-root user
// (supplementary groups ignored: a false "no" only costs the user-namespace fallback).
func canSearch(mode os.FileMode, ownerUID, ownerGID, uid, gid int) bool {
	switch {
	case ownerUID == uid:
		return mode&0o100 != 0
	case ownerGID == gid:
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}

func (id pgIdentity) chown(path string) error {
	if id.uid < 0 {
		return nil
	}
	return os.Chown(path, id.uid, id.gid)
}

func (u *upper) startPostgres(ctx context.Context) error {
	bin := u.o.PostgresBinDir
	pgDir := u.l.postgres()
	dataDir := filepath.Join(pgDir, "data")
	id, err := postgresIdentity(u.o.Dir)
	if err != nil {
		return &ComponentError{Component: compPostgres, Err: err}
	}
	if id.cred != nil {
		// User postgres must be able to search the state directory to reach its own; o+x
		// without o+r lets it through without listing anything (keys are 0600 anyway).
		if err := os.Chmod(u.o.Dir, 0o711); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(pgDir, 0o700); err != nil {
		return err
	}
	if err := id.chown(pgDir); err != nil {
		return err
	}
	password, err := u.postgresPassword()
	if err != nil {
		return err
	}
	if !exists(filepath.Join(dataDir, "PG_VERSION")) {
		if err := u.initdb(ctx, id, bin, pgDir, dataDir, password); err != nil {
			return &ComponentError{Component: compPostgres, Log: u.l.log("initdb"), Tail: tailFile(u.l.log("initdb"), 15), Err: err}
		}
	}

	var port int
	_, err = u.launch([]string{compPostgres}, func() (*started, error) {
		port = u.ports.port(compPostgres)
		st, err := u.start(procSpec{
			name: compPostgres, path: filepath.Join(bin, "postgres"), port: port,
			env:        cleanEnv(),
			dir:        pgDir,
			stopSignal: "SIGINT", // fast shutdown; SIGTERM would wait for clients to disconnect
			cred:       id.cred, userns: id.userns,
			args: []string{
				"-D", dataDir,
				"-c", "listen_addresses=127.0.0.1",
				"-p", strconv.Itoa(port),
				"-c", "unix_socket_directories=" + pgDir,
				"-c", "logging_collector=off",
				// Small footprint: a test database, not a production one.
				"-c", "shared_buffers=32MB",
				"-c", "max_connections=50",
			},
		})
		if err != nil {
			return st, err
		}
		return st, u.waitReady(ctx, st, func(ctx context.Context) error { return postgresHealthy(ctx, bin, port) })
	})
	if err != nil {
		return err
	}
	u.s.mu.Lock()
	u.s.PostgresURL = fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", postgresAdminUser, password, port)
	u.s.mu.Unlock()
	u.logf("postgres: running as %s, admin role %q", id.desc, postgresAdminUser)
	return u.s.save()
}

// postgresPassword reads the admin password, or generates and stores it (0600) on first start.
func (u *upper) postgresPassword() (string, error) {
	path := u.l.postgresPassword()
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(buf) // URL-safe as is
	return pw, writeFileAtomic(path, []byte(pw+"\n"), 0o600)
}

// initdb creates the cluster with the admin as bootstrap superuser and password (scram) auth for
// every connection. The password goes through a short-lived 0600 file, never the command line.
func (u *upper) initdb(ctx context.Context, id pgIdentity, bin, pgDir, dataDir, password string) error {
	_ = os.RemoveAll(dataDir) // a half-initialized directory from an interrupted run
	pwFile := filepath.Join(pgDir, ".initdb-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	if err := id.chown(pwFile); err != nil {
		return err
	}
	logPath := u.l.log("initdb")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", dataDir, "-U", postgresAdminUser, "--pwfile="+pwFile,
		"--auth=scram-sha-256", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions")
	cmd.Dir = pgDir
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// initdb runs postgres children of its own: on cancel, kill the whole group, not just initdb.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: id.cred, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if id.userns != nil {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: id.userns[0], HostID: os.Getuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: id.userns[1], HostID: os.Getgid(), Size: 1}}
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb as %s: %w", id.desc, err)
	}
	u.logf("postgres: initdb done")
	return nil
}

// postgresHealthy is the status probe.
func postgresHealthy(ctx context.Context, bin string, port int) error {
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "pg_isready"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-d", "postgres", "-t", "2").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_isready: %s", strings.TrimSpace(string(out)))
	}
	return nil
}
