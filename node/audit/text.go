package audit

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the report as a table for a terminal: one line per
// region, the findings per rule, then each kept finding.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "REGION\tRECEIPTS\tCHECKED\tANCHORED\tVERIFIED\tPENDING\tCHECKPOINTS\tFINDINGS\n")
	for _, s := range r.Regions {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Region, s.Receipts, s.Checked, s.AnchoredSize, s.Verified, s.Pending, s.Checkpoints, s.Findings)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nreceived receipts cross-checked: %d; audit took %s\n", r.Received, r.Finished.Sub(r.Started).Round(time.Millisecond))
	var pending uint64
	for _, s := range r.Regions {
		pending += s.Pending
	}
	if pending > 0 {
		fmt.Fprintf(w, "pending (not yet anchored): %d receipts, within --anchor-delay; their signatures, consents and structure were checked, their inclusion cannot be yet (--require-anchored makes each a finding)\n", pending)
	}
	if r.WithinRevocationBound > 0 {
		fmt.Fprintf(w, "answers on a revoked consent within the revocation bound (allowed): %d\n", r.WithinRevocationBound)
	}
	if r.OK() {
		_, err := fmt.Fprintln(w, "result: no findings")
		return err
	}
	fmt.Fprintf(w, "result: %d finding(s)\n\n", r.Total)
	rules := make([]Rule, 0, len(r.ByRule))
	for k := range r.ByRule {
		rules = append(rules, k)
	}
	slices.Sort(rules)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "RULE\tCOUNT\n")
	for _, k := range rules {
		fmt.Fprintf(tw, "%s\t%d\n", k, r.ByRule[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "RULE\tCODE\tREGION\tRECEIPT\tLEAF\tWHERE\tDETAIL\n")
	for _, f := range r.Findings {
		leaf := "-"
		if f.Leaf != nil {
			leaf = fmt.Sprint(*f.Leaf)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Rule, dash(string(f.Code)), f.Region, dash(f.Receipt), leaf, dash(f.Source), strings.ReplaceAll(f.Detail, "\n", " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Truncated {
		fmt.Fprintf(w, "(%d more findings not listed; raise --max-findings)\n", r.Total-len(r.Findings))
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
