// Package audit is ccnode's offline verifier: from regions' receipt exports
// (credit.ExportFormat) and a view of the shared ledger — a live
// network.Ledger or a Snapshot file taken from one — it checks every
// signature, every consent at the time of the answer, inclusion of every
// receipt under an anchored checkpoint, consistency of successive anchored
// checkpoints, completeness of each region's log, the requesters'
// acknowledgements against the answerers' logs, and how soon receipts were
// anchored. It reports findings; it never changes anything. A consent is
// judged by credit.DecideConsent, the rule every node applies, on the
// ledger's facts at the receipt's time; a consent finding carries the
// refusal code the node owed.
//
// It imports credit/ and network/ only (the interface package, never a
// backend), so an auditor can build and run it without a node: the command
// wires a backend or reads a snapshot.
//
// Exports are streamed: the tree is rebuilt with a compact range, lines are
// decoded and verified by a bounded pool of workers whose results are
// consumed in file order, so memory does not grow with the number of
// receipts. The exceptions are the cross-check, which keeps a small entry
// per receipt of the requesters' "received" exports, and the duplicate
// check, 8 bytes per receipt. An export's structure (leaf order, duplicate
// receipts, the header's size, strict decoding) is checked on every line,
// anchored or not. A snapshot file (SnapshotFile) and consent files are
// read one record at a time; the snapshot's consent records stay in the
// file behind an index.
package audit
