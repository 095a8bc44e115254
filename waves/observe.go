package waves

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/kube"
	"github.com/vaultctl/vaultctl/manifests"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/phases"
)

// RecordConfigMap, in the Vault namespace, holds when each wave finished: one key per wave,
// written by the run that first saw the wave complete. It explains (status shows the date) and
// times healthy-for; completion itself is always observed.
const RecordConfigMap = "vaultctl-migration-waves"

// WaveRecord is the record of one finished wave.
type WaveRecord struct {
	Finished time.Time `json:"finished"`
	Week     int       `json:"week"`
}

func (o *Observer) records() kube.KeyedConfigMap {
	return kube.KeyedConfigMap{Client: o.Kube, Namespace: o.Config.Vault.Namespace, Name: RecordConfigMap,
		Labels: map[string]string{phases.ManagedByLabel: "vaultctl"}}
}

func (o *Observer) loadRecords(ctx context.Context) (map[string]WaveRecord, error) {
	data, err := o.records().Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the wave record (ConfigMap %s/%s): %w", o.Config.Vault.Namespace, RecordConfigMap, err)
	}
	out := map[string]WaveRecord{}
	for k, v := range data {
		var r WaveRecord
		if json.Unmarshal([]byte(v), &r) == nil {
			out[k] = r
		}
	}
	return out, nil
}

// recordFinished notes that the wave finished now, unless an earlier run already did.
func (o *Observer) recordFinished(ctx context.Context, w config.Wave) error {
	recs, err := o.loadRecords(ctx)
	if err != nil {
		return err
	}
	if _, ok := recs[w.Name]; ok {
		return nil
	}
	b, _ := json.Marshal(WaveRecord{Finished: o.now().UTC().Truncate(time.Second), Week: w.Week})
	return o.records().Put(ctx, map[string]string{w.Name: string(b)})
}

// nsObservation is what the estate says about one namespace, read once per Status.
type nsObservation struct {
	exists   bool
	labelled bool
	journal  *migrate.Journal
	hasWork  bool // the migrate plan, with the journal folded in, still has work (whole-namespace waves)
	planErr  error
	planDone bool
}

type observation struct {
	ns map[string]*nsObservation
}

func (o *Observer) observeNamespace(ctx context.Context, obs *observation, ns string, whole bool) (*nsObservation, error) {
	n := obs.ns[ns]
	if n == nil {
		// Cached only once read whole: a failed read is tried again, never half trusted.
		nsObj, err := o.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			n = &nsObservation{}
			obs.ns[ns] = n
			return n, nil
		case err != nil:
			return nil, fmt.Errorf("reading namespace %s: %w", ns, err)
		}
		j, err := (migrate.JournalStore{Kube: o.Kube, Namespace: ns}).Load(ctx)
		if err != nil {
			return nil, err
		}
		n = &nsObservation{exists: true, labelled: nsObj.Labels[manifests.MigratedLabel] == "true", journal: j}
		obs.ns[ns] = n
	}
	if whole && n.exists && !n.planDone {
		// Only the plan knows whether workloads the journal never saw still read raw Secrets.
		opts, err := migrate.OptionsFromConfig(o.Config, ns)
		if err == nil {
			var np *migrate.NamespacePlan
			np, err = migrate.PlanNamespace(ctx, o.Kube, nil, ns, opts)
			if err == nil {
				err = np.WithJournal(ctx, o.Kube, n.journal)
			}
			if err == nil {
				n.hasWork = np.Plan.HasWork()
			}
		}
		n.planErr = err
		n.planDone = true
	}
	return n, nil
}

