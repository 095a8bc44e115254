// Package lifecycle is day-2 work on a running Vault: rolling upgrades of the in-cluster server
// pods (standbys first, the leader last, after a Raft snapshot), Raft snapshots saved and
// restored, key rotation, the images an install runs and the quarterly policy audit. Like the
// phases, it decides and observes through small interfaces and prints nothing: the action
// layer wires it to the estate and the CLI renders what it returns.
package lifecycle
