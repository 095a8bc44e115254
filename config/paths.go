package config

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// resolvePaths makes the relative paths written in the config file relative to the file's
// directory, as kubectl does for the paths inside a kubeconfig: `vaultctl -c deploy/vaultctl.yaml`
// with `caCert: ca.pem` reads deploy/ca.pem, from wherever it runs. A value from a flag or an
// environment variable was typed relative to the working directory and stays so.
func resolvePaths(c *Config, src *Source, dir string) {
	if dir == "" || dir == "." {
		return // already relative to the working directory
	}
	one := func(path string, p *string) {
		if _, overridden := src.overrides[path]; overridden || *p == "" || filepath.IsAbs(*p) || isInlinePEM(*p) {
			return
		}
		if src.written == nil {
			src.written = map[string]string{}
		}
		src.written[path] = *p
		*p = filepath.Join(dir, *p)
	}
	one("cluster.kubeconfig", &c.Cluster.Kubeconfig)
	one("vault.tls.caCert", &c.Vault.TLS.CACert)
	one("vault.init.recoveryKeysFile", &c.Vault.Init.RecoveryKeysFile)
	one("kubernetesAuth.caCert", &c.KubernetesAuth.CACert)
	for i := range c.Databases {
		one(fmt.Sprintf("databases[%d].password.file", i), &c.Databases[i].Password.File)
	}
	for i := range c.Vault.Init.PGPKeys {
		one(fmt.Sprintf("vault.init.pgpKeys[%d]", i), &c.Vault.Init.PGPKeys[i])
	}
}

// isInlinePEM reports whether a CA value is the PEM itself rather than a file's path (the
// vault client accepts both for vault.tls.caCert).
func isInlinePEM(s string) bool { return strings.Contains(s, "-----BEGIN") }

// checkFile reports key's file when it is missing, unreadable or a directory. what says what
// the file is for, so the message tells the user which file they need.
func checkFile(ps *problems, key, path, what string) {
	if path == "" || isInlinePEM(path) {
		return
	}
	written := ""
	if ps.src != nil {
		written = ps.src.written[key]
	}
	if msg := fileProblem(path, what, written); msg != "" {
		ps.errorf(key, "%s", msg)
	}
}

// fileProblem says what is wrong with path, or "". written is the relative path as the config
// file held it, before resolvePaths joined it to the file's directory ("" when unchanged).
func fileProblem(path, what, written string) string {
	st, err := os.Stat(path)
	hint := ""
	if written != "" {
		hint = fmt.Sprintf(" (%s, resolved against the config file's directory)", written)
	}
	if strings.HasPrefix(cmp.Or(written, path), "~") {
		hint = " (~ is not expanded here: write the full path)"
	}
	switch {
	case os.IsNotExist(err):
		return fmt.Sprintf("%s %s does not exist%s", what, path, hint)
	case err != nil:
		return fmt.Sprintf("%s %s cannot be read: %v", what, path, unwrapPathErr(err))
	case st.IsDir():
		return fmt.Sprintf("%s %s is a directory, not a file", what, path)
	}
	return ""
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