// state derives a namespace's state from its journal: for the listed workloads only when the
// wave names workloads, else for the namespace (the plan says whether work is left).
func (n *nsObservation) state(workloads []string) (NamespaceState, string) {
	if !n.exists {
		return NotStarted, "the namespace does not exist"
	}
	j := n.journal
	if j == nil || (len(j.Secrets) == 0 && len(j.Workloads) == 0) {
		return NotStarted, ""
	}
	var recs []migrate.WorkloadRecord
	var missing []string
	if len(workloads) > 0 {
		for _, wl := range workloads {
			id, err := migrate.ParseWorkload(wl)
			if err != nil {
				missing = append(missing, wl)
				continue
			}
			if r, ok := j.Workloads[id.String()]; ok {
				recs = append(recs, r)
			} else {
				missing = append(missing, id.String())
			}
		}
	} else {
		for _, r := range j.Workloads {
			recs = append(recs, r)
		}
	}
	count := map[migrate.WorkloadState]int{}
	for _, r := range recs {
		count[r.State]++
	}
	pruned, restored := 0, 0
	for _, s := range j.Secrets {
		switch s.State {
		case migrate.SecretPruned:
			pruned++
		case migrate.SecretRestored:
			restored++
		}
	}
	total := len(recs) + len(missing)
	switch {
	case total > 0 && count[migrate.WorkloadRolledBack] == len(recs) && len(recs) > 0:
		return RolledBack, fmt.Sprintf("%s rolled back", plural(len(recs), "workload"))
	case len(recs) == 0 && restored > 0:
		return RolledBack, fmt.Sprintf("%s restored", plural(restored, "Secret"))
	case len(missing) > 0 && len(recs) == 0:
		return Planned, "not migrated yet: " + strings.Join(missing, ", ")
	}
	verified := count[migrate.WorkloadVerified]
	if verified == total && total > 0 {
		if len(workloads) == 0 && n.planErr != nil {
			return Migrated, fmt.Sprintf("%s verified; planning the rest failed: %v", plural(verified, "workload"), n.planErr)
		}
		if len(workloads) == 0 && n.hasWork {
			return Migrated, fmt.Sprintf("%s verified; the plan still has Secrets or workloads to migrate (migrate namespace --plan shows them)", plural(verified, "workload"))
		}
		if pruned > 0 || j.Namespace.Labelled && len(workloads) == 0 {
			return Pruned, fmt.Sprintf("%s verified, %s pruned", plural(verified, "workload"), plural(pruned, "Secret"))
		}
		return Verified, fmt.Sprintf("%s verified", plural(verified, "workload"))
	}
	if total == 0 && len(j.Secrets) > 0 && len(workloads) == 0 && !n.hasWork && n.planErr == nil {
		// Only unread Secrets: copied to KV, nothing to switch.
		return Verified, fmt.Sprintf("%s copied, no workload reads them", plural(len(j.Secrets), "Secret"))
	}
	switched := count[migrate.WorkloadPatched] + verified
	detail := fmt.Sprintf("%d/%d workloads verified", verified, total)
	if f := count[migrate.WorkloadFailed]; f > 0 {
		detail += fmt.Sprintf(", %d failed (migrate namespace prints why)", f)
	}
	if switched > 0 {
		return Migrated, detail
	}
	return Planned, detail
}

// Status observes the whole plan and evaluates every wave's gates.
func (o *Observer) Status(ctx context.Context) (*Status, error) {
	recs, err := o.loadRecords(ctx)
	if err != nil {
		return nil, err
	}
	obs := &observation{ns: map[string]*nsObservation{}}
	ge := &gateEval{o: o, obs: obs}
	st := &Status{Waves: []WaveStatus{}}
	for i, w := range o.Config.Migration.Waves {
		ws := WaveStatus{Week: w.Week, Name: w.Name, Kind: KindOf(w), Namespaces: nonNil(w.Namespaces), Workloads: nonNil(w.Workloads),
			States: []NamespaceStatus{}, Gates: []GateResult{}}
		for _, ns := range namespacesOf(w) {
			wl := workloadsIn(w, ns)
			whole := len(wl) == 0
			n, err := o.observeNamespace(ctx, obs, ns, whole)
			if err != nil {
				return nil, err
			}
			s, detail := n.state(wl)
			ws.States = append(ws.States, NamespaceStatus{Namespace: ns, State: s, Detail: detail, Labelled: n.labelled})
		}
		for _, g := range w.Gates {
			ws.Gates = append(ws.Gates, ge.evaluate(ctx, st, i, g))
		}
		ws.Complete, ws.Detail = complete(ws)
		if r, ok := recs[w.Name]; ok && ws.Complete {
			t := r.Finished
			ws.Finished = &t
		} else if ok {
			ws.Detail = fmt.Sprintf("finished %s, but %s", r.Finished.Format(time.RFC3339), ws.Detail)
		}
		st.Waves = append(st.Waves, ws)
		if !ws.Complete && st.Next == "" {
			st.Next = w.Name
		}
	}
	return st, nil
}

// complete says whether the wave is complete now, and if not why, from what was observed.
func complete(ws WaveStatus) (bool, string) {
	switch ws.Kind {
	case KindNamespaces:
		var left []string
		for _, s := range ws.States {
			if !s.State.done() {
				left = append(left, fmt.Sprintf("%s is %s", s.Namespace, s.State))
			}
		}
		if len(left) > 0 {
			return false, strings.Join(left, "; ")
		}
		return true, ""
	default:
		var failing []string
		for _, g := range ws.Gates {
			if !g.OK {
				failing = append(failing, g.Gate)
			}
		}
		if len(failing) > 0 {
			return false, "gates not holding: " + strings.Join(failing, ", ")
		}
		return true, ""
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
