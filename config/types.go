// Package config holds vaultctl's declarative schema (the Platform document), its defaults, loading
// from file, environment and flags, and validation whose errors name the key path and file:line.
package config

// APIVersion and Kind identify a vaultctl config document.
const (
	APIVersion = "vaultctl.io/v1alpha1"
	Kind       = "Platform"
)

// Vault modes.
const (
	ModeInCluster = "in-cluster"
	ModeExternal  = "external"
)

// Token reviewer modes for the Kubernetes auth method.
const (
	ReviewerJWT = "reviewer-jwt" // a vault-auth ServiceAccount's long-lived JWT reviews tokens
	ClientJWT   = "client-jwt"   // Vault reviews each login with the client's own JWT
)

// Config is the whole mission: where the cluster is, how Vault runs, who may read what, and the
// migration plan. Every field carries a `desc` tag that documents it in the JSON Schema.
type Config struct {
	APIVersion      string          `yaml:"apiVersion" json:"apiVersion" desc:"Schema version; must be vaultctl.io/v1alpha1."`
	Kind            string          `yaml:"kind" json:"kind" desc:"Document kind; must be Platform."`
	Cluster         Cluster         `yaml:"cluster" json:"cluster" desc:"How to reach the Kubernetes cluster."`
	Vault           Vault           `yaml:"vault" json:"vault" desc:"The Vault server: in-cluster HA Raft or external."`
	Injector        Injector        `yaml:"injector" json:"injector" desc:"The Vault Agent Injector."`
	KubernetesAuth  KubernetesAuth  `yaml:"kubernetesAuth" json:"kubernetesAuth" desc:"The Kubernetes auth method in Vault."`
	KV              []KVMount       `yaml:"kv" json:"kv" desc:"KV version 2 secrets engines to enable (a non-dev Vault has none)."`
	Policies        []Policy        `yaml:"policies" json:"policies" desc:"Vault policies, written with logical KV paths."`
	Roles           []Role          `yaml:"roles" json:"roles" desc:"Kubernetes auth roles binding ServiceAccounts to policies."`
	NetworkPolicies NetworkPolicies `yaml:"networkPolicies" json:"networkPolicies" desc:"NetworkPolicies that limit who reaches Vault."`
	Audit           Audit           `yaml:"audit" json:"audit" desc:"Vault audit devices."`
	Databases       []Database      `yaml:"databases" json:"databases" desc:"Dynamic database credentials (PostgreSQL)."`
	Migration       Migration       `yaml:"migration" json:"migration" desc:"The week-by-week migration plan."`
	Check           Check           `yaml:"check" json:"check" desc:"Settings for vaultctl check, the CI guard."`
	Leases          Leases          `yaml:"leases" json:"leases" desc:"Warning thresholds of vaultctl leases."`
}

// Cluster says how to reach Kubernetes.
type Cluster struct {
	Kubeconfig string `yaml:"kubeconfig" json:"kubeconfig" desc:"Path to the kubeconfig (relative to this file's directory); empty means KUBECONFIG or ~/.kube/config."`
	Context    string `yaml:"context" json:"context" desc:"kubeconfig context; empty means the current context."`
}

