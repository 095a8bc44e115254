package wizard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/huh"
)

// Options configure Run.
type Options struct {
	In  io.Reader // the terminal, or plain lines in accessible mode
	Out io.Writer
	// Accessible asks with huh's accessible mode: numbered choices and plain lines, no cursor
	// movement. Use it for screen readers, and whenever In is not a terminal.
	Accessible bool
	// Discovery lists kubeconfig contexts and the cluster's namespaces; nil finds nothing.
	Discovery Discovery
	// File is where the answers will be written, shown in the last question.
	File string
	// Answers are the starting answers: Defaults, with what the environment and --set said.
	Answers Answers
}

// Run asks the questions and returns the answers once the user confirms them. Every answer has
// passed the checks of `vaultctl config validate`. Ctrl-C returns ErrAborted.
func Run(ctx context.Context, o Options) (Answers, error) {
	if o.Discovery == nil {
		o.Discovery = NoCluster{}
	}
	if o.File == "" {
		o.File = "vaultctl.yaml"
	}
	if o.In == nil {
		o.In = os.Stdin
	}
	if o.Out == nil {
		o.Out = os.Stderr // where huh draws its forms
		if o.Accessible {
			o.Out = os.Stdout
		}
	}
	r := &runner{ctx: ctx, o: o, a: o.Answers.Clone(), in: o.In, out: o.Out}
	if r.a.Waves == nil {
		r.a.Waves = map[string][]string{}
	}
	if !o.Accessible {
		return r.run()
	}
	// huh's accessible prompts block in Read and cannot be cancelled: give up on them when ctx
	// ends, so that Ctrl-C still returns at once and nothing is written. The abandoned prompt
	// stops at its next answer, or when the process exits.
	r.lines = newLineReader(o.In)
	r.in = r.lines
	type result struct {
		a   Answers
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := r.run()
		done <- result{a, err}
	}()
	select {
	case res := <-done:
		return res.a, res.err
	case <-ctx.Done():
		return Answers{}, ErrAborted
	}
}

type runner struct {
	ctx   context.Context
	o     Options
	a     Answers
	in    io.Reader
	out   io.Writer
	lines *lineReader // accessible mode only

	contexts []string
	current  string

	nsFor      string // the context namespaces were listed for
	nsListed   bool
	namespaces []Namespace
}

// step is one screen of questions. build makes its fields from the answers so far; commit,
// called once the form is submitted, stores the fields' values in r.a.
type step struct {
	show  func(a Answers) bool
	build func(r *runner) question
}

type question struct {
	fields []huh.Field
	commit func()
	// paths are the config key paths this step answers; their problems send the user back.
	paths func(a Answers) []string
	// check is an extra rule on the answers, beyond config validate.
	check func(a Answers) error
	// recap is the one-line summary printed after the step on a terminal.
	recap func(a Answers) string
	// after runs once the answers passed.
	after func()
}

func (r *runner) run() (Answers, error) {
	var err error
	r.contexts, r.current, err = r.o.Discovery.Contexts()
	if err != nil {
		r.contexts, r.current = nil, ""
	}
	for {
		for _, s := range steps() {
			if s.show != nil && !s.show(r.a) {
				continue
			}
			if err := r.ask(s); err != nil {
				return Answers{}, err
			}
		}
		ok, err := r.confirm()
		if err != nil {
			return Answers{}, err
		}
		if ok {
			return r.a, nil
		}
		fmt.Fprintln(r.out, "Going through the questions again; your answers are the defaults.")
	}
}

// ask runs one step until its answers pass.
func (r *runner) ask(s step) error {
	var refused error // why the last answers to this step were refused
	for {
		if r.ctx.Err() != nil {
			return ErrAborted
		}
		q := s.build(r)
		fields := q.fields
		if refused != nil && !r.o.Accessible {
			// On a terminal the refusal is part of the form asked again, which huh clears once it
			// is submitted: a line printed here would stay on the screen after the fix.
			fields = append([]huh.Field{huh.NewNote().Title("✗ " + refused.Error())}, fields...)
		}
		if err := r.form(fields...); err != nil {
			return err
		}
		q.commit()
		var paths []string
		if q.paths != nil {
			paths = q.paths(r.a)
		}
		err := fieldError(r.a, paths...)
		if err == nil && q.check != nil {
			err = q.check(r.a)
		}
		if err != nil {
			refused = err
			if r.o.Accessible { // a transcript, read top to bottom: the refusal stays in it
				fmt.Fprintf(r.out, "✗ %v\n\n", err)
			}
			continue
		}
		if q.recap != nil && !r.o.Accessible {
			fmt.Fprintf(r.out, "✓ %s\n", q.recap(r.a))
		}
		if q.after != nil {
			q.after()
		}
		return nil
	}
}

