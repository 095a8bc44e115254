package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/internal/sandbox"
)

// newRootCmd wires `vaultctl-sandbox up|down|status|env` to internal/sandbox; all behaviour
// lives in that package.
func newRootCmd(opts *rootOptions) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:           "vaultctl-sandbox",
		Short:         "Run a throwaway local estate: Kubernetes, 3-node Vault, KMS emulator, PostgreSQL",
		Version:       binaryVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `Run a throwaway test estate on 127.0.0.1, without containers:

  - Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
    and kwok playing the kubelet of three fake nodes (one per zone); pods reach Running/Ready.
    Static hostPath PersistentVolumes let StatefulSet claims bind.
  - an AWS KMS emulator with the key alias/vault-unseal-key,
  - an UNINITIALIZED three-node Vault Raft cluster that auto-unseals through that KMS once
    initialized (initializing it is vaultctl's job, not the sandbox's),
  - PostgreSQL 15 with an admin role.

Everything (PKI, data, logs in logs/NAME.log, state.json with every PID and port) lives in one
directory: --dir, else $VAULTCTL_SANDBOX_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/vaultctl/sandbox.
The binaries come from $VAULTCTL_TOOLS_DIR (built by ` + "`make tools`" + `).

This is a binary of its own, for the tests and the demo; vaultctl itself has no sandbox command.

Exit codes:
  0  success
  1  a component failed to start (up) or is down or unhealthy (status), or there is no
     sandbox in the directory (status, env, effective), or effective cannot compute the view
  2  bad usage`,
		Example: `  # start it, point this shell at it, look around, stop it
  vaultctl-sandbox up
  eval "$(vaultctl-sandbox env)"
  kubectl get nodes
  vault status
  vaultctl-sandbox status
  vaultctl-sandbox down --purge

  # a second, independent sandbox
  vaultctl-sandbox up --dir /tmp/sb2 --postgres=false`,
		// No Args validator: cobra's default reports an unknown command (exit 2) instead of
		// printing the help with exit 0.
	}
	cmd.PersistentFlags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	// Without a shorthand: -v means verbose to vaultctl users, and must not print a version
	// instead of starting a sandbox.
	cmd.Flags().Bool("version", false, "print the version")
	cmd.PersistentFlags().StringVar(&dir, "dir", "",
		"state directory (default $"+sandbox.SandboxDirEnv+", else ${XDG_STATE_HOME:-$HOME/.local/state}/vaultctl/sandbox)")
	resolve := func() string {
		if dir != "" {
			return dir
		}
		return sandbox.DefaultDir()
	}
	cmd.AddCommand(
		newSandboxUpCmd(opts, resolve),
		newSandboxDownCmd(opts, resolve),
		newSandboxStatusCmd(opts, resolve),
		newSandboxEnvCmd(opts, resolve),
		newSandboxEffectiveCmd(opts, resolve),
	)
	return cmd
}

func sandboxJSONOutput(opts *rootOptions) bool { return strings.EqualFold(opts.Output, "json") }

func sandboxWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// sandboxInterruptible cancels on Ctrl-C/SIGTERM so a failed or aborted `up` still stops what it started.
func sandboxInterruptible(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// sandboxSummary is the JSON output of `up` (no secrets: the Postgres URL is only in `env`).
type sandboxSummary struct {
	Dir               string   `json:"dir"`
	AlreadyRunning    bool     `json:"alreadyRunning"`
	ReadySeconds      float64  `json:"readySeconds"`
	RSSBytes          uint64   `json:"rssBytes"`
	Kubeconfig        string   `json:"kubeconfig"`
	APIServerURL      string   `json:"apiServerURL"`
	CACertFile        string   `json:"caCertFile"`
	VaultAddrs        []string `json:"vaultAddrs,omitempty"`
	KMSEndpoint       string   `json:"kmsEndpoint"`
	KMSKeyAlias       string   `json:"kmsKeyAlias"`
	KMSKeyRotation    bool     `json:"kmsKeyRotation"`
	PostgresAvailable bool     `json:"postgres"`
}

func newSandboxUpCmd(opts *rootOptions, dir func() string) *cobra.Command {
	var (
		withVault, withPostgres bool
		toolsDir                string
		timeout                 time.Duration
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the sandbox (or report that it already runs)",
		Long: `Start every component on free loopback ports and wait until each is ready, then print how
long it took and the total resident memory. If the sandbox already runs and is healthy, nothing
changes. A stopped sandbox (after ` + "`down`" + ` without --purge) starts again with its data and ports.
On any failure everything started so far is stopped and the error names the component and shows
the end of its log. The processes outlive this command; stop them with ` + "`vaultctl-sandbox down`" + `.`,
		Example: `  vaultctl-sandbox up
  vaultctl-sandbox up --vault=false --postgres=false     # Kubernetes and KMS only
  VAULTCTL_TOOLS_DIR=$(hack/tools/build.sh --dir) vaultctl-sandbox up --dir /tmp/sb`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := sandboxInterruptible(cmd)
			defer cancel()
			s, err := sandbox.Up(ctx, sandbox.Options{
				Dir:          dir(),
				ToolsDir:     toolsDir,
				Log:          opts.stderr,
				WithVault:    withVault,
				WithPostgres: withPostgres,
				ReadyTimeout: timeout,
			})
			if err != nil {
				return withCode(exitFailed, err)
			}
			sum := sandboxSummary{
				Dir: s.Dir, AlreadyRunning: s.AlreadyRunning, ReadySeconds: s.ReadyAfter.Seconds(),
				RSSBytes: s.RSS(), Kubeconfig: s.Kubeconfig, APIServerURL: s.APIServerURL,
				CACertFile: s.CACertFile, VaultAddrs: s.VaultAddrs, KMSEndpoint: s.KMSEndpoint,
				KMSKeyAlias: s.KMSKeyAlias, KMSKeyRotation: s.KMSKeyRotation, PostgresAvailable: s.PostgresURL != "",
			}
			if sandboxJSONOutput(opts) {
				return sandboxWriteJSON(opts.stdout, sum)
			}
			w := opts.stdout
			if s.AlreadyRunning {
				fmt.Fprintf(w, "sandbox already running in %s (healthy; nothing changed)\n", s.Dir)
			} else {
				fmt.Fprintf(w, "sandbox ready in %.1fs, %s RSS\n", s.ReadyAfter.Seconds(), sandbox.FormatBytes(sum.RSSBytes))
			}
			fmt.Fprintf(w, "  dir:        %s\n  kubeconfig: %s\n  API server: %s\n", s.Dir, s.Kubeconfig, s.APIServerURL)
			for i, a := range s.VaultAddrs {
				fmt.Fprintf(w, "  vault-%d:    %s\n", i, a)
			}
			fmt.Fprintf(w, "  KMS:        %s (%s)\n", s.KMSEndpoint, s.KMSKeyAlias)
			if s.PostgresURL != "" {
				fmt.Fprintf(w, "  PostgreSQL: URL with password in `vaultctl-sandbox env` (VAULTCTL_PG_URL)\n")
			}
			fmt.Fprintf(w, "Use it from a shell: eval \"$(vaultctl-sandbox env%s)\"\n", sandboxDirFlag(cmd))
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&withVault, "vault", true, "start the external 3-node Vault cluster (left uninitialized)")
	f.BoolVar(&withPostgres, "postgres", true, "start PostgreSQL 15")
	f.StringVar(&toolsDir, "tools-dir", "", "directory with the pinned binaries (default $"+sandbox.ToolsDirEnv+")")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "readiness timeout per component")
	return cmd
}

// sandboxDirFlag repeats an explicit --dir in hints so they can be pasted as is.
func sandboxDirFlag(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("dir"); f != nil && f.Changed {
		return " --dir " + f.Value.String()
	}
	return ""
}

func newSandboxDownCmd(opts *rootOptions, dir func() string) *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop exactly the processes the sandbox started",
		Long: `Stop the processes recorded in state.json (checked by PID and start time, so a recycled PID
is never signalled): SIGTERM (SIGINT for PostgreSQL), then SIGKILL after a grace period, whole
process groups included. The directory is kept, so ` + "`up`" + ` can start the same sandbox again;
--purge deletes it.`,
		Example: `  vaultctl-sandbox down
  vaultctl-sandbox down --purge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := dir()
			s, err := sandbox.Load(d)
			switch {
			case errors.Is(err, sandbox.ErrNoSandbox):
				if purge {
					if err := sandbox.Purge(d); err != nil {
						return withCode(exitFailed, err)
					}
				}
				fmt.Fprintf(opts.stderr, "no sandbox in %s\n", d)
				return nil
			case err != nil:
				return withCode(exitFailed, err)
			}
			n := len(s.LiveProcesses())
			if err := s.Down(context.Background()); err != nil {
				return withCode(exitFailed, err)
			}
			fmt.Fprintf(opts.stdout, "sandbox in %s stopped (%d processes)\n", s.Dir, n)
			if purge {
				if err := sandbox.Purge(s.Dir); err != nil {
					return withCode(exitFailed, err)
				}
				fmt.Fprintf(opts.stdout, "deleted %s\n", s.Dir)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the sandbox directory")
	return cmd
}

func newSandboxStatusCmd(opts *rootOptions, dir func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each component's PID, port and health",
		Long: `Show each recorded component with its PID, port and health (its process is alive and its
health endpoint answers). Exits 1 if any component is down or unhealthy. With the global
--output json, prints the same as JSON.`,
		Example: `  vaultctl-sandbox status
  vaultctl-sandbox status -o json | jq '.components[] | select(.healthy | not)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := sandboxLoad(dir())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			cs := s.Status(ctx)
			healthy := len(cs) > 0
			for _, c := range cs {
				healthy = healthy && c.Healthy
			}
			if sandboxJSONOutput(opts) {
				if err := sandboxWriteJSON(opts.stdout, map[string]any{"dir": s.Dir, "healthy": healthy, "components": cs}); err != nil {
					return err
				}
			} else {
				fmt.Fprint(opts.stdout, sandbox.FormatStatus(s.Dir, cs))
			}
			if !healthy {
				return withCode(exitFailed, nil)
			}
			return nil
		},
	}
}