// Vault describes the server.
type Vault struct {
	Mode      string    `yaml:"mode" json:"mode" desc:"in-cluster (vaultctl installs Vault with Helm) or external (Vault runs elsewhere)." enum:"in-cluster,external"`
	Address   string    `yaml:"address" json:"address" desc:"Vault API address. Required in external mode (or VAULT_ADDR); in in-cluster mode vaultctl reaches the pods itself."`
	Namespace string    `yaml:"namespace" json:"namespace" desc:"Kubernetes namespace for Vault, the injector and vaultctl's checkpoints."`
	Replicas  int       `yaml:"replicas" json:"replicas" desc:"Number of Vault servers (Raft voters); odd, at least 3 for HA."`
	Raft      Raft      `yaml:"raft" json:"raft" desc:"Integrated Raft storage tuning."`
	Seal      Seal      `yaml:"seal" json:"seal" desc:"Auto-unseal configuration."`
	TLS       TLS       `yaml:"tls" json:"tls" desc:"TLS for the Vault listener."`
	Images    Images    `yaml:"images" json:"images" desc:"Container images; override for air-gapped registries."`
	Init      Init      `yaml:"init" json:"init" desc:"operator init settings and recovery key custody."`
	Rotation  Rotation  `yaml:"rotation" json:"rotation" desc:"Key rotation: how old the encryption key and the recovery keys may get before status warns."`
	Resources Resources `yaml:"resources" json:"resources" desc:"Resource requests and limits for Vault pods."`
	Storage   Storage   `yaml:"storage" json:"storage" desc:"Persistent volumes for Raft data and audit logs."`
	Snapshots Snapshots `yaml:"snapshots" json:"snapshots" desc:"Where vaultctl keeps the Raft snapshots it takes itself (upgrade takes one before it changes the server)."`
}

// Snapshots is where vaultctl keeps the Raft snapshots it takes.
type Snapshots struct {
	Dir string `yaml:"dir" json:"dir" desc:"Directory, on the machine that runs vaultctl, for the snapshot upgrade takes first: one file per run (mode 0600) with a .json record beside it. Relative to the working directory."`
}

// Rotation is how often the keys vaultctl rotates (vaultctl rotate) should be rotated.
type Rotation struct {
	MaxAge Duration `yaml:"maxAge" json:"maxAge" desc:"status warns when the encryption key or the recovery keys were last rotated longer ago than this (default 2160h, 90 days)."`
}

// Raft tunes integrated storage.
type Raft struct {
	PerformanceMultiplier       int      `yaml:"performanceMultiplier" json:"performanceMultiplier" desc:"Raft timing multiplier; 1 is fastest failover. 0 leaves Vault's default."`
	AutopilotStabilizationTime  Duration `yaml:"autopilotStabilizationTime" json:"autopilotStabilizationTime" desc:"How long a new node must be healthy before autopilot makes it a voter."`
	AutopilotCleanupDeadServers bool     `yaml:"autopilotCleanupDeadServers" json:"autopilotCleanupDeadServers" desc:"Let autopilot remove dead servers from the Raft configuration."`
}

// Seal configures auto-unseal. Only awskms is supported.
type Seal struct {
	Type   string `yaml:"type" json:"type" desc:"Seal type; only awskms is supported." enum:"awskms"`
	AWSKMS AWSKMS `yaml:"awskms" json:"awskms" desc:"AWS KMS auto-unseal."`
}

// AWSKMS is the awskms seal. Credentials never appear here: they come from IRSA or the environment.
type AWSKMS struct {
	Region      string `yaml:"region" json:"region" desc:"AWS region of the KMS key."`
	KMSKeyID    string `yaml:"kmsKeyId" json:"kmsKeyId" desc:"KMS key ID, key ARN or alias/NAME."`
	Endpoint    string `yaml:"endpoint" json:"endpoint" desc:"Custom KMS endpoint (a VPC endpoint, or an emulator). Empty means AWS_ENDPOINT_URL_KMS or the regional endpoint."`
	CreateKey   bool   `yaml:"createKey" json:"createKey" desc:"Let the kms phase create the key and alias when missing."`
	IRSARoleARN string `yaml:"irsaRoleArn" json:"irsaRoleArn" desc:"IAM role for the Vault ServiceAccount (EKS IRSA annotation eks.amazonaws.com/role-arn)."`
}