// form runs one huh form over the fields.
func (r *runner) form(fields ...huh.Field) error {
	f := huh.NewForm(huh.NewGroup(fields...)).WithShowHelp(true)
	if r.o.Accessible {
		err := f.WithAccessible(true).WithInput(r.in).WithOutput(r.out).Run()
		if r.lines.ended {
			return errInputEnded
		}
		return err
	}
	// huh.Form.Run would end the program with tea.Interrupt on Ctrl-C, and bubbletea then
	// closes its input reader without waiting for it. Quitting normally lets it wait.
	f.SubmitCmd, f.CancelCmd = tea.Quit, tea.Quit
	m, err := tea.NewProgram(f,
		tea.WithInput(r.in), tea.WithOutput(r.out), tea.WithContext(r.ctx), tea.WithReportFocus(),
	).Run()
	switch {
	case r.ctx.Err() != nil, errors.Is(err, tea.ErrInterrupted), errors.Is(err, tea.ErrProgramKilled):
		return ErrAborted
	case err != nil:
		return err
	case m.(*huh.Form).State == huh.StateAborted:
		return ErrAborted
	}
	return nil
}

func steps() []step {
	inCluster := func(a Answers) bool { return !a.External() }
	return []step{
		{build: (*runner).askContext},
		{build: (*runner).askMode},
		{show: inCluster, build: (*runner).askReplicas},
		{show: Answers.External, build: (*runner).askAddress},
		{build: (*runner).askKMS},
		{build: func(r *runner) question { return r.askWave(WavePilot) }},
		{build: func(r *runner) question { return r.askWave(WaveStaging) }},
		{build: func(r *runner) question { return r.askWave(WaveProduction) }},
		{build: (*runner).askAllowed},
		{build: (*runner).askAudit},
		{build: (*runner).askRecovery},
		{show: func(a Answers) bool { return a.Recovery != RecoveryPGP }, build: (*runner).askRecoveryFile},
		{show: func(a Answers) bool { return a.Recovery == RecoveryPGP }, build: (*runner).askPGPKeys},
		{show: func(a Answers) bool { return a.Recovery == RecoveryPGP }, build: (*runner).askThreshold},
	}
}

// title adds the default to a question's title in accessible mode, where huh does not show it.
func (r *runner) title(t, def string) string {
	if r.o.Accessible && def != "" {
		return fmt.Sprintf("%s [%s]", t, def)
	}
	return t
}

func (r *runner) askContext() question {
	value := r.a.Context
	if len(r.contexts) == 0 {
		in := r.text(textSpec{
			title:    "Kubernetes context",
			desc:     "No kubeconfig context was found. Type one, or leave it empty for the current context when vaultctl runs.",
			value:    &value,
			optional: true,
			check: func(v string) (string, error) {
				c := r.a.Clone()
				c.Context = v
				return fieldStatus(c, "cluster.context")
			},
		})
		return r.contextQuestion(&value, in)
	}
	if !slices.Contains(r.contexts, value) {
		value = r.current
		if value == "" {
			value = r.contexts[0]
		}
	}
	opts := make([]huh.Option[string], 0, len(r.contexts))
	for _, c := range r.contexts {
		label := c
		if c == r.current {
			label += " (current)"
		}
		opts = append(opts, huh.NewOption(label, c))
	}
	sel := huh.NewSelect[string]().
		Title(r.title("Kubernetes context", value)).
		Description("From your kubeconfig. vaultctl installs and configures everything through it.").
		Options(opts...).
		Value(&value)
	if len(opts) > 10 {
		sel.Height(12)
	}
	return r.contextQuestion(&value, sel)
}

func (r *runner) contextQuestion(value *string, field huh.Field) question {
	return question{
		fields: []huh.Field{field},
		commit: func() { r.a.Context = clean(*value) },
		after:  r.listNamespaces,
		paths:  func(Answers) []string { return []string{"cluster.context"} },
		recap:  func(a Answers) string { return "Kubernetes context: " + cmpOr(a.Context, "(current)") },
	}
}

