package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRewriteAgentConfigMovesOnlyLoopbackListeners(t *testing.T) {
	cfg := `{"auto_auth":{"method":{"type":"kubernetes"}},"vault":{"address":"https://127.0.0.1:8200"},` +
		`"listener":[{"type":"tcp","address":"127.0.0.1:8200","tls_disable":true},{"type":"tcp","address":"10.1.2.3:9000","tls_disable":true}]}`
	env := []string{"A=1", "VAULT_CONFIG=" + base64.StdEncoding.EncodeToString([]byte(cfg)), "B=2"}
	got, changes, err := rewriteAgentConfig(env, "127.100.0.7")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !strings.Contains(changes[0], "127.0.0.1:8200 -> 127.100.0.7:8200") {
		t.Errorf("changes %q", changes)
	}
	if got[0] != "A=1" || got[2] != "B=2" || env[1] == got[1] {
		t.Fatalf("env %q", got)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(got[1], "VAULT_CONFIG="))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Vault    struct{ Address string }
		Listener []struct{ Address string }
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	// The server address is not a listener: it stays as the injector set it.
	if m.Vault.Address != "https://127.0.0.1:8200" || m.Listener[0].Address != "127.100.0.7:8200" || m.Listener[1].Address != "10.1.2.3:9000" {
		t.Errorf("rewritten configuration %s", raw)
	}

	noListener := []string{"VAULT_CONFIG=" + base64.StdEncoding.EncodeToString([]byte(`{"vault":{"address":"x"}}`))}
	same, changes, err := rewriteAgentConfig(noListener, "127.100.0.7")
	if err != nil || len(changes) != 0 || same[0] != noListener[0] {
		t.Errorf("without a listener: %q %q %v", same, changes, err)
	}
	if _, _, err := rewriteAgentConfig([]string{"VAULT_CONFIG=%%%"}, "127.100.0.7"); err == nil {
		t.Error("a VAULT_CONFIG that is not base64 must be an error")
	}
}

func TestServiceHostsMapsVaultServicesToReadyPods(t *testing.T) {
	svc := func(ns, name string, sel map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Selector: sel}}
	}
	server := map[string]string{"app.kubernetes.io/name": "vault", "component": "server"}
	active := map[string]string{"app.kubernetes.io/name": "vault", "component": "server", "vault-active": "true"}
	svcs := []*corev1.Service{
		svc("vault", "vault", server),
		svc("vault", "vault-active", active),
		svc("vault", "postgres", map[string]string{"app": "postgres"}), // selects no Vault pod
		svc("vault", "external", nil),                                  // no selector: not the runner's
		svc("other", "vault", server),                                  // selects nothing in its namespace
	}
	targets := []serviceTarget{
		{Namespace: "vault", Name: "vault-1", IP: "127.100.0.2", Labels: map[string]string{"app.kubernetes.io/name": "vault", "component": "server", "vault-active": "true"}},
		{Namespace: "vault", Name: "vault-0", IP: "127.100.0.1", Labels: map[string]string{"app.kubernetes.io/name": "vault", "component": "server", "vault-active": "false"}},
	}
	got := serviceHosts("app", svcs, targets)
	want := "# Services of the runner's Vault pods (no cluster DNS on the host):\n" +
		"127.100.0.1\tvault.vault.svc.cluster.local vault.vault.svc vault.vault\n" +
		"127.100.0.2\tvault-active.vault.svc.cluster.local vault-active.vault.svc vault-active.vault\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// In the Services' own namespace the short name resolves too.
	if same := serviceHosts("vault", svcs[:1], targets); !strings.HasSuffix(same, " vault.vault vault\n") {
		t.Errorf("same namespace: %q", same)
	}
	if none := serviceHosts("app", svcs, nil); none != "" {
		t.Errorf("no Ready Vault pod: %q", none)
	}
}

func injectedTestPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web-1", UID: "u1", Annotations: map[string]string{InjectedByAnnotation: "vault-agent-injector-cfg"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "app:1"}, {Name: "vault-agent-init", Image: "hashicorp/vault:2.0.4"}},
			Containers:     []corev1.Container{{Name: "web", Image: "app:1"}, {Name: "vault-agent", Image: "hashicorp/vault:2.0.4"}},
		},
	}
}

