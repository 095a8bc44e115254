package auditlog

import (
	"context"
	"time"
)

// Usage is which policies and Kubernetes-auth roles the audit entries show in use: a policy
// when a token carrying it made a request, a role when a login through it succeeded or a
// token it issued made a request. `vaultctl policies audit --audit` reads it to find what
// nobody used in a review window.
type Usage struct {
	Policies map[string]int64 // policy name -> requests made by tokens carrying it
	Roles    map[string]int64 // role name -> logins and requests
	// First and Last are the times of the first and last entry inside the window.
	First, Last time.Time
	Stats       Stats
}

// PolicyUsage reads every input (files, .gz, pod logs, as Analyze does) and counts what is
// used between since and until (zero: unbounded; until exclusive).
func PolicyUsage(ctx context.Context, since, until time.Time, inputs ...Input) (*Usage, error) {
	u := &Usage{Policies: map[string]int64{}, Roles: map[string]int64{}}
	for _, in := range inputs {
		err := scan(ctx, in, &u.Stats, func(e *Entry) {
			if e.Time.IsZero() || (!since.IsZero() && e.Time.Before(since)) || (!until.IsZero() && !e.Time.Before(until)) {
				u.Stats.OutOfRange++
				return
			}
			u.Stats.Entries++
			if u.First.IsZero() || e.Time.Before(u.First) {
				u.First = e.Time
			}
			if e.Time.After(u.Last) {
				u.Last = e.Time
			}
			// Count each request once: its response entry carries the same auth.
			if string(e.Type) != "request" {
				if len(e.LoginRole) > 0 && len(e.Error) == 0 {
					u.Roles[string(e.LoginRole)]++
				}
				return
			}
			for _, p := range e.Policies {
				u.Policies[string(p)]++
			}
			if len(e.Role) > 0 {
				u.Roles[string(e.Role)]++
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return u, nil
}
