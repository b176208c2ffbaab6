// Package store keeps a region's enterprise credit records in Badger and
// answers the two questions the node asks of them: "every record on this
// subject" (a report) and "how much is here" (statistics).
//
// It owns the database handle and the following key prefixes. Sibling
// packages that share the database (store/receipts, the node) get the handle
// from DB.Badger and must keep to their own prefixes; this package never
// reads or writes theirs.
//
//	R  records:   R | uscc(18) | category ordinal(1) | date(4) | identity(16) -> value
//	I  identity:  I | uscc(18) | identity(16) -> category(1) | date(4) | value hash(8)
//	U  subjects:  U | uscc(18) -> empty, present once the subject has a record
//	S  stats:     S | 't' totals, S | 'c' | ordinal, S | 's' | source -> big-endian counters
//	P  progress:  P | input id(32) -> how far an import of that input is durable
//	M  metadata:  M | name
//
// Reserved for others: L (receipt log), O (anchoring outbox and cached
// ledger state), C (received receipts), N (seen nonces). Any new prefix is
// registered here first.
//
// Record keys sort by subject, then category in report order, then date, so
// a report is one prefix scan that needs no sorting. The identity index
// maps (subject, source, source id) to the record key currently holding it,
// which is what makes a re-import idempotent and lets a corrected record
// whose category or date changed replace the old one. Statistics are
// counters updated in the same transaction as the records they count, with
// deltas computed against what the transaction read, so they stay exact
// across duplicates, corrections and crashes.
//
// Imports into a store that holds data go through a Load (load.go): the
// input sorted, merged with the identity index in key order, and written
// as tables by Badger's incremental StreamWriter; its plan file
// (ccnode-load.plan) and marker (ccnode-load.pending) live in the data
// directory beside Badger's files until the load is applied and durable.
//
// Badger verifies every block's checksum as it reads it but its iterators
// end a table's scan quietly at a block that fails; the blocks of a
// report's range are checked again in the table files after the scan
// (guard.go) so that it fails instead of coming back short. Badger also writes through mapped
// files, where a full filesystem kills the process: Open, a Load's and a
// bulk load's table writes check the free space first (space.go) and
// fail with ErrNoSpace.
//
// The package knows nothing of libp2p, HTTP or the ledger.
package store
