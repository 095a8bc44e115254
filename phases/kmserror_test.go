package phases

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/awskms"
	"github.com/vaultctl/vaultctl/internal/awskms/awskmstest"
)

// kmsAnswering is a KMS endpoint that answers every request with the given KMS error code;
// it counts the requests that reach it.
func kmsAnswering(t *testing.T, code string) (string, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", code)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"` + code + `","message":"from the test server"}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &hits
}

// preflightKMS runs preflight's KMS probe against a real SDK client, as a user would see it.
func preflightKMS(t *testing.T, endpoint string) *Error {
	t.Helper()
	c, err := awskms.New(context.Background(), "us-east-1", endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &Preflight{
		In:  PreflightInputs{AWSKMS: config.AWSKMS{Region: "us-east-1", KMSKeyID: "alias/vault-unseal"}},
		KMS: KMSHandle{API: c, Endpoint: awskms.Endpoint(c, "us-east-1")},
	}
	_, err = p.kmsKey(context.Background())
	if err == nil {
		t.Fatal("the KMS probe passed")
	}
	return asPhaseError("preflight", err)
}

func TestKMSWithoutAnyCredentialsSaysSoAndListsTheChain(t *testing.T) {
	for name, imds := range map[string]func(t *testing.T){
		"metadata disabled": func(*testing.T) {},
		// Off EC2 the metadata address does not answer: that is not KMS being unreachable.
		"metadata unreachable": func(t *testing.T) {
			t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
			t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
		},
	} {
		t.Run(name, func(t *testing.T) {
			awskmstest.NoCredentials(t)
			imds(t)
			endpoint, hits := kmsAnswering(t, "AccessDeniedException")
			start := time.Now()
			pe := preflightKMS(t, endpoint)
			for _, want := range []string{"no AWS credentials found", "environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
				"web identity / IRSA", "shared files", `(profile "default")`, "container role", "EC2 instance role",
				"KMS at " + endpoint + " was not contacted"} {
				if !strings.Contains(pe.What, want) {
					t.Errorf("error lacks %q:\n%s", want, pe.What)
				}
			}
			for _, wrong := range []string{"refused the request", "unreachable"} {
				if strings.Contains(pe.What, wrong) {
					t.Errorf("error says %q:\n%s", wrong, pe.What)
				}
			}
			if !strings.Contains(pe.Hint, "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") || strings.Contains(pe.Hint, "kms:DescribeKey") {
				t.Errorf("fix: %s", pe.Hint)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("KMS was contacted %d times without credentials", n)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestKMSAnswersAreToldApart(t *testing.T) {
	for _, c := range []struct {
		code, want, hint string
	}{
		{"AccessDeniedException", "refused the request", "kms:DescribeKey, kms:Encrypt, kms:Decrypt and kms:GenerateDataKey"},
		{"UnrecognizedClientException", "rejected the AWS credentials", "aws sts get-caller-identity"},
		{"ExpiredTokenException", "rejected the AWS credentials", "aws sts get-caller-identity"},
	} {
		t.Run(c.code, func(t *testing.T) {
			awskmstest.NoCredentials(t)
			t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
			endpoint, hits := kmsAnswering(t, c.code)
			pe := preflightKMS(t, endpoint)
			if !strings.Contains(pe.What, "KMS at "+endpoint+" "+c.want) || !strings.Contains(pe.Hint, c.hint) {
				t.Errorf("want %q / %q, got\n%s\nfix: %s", c.want, c.hint, pe.What, pe.Hint)
			}
			if hits.Load() == 0 {
				t.Error("KMS was never asked")
			}
		})
	}
}

func TestKMSEndpointUnreachable(t *testing.T) {
	awskmstest.NoCredentials(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
	pe := preflightKMS(t, "http://127.0.0.1:1")
	if !strings.Contains(pe.What, "KMS endpoint http://127.0.0.1:1 is unreachable") || !strings.Contains(pe.Hint, "vault.seal.awskms.endpoint") {
		t.Fatalf("%s\nfix: %s", pe.What, pe.Hint)
	}
}