// TLS for the Vault listener.
type TLS struct {
	Mode              string   `yaml:"mode" json:"mode" desc:"generate (vaultctl's CA), secret (an existing kubernetes.io/tls Secret) or cert-manager." enum:"generate,secret,cert-manager"`
	SecretName        string   `yaml:"secretName" json:"secretName" desc:"Name of the kubernetes.io/tls Secret holding the server certificate."`
	CertManagerIssuer string   `yaml:"certManagerIssuer" json:"certManagerIssuer" desc:"cert-manager Issuer or ClusterIssuer (kind/name) when mode is cert-manager."`
	CACert            string   `yaml:"caCert" json:"caCert" desc:"PEM file with the CA that signed Vault's certificate (external mode; relative to this file's directory); empty means VAULT_CACERT."`
	RenewBefore       Duration `yaml:"renewBefore" json:"renewBefore" desc:"Renew generated certificates this long before they expire."`
	ExtraSANs         []string `yaml:"extraSANs" json:"extraSANs" desc:"Additional DNS names or IPs for the server certificate."`
}

// Images lists every image vaultctl deploys.
type Images struct {
	Vault    string `yaml:"vault" json:"vault" desc:"Vault server image."`
	Injector string `yaml:"injector" json:"injector" desc:"vault-k8s injector image."`
	Agent    string `yaml:"agent" json:"agent" desc:"Vault Agent image injected into workloads."`
}

// Init controls operator init and where the recovery keys go.
type Init struct {
	RecoveryShares    int      `yaml:"recoveryShares" json:"recoveryShares" desc:"Number of recovery key shares."`
	RecoveryThreshold int      `yaml:"recoveryThreshold" json:"recoveryThreshold" desc:"Shares needed to reconstruct the recovery key."`
	PGPKeys           []string `yaml:"pgpKeys" json:"pgpKeys" desc:"Files with base64 PGP public keys, one per share (relative to this file's directory); when set, Vault encrypts each share to one key."`
	RecoveryKeysFile  string   `yaml:"recoveryKeysFile" json:"recoveryKeysFile" desc:"File (mode 0600, relative to this file's directory) for the KMS-envelope-encrypted recovery keys, in addition to the in-cluster copy."`
	KeepRootToken     bool     `yaml:"keepRootToken" json:"keepRootToken" desc:"Do not revoke the initial root token after bootstrap (not recommended)."`
}

// Resources for Vault pods.
type Resources struct {
	CPU    string `yaml:"cpu" json:"cpu" desc:"CPU request, e.g. 250m."`
	Memory string `yaml:"memory" json:"memory" desc:"Memory request and limit, e.g. 256Mi."`
}

// Storage for Vault pods.
type Storage struct {
	DataSize     string `yaml:"dataSize" json:"dataSize" desc:"Size of each Raft data volume."`
	AuditSize    string `yaml:"auditSize" json:"auditSize" desc:"Size of each audit log volume."`
	StorageClass string `yaml:"storageClass" json:"storageClass" desc:"StorageClass for the volume claims; empty uses the cluster default."`
}

// Injector is the Vault Agent Injector.
type Injector struct {
	Enabled       *bool  `yaml:"enabled" json:"enabled" desc:"Install the injector (default true)."`
	Replicas      int    `yaml:"replicas" json:"replicas" desc:"Injector replicas."`
	FailurePolicy string `yaml:"failurePolicy" json:"failurePolicy" desc:"Webhook failurePolicy: Ignore lets pods start without secrets when the injector is down; Fail blocks them." enum:"Ignore,Fail"`
	// Two injectors whose webhooks see the same namespace both get its pods, and the first by
	// configuration name injects them: clusters with several Vaults give each its namespaces.
	NamespaceLabels map[string]string `yaml:"namespaceLabels" json:"namespaceLabels" desc:"Only pods in namespaces carrying all these labels are injected; empty means every namespace but kube-system and kube-node-lease."`
}

