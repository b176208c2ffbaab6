// Package credit is the vocabulary every layer of ccnode speaks: unified social
// credit codes (USCC), regions, record categories, records and reports, consent
// grants, bank queries, receipts, acknowledgements, receipt-log checkpoints and
// the ledger's member records.
//
// It owns the canonical encoding of each of these (the exact bytes that are
// hashed and signed) and the signing and verifying rules. It imports nothing
// from the rest of the project, so the chaincode and the auditor can depend on
// it alone.
//
// # Canonical encoding
//
// Every signed or hashed value is encoded as compact JSON produced by this
// package: struct fields in declaration order, object keys of free-form
// attributes sorted by their UTF-8 bytes, numbers exactly as they were written
// in the input, strings escaped as encoding/json does with HTML escaping off,
// times in UTC as RFC 3339 with nanoseconds trimmed of trailing zeros, byte
// strings as standard base64. Two parties holding the same value therefore
// produce the same bytes. A signature covers a domain tag (for example
// "ccnode/query/v1") followed by a newline and the canonical encoding of the
// value with its signature fields empty, so a signature over one kind of
// document can never be replayed as another.
package credit