// listNamespaces asks the cluster for its namespaces once per context.
func (r *runner) listNamespaces() {
	if r.nsListed && r.nsFor == r.a.Context {
		return
	}
	r.nsListed, r.nsFor, r.namespaces = true, r.a.Context, nil
	if _, none := r.o.Discovery.(NoCluster); none {
		return
	}
	fmt.Fprintf(r.out, "Listing namespaces in %s...\n", cmpOr(r.a.Context, "the current context"))
	ns, err := r.o.Discovery.Namespaces(r.ctx, r.a.Context)
	if err != nil {
		fmt.Fprintf(r.out, "Cannot list them (%v); you will type namespace names.\n", firstLine(err.Error()))
		return
	}
	r.namespaces = ns
	fmt.Fprintf(r.out, "Found %d namespaces.\n", len(ns))
}

func (r *runner) askMode() question {
	mode := cmpOr(r.a.Mode, "in-cluster")
	sel := huh.NewSelect[string]().
		Title(r.title("Vault mode", mode)).
		Description("Where Vault runs.").
		Options(
			huh.NewOption("in-cluster: vaultctl installs HA Vault with Raft storage in this cluster", "in-cluster"),
			huh.NewOption("external: Vault already runs elsewhere; vaultctl configures it", "external"),
		).
		Value(&mode)
	return question{
		fields: []huh.Field{sel},
		commit: func() { r.a.Mode = mode },
		paths:  func(Answers) []string { return []string{"vault.mode"} },
		recap:  func(a Answers) string { return "Vault mode: " + a.Mode },
		after: func() {
			// An address given with --set (or in an earlier round) is not written in this mode.
			if !r.a.External() && r.a.Address != "" {
				fmt.Fprintf(r.out, "Note: the Vault address %s is not used: in-cluster, vaultctl installs Vault and knows its address.\n", r.a.Address)
			}
		},
	}
}

func (r *runner) askReplicas() question {
	replicas := r.a.Replicas
	if replicas == 0 {
		replicas = 3
	}
	choices := []huh.Option[int]{
		huh.NewOption("3: survives the loss of one server (recommended)", 3),
		huh.NewOption("5: survives the loss of two servers", 5),
		huh.NewOption("1: no high availability; for trying vaultctl out", 1),
	}
	if !slices.Contains([]int{1, 3, 5}, replicas) {
		choices = append(choices, huh.NewOption(strconv.Itoa(replicas), replicas))
	}
	sel := huh.NewSelect[int]().
		Title(r.title("How many Vault servers (Raft voters)?", strconv.Itoa(replicas))).
		Description("An odd number, so that a quorum survives a failure.").
		Options(choices...).
		Value(&replicas)
	if !r.o.Accessible {
		sel.Validate(func(n int) error {
			c := r.a.Clone()
			c.Replicas = n
			return fieldError(c, "vault.replicas")
		})
	}
	return question{
		fields: []huh.Field{sel},
		commit: func() { r.a.Replicas = replicas },
		paths:  func(Answers) []string { return []string{"vault.replicas"} },
		recap:  func(a Answers) string { return fmt.Sprintf("Vault servers: %d", a.Replicas) },
	}
}

func (r *runner) askAddress() question {
	addr := r.a.Address
	in := r.text(textSpec{
		title:       "Vault address",
		desc:        "The external Vault's API URL.",
		placeholder: "https://vault.example.com:8200",
		value:       &addr,
		check: func(v string) (string, error) {
			c := r.a.Clone()
			c.Address = v
			return fieldStatus(c, "vault.address")
		},
	})
	return question{
		fields: []huh.Field{in},
		commit: func() { r.a.Address = strings.TrimSpace(addr) },
		paths:  func(Answers) []string { return []string{"vault.address"} },
		recap:  func(a Answers) string { return "Vault address: " + a.Address },
	}
}