// KubernetesAuth configures the auth method.
type KubernetesAuth struct {
	Path          string `yaml:"path" json:"path" desc:"Mount path of the auth method; use one per cluster when clusters share a Vault."`
	Host          string `yaml:"host" json:"host" desc:"Kubernetes API URL as Vault reaches it; empty means the kubeconfig's server."`
	CACert        string `yaml:"caCert" json:"caCert" desc:"PEM file with the cluster CA (relative to this file's directory); empty means the kubeconfig's CA."`
	TokenReviewer string `yaml:"tokenReviewer" json:"tokenReviewer" desc:"reviewer-jwt (a vault-auth ServiceAccount reviews tokens) or client-jwt (each client's own JWT is used)." enum:"reviewer-jwt,client-jwt"`
}

// KVMount is a KV version 2 secrets engine.
type KVMount struct {
	Path        string `yaml:"path" json:"path" desc:"Mount path, e.g. secret."`
	Description string `yaml:"description" json:"description" desc:"Mount description shown by vault secrets list."`
}

// Policy is a Vault policy written with logical KV paths (as the CLI shows them).
type Policy struct {
	Name       string       `yaml:"name" json:"name" desc:"Policy name."`
	Rules      []PolicyRule `yaml:"rules" json:"rules" desc:"Paths and the capabilities granted on them."`
	DenyParent *bool        `yaml:"denyParent" json:"denyParent" desc:"Add an explicit deny on each rule's parent prefix (default true)."`
}

// PolicyRule grants capabilities on one path.
type PolicyRule struct {
	Path         string   `yaml:"path" json:"path" desc:"Logical path, e.g. secret/production/db-credentials; KV v2 data/ and metadata/ are added for you."`
	Capabilities []string `yaml:"capabilities" json:"capabilities" desc:"create, read, update, patch, delete, list, sudo or deny."`
}

// Role is a Kubernetes auth role.
type Role struct {
	Name            string   `yaml:"name" json:"name" desc:"Role name, as used in vault.hashicorp.com/role."`
	ServiceAccounts []string `yaml:"serviceAccounts" json:"serviceAccounts" desc:"Bound ServiceAccount names."`
	Namespaces      []string `yaml:"namespaces" json:"namespaces" desc:"Bound namespaces."`
	Policies        []string `yaml:"policies" json:"policies" desc:"Policies attached to tokens issued for this role."`
	TTL             Duration `yaml:"ttl" json:"ttl" desc:"Token TTL, e.g. 1h."`
	MaxTTL          Duration `yaml:"maxTTL" json:"maxTTL" desc:"Maximum token lifetime including renewals, e.g. 4h."`
	Audience        string   `yaml:"audience" json:"audience" desc:"Required JWT audience (not usable with tokenReviewer client-jwt unless the API server accepts it)."`
	AllowWildcard   bool     `yaml:"allowWildcard" json:"allowWildcard" desc:"Permit * in serviceAccounts or namespaces."`
}

// NetworkPolicies limit who reaches Vault.
type NetworkPolicies struct {
	Enabled        bool            `yaml:"enabled" json:"enabled" desc:"Manage NetworkPolicies for Vault (default false)."`
	AllowedClients []AllowedClient `yaml:"allowedClients" json:"allowedClients" desc:"Namespaces and pods allowed to reach Vault on 8200."`
	AppEgress      bool            `yaml:"appEgress" json:"appEgress" desc:"Also add egress rules in client namespaces allowing Vault and DNS (additive)."`
	APIServerCIDRs []string        `yaml:"apiServerCIDRs" json:"apiServerCIDRs" desc:"CIDRs of the API server, allowed to call the injector webhook."`
}

// AllowedClient selects pods that may reach Vault.
type AllowedClient struct {
	Namespace   string            `yaml:"namespace" json:"namespace" desc:"Namespace name."`
	PodSelector map[string]string `yaml:"podSelector" json:"podSelector" desc:"matchLabels of the allowed pods; empty means every pod in the namespace."`
}

// Audit devices.
type Audit struct {
	Devices           []AuditDevice `yaml:"devices" json:"devices" desc:"Audit devices; at least two, since Vault blocks every request when all devices fail."`
	AllowSingleDevice bool          `yaml:"allowSingleDevice" json:"allowSingleDevice" desc:"Accept fewer than two devices (not recommended)."`
}

