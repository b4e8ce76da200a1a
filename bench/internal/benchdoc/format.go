package benchdoc

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentile is the nearest-rank percentile (p in 0..100) of ds; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Secs formats a duration as seconds with two decimals ("1.34 s").
func Secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// Ms formats a duration as whole milliseconds ("1340 ms"); a negative one is "none".
func Ms(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

// ShellJoin joins arguments for display, quoting the empty ones and those with spaces.
func ShellJoin(args []string) string {
	var out []string
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"") {
			a = strconv.Quote(a)
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}
