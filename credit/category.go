package credit

import (
	"fmt"
	"slices"
	"strings"
)

// Category is one of the closed set of record categories local credit
// platforms aggregate.
type Category string

// The categories, in report order.
const (
	Registration    Category = "registration"     // business registration and changes
	Licensing       Category = "licensing"        // administrative licences and permits
	Penalty         Category = "penalty"          // administrative penalties
	Tax             Category = "tax"              // tax payment, arrears, credit rating
	SocialInsurance Category = "social_insurance" // social insurance contributions
	HousingFund     Category = "housing_fund"     // housing provident fund contributions
	Utilities       Category = "utilities"        // water, electricity and gas payments
	Judicial        Category = "judicial"         // judgments and enforcement
	Customs         Category = "customs"          // customs declarations and credit status
	IP              Category = "ip"               // patents, trademarks, copyrights
	Honors          Category = "honors"           // honours and credit rewards
	Financial       Category = "financial"        // financial statements
)

var allCategories = []Category{
	Registration, Licensing, Penalty, Tax, SocialInsurance, HousingFund,
	Utilities, Judicial, Customs, IP, Honors, Financial,
}

// AllCategories returns every category in report order.
func AllCategories() []Category { return slices.Clone(allCategories) }

// Ordinal is the category's position in report order (0-based), or -1.
func (c Category) Ordinal() int { return slices.Index(allCategories, c) }

// Valid reports whether c is in the vocabulary.
func (c Category) Valid() bool { return c.Ordinal() >= 0 }

// ParseCategory accepts a short code such as "social_insurance".
func ParseCategory(s string) (Category, error) {
	c := Category(s)
	if !c.Valid() {
		return "", fmt.Errorf("unknown category %s (want one of %s)", Quote(s), strings.Join(categoryStrings(allCategories), ", "))
	}
	return c, nil
}

// ParseCategories parses a comma-separated list and returns it normalised
// (report order, no duplicates). An empty string gives nil.
func ParseCategories(s string) ([]Category, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Category
	for _, part := range strings.Split(s, ",") {
		c, err := ParseCategory(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return NormalizeCategories(out), nil
}

// NormalizeCategories sorts categories into report order and removes
// duplicates, so that a set has exactly one canonical encoding.
func NormalizeCategories(cs []Category) []Category {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b Category) int { return a.Ordinal() - b.Ordinal() })
	return slices.Compact(out)
}

// CategoriesSubset reports whether every category of sub is in set.
func CategoriesSubset(sub, set []Category) bool {
	for _, c := range sub {
		if !slices.Contains(set, c) {
			return false
		}
	}
	return true
}

func categoryStrings(cs []Category) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}
