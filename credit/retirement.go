package credit

import "time"

// QueryWindow is the default query acceptance window (node config
// query.window): a node answers a query only while its clock is within
// this of the query's time. It is defined here, not in the node, because
// the audit also bounds a retired region's late answers by it, and the
// audit reads no node's config: a node run with a longer window may
// answer later than the audit accepts from a retired region.
const QueryWindow = 2 * time.Minute

// AnsweredAsMember reports whether a retired region's receipt signed at
// answered, for a query of queryTime, belongs to its membership, which
// ended at retiredAt. A region answers the queries asked while it was a
// member: the vote that retires it can commit while its node is answering,
// so a receipt signed after the retirement still holds when the query came
// before it and the answer within QueryWindow of the query (the longest a
// node with the default window waits to answer). Such a receipt is checked
// against the key the region had at the query's time.
func AnsweredAsMember(queryTime, answered, retiredAt time.Time) bool {
	return queryTime.Before(retiredAt) && AnsweredInWindow(queryTime, answered)
}

// AnsweredInWindow reports whether a receipt signed at answered came no
// later than QueryWindow after its query's time: the bound on a retired
// region's late answer, which the requesting node applies alone (it asks
// active regions only) and the audit with AnsweredAsMember.
func AnsweredInWindow(queryTime, answered time.Time) bool {
	return !answered.After(queryTime.Add(QueryWindow))
}
