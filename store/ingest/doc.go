// Package ingest imports department feeds into the record store: JSON
// Lines and CSV, plain or gzip, from files or standard input.
//
// Every line is validated on its own; a bad line is reported (file, line
// number, field, reason) and counted and never stops or partly writes
// anything else. Lines are parsed and validated in parallel and written in
// ordered batches, each batch one store transaction that also records how
// far its input is done, so an import killed at any moment and run again
// continues from the last committed batch and ends with exactly the store
// an uninterrupted run would have produced.
//
// The package owns the input formats and the pipeline; it writes only
// through store.DB and never touches Badger itself.
package ingest