func (r *runner) askKMS() question {
	region := cmpOr(r.a.Region, DefaultRegion)
	keyID := cmpOr(r.a.KMSKeyID, DefaultKMSKeyID)
	irsa := r.a.IRSARoleARN
	create := r.a.CreateKey
	// candidate is r.a with this screen's answers so far. The fields write these variables, and
	// the checks read them, on huh's UI goroutine.
	candidate := func() Answers {
		c := r.a.Clone()
		c.Region, c.KMSKeyID, c.CreateKey, c.IRSARoleARN = clean(region), clean(keyID), create, clean(irsa)
		return c
	}
	fields := []huh.Field{
		r.text(textSpec{
			title: "AWS region of the KMS unseal key",
			value: &region,
			check: func(v string) (string, error) {
				c := candidate()
				c.Region = v
				return fieldStatus(c, "vault.seal.awskms.region")
			},
		}),
		r.text(textSpec{
			title: "KMS key",
			desc:  "A key ID, key ARN or alias/NAME. Vault auto-unseals with it.",
			value: &keyID,
			check: func(v string) (string, error) {
				c := candidate()
				c.KMSKeyID = v
				return fieldStatus(c, "vault.seal.awskms.kmsKeyId")
			},
		}),
	}
	confirm := huh.NewConfirm().
		Title("May vaultctl create the key and its alias if they do not exist?").
		Affirmative("Yes").
		Negative("No").
		Value(&create)
	if !r.o.Accessible {
		confirm.Validate(func(b bool) error {
			c := candidate()
			c.CreateKey = b
			return fieldError(c, "vault.seal.awskms.createKey", "vault.seal.awskms.kmsKeyId")
		})
	}
	fields = append(fields, confirm)
	if !r.a.External() {
		fields = append(fields, r.text(textSpec{
			title:    "IAM role for Vault's ServiceAccount (IRSA), optional",
			desc:     "On EKS, the role that may use the key. Leave empty to use the node's or the environment's credentials.",
			value:    &irsa,
			optional: true,
			check: func(v string) (string, error) {
				c := candidate()
				c.IRSARoleARN = v
				return fieldStatus(c, "vault.seal.awskms.irsaRoleArn")
			},
		}))
	}
	return question{
		fields: fields,
		commit: func() {
			r.a.Region, r.a.KMSKeyID = clean(region), clean(keyID)
			r.a.CreateKey, r.a.IRSARoleARN = create, clean(irsa)
		},
		paths: func(Answers) []string { return []string{"vault.seal"} },
		recap: func(a Answers) string {
			s := fmt.Sprintf("Unseal key: %s in %s", a.KMSKeyID, a.Region)
			if a.CreateKey {
				s += " (vaultctl may create it)"
			}
			if a.IRSARoleARN != "" {
				s += ", IRSA role " + a.IRSARoleARN
			}
			return s
		},
	}
}

var waveTitles = map[string]string{
	WavePilot:      "Pilot wave: which namespaces go first?",
	WaveStaging:    "Staging wave: which namespaces next?",
	WaveProduction: "Production wave: which namespaces last?",
}

var waveDescs = map[string]string{
	WavePilot:      "One or two low-risk namespaces, to learn the injector. Each wave takes a week.",
	WaveStaging:    "Staging namespaces, migrated before production.",
	WaveProduction: "Production namespaces, once staging ran clean.",
}

func (r *runner) askWave(name string) question {
	taken := map[string]bool{}
	for _, w := range WaveNames {
		if w != name {
			for _, ns := range r.a.Waves[w] {
				taken[ns] = true
			}
		}
	}
	chosen := slices.Clone(r.a.Waves[name])
	var field huh.Field
	var get func() []string
	var opts []huh.Option[string]
	for _, ns := range r.namespaces {
		if !taken[ns.Name] && !systemNamespace(ns.Name, r.a.Namespace) {
			opts = append(opts, huh.NewOption(namespaceLabel(ns), ns.Name))
		}
	}
	if len(opts) > 0 {
		// Earlier answers (--set, or a previous round) the cluster does not list stay choosable.
		for _, ns := range chosen {
			if !slices.ContainsFunc(opts, func(o huh.Option[string]) bool { return o.Value == ns }) {
				opts = append(opts, huh.NewOption(ns+" (not found in the cluster)", ns))
			}
		}
		if chosen == nil { // not answered yet
			chosen = guessWave(name, opts)
		}
		rule := "Select none to leave this wave out."
		if _, err := waveStatus(r.a, name, nil); err != nil {
			rule = "Select at least one: " + err.Error() + "."
		}
		field, get = r.multi(multiSpec{
			title: waveTitles[name],
			desc:  waveDescs[name],
			rule:  rule,
			opts:  opts,
			value: &chosen,
			check: func(v []string) error {
				_, err := waveStatus(r.a, name, v)
				return err
			},
		})
	} else {
		text := strings.Join(chosen, ", ")
		field = r.text(textSpec{
			title:    waveTitles[name],
			desc:     waveDescs[name] + " Namespace names, separated by commas.",
			value:    &text,
			optional: true,
			check:    func(v string) (string, error) { return waveStatus(r.a, name, splitList(v)) },
		})
		get = func() []string { return splitList(clean(text)) }
	}
	return question{
		fields: []huh.Field{field},
		commit: func() { r.a.Waves[name] = get() },
		paths:  wavePaths(name),
		check: func(a Answers) error {
			_, err := waveStatus(a, name, a.Waves[name])
			return err
		},
		recap: func(a Answers) string {
			return fmt.Sprintf("%s wave: %s", titleCase(name), cmpOr(strings.Join(a.Waves[name], ", "), "(none)"))
		},
	}
}

