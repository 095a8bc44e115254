package lifecycle

import (
	"encoding/json"
	"fmt"
	"time"
)

// Key names in the age record, as `vaultctl rotate` names them.
const (
	KeyEncryption = "encryption-key"
	KeyRecovery   = "recovery-keys"
)

// KeyAge is when one key was last rotated (or created) and whether it is due.
type KeyAge struct {
	Key string `json:"key"`
	// Since is when the key in use was installed: for the encryption key Vault's own
	// sys/key-status install time (so a rotation made outside vaultctl counts too), for the
	// recovery keys when custody sealed them (at init, or at the last rotation).
	Since *time.Time `json:"since,omitempty"`
	// Term is the encryption key's term (0 for the recovery keys).
	Term   int           `json:"term,omitempty"`
	Age    time.Duration `json:"-"`
	MaxAge time.Duration `json:"-"`
	Due    bool          `json:"due"`
	// Unknown says why Since could not be read; Due is then false.
	Unknown string `json:"unknown,omitempty"`
}

// MarshalJSON gives the durations in whole seconds.
func (a KeyAge) MarshalJSON() ([]byte, error) {
	type plain KeyAge
	return json.Marshal(struct {
		plain
		AgeSeconds    int64 `json:"ageSeconds"`
		MaxAgeSeconds int64 `json:"maxAgeSeconds"`
	}{plain(a), int64(a.Age / time.Second), int64(a.MaxAge / time.Second)})
}

// NewKeyAge computes a key's age at now against maxAge.
func NewKeyAge(key string, since time.Time, term int, now time.Time, maxAge time.Duration) KeyAge {
	s := since.UTC()
	age := now.Sub(since)
	a := KeyAge{Key: key, Since: &s, Term: term, MaxAge: maxAge, Age: age.Truncate(time.Second)}
	a.Due = maxAge > 0 && age > maxAge
	return a
}

// Warning is the line status prints for a due key, with the command that fixes it; "" when
// the key is not due.
func (a KeyAge) Warning() string {
	if !a.Due {
		return ""
	}
	return fmt.Sprintf("the %s was last rotated %s ago (%s), more than vault.rotation.maxAge %s: run `vaultctl rotate %s`",
		keyWords(a.Key), Days(a.Age), a.Since.Format("2006-01-02"), Days(a.MaxAge), a.Key)
}

func keyWords(key string) string {
	if key == KeyRecovery {
		return "recovery keys"
	}
	return "encryption key"
}

// Days renders a long duration in days (and hours under two days), as people count key age.
func Days(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Truncate(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
