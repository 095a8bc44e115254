// Package migrate moves a namespace's workloads off raw Kubernetes Secrets
// and onto Vault KV read through the Agent Injector. It discovers who reads
// which Secret, decides what is migrated and what the cluster itself must keep,
// and rewrites pod templates. It is library code: it never prints, and no
// Secret value ever enters a Plan.
package migrate

// RefKind is how a workload reads a Secret.
type RefKind string

const (
	RefEnv       RefKind = "env"       // env[].valueFrom.secretKeyRef
	RefEnvFrom   RefKind = "envFrom"   // envFrom[].secretRef
	RefVolume    RefKind = "volume"    // volumes[].secret
	RefProjected RefKind = "projected" // volumes[].projected.sources[].secret
	RefImagePull RefKind = "imagePull" // imagePullSecrets (pod or its ServiceAccount)
)

// Reference is one place a workload reads a Secret.
type Reference struct {
	Secret    string // the Secret's name
	Kind      RefKind
	Container string // "" for pod-level refs (volumes, imagePullSecrets)
	Init      bool   // Container is an init container
	Key       string // env: the key read
	EnvName   string // env: the variable; envFrom: the prefix
	Volume    string // volume/projected: the volume's name
	Optional  bool
}

// WorkloadID names a workload in the namespace.
type WorkloadID struct{ Kind, Name string } // Kind: Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod, ServiceAccount

func (w WorkloadID) String() string { return w.Kind + "/" + w.Name }

// SecretAction says what the migration does with a Secret.
type SecretAction string

const (
	SecretMigrate SecretAction = "migrate"
	SecretKeep    SecretAction = "keep"
)

// SecretPlan is one Secret in the plan. Keys are names only: values never enter a plan.
type SecretPlan struct {
	Name      string       `json:"name"`
	Type      string       `json:"type"`
	Action    SecretAction `json:"action"`
	Reason    string       `json:"reason"`               // why kept, or "used by N workloads", or "unused: kept safe in KV"
	KVPath    string       `json:"kvPath,omitempty"`     // logical path incl. mount: "secret/team-a/db"
	Keys      []string     `json:"keys"`                 // sorted
	Binary    []string     `json:"binaryKeys,omitempty"` // keys whose value is not valid UTF-8: stored base64 in KV
	Consumers []string     `json:"consumers"`            // "Kind/name", sorted
	// State is what earlier runs did, from the journal: "" (not started), copied, pruned.
	State string `json:"state,omitempty"`
}

// WorkloadAction says what the migration does with a workload.
type WorkloadAction string

const (
	WorkloadMigrate WorkloadAction = "migrate"
	WorkloadManual  WorkloadAction = "manual"
	WorkloadSkip    WorkloadAction = "skip"
)

// WorkloadPlan is one workload in the plan.
type WorkloadPlan struct {
	Kind                 string         `json:"kind"`
	Name                 string         `json:"name"`
	Action               WorkloadAction `json:"action"`
	ServiceAccount       string         `json:"serviceAccount"` // after migration (a new one when it ran as default)
	CreateServiceAccount bool           `json:"createServiceAccount,omitempty"`
	// KeepsDefaultServiceAccount: it runs as default and --keep-service-account keeps it there,
	// so its role is bound to default.
	KeepsDefaultServiceAccount bool `json:"keepsDefaultServiceAccount,omitempty"`
	// CopyRoleBindings are the RoleBindings granting default something that are copied to its
	// new ServiceAccount (--copy-role-bindings).
	CopyRoleBindings []string `json:"copyRoleBindings,omitempty"`
	Role             string   `json:"role,omitempty"`
	Policy           string   `json:"policy,omitempty"`
	KVPaths          []string `json:"kvPaths,omitempty"` // logical paths it will read
	Changes          []string `json:"changes"`           // human lines, no values
	Warnings         []string `json:"warnings"`
	Manual           []string `json:"manual,omitempty"` // why it is manual, each with what to do
	// State is what earlier runs did, from the journal: "" (not started), verified, failed...
	State      string      `json:"state,omitempty"`
	References []Reference `json:"-"`
}

// Plan is the whole namespace.
type Plan struct {
	Namespace string         `json:"namespace"`
	Secrets   []SecretPlan   `json:"secrets"`
	Workloads []WorkloadPlan `json:"workloads"`
	Problems  []string       `json:"problems"` // e.g. a required reference to a missing Secret
}