// waveStatus checks one wave's namespaces as they are chosen: config validate's verdict on this
// wave, and the rule that some wave migrates something, which the last wave asked must enforce.
// An empty wave is not "valid" but left out, and the warning says so.
func waveStatus(a Answers, name string, namespaces []string) (warning string, err error) {
	c := a.Clone()
	c.Waves[name] = namespaces
	if len(namespaces) > 0 {
		return fieldStatus(c, wavePaths(name)(c)...)
	}
	if name == WaveNames[len(WaveNames)-1] && len(c.MigratedNamespaces()) == 0 {
		return "", fmt.Errorf("the %s waves are empty, and at least one wave needs a namespace to migrate", strings.Join(WaveNames[:len(WaveNames)-1], " and "))
	}
	return "no namespaces: this wave is left out of the plan", nil
}

// guessWave preselects the namespaces whose names say which wave they belong to.
func guessWave(name string, opts []huh.Option[string]) []string {
	var hint string
	switch name {
	case WaveStaging:
		hint = "stag"
	case WaveProduction:
		hint = "prod"
	default:
		return nil
	}
	var out []string
	for _, o := range opts {
		if strings.Contains(o.Value, hint) {
			out = append(out, o.Value)
		}
	}
	return out
}

func namespaceLabel(ns Namespace) string {
	switch ns.Secrets {
	case -1:
		return ns.Name
	case 1:
		return ns.Name + " (1 Secret)"
	default:
		return fmt.Sprintf("%s (%d Secrets)", ns.Name, ns.Secrets)
	}
}

func (r *runner) askAllowed() question {
	migrated := r.a.MigratedNamespaces()
	chosen := slices.Clone(r.a.AllowedNamespaces)
	if chosen == nil {
		chosen = migrated
	}
	const title = "Which namespaces may reach Vault?"
	const desc = "NetworkPolicies will let only pods in these namespaces reach Vault on port 8200. None leaves NetworkPolicies off."
	var names []string
	for _, ns := range r.namespaces {
		if !systemNamespace(ns.Name, r.a.Namespace) {
			names = append(names, ns.Name)
		}
	}
	for _, ns := range append(slices.Clone(migrated), chosen...) {
		if !slices.Contains(names, ns) {
			names = append(names, ns)
		}
	}
	var field huh.Field
	var get func() []string
	if len(r.namespaces) > 0 {
		opts := make([]huh.Option[string], len(names))
		for i, n := range names {
			opts[i] = huh.NewOption(n, n)
		}
		field, get = r.multi(multiSpec{title: title, desc: desc, opts: opts, value: &chosen,
			check: func(v []string) error {
				c := r.a.Clone()
				c.AllowedNamespaces = v
				return fieldError(c, "networkPolicies")
			}})
	} else {
		text := strings.Join(chosen, ", ")
		field = r.text(textSpec{title: title, desc: desc + " Namespace names, separated by commas.", value: &text, optional: true,
			check: func(v string) (string, error) {
				c := r.a.Clone()
				c.AllowedNamespaces = splitList(v)
				return fieldStatus(c, "networkPolicies")
			}})
		get = func() []string { return splitList(clean(text)) }
	}
	return question{
		fields: []huh.Field{field},
		commit: func() {
			r.a.AllowedNamespaces = get()
			if r.a.AllowedNamespaces == nil {
				r.a.AllowedNamespaces = []string{} // answered: none
			}
		},
		paths: func(Answers) []string { return []string{"networkPolicies"} },
		recap: func(a Answers) string {
			return "May reach Vault: " + cmpOr(strings.Join(a.AllowedNamespaces, ", "), "everyone (NetworkPolicies off)")
		},
	}
}

