package cloud

import (
	"reflect"
	"slices"
	"testing"

	"github.com/headnat/headnat/agent/cloud/iam"
)

// GIVEN the agent's client interfaces WHEN compared with iam.Actions THEN every SDK
// operation they declare is listed with its service prefix, and nothing else is.
func TestIAMActionsMatchClientInterfaces(t *testing.T) {
	var declared []string
	for prefix, typ := range map[string]reflect.Type{
		"ec2":         reflect.TypeFor[EC2API](),
		"autoscaling": reflect.TypeFor[ASGAPI](),
		"ssm":         reflect.TypeFor[SSMAPI](),
		"cloudwatch":  reflect.TypeFor[CloudWatchAPI](),
	} {
		for m := range typ.Methods() {
			declared = append(declared, prefix+":"+m.Name)
		}
	}
	if len(declared) < 10 {
		t.Fatalf("found only %d methods on the client interfaces: %v", len(declared), declared)
	}
	var listed []string
	for _, a := range iam.Actions() {
		if slices.Contains(listed, a.Name) {
			t.Errorf("%s listed twice", a.Name)
		}
		if a.Scope == "" {
			t.Errorf("%s has no scope", a.Name)
		}
		listed = append(listed, a.Name)
	}
	for _, d := range declared {
		if !slices.Contains(listed, d) {
			t.Errorf("the agent calls %s but iam.Actions does not list it", d)
		}
	}
	for _, l := range listed {
		if !slices.Contains(declared, l) {
			t.Errorf("iam.Actions lists %s but no client interface declares it", l)
		}
	}
}

// GIVEN the feature switches WHEN For is asked THEN optional actions appear only with theirs.
func TestIAMActionsForFeatures(t *testing.T) {
	names := func(as []iam.Action) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Name)
		}
		return out
	}
	base := names(iam.For())
	for _, opt := range []string{"ec2:AssociateAddress", "ec2:DescribeAddresses", "ssm:GetParameter", "cloudwatch:PutMetricData"} {
		if slices.Contains(base, opt) {
			t.Errorf("%s granted without its feature", opt)
		}
	}
	if cw := names(iam.For(iam.FeatureCloudWatch)); !slices.Contains(cw, "cloudwatch:PutMetricData") || len(cw) != len(base)+1 {
		t.Errorf("with %s: %v, want the base actions and cloudwatch:PutMetricData", iam.FeatureCloudWatch, cw)
	}
	for _, a := range iam.Actions() {
		if a.Name == "cloudwatch:PutMetricData" && a.Scope != iam.ScopeMetricNamespace {
			t.Errorf("cloudwatch:PutMetricData scoped %q, want %q (one namespace only)", a.Scope, iam.ScopeMetricNamespace)
		}
	}
	if all := iam.For(iam.FeatureEIPPool, iam.FeatureAuthKey, iam.FeatureCloudWatch); len(all) != len(iam.Actions()) {
		t.Errorf("with every feature: %d actions, want all %d", len(all), len(iam.Actions()))
	}
}