// AuditDevice is one audit device.
type AuditDevice struct {
	Path    string            `yaml:"path" json:"path" desc:"Device path, e.g. file."`
	Type    string            `yaml:"type" json:"type" desc:"file, syslog or socket." enum:"file,syslog,socket"`
	Options map[string]string `yaml:"options" json:"options" desc:"Device options, e.g. file_path."`
}

// Database is a dynamic-credentials connection.
type Database struct {
	Name          string         `yaml:"name" json:"name" desc:"Connection name, e.g. production-db."`
	Mount         string         `yaml:"mount" json:"mount" desc:"Database secrets engine mount path."`
	Plugin        string         `yaml:"plugin" json:"plugin" desc:"Plugin name; postgresql-database-plugin." enum:"postgresql-database-plugin"`
	ConnectionURL string         `yaml:"connectionURL" json:"connectionURL" desc:"Connection URL with {{username}} and {{password}} placeholders."`
	Username      string         `yaml:"username" json:"username" desc:"Admin user Vault connects as."`
	Password      SecretRef      `yaml:"password" json:"password" desc:"Where the admin password comes from; never inline."`
	Roles         []DatabaseRole `yaml:"roles" json:"roles" desc:"Roles that generate credentials."`
	// Pool limits bound what Vault holds open on the database; 0 leaves Vault's default.
	MaxOpenConnections    int      `yaml:"maxOpenConnections" json:"maxOpenConnections" desc:"Most connections Vault keeps open to this database; 0 leaves Vault's default (4)."`
	MaxIdleConnections    int      `yaml:"maxIdleConnections" json:"maxIdleConnections" desc:"Most idle connections Vault keeps; 0 leaves Vault's default (the open limit)."`
	MaxConnectionLifetime Duration `yaml:"maxConnectionLifetime" json:"maxConnectionLifetime" desc:"How long Vault reuses one connection, e.g. 30m; 0 leaves Vault's default (no limit)."`
}

// SecretRef points at a value without containing it.
type SecretRef struct {
	Env    string         `yaml:"env" json:"env" desc:"Name of the environment variable holding the value (never the value itself)."`
	File   string         `yaml:"file" json:"file" desc:"File holding the value."`
	Secret *KubeSecretKey `yaml:"secret" json:"secret" desc:"Kubernetes Secret key holding the value."`
}

// KubeSecretKey names one key of a Kubernetes Secret.
type KubeSecretKey struct {
	Namespace string `yaml:"namespace" json:"namespace" desc:"Secret namespace."`
	Name      string `yaml:"name" json:"name" desc:"Secret name."`
	Key       string `yaml:"key" json:"key" desc:"Key within the Secret's data."`
}

// DatabaseRole generates credentials.
type DatabaseRole struct {
	Name                 string   `yaml:"name" json:"name" desc:"Role name, e.g. webapp-role."`
	DefaultTTL           Duration `yaml:"defaultTTL" json:"defaultTTL" desc:"Credential TTL, e.g. 30m."`
	MaxTTL               Duration `yaml:"maxTTL" json:"maxTTL" desc:"Maximum credential lifetime, e.g. 1h."`
	CreationStatements   []string `yaml:"creationStatements" json:"creationStatements" desc:"SQL run to create a user."`
	RevocationStatements []string `yaml:"revocationStatements" json:"revocationStatements" desc:"SQL run to drop a user."`
}

