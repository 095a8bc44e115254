// Package plural counts things in English for messages: "1 policy", "2 policies".
package plural

import "strconv"

// Count is n followed by one (n == 1) or many.
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// S is Count for words whose plural adds "s".
func S(n int, word string) string { return Count(n, word, word+"s") }
