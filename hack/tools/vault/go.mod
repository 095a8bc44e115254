// Builds the Vault server used by the sandbox. Kept apart from the product's go.mod because Vault
// pulls ~490 modules. Do not run `go mod tidy` here: it follows test imports, raises vault/sdk to a
// version that no longer compiles against v1.21.1, and downloads gigabytes of test-only modules.
// go.sum is filled by `go build -mod=mod` (hack/tools/build.sh).
module vaultctl.local/tools/vault

go 1.25.3

require (
	github.com/hashicorp/vault v1.21.1
	github.com/hashicorp/vault/api v1.22.0
	github.com/hashicorp/vault/sdk v0.20.0
)

// Vault's own go.mod replaces these with forks at other module paths; replaces in a dependency are
// ignored, so they are repeated here (the relative ./api and ./sdk replaces are served as modules).
replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