func newSandboxEnvCmd(opts *rootOptions, dir func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "env",
		Short: "Print shell exports for the sandbox (KUBECONFIG, VAULT_ADDR, AWS_*, VAULTCTL_PG_URL)",
		Long: `Print the environment that points clients at the sandbox: KUBECONFIG, VAULT_ADDR (node 0) and
VAULT_CACERT, AWS_ENDPOINT_URL_KMS, AWS_REGION and dummy AWS credentials for the KMS emulator,
and VAULTCTL_PG_URL (the PostgreSQL admin URL, password included: this is a throwaway sandbox).
With the global --output json, prints a JSON object instead.`,
		Example: `  eval "$(vaultctl-sandbox env)"
  vaultctl-sandbox env -o json | jq -r .VAULT_ADDR`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := sandboxLoad(dir())
			if err != nil {
				return err
			}
			if len(s.LiveProcesses()) == 0 {
				fmt.Fprintf(opts.stderr, "warning: the sandbox in %s is not running; start it with `vaultctl-sandbox up`\n", s.Dir)
			}
			env := s.Env()
			if sandboxJSONOutput(opts) {
				m := map[string]string{}
				for _, kv := range env {
					k, v, _ := strings.Cut(kv, "=")
					m[k] = v
				}
				return sandboxWriteJSON(opts.stdout, m)
			}
			fmt.Fprint(opts.stdout, sandbox.ShellExports(env))
			return nil
		},
	}
}

func newSandboxEffectiveCmd(opts *rootOptions, dir func() string) *cobra.Command {
	var container string
	cmd := &cobra.Command{
		Use:   "effective NAMESPACE/POD",
		Short: "Print the environment and files a pod's container would see, as JSON",
		Long: `Print what one container of a pod would see, as one JSON document:

  {"env": {NAME: VALUE}, "files": {PATH: BASE64}, "modes": {PATH: "0644"}}

The sandbox does not run application images, so this is the way to check what an application
gets: env as the kubelet computes it from the pod spec (envFrom, env with $(VAR) expansion,
Secret and ConfigMap keys, fieldRef, fileKeyRef), or, when the container's command sources a
file (sh -c '. /vault/secrets/x && exec app'), the environment after a real shell sourced it;
and every regular file under its volume mounts, with the files the Vault Agent rendered.
The image's own ENV is not known and not included. Env values that are not UTF-8 also appear,
exactly, in base64 under "envBase64". The output holds secret values: it is for tests.`,
		Example: `  vaultctl-sandbox effective shop/web-5d8f7c9b4-x2x7q
  vaultctl-sandbox effective shop/web-5d8f7c9b4-x2x7q -c migrate | jq -r '.files["/vault/secrets/db-creds"]' | base64 -d`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name, ok := strings.Cut(args[0], "/")
			if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
				return withCode(exitUsage, fmt.Errorf("want NAMESPACE/POD, not %q", args[0]))
			}
			s, err := sandboxLoad(dir())
			if err != nil {
				return err
			}
			ctx, cancel := sandboxInterruptible(cmd)
			defer cancel()
			eff, err := s.Effective(ctx, ns, name, container)
			if err != nil {
				return withCode(exitFailed, err)
			}
			return sandboxWriteJSON(opts.stdout, eff)
		},
	}
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (default: the first application container, not vault-agent)")
	return cmd
}

func sandboxLoad(dir string) (*sandbox.Sandbox, error) {
	s, err := sandbox.Load(dir)
	if errors.Is(err, sandbox.ErrNoSandbox) {
		return nil, withCode(exitFailed, fmt.Errorf("no sandbox in %s; start one with `vaultctl-sandbox up`", dir))
	}
	if err != nil {
		return nil, withCode(exitFailed, err)
	}
	return s, nil
}
