package natfleet

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/agent/api"
)

// Alarm evaluation: "no healthy NAT" when 2 of the last 3 minutes saw an unserved table (a
// failover takes seconds, so one bad minute is a blip); "failover" at the first takeover.
const (
	noHealthyEvaluationPeriods = 3
	noHealthyDatapoints        = 2
)

// metric is one of the agent's metrics for this cluster.
func metric(p NatFleetProps, name, statistic string) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(api.DefaultMetricNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{api.MetricDimensionCluster: jsii.String(p.Cluster)},
		Statistic:     jsii.String(statistic),
		Period:        awscdk.Duration_Seconds(jsii.Number(api.MetricPeriodSeconds)),
	})
}

// newAlarms creates the two alarms, with the topic (if any) as their action.
func newAlarms(scope constructs.Construct, p NatFleetProps) (noHealthy, failover awscloudwatch.Alarm) {
	noHealthy = awscloudwatch.NewAlarm(scope, jsii.String("NoHealthyNatAlarm"), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String("headnat-" + p.Cluster + "-no-healthy-nat"),
		AlarmDescription: jsii.String("headnat cluster " + p.Cluster + ": a private route table has no default route " +
			"through a healthy NAT instance (or no agent is alive to say otherwise): its subnets cannot reach the internet. " +
			"Check `headnat status` on a NAT instance and the fleet's Auto Scaling groups."),
		Metric:             metric(p, api.MetricUnservedRouteTables, "Maximum"),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(noHealthyEvaluationPeriods),
		DatapointsToAlarm:  jsii.Number(noHealthyDatapoints),
		TreatMissingData:   awscloudwatch.TreatMissingData_BREACHING,
	})
	failover = awscloudwatch.NewAlarm(scope, jsii.String("FailoverAlarm"), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String("headnat-" + p.Cluster + "-failover"),
		AlarmDescription: jsii.String("headnat cluster " + p.Cluster + ": a NAT instance failed and another took over its " +
			"route tables (traffic kept flowing). Planned hand-overs (spot, refresh, scale-in) do not count."),
		Metric:             metric(p, api.MetricFailovers, "Sum"),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	if p.AlarmTopic != nil {
		action := awscloudwatchactions.NewSnsAction(p.AlarmTopic)
		noHealthy.AddAlarmAction(action)
		noHealthy.AddOkAction(action)
		failover.AddAlarmAction(action)
	}
	return noHealthy, failover
}
