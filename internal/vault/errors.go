package vault

import (
	"errors"

	vaultapi "github.com/hashicorp/vault/api"
)

// StatusCode returns the HTTP status of a Vault error, or 0.
func StatusCode(err error) int {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// IsNotFound reports a 404 from Vault.
func IsNotFound(err error) bool { return StatusCode(err) == 404 }

// IsForbidden reports a 403 from Vault: a missing right, or a revoked or unknown token.
func IsForbidden(err error) bool { return StatusCode(err) == 403 }