// Migration is the week-by-week plan and how `vaultctl migrate namespace` lays secrets out in Vault.
type Migration struct {
	Waves    []Wave            `yaml:"waves" json:"waves" desc:"Migration waves in order."`
	KVPath   string            `yaml:"kvPath" json:"kvPath" desc:"Where a migrated Secret goes in KV: a logical path template with {mount} (the first kv mount), {namespace} and {secret}; it must contain {secret}, and start with {mount} or a kv mount."`
	Defaults MigrationDefaults `yaml:"defaults" json:"defaults" desc:"Settings for the Kubernetes auth roles migrate creates, one per workload."`
	// Entrypoints exist because a container that reads env from a migrated Secret is started
	// through a shell that sources the agent's env file, which needs its argv; the image's
	// ENTRYPOINT is not in the pod spec.
	Entrypoints []MigrationEntrypoint `yaml:"entrypoints" json:"entrypoints" desc:"The argv of containers that set no command but read env from a Secret migrate moves: migrate starts them through a shell that sources the Vault Agent's env file, and needs the image's entrypoint to exec. The flag --entrypoint KIND/NAME:CONTAINER=JSON overrides an entry."`
}

// MigrationEntrypoint is one container's entrypoint, as its image would start it.
type MigrationEntrypoint struct {
	Namespace  string   `yaml:"namespace" json:"namespace" desc:"Namespace of the workload."`
	Workload   string   `yaml:"workload" json:"workload" desc:"KIND/NAME of the workload, e.g. Deployment/web; KIND is Deployment, StatefulSet, DaemonSet, Job, CronJob or Pod."`
	Container  string   `yaml:"container" json:"container" desc:"Container name (an init container's too)."`
	Entrypoint []string `yaml:"entrypoint" json:"entrypoint" desc:"The image's ENTRYPOINT argv (docker inspect -f '{{json .Config.Entrypoint}}' IMAGE), followed by its CMD when the container sets no args: the container's args are appended."`
}

// MigrationDefaults are the token lifetimes of the roles migrate creates.
type MigrationDefaults struct {
	TTL    Duration `yaml:"ttl" json:"ttl" desc:"Token TTL of each migrated workload's role, e.g. 1h."`
	MaxTTL Duration `yaml:"maxTTL" json:"maxTTL" desc:"Maximum token lifetime including renewals of each migrated workload's role, e.g. 4h."`
}

// Wave is one step of the plan.
type Wave struct {
	Week       int      `yaml:"week" json:"week" desc:"Week number the wave starts."`
	Name       string   `yaml:"name" json:"name" desc:"Wave name, e.g. pilot."`
	Namespaces []string `yaml:"namespaces" json:"namespaces" desc:"Namespaces migrated in this wave."`
	Workloads  []string `yaml:"workloads" json:"workloads" desc:"Workloads (namespace/kind/name) migrated in this wave; empty means all in the namespaces."`
	Gates      []string `yaml:"gates" json:"gates" desc:"Conditions that must hold before the wave starts: previous-wave-complete, check-passing, injector-healthy, admission-policy, dynamic-db-credentials, or healthy-for: DURATION (the previous wave's workloads Ready that long since their migration)." enum:"previous-wave-complete,check-passing,injector-healthy,admission-policy,dynamic-db-credentials"`
}

// Check configures vaultctl check.
type Check struct {
	RequiredNamespaces []string `yaml:"requiredNamespaces" json:"requiredNamespaces" desc:"Namespaces (globs allowed) where injection is required."`
	AllowSecretTypes   []string `yaml:"allowSecretTypes" json:"allowSecretTypes" desc:"Secret types that are not findings, e.g. kubernetes.io/tls."`
	Exclude            []string `yaml:"exclude" json:"exclude" desc:"Path globs to skip (Helm or Kustomize sources)."`
	Paths              []string `yaml:"paths" json:"paths" desc:"Manifest files or directories, relative to the repository root, that the CI job of vaultctl ci snippet checks; empty means the whole repository (.)."`
}

// Leases are the thresholds beyond which vaultctl leases flags a prefix.
type Leases struct {
	WarnCount int      `yaml:"warnCount" json:"warnCount" desc:"Flag a prefix holding more leases than this (default 1000)."`
	WarnAge   Duration `yaml:"warnAge" json:"warnAge" desc:"Flag a prefix whose oldest lease was issued longer ago than this (default 24h)."`
}
