// Package synth makes deterministic synthetic credit data for demos, tests
// and benchmarks: valid USCCs in a region's division codes, records from
// realistic department sources per category, a skewed number of records per
// enterprise averaging about 183 (Shenzhen: 694 million records, 3.8 million
// businesses), attribute payloads of about 150–300 bytes, dates within ten
// years before a fixed "as of" date.
//
// Everything is a function of (config, enterprise index): each enterprise
// draws from its own random stream seeded by (seed, index), so output is the
// same byte for byte however many goroutines generate it. The writers are
// hand-rolled appenders because benchmarks need tens of millions of lines.
//
// It owns only generation. It imports credit/ and nothing else of the
// project, and never touches a store.
package synth
