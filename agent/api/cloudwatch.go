package api

// CloudWatch metrics the agent publishes (config key cloudwatch.namespace), shared with the
// deployment that alarms on them. Two metrics, one dimension: a custom metric costs per month
// for each name and dimension set it is published with, so the set stays this small.
const (
	// DefaultMetricNamespace is the namespace the agent publishes to.
	DefaultMetricNamespace = "headnat"
	// MetricDimensionCluster is the only dimension: the cluster name.
	MetricDimensionCluster = "Cluster"
	// MetricUnservedRouteTables (gauge, Count) is how many of the cluster's route tables have
	// no default route through an instance the publishing agent sees healthy. Every agent
	// publishes it each MetricPeriodSeconds; alarm on the Maximum, and treat missing data as
	// breaching (no agent alive to publish is no NAT at all).
	MetricUnservedRouteTables = "UnservedRouteTables"
	// MetricFailovers (Count) is how many tables the publishing agent took over from an
	// instance that was not handing them over (failed or gone). Published only when not zero;
	// alarm on the Sum, missing data not breaching.
	MetricFailovers = "Failovers"
	// MetricPeriodSeconds is how often the agent publishes, and the alarms' period.
	MetricPeriodSeconds = 60
)