func (r *runner) askAudit() question {
	chosen := slices.Clone(r.a.AuditDevices)
	opts := []huh.Option[string]{
		huh.NewOption("file: a log file on the audit volume", AuditFile),
		huh.NewOption("stdout: the pod log, for your log shipper", AuditStdout),
		huh.NewOption("syslog: the node's syslog", AuditSyslog),
	}
	desc := "Choose at least two: Vault refuses every request when all its audit devices fail."
	if r.a.AllowSingleAuditDevice {
		desc = "Choose at least one (audit.allowSingleDevice is set); two are safer: Vault refuses every request when all its audit devices fail."
	}
	field, get := r.multi(multiSpec{
		title: "Audit devices",
		desc:  desc,
		opts:  opts,
		value: &chosen,
		check: func(v []string) error {
			c := r.a.Clone()
			c.AuditDevices = v
			return fieldError(c, "audit")
		},
	})
	return question{
		fields: []huh.Field{field},
		commit: func() { r.a.AuditDevices = get() },
		paths:  func(Answers) []string { return []string{"audit"} },
		recap:  func(a Answers) string { return "Audit devices: " + strings.Join(a.AuditDevices, ", ") },
	}
}

func (r *runner) askRecovery() question {
	mode := cmpOr(r.a.Recovery, RecoveryKMSFile)
	sel := huh.NewSelect[string]().
		Title(r.title("Where do the recovery keys go?", mode)).
		Description("operator init creates recovery keys; they authorize root tokens and rekeying.").
		Options(
			huh.NewOption("kms-file: encrypted with the KMS key, kept in the cluster and in a local file", RecoveryKMSFile),
			huh.NewOption("pgp: each share encrypted to one key holder's PGP public key", RecoveryPGP),
		).
		Value(&mode)
	return question{
		fields: []huh.Field{sel},
		commit: func() { r.a.Recovery = mode },
		recap:  func(a Answers) string { return "Recovery keys: " + a.Recovery },
	}
}

func (r *runner) askRecoveryFile() question {
	file := cmpOr(r.a.RecoveryKeysFile, DefaultRecoveryKeysFile)
	in := r.text(textSpec{
		title: "File for the KMS-wrapped recovery keys",
		desc:  "Written with mode 0600 by `vaultctl apply`. Keep a copy off the cluster.",
		value: &file,
		check: func(v string) (string, error) {
			c := r.a.Clone()
			c.RecoveryKeysFile = v
			if v == "" {
				return "", errors.New("is required: a file name such as " + DefaultRecoveryKeysFile)
			}
			return fieldStatus(c, "vault.init")
		},
	})
	return question{
		fields: []huh.Field{in},
		commit: func() { r.a.RecoveryKeysFile = clean(file) },
		paths:  func(Answers) []string { return []string{"vault.init"} },
		check: func(a Answers) error {
			if a.RecoveryKeysFile == "" {
				return errors.New("the recovery keys file is required")
			}
			return nil
		},
		recap: func(a Answers) string { return "Recovery keys file: " + a.RecoveryKeysFile },
	}
}

func (r *runner) askPGPKeys() question {
	text := strings.Join(r.a.PGPKeys, ", ")
	in := r.text(textSpec{
		title:       "PGP public key files, one per recovery share",
		desc:        "Base64 public keys (gpg --export KEYID | base64), separated by commas. Each holder gets one share.",
		placeholder: "keys/alice.asc, keys/bob.asc, keys/carol.asc",
		value:       &text,
		check: func(v string) (string, error) {
			keys := splitList(v)
			if len(keys) == 0 {
				return "", errors.New("is required: at least one key file")
			}
			c := r.a.Clone()
			c.PGPKeys, c.RecoveryShares, c.RecoveryThreshold = keys, len(keys), 0
			return fieldStatus(c, "vault.init.pgpKeys", "vault.init.recoveryShares")
		},
	})
	return question{
		fields: []huh.Field{in},
		commit: func() {
			keys := splitList(clean(text))
			if len(keys) != len(r.a.PGPKeys) {
				r.a.RecoveryThreshold = 0 // back to a majority of the new number of shares
			}
			r.a.PGPKeys, r.a.RecoveryShares = keys, len(keys)
		},
		paths: func(Answers) []string { return []string{"vault.init.pgpKeys", "vault.init.recoveryShares"} },
		check: func(a Answers) error {
			if len(a.PGPKeys) == 0 {
				return errors.New("give at least one PGP public key file")
			}
			return nil
		},
		recap: func(a Answers) string { return "PGP keys: " + strings.Join(a.PGPKeys, ", ") },
	}
}

