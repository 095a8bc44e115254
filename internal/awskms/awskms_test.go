package awskms

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/vaultctl/vaultctl/internal/awskms/awskmstest"
)

// kmsServer counts the requests that reach it; it answers none of them usefully.
func kmsServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func describe(t *testing.T, endpoint string) error {
	t.Helper()
	c, err := New(context.Background(), "us-east-1", endpoint)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/vault-unseal")})
	if err == nil {
		t.Fatal("DescribeKey without credentials succeeded")
	}
	return err
}

func TestNoCredentialsIsACredentialsErrorListingTheChain(t *testing.T) {
	awskmstest.NoCredentials(t)
	srv, hits := kmsServer(t)
	err := describe(t, srv.URL)
	var ce *CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *CredentialsError, got %T: %v", err, err)
	}
	msg := ce.Error()
	for _, want := range []string{"no AWS credentials found", "AWS_ACCESS_KEY_ID", "web identity / IRSA", "shared files",
		`profile "default"`, "container role", "EC2 instance role", "AWS_EC2_METADATA_DISABLED"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "failed to refresh cached credentials") {
		t.Errorf("the SDK's cache noise reached the message: %s", msg)
	}
	if fix := ce.Fix(); !strings.Contains(fix, "AWS_ACCESS_KEY_ID") || !strings.Contains(fix, "IRSA") {
		t.Errorf("fix: %s", fix)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("KMS was contacted %d times without credentials", n)
	}
}

func TestCredentialsFromTheEnvironmentAreNotMarked(t *testing.T) {
	awskmstest.NoCredentials(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	srv, hits := kmsServer(t)
	err := describe(t, srv.URL)
	var ce *CredentialsError
	if errors.As(err, &ce) {
		t.Fatalf("static keys reported as a credentials failure: %v", err)
	}
	if hits.Load() == 0 {
		t.Fatal("KMS was never asked")
	}
}

func TestAFailingConfiguredSourceIsNotCalledMissing(t *testing.T) {
	awskmstest.NoCredentials(t)
	dir := t.TempDir()
	cfg := dir + "/config"
	// A credential_process that fails: configured, so not "no credentials found".
	if err := os.WriteFile(cfg, []byte("[default]\ncredential_process = false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", cfg)
	srv, _ := kmsServer(t)
	err := describe(t, srv.URL)
	var ce *CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *CredentialsError, got %T: %v", err, err)
	}
	if len(ce.Tried) != 0 || !strings.Contains(ce.Error(), "could not get AWS credentials") || !strings.Contains(ce.Fix(), "credential_process") {
		t.Fatalf("a configured source that fails: %v / %s", ce, ce.Fix())
	}
}

// The SDK's own logger wrote "WARN falling back to IMDSv1" to stderr, over the spinner. An
// instance metadata service that refuses tokens (403) is what triggers it.
func TestTheSDKWritesNothingToStderr(t *testing.T) {
	awskmstest.NoCredentials(t)
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	defer imds.Close()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	srv, _ := kmsServer(t)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	func() {
		defer func() { os.Stderr = saved }()
		err = describe(t, srv.URL)
	}()
	w.Close()
	out, _ := io.ReadAll(r)
	if len(out) != 0 {
		t.Errorf("the SDK wrote to stderr: %s", out)
	}
	var ce *CredentialsError
	if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "EC2 instance role") {
		t.Errorf("want no credentials found, got %v", err)
	}
}
