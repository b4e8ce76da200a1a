// Package cost estimates the monthly AWS bill of synthesized CloudFormation templates, with
// headnat and with NAT Gateways instead, from the dated price table in prices.yaml.
package cost

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

//go:embed prices.yaml
var pricesYAML []byte

// Table is the price table: per item, a price for each region.
type Table struct {
	Date    string            `yaml:"date"`
	Regions []string          `yaml:"regions"`
	Sources map[string]string `yaml:"sources"`
	Items   map[string]Price  `yaml:"items"`
}

// Price is one item of the table.
type Price struct {
	Unit    string             `yaml:"unit"`
	Source  string             `yaml:"source"` // a key of Table.Sources
	Note    string             `yaml:"note"`
	Unsure  []string           `yaml:"unsure"` // regions whose figure is not sure: check it first
	Regions map[string]float64 `yaml:"regions"`
}

// Prices returns the embedded price table.
func Prices() (*Table, error) { return ParseTable(pricesYAML) }

// ParseTable parses and checks a price table: a date, and for every item a unit, a known
// source and a non-negative price in every region.
func ParseTable(b []byte) (*Table, error) {
	var t Table
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("price table: %w", err)
	}
	if _, err := time.Parse(time.DateOnly, t.Date); err != nil {
		return nil, fmt.Errorf("price table: date %q: want YYYY-MM-DD", t.Date)
	}
	if len(t.Regions) == 0 || len(t.Items) == 0 {
		return nil, errors.New("price table: no regions or no items")
	}
	for name, url := range t.Sources {
		if !strings.HasPrefix(url, "https://") {
			return nil, fmt.Errorf("price table: source %s: %q is not an https URL", name, url)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.Items)) {
		p := t.Items[name]
		if p.Unit == "" {
			return nil, fmt.Errorf("price table: %s: no unit", name)
		}
		if _, ok := t.Sources[p.Source]; !ok {
			return nil, fmt.Errorf("price table: %s: source %q is not among the sources", name, p.Source)
		}
		for _, r := range t.Regions {
			v, ok := p.Regions[r]
			if !ok || v < 0 {
				return nil, fmt.Errorf("price table: %s: no price for %s", name, r)
			}
		}
		for _, r := range p.Unsure {
			if !slices.Contains(t.Regions, r) {
				return nil, fmt.Errorf("price table: %s: unsure region %s is not among the regions", name, r)
			}
		}
		if len(p.Regions) != len(t.Regions) {
			return nil, fmt.Errorf("price table: %s: prices for regions not listed in regions", name)
		}
	}
	return &t, nil
}

// CheckRegion returns an error naming the supported regions if r is not one.
func (t *Table) CheckRegion(r string) error {
	if slices.Contains(t.Regions, r) {
		return nil
	}
	return fmt.Errorf("region %q has no prices; supported: %s", r, strings.Join(t.Regions, ", "))
}

// price is the price of item in region; ok is false if the table has no such item.
func (t *Table) price(item, region string) (float64, bool) {
	p, ok := t.Items[item]
	if !ok {
		return 0, false
	}
	v, ok := p.Regions[region]
	return v, ok
}

// SourceURLs returns the sources' URLs, sorted by name.
func (t *Table) SourceURLs() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(t.Sources)) {
		out = append(out, k+": "+t.Sources[k])
	}
	return out
}

// UnsureItems lists the items whose figure for region is not sure.
func (t *Table) UnsureItems(region string) []string {
	var out []string
	for name, p := range t.Items {
		if slices.Contains(p.Unsure, region) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
