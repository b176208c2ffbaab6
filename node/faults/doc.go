// Package faults is the harness of ccnode's fault-injection suite: it
// builds the ccnode binary, runs real `ccnode run` processes (and, where a
// promise involves the shared ledger, the local Fabric network of
// network/fabricnet), kills them with SIGKILL, restarts them, drives bank
// load against them, reads their metrics and /proc figures, and runs
// `ccnode receipts export` and `ccnode audit` on what they left behind.
//
// The tests of this package (one per promise of the README's Guarantees
// section) use it; other packages' end-to-end tests may too. It drives
// the node only from outside — through the binary, its HTTP API and its
// files — so what it proves holds for the program users run. It must not
// reach into a node's store or ledger while the node runs.
//
// Linux only: it cuts regions off with network namespaces and ties the
// processes it starts to its own life with the parent-death signal. On
// other systems the package is empty and its tests do not build.
package faults
