package cost

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Write prints the estimate: both bills line by line, their totals per month and per day,
// the difference, and the assumptions.
func Write(w io.Writer, e *Estimate, t *Table, o Options) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "headnat cost: %s, prices of %s, %s hours of use per month\n", o.Region, t.Date, num(o.Hours))
	writeBill(tw, "With headnat (the templates as synthesized)", e.WithHeadnat)
	title := fmt.Sprintf("With NAT Gateways instead of headnat (%d, one per AZ headnat serves; no NAT instances, EIP pool or headnat alarms)", e.AZs)
	if e.AZs == 0 {
		title = "With NAT Gateways instead of headnat (the templates have no headnat: the same bill)"
	}
	writeBill(tw, title, e.WithNATGateways)
	d := e.WithNATGateways.Monthly() - e.WithHeadnat.Monthly()
	fmt.Fprintf(tw, "\nDifference: NAT Gateways instead of headnat: %s/month, %s/day\n", signedDollars(d), signedDollars(d*24/HoursPerMonth))
	fmt.Fprintln(tw, "\nAssumptions:")
	for _, a := range assumptions(e, t, o) {
		fmt.Fprintf(tw, "  - %s\n", a)
	}
	return tw.Flush()
}

func writeBill(w io.Writer, title string, b Bill) {
	fmt.Fprintf(w, "\n%s\n", title)
	fmt.Fprintln(w, "  item\tquantity\tunit price\tmonthly")
	for _, l := range b.Lines {
		fmt.Fprintf(w, "  %s\t%s %s\t%s/%s\t%s\n", l.Item, num(l.Quantity), l.Unit, price(l.UnitPrice), l.Unit, dollars(l.Monthly()))
	}
	fmt.Fprintf(w, "  total\t\t\t%s/month, %s/day\n", dollars(b.Monthly()), dollars(b.Daily()))
}

func assumptions(e *Estimate, t *Table, o Options) []string {
	acu := "the midpoint of each cluster's min and max ACU (--aurora-acu)"
	if o.AuroraACU >= 0 {
		acu = num(o.AuroraACU) + " ACU, within each cluster's min and max (--aurora-acu)"
	}
	out := []string{
		"hours of use: " + num(o.Hours) + " per month of 730 (--hours); hourly and per-month resources scale with it, per-GB figures do not",
		"internet egress through the NAT: " + num(o.EgressGB) + " GB/month (--gb-per-month); the same data transfer out either way, NAT Gateway processing on top",
		"log ingestion: " + num(o.LogGB) + " GB/month over all log groups, split evenly (--log-gb-per-month); stored for each group's retention",
		"Aurora Serverless v2: " + acu + ", " + num(o.AuroraGB) + " GB stored per cluster (--aurora-gb); I/O requests excluded",
		"ALB: " + num(o.LCU) + " LCU on average (--lcu)",
		"NAT instances: the first instance type of each group, spot unless the group's on-demand base or percentage says otherwise",
		"custom metrics: those the alarms watch in a namespace not AWS/ (headnat: 2 per cluster); free tiers not deducted",
		"log groups are the same in both bills; a month is 730 hours, a day 1/30.42 of a month",
		"prices: cost/prices.yaml, compiled on " + t.Date + "; prices change: check the sources before relying on a figure",
	}
	for _, s := range t.SourceURLs() {
		out = append(out, "source "+s)
	}
	if u := t.UnsureItems(o.Region); len(u) > 0 {
		out = append(out, "prices in "+o.Region+" to check first (unsure in cost/prices.yaml): "+strings.Join(u, ", "))
	}
	return append(out, e.Notes...)
}

// num renders a quantity with at most 4 decimals.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e4)/1e4, 'f', -1, 64)
}

// price renders a unit price with 2 to 8 decimals.
func price(v float64) string {
	s := strconv.FormatFloat(math.Round(v*1e8)/1e8, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i < 0 || len(s)-i-1 < 2 {
		s = fmt.Sprintf("%.2f", v)
	}
	return "$" + s
}

func dollars(v float64) string { return fmt.Sprintf("$%.2f", v) }

func signedDollars(v float64) string {
	if v < 0 {
		return "-" + dollars(-v)
	}
	return "+" + dollars(v)
}