// kubectlStatus is the STATUS column of `kubectl get pod` for the cases the runner produces
// (kubectl's printPod: init containers first, then the containers' waiting or terminated reasons).
func kubectlStatus(pod *corev1.Pod, st corev1.PodStatus) string {
	for i, s := range st.InitContainerStatuses {
		switch {
		case s.State.Terminated != nil && s.State.Terminated.ExitCode == 0:
			continue
		case s.State.Terminated != nil:
			return "Init:" + s.State.Terminated.Reason
		case s.State.Waiting != nil && s.State.Waiting.Reason != "" && s.State.Waiting.Reason != "PodInitializing":
			return "Init:" + s.State.Waiting.Reason
		default:
			return "Init:" + strconv.Itoa(i) + "/" + strconv.Itoa(len(pod.Spec.InitContainers))
		}
	}
	reason := string(st.Phase)
	for _, s := range st.ContainerStatuses {
		switch {
		case s.State.Waiting != nil && s.State.Waiting.Reason != "":
			reason = s.State.Waiting.Reason
		case s.State.Terminated != nil && s.State.Terminated.Reason != "" && reason != string(corev1.PodRunning):
			reason = s.State.Terminated.Reason
		}
	}
	return reason
}

func TestBuildInjectedStatus(t *testing.T) {
	pod := injectedTestPod()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	done := &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}
	cond := func(st corev1.PodStatus, typ corev1.PodConditionType) corev1.ConditionStatus {
		for _, c := range st.Conditions {
			if c.Type == typ {
				return c.Status
			}
		}
		return ""
	}

	// The app's init container completed; the agent's runs (auth keeps failing).
	agentRunning := map[string]ctrView{
		"migrate":          {completed: true, cs: containerState{Last: done}},
		"vault-agent-init": {cs: containerState{Running: true, StartedAt: start}},
	}
	st := buildInjectedStatus(pod, agentRunning, "127.100.0.3", "127.0.0.1", start)
	if st.Phase != corev1.PodPending || kubectlStatus(pod, st) != "Init:1/2" || cond(st, corev1.PodInitialized) != corev1.ConditionFalse {
		t.Errorf("agent-init running: %s %s %+v", st.Phase, kubectlStatus(pod, st), st.Conditions)
	}
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "PodInitializing" {
		t.Errorf("containers while initializing: %+v", st.ContainerStatuses[0].State)
	}
	if s := st.InitContainerStatuses[1]; s.State.Running == nil || s.Ready || !*s.Started {
		t.Errorf("running init container: %+v", s)
	}

	// The agent exited with an error and waits out its backoff.
	crashed := map[string]ctrView{
		"migrate":          {completed: true, cs: containerState{Last: done}},
		"vault-agent-init": {cs: containerState{RestartCount: 1, Last: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}, WaitingReason: "CrashLoopBackOff"}},
	}
	st = buildInjectedStatus(pod, crashed, "127.100.0.3", "127.0.0.1", start)
	if st.Phase != corev1.PodPending || kubectlStatus(pod, st) != "Init:CrashLoopBackOff" || st.InitContainerStatuses[1].RestartCount != 1 ||
		st.InitContainerStatuses[1].LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("agent-init crash loop: %s %+v", kubectlStatus(pod, st), st.InitContainerStatuses[1])
	}

	// Initialized: the sidecar runs, the app is simulated.
	running := map[string]ctrView{
		"migrate":          {completed: true, cs: containerState{Last: done}},
		"vault-agent-init": {completed: true, cs: containerState{Last: done}},
		"web":              {cs: containerState{Running: true, Ready: true, StartedAt: start}},
		"vault-agent":      {cs: containerState{Running: true, Ready: true, StartedAt: start}},
	}
	st = buildInjectedStatus(pod, running, "127.100.0.3", "127.0.0.1", start)
	if st.Phase != corev1.PodRunning || kubectlStatus(pod, st) != "Running" || cond(st, corev1.PodReady) != corev1.ConditionTrue ||
		cond(st, corev1.PodInitialized) != corev1.ConditionTrue || !st.InitContainerStatuses[1].Ready {
		t.Errorf("running: %s %+v", kubectlStatus(pod, st), st)
	}

	// A Job's pod with pre-populate-only: no sidecar, the app completed.
	job := injectedTestPod()
	job.Spec.Containers = job.Spec.Containers[:1]
	st = buildInjectedStatus(job, map[string]ctrView{
		"migrate":          {completed: true, cs: containerState{Last: done}},
		"vault-agent-init": {completed: true, cs: containerState{Last: done}},
		"web":              {completed: true, cs: containerState{Last: done}},
	}, "127.100.0.3", "127.0.0.1", start)
	if st.Phase != corev1.PodSucceeded || kubectlStatus(job, st) != "Completed" || cond(st, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("job: %s %s", st.Phase, kubectlStatus(job, st))
	}

	// restartPolicy Never and a failed agent-init: the pod failed.
	st = buildInjectedStatus(pod, map[string]ctrView{
		"migrate":          {completed: true, cs: containerState{Last: done}},
		"vault-agent-init": {completed: true, cs: containerState{Last: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}}},
	}, "127.100.0.3", "127.0.0.1", start)
	if st.Phase != corev1.PodFailed || kubectlStatus(pod, st) != "Init:Error" {
		t.Errorf("init failed for good: %s %s", st.Phase, kubectlStatus(pod, st))
	}
	if _, err := json.Marshal(map[string]any{"status": st}); err != nil {
		t.Fatal(err)
	}
}

func TestRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		pod  corev1.RestartPolicy
		init bool
		want corev1.RestartPolicy
	}{
		{"", false, corev1.RestartPolicyAlways},
		{"", true, corev1.RestartPolicyOnFailure},
		{corev1.RestartPolicyAlways, true, corev1.RestartPolicyOnFailure},
		{corev1.RestartPolicyNever, true, corev1.RestartPolicyNever},
		{corev1.RestartPolicyOnFailure, false, corev1.RestartPolicyOnFailure},
	} {
		if got := restartPolicy(&corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: tc.pod}}, tc.init); got != tc.want {
			t.Errorf("pod %q init %t: %s, want %s", tc.pod, tc.init, got, tc.want)
		}
	}
}

func TestAgentArgv(t *testing.T) {
	c := &corev1.Container{Name: "vault-agent", Command: []string{"/bin/sh", "-ec"}, Args: []string{"echo $(NAMESPACE) && vault agent"}}
	argv, err := agentArgv(c, map[string]string{"NAMESPACE": "app"})
	if err != nil || strings.Join(argv, "|") != "/bin/sh|-ec|echo app && vault agent" {
		t.Errorf("%q %v", argv, err)
	}
	argv, err = agentArgv(&corev1.Container{Name: "x", Command: []string{"vault", "agent"}}, nil)
	if err != nil || argv[0] != podVaultBin {
		t.Errorf("vault: %q %v", argv, err)
	}
	argv, err = agentArgv(&corev1.Container{Name: "x", Command: []string{"sh", "-c", "true"}}, nil)
	if err != nil || !strings.HasPrefix(argv[0], "/") {
		t.Errorf("sh from PATH: %q %v", argv, err)
	}
	if _, err := agentArgv(&corev1.Container{Name: "x"}, nil); err == nil {
		t.Error("no command: the sandbox has no image entrypoint to fall back on")
	}
}

func TestIsAgentContainerAndInjected(t *testing.T) {
	pod := injectedTestPod()
	if !isInjected(pod) || runnerSelects(pod) {
		t.Error("an injected app pod")
	}
	withConfig := corev1.Container{Name: "vault-agent", Env: []corev1.EnvVar{{Name: "VAULT_CONFIG", Value: "e30="}}}
	if !isAgentContainer(&withConfig) {
		t.Error("the injected sidecar")
	}
	if isAgentContainer(&corev1.Container{Name: "vault-agent"}) || isAgentContainer(&corev1.Container{Name: "web", Env: withConfig.Env}) {
		t.Error("only the injector's containers run for real")
	}
	vault := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": "vault", "component": "server"}}}
	if !runnerSelects(vault) || isInjected(vault) {
		t.Error("a Vault server pod")
	}
}

func TestContainerLogsObject(t *testing.T) {
	o := containerLogsObject("app", "web-1", []containerLogs{
		{Container: "vault-agent-init", Current: "/d/vault-agent-init.log", Previous: "/d/vault-agent-init.previous.log"},
		{Container: "web", Current: "/d/web.log", Previous: "/d/web.previous.log"},
	})
	b, _ := json.Marshal(o.Object["spec"])
	want := `{"logs":[{"containers":["vault-agent-init"],"follow":true,"logsFile":"/d/vault-agent-init.log","previousLogsFile":"/d/vault-agent-init.previous.log"},` +
		`{"containers":["web"],"follow":true,"logsFile":"/d/web.log","previousLogsFile":"/d/web.previous.log"}]}`
	if string(b) != want || o.GetKind() != "Logs" || o.GetName() != "web-1" {
		t.Errorf("spec %s", b)
	}
}
