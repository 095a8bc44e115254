package awskms

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// noCredentials leaves the SDK's default chain nothing to find: no keys, profile, web
// identity or container endpoint, an empty HOME, and instance metadata disabled.
func noCredentials(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

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

// The SDK's own logger wrote "WARN falling back to IMDSv1" to stderr, over the spinner. An
// instance metadata service that refuses tokens (403) is what triggers it.
func TestTheSDKWritesNothingToStderr(t *testing.T) {
	noCredentials(t)
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
	if err == nil || !strings.Contains(err.Error(), "EC2 IMDS") {
		t.Errorf("want the instance role's failure, got %v", err)
	}
}
