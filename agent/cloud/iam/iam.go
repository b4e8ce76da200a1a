// Package iam lists every AWS API action the agent calls and what it acts on, so that the
// deployment (the CDK app) grants exactly these and nothing else. Standard library only: the
// CDK module imports it without pulling in the AWS SDK. A test in agent/cloud checks that
// every SDK operation the agent's client interfaces declare is listed here.
package iam

// Scope is what an action may touch; the deployment turns it into resources and conditions.
type Scope string

const (
	// ScopeAny: read-only Describe calls, which IAM cannot scope (Resource "*").
	ScopeAny Scope = "any"
	// ScopeRouteTables: the private route tables tagged headnat:cluster=<cluster>.
	ScopeRouteTables Scope = "route-tables"
	// ScopeOwnENIs: the cluster's instances and their ENIs (tagged headnat:cluster=<cluster>).
	ScopeOwnENIs Scope = "own-enis"
	// ScopePoolEIPs: the Elastic IPs of the cluster's pool (tagged headnat:cluster=<cluster>)
	// and the cluster's ENIs they are associated with.
	ScopePoolEIPs Scope = "pool-eips"
	// ScopeOwnGroups: the cluster's Auto Scaling groups.
	ScopeOwnGroups Scope = "own-groups"
	// ScopeAuthKey: the SSM parameter holding the tailnet pre-auth key.
	ScopeAuthKey Scope = "auth-key"
	// ScopeMetricNamespace: CloudWatch metrics (IAM has no resource for them: Resource "*")
	// allowed only with the condition cloudwatch:namespace = the configured namespace.
	ScopeMetricNamespace Scope = "metric-namespace"
)

// Features that need extra actions, named by the agent's configuration key.
const (
	FeatureAlways  = ""
	FeatureEIPPool = "eip.pool"
	FeatureAuthKey = "tailnet.auth_key_ssm_parameter"
	// FeatureCloudWatch: the agent publishes its metrics to CloudWatch.
	FeatureCloudWatch = "cloudwatch.namespace"
)

// Action is one IAM action ("service:Operation") the agent calls.
type Action struct {
	Name    string
	Scope   Scope
	Feature string // FeatureAlways, or the setting that makes the agent call it
}

// Actions returns every action the agent calls, in a fresh slice.
func Actions() []Action {
	return []Action{
		{"ec2:DescribeInstances", ScopeAny, FeatureAlways},
		{"ec2:DescribeRouteTables", ScopeAny, FeatureAlways},
		{"ec2:DescribeSubnets", ScopeAny, FeatureAlways},
		{"ec2:DescribeNetworkInterfaces", ScopeAny, FeatureAlways},
		{"ec2:ModifyNetworkInterfaceAttribute", ScopeOwnENIs, FeatureAlways},
		{"ec2:ReplaceRoute", ScopeRouteTables, FeatureAlways},
		{"ec2:CreateRoute", ScopeRouteTables, FeatureAlways},
		{"ec2:DescribeAddresses", ScopeAny, FeatureEIPPool},
		{"ec2:AssociateAddress", ScopePoolEIPs, FeatureEIPPool},
		{"ec2:DisassociateAddress", ScopePoolEIPs, FeatureEIPPool},
		{"autoscaling:DescribeAutoScalingGroups", ScopeAny, FeatureAlways},
		{"autoscaling:DescribeAutoScalingInstances", ScopeAny, FeatureAlways},
		{"autoscaling:DescribeLifecycleHooks", ScopeAny, FeatureAlways},
		{"autoscaling:CompleteLifecycleAction", ScopeOwnGroups, FeatureAlways},
		{"autoscaling:RecordLifecycleActionHeartbeat", ScopeOwnGroups, FeatureAlways},
		{"ssm:GetParameter", ScopeAuthKey, FeatureAuthKey},
		{"cloudwatch:PutMetricData", ScopeMetricNamespace, FeatureCloudWatch},
	}
}

// For returns the actions needed with the given features on (FeatureAlways ones included).
func For(features ...string) []Action {
	on := map[string]bool{FeatureAlways: true}
	for _, f := range features {
		on[f] = true
	}
	var out []Action
	for _, a := range Actions() {
		if on[a.Feature] {
			out = append(out, a)
		}
	}
	return out
}