func (r *runner) askThreshold() question {
	text := strconv.Itoa(r.a.Threshold())
	in := r.text(textSpec{
		title: fmt.Sprintf("How many of the %d shares are needed to recover?", r.a.Shares()),
		desc:  "A majority lets you lose a share and still recover.",
		value: &text,
		check: func(v string) (string, error) {
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", fmt.Errorf("must be a whole number, got %q", v)
			}
			c := r.a.Clone()
			c.RecoveryThreshold = n
			return fieldStatus(c, "vault.init.recoveryThreshold")
		},
	})
	return question{
		fields: []huh.Field{in},
		commit: func() {
			if n, err := strconv.Atoi(clean(text)); err == nil {
				r.a.RecoveryThreshold = n
			}
		},
		paths: func(Answers) []string { return []string{"vault.init.recoveryThreshold"} },
		recap: func(a Answers) string { return fmt.Sprintf("Recovery: %d of %d shares", a.Threshold(), a.Shares()) },
	}
}

// confirm shows the summary and asks whether to write the file.
func (r *runner) confirm() (bool, error) {
	errs, warns := Check(r.a)
	summary := Summary(r.a)
	for _, w := range warns {
		summary += "\nwarning: " + w.String()
	}
	if len(errs) > 0 { // every step passed its own checks, so this is a bug; say so rather than write
		for _, e := range errs {
			fmt.Fprintln(r.out, "✗", e)
		}
		return false, nil
	}
	ok := true
	err := r.form(
		huh.NewNote().Title("Your answers").Description(summary),
		huh.NewConfirm().
			Title(fmt.Sprintf("Write %s?", r.o.File)).
			Affirmative("Write it").
			Negative("Change answers").
			Value(&ok),
	)
	return ok, err
}

// Summary describes the answers in a few lines.
func Summary(a Answers) string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-16s %s\n", k+":", v) }
	line("Context", cmpOr(a.Context, "(the current context)"))
	if a.External() {
		line("Vault", "external at "+a.Address)
	} else {
		line("Vault", fmt.Sprintf("in-cluster, %d servers, namespace %s", a.Replicas, a.Namespace))
	}
	key := fmt.Sprintf("%s in %s", a.KMSKeyID, a.Region)
	if a.CreateKey {
		key += " (vaultctl may create it)"
	}
	line("Unseal key", key)
	if a.IRSARoleARN != "" {
		line("IRSA role", a.IRSARoleARN)
	}
	for _, w := range a.waves() {
		line(titleCase(w.Name)+" wave", strings.Join(w.Namespaces, ", "))
	}
	line("May reach Vault", cmpOr(strings.Join(a.AllowedNamespaces, ", "), "everyone (NetworkPolicies off)"))
	line("Audit devices", strings.Join(a.AuditDevices, ", "))
	if a.Recovery == RecoveryPGP {
		line("Recovery keys", fmt.Sprintf("PGP, %d of %d shares: %s", a.Threshold(), a.Shares(), strings.Join(a.PGPKeys, ", ")))
	} else {
		line("Recovery keys", fmt.Sprintf("KMS-wrapped in %s, %d of %d shares", a.RecoveryKeysFile, a.Threshold(), a.Shares()))
	}
	return strings.TrimRight(b.String(), "\n")
}

// textSpec describes a typed answer.
type textSpec struct {
	title, desc, placeholder string
	value                    *string
	optional                 bool // accessible mode: "-" clears a default
	// check validates a (trimmed) value as it is typed: an error blocks it, a warning is shown.
	check func(v string) (warning string, err error)
}

// text builds an input whose answer is checked on every keystroke on a terminal (the verdict is
// shown under the question and Enter is refused while it is an error), and on every line in
// accessible mode (where an empty line keeps the default).
func (r *runner) text(s textSpec) huh.Field {
	in := huh.NewInput().Placeholder(s.placeholder)
	if r.o.Accessible {
		def := *s.value
		title := r.title(s.title, def)
		if s.optional && def != "" {
			title += " (- for none)"
		}
		title += ":"
		return in.Title(title).Value(s.value).Validate(func(v string) error {
			v = strings.TrimSpace(v)
			switch {
			case v == "":
				v = def
			case v == "-" && s.optional:
				v = ""
			}
			_, err := s.check(v)
			return err
		})
	}
	lv := &liveValue{target: s.value, check: s.check}
	lv.Set(*s.value)
	return in.Title(s.title).
		Accessor(lv).
		DescriptionFunc(func() string { return joinNonEmpty(s.desc, lv.verdict()) }, &lv.Status).
		Validate(func(v string) error {
			_, err := s.check(strings.TrimSpace(v))
			return err
		})
}

