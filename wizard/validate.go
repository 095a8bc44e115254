package wizard

import (
	"errors"
	"strings"

	"github.com/vaultctl/vaultctl/config"
)

// Check renders the answers and runs them through config.Parse, the code behind
// `vaultctl config validate`. It returns that code's errors and warnings.
func Check(a Answers) (errs, warns []config.Problem) {
	data, err := Render(a)
	if err != nil {
		return []config.Problem{{Message: err.Error()}}, nil
	}
	l, err := config.Parse("vaultctl.yaml", data, config.LoadOptions{Environ: []string{}})
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			return ve.Problems, nil
		}
		return []config.Problem{{Message: err.Error()}}, nil
	}
	return nil, l.Warnings
}

// under reports whether key path p is one of paths or lies below one.
func under(p string, paths []string) bool {
	for _, q := range paths {
		if q == "" {
			continue
		}
		if p == q || strings.HasPrefix(p, q+".") || strings.HasPrefix(p, q+"[") {
			return true
		}
	}
	return false
}

// messages returns the messages of the problems under paths, without their locations (the
// question being answered is the location).
func messages(ps []config.Problem, paths []string) []string {
	var out []string
	for _, p := range ps {
		if under(p.Path, paths) {
			out = append(out, p.Message)
		}
	}
	return out
}

// fieldError is what `config validate` would say about the keys at paths if the file held a.
func fieldError(a Answers, paths ...string) error {
	errs, _ := Check(a)
	if m := messages(errs, paths); len(m) > 0 {
		return errors.New(strings.Join(m, "; "))
	}
	return nil
}

// fieldStatus is fieldError plus warnings, for the live line under a question.
func fieldStatus(a Answers, paths ...string) (warning string, err error) {
	errs, warns := Check(a)
	if m := messages(errs, paths); len(m) > 0 {
		return "", errors.New(strings.Join(m, "; "))
	}
	return strings.Join(messages(warns, paths), "; "), nil
}