// liveValue is an input's value with its verdict from config validate, recomputed on each
// change. huh calls Get and Set on its UI goroutine but computes descriptions on others, so the
// verdict the description shows is guarded.
type liveValue struct {
	target *string
	check  func(string) (string, error)

	mu    sync.Mutex
	shown string // guarded by mu

	// Status is the description's binding: huh hashes it on the UI goroutine to know when to
	// recompute the description. Only the UI goroutine touches it.
	Status string
}

// Get implements huh.Accessor.
func (l *liveValue) Get() string { return *l.target }

// Set implements huh.Accessor; huh calls it after every message, so this is where the answer is
// checked as it is typed.
func (l *liveValue) Set(v string) {
	*l.target = v
	status := "✓ valid"
	if warning, err := l.check(strings.TrimSpace(v)); err != nil {
		status = "✗ " + err.Error()
	} else if warning != "" {
		status = "! " + warning
	}
	l.mu.Lock()
	l.shown = status
	l.mu.Unlock()
	l.Status = status
}

func (l *liveValue) verdict() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shown
}

// multiSpec describes a multiple choice.
type multiSpec struct {
	title, desc string
	// rule says how many to choose, when the description does not.
	rule  string
	opts  []huh.Option[string]
	value *[]string
	check func(v []string) error
}

// multi builds a multiple choice. On a terminal the choice is checked as it changes; in
// accessible mode, when it is confirmed.
func (r *runner) multi(s multiSpec) (huh.Field, func() []string) {
	get := func() []string { return slices.Clone(*s.value) }
	m := huh.NewMultiSelect[string]().Title(s.title).Description(joinNonEmpty(s.desc, s.rule) + " Space selects, enter confirms.").Options(s.opts...).Value(s.value)
	if r.o.Accessible {
		return &accessibleMulti{MultiSelect: m, spec: s}, get
	}
	if len(s.opts) > 10 {
		m.Height(14)
	}
	m.Validate(s.check)
	return m, get
}

// accessibleMulti asks a multiple choice in accessible mode in place of huh's own prompt, which
// re-asks forever on an empty line ("must be a number between 0 and 3") and announces "Select up
// to 3 options" whatever the rule. Here an empty line confirms the selection shown, as an empty
// line keeps the default everywhere else, and the rule is the question's own.
type accessibleMulti struct {
	*huh.MultiSelect[string]
	spec multiSpec
}

// WithAccessible implements huh.Field; the form calls RunAccessible on what it returns.
func (m *accessibleMulti) WithAccessible(bool) huh.Field { return m }

// RunAccessible implements huh.Field. It returns when the selection is confirmed and passes the
// check, or when input ends (the runner's line reader notes that).
func (m *accessibleMulti) RunAccessible(w io.Writer, in io.Reader) error {
	opts := m.spec.opts
	selected := make([]bool, len(opts))
	for i, o := range opts {
		selected[i] = slices.Contains(*m.spec.value, o.Value)
	}
	fmt.Fprintln(w, m.spec.title+" (type a number to select or unselect it; 0 or an empty line when done)")
	fmt.Fprintln(w, joinNonEmpty(m.spec.desc, m.spec.rule))
	for {
		for i, o := range opts {
			mark := " "
			if selected[i] {
				mark = "✓"
			}
			fmt.Fprintf(w, "%d. %s %s\n", i+1, mark, o.Key)
		}
		fmt.Fprintln(w, "0.   done")
		fmt.Fprintf(w, "Enter a number between 0 and %d (empty: done): ", len(opts))
		sc := bufio.NewScanner(in) // one line only: the runner's reader hands out a line per Read
		if !sc.Scan() {
			fmt.Fprintln(w)
			return nil
		}
		answer := strings.TrimSpace(sc.Text())
		if answer == "" || answer == "0" {
			v := []string{} // answered, with none: not nil, which means not answered yet
			for i, o := range opts {
				if selected[i] {
					v = append(v, o.Value)
				}
			}
			if err := m.spec.check(v); err != nil {
				fmt.Fprintf(w, "✗ %v\n", err)
				continue
			}
			*m.spec.value = v
			return nil
		}
		n, err := strconv.Atoi(answer)
		if err != nil || n < 0 || n > len(opts) {
			fmt.Fprintf(w, "✗ %q is not a choice: type 1 to %d to select or unselect one, 0 or an empty line when done\n", answer, len(opts))
			continue
		}
		selected[n-1] = !selected[n-1]
	}
}

// clean trims a typed answer; "-" is how accessible mode clears an optional default.
func clean(s string) string {
	s = strings.TrimSpace(s)
	if s == "-" {
		return ""
	}
	return s
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n")
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
