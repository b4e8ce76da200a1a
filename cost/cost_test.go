package cost

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// defaults are the flags' defaults in us-east-1.
func defaults() Options {
	return Options{Region: "us-east-1", Hours: 730, EgressGB: 100, LogGB: 2, AuroraACU: -1, AuroraGB: 10, LCU: 1}
}

func cents(v float64) int64 { return int64(math.Round(v * 100)) }

func estimate(t *testing.T, dir string, o Options) *Estimate {
	t.Helper()
	ts, err := LoadDir(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := Prices()
	if err != nil {
		t.Fatal(err)
	}
	e, err := Compute(ts, tab, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// line returns the bill's line for item, failing the test if it has none.
func line(t *testing.T, b Bill, item string) Line {
	t.Helper()
	for _, l := range b.Lines {
		if l.Item == item {
			return l
		}
	}
	t.Fatalf("no line %q in %+v", item, b.Lines)
	return Line{}
}

func checkLine(t *testing.T, b Bill, item string, qty float64, monthlyCents int64) {
	t.Helper()
	l := line(t, b, item)
	if math.Abs(l.Quantity-qty) > 1e-9 || cents(l.Monthly()) != monthlyCents {
		t.Errorf("%s: %v × %v = %v, want %v and %d cents", item, l.Quantity, l.UnitPrice, l.Monthly(), qty, monthlyCents)
	}
}

func checkTotal(t *testing.T, name string, b Bill, monthly, daily int64) {
	t.Helper()
	if cents(b.Monthly()) != monthly || cents(b.Daily()) != daily {
		t.Errorf("%s: $%.4f/month, $%.4f/day; want %d and %d cents", name, b.Monthly(), b.Daily(), monthly, daily)
	}
}

// The 2-AZ headnat network stack in us-east-1, 730 h, 100 GB egress, 2 GB logs.
func TestNetworkTwoAZs(t *testing.T) {
	e := estimate(t, "network", defaults())
	if e.AZs != 2 {
		t.Fatalf("AZs %d, want 2 (two headnat Auto Scaling groups)", e.AZs)
	}
	h := e.WithHeadnat
	// t4g.nano spot: 2 × 730 h = 1460 h × (0.0042 × 0.35 = 0.00147) = 2.1462
	checkLine(t, h, "headnat NAT instance t4g.nano, spot", 1460, 215)
	// 2 × 8 GiB gp3 = 16 GB-month × 0.08 = 1.28
	checkLine(t, h, "EBS root volumes of headnat instances, gp3", 16, 128)
	// 2 public IPv4 × 730 h = 1460 h × 0.005 = 7.30
	checkLine(t, h, "public IPv4 (headnat instances)", 1460, 730)
	// 2 alarms × 0.10 = 0.20; 2 metrics (UnservedRouteTables, Failovers) × 0.30 = 0.60
	checkLine(t, h, "CloudWatch alarms", 2, 20)
	checkLine(t, h, "CloudWatch custom metrics (those the alarms watch)", 2, 60)
	// logs: 2 GB × 0.50 = 1.00; stored 2 GB × 14 d × 24/730 = 0.920548 GB-month × 0.03 = 0.027616
	checkLine(t, h, "CloudWatch Logs ingestion", 2, 100)
	checkLine(t, h, "CloudWatch Logs storage (ingestion × retention)", 2*14*24.0/730, 3)
	// 100 GB × 0.09 = 9.00
	checkLine(t, h, "data transfer out to the internet", 100, 900)
	// 2.1462 + 1.28 + 7.30 + 0.20 + 0.60 + 1.00 + 0.027616 + 9.00 = 21.553816/month;
	// × 24/730 = 0.708619/day
	checkTotal(t, "with headnat", h, 2155, 71)
	if len(h.Lines) != 8 {
		t.Errorf("with headnat: %d lines, want 8: %+v", len(h.Lines), h.Lines)
	}

	g := e.WithNATGateways
	// 2 NAT Gateways × 730 h = 1460 h × 0.045 = 65.70; 100 GB × 0.045 = 4.50
	checkLine(t, g, "NAT Gateway (replacing headnat, one per AZ)", 1460, 6570)
	checkLine(t, g, "NAT Gateway data processed", 100, 450)
	// their 2 public IPv4 × 730 h × 0.005 = 7.30
	checkLine(t, g, "public IPv4 (NAT Gateways)", 1460, 730)
	// 65.70 + 4.50 + 7.30 + 1.027616 (logs) + 9.00 = 87.527616/month; × 24/730 = 2.877620/day
	checkTotal(t, "with NAT Gateways", g, 8753, 288)
	for _, l := range g.Lines {
		if strings.Contains(l.Item, "headnat") && !strings.Contains(l.Item, "replacing headnat") || strings.Contains(l.Item, "alarm") || strings.Contains(l.Item, "metrics") {
			t.Errorf("the NAT Gateway bill keeps %q", l.Item)
		}
	}
}

// The same stack in ap-northeast-2.
func TestNetworkSeoul(t *testing.T) {
	o := defaults()
	o.Region = "ap-northeast-2"
	e := estimate(t, "network", o)
	// 1460 h × 0.0052 × 0.35 = 2.6572; 16 × 0.0912 = 1.4592; IPv4 7.30; alarms 0.20;
	// metrics 0.60; logs 2 × 0.76 = 1.52 + 0.920548 × 0.0314 = 0.028905; out 100 × 0.126 = 12.60
	// = 26.365305/month, 0.866804/day
	checkTotal(t, "with headnat", e.WithHeadnat, 2637, 87)
	// NAT Gateways 1460 × 0.059 = 86.14; 100 × 0.059 = 5.90; IPv4 7.30; logs 1.548905;
	// out 12.60 = 113.488905/month, 3.731142/day
	checkTotal(t, "with NAT Gateways", e.WithNATGateways, 11349, 373)
}

// Fewer hours scale what is billed by the hour or month, not the per-GB figures.
func TestNetworkHours(t *testing.T) {
	o := defaults()
	o.Hours = 200
	e := estimate(t, "network", o)
	// spot 2 × 200 = 400 h × 0.00147 = 0.588; EBS 16 × 200/730 = 4.383562 GB-month × 0.08 =
	// 0.350685; IPv4 400 h × 0.005 = 2.00; alarms 2 × 200/730 × 0.10 = 0.054795; metrics
	// 2 × 200/730 × 0.30 = 0.164384; logs 1.027616; out 9.00 = 13.185480/month
	checkLine(t, e.WithHeadnat, "headnat NAT instance t4g.nano, spot", 400, 59)
	checkTotal(t, "with headnat", e.WithHeadnat, 1319, 43)
	// NAT Gateways 400 h × 0.045 = 18.00; 4.50; IPv4 2.00; logs 1.027616; out 9.00 = 34.527616
	checkTotal(t, "with NAT Gateways", e.WithNATGateways, 3453, 114)
}

// With an EIP pool, the instances' auto-assigned addresses are released: the pool is priced.
func TestNetworkEIPPool(t *testing.T) {
	e := estimate(t, "eippool", defaults())
	// 3 pool EIPs × 730 h = 2190 h × 0.005 = 10.95, and no line for the instances' own
	checkLine(t, e.WithHeadnat, "public IPv4 (headnat EIP pool)", 2190, 1095)
	for _, l := range e.WithHeadnat.Lines {
		if l.Item == "public IPv4 (headnat instances)" {
			t.Errorf("the instances' released addresses are priced: %+v", l)
		}
	}
	// 21.553816 - 7.30 + 10.95 = 25.203816/month, 0.828619/day
	checkTotal(t, "with headnat", e.WithHeadnat, 2520, 83)
	// The pool goes with headnat: the NAT Gateway bill is the one without a pool.
	checkTotal(t, "with NAT Gateways", e.WithNATGateways, 8753, 288)
}

// A stack that already has NAT Gateways: both bills are the same.
func TestNATGatewayTemplate(t *testing.T) {
	e := estimate(t, "natgw", defaults())
	if e.AZs != 0 {
		t.Fatalf("AZs %d, want 0: no headnat", e.AZs)
	}
	// 2 × 730 h × 0.045 = 65.70; 100 GB × 0.045 = 4.50; 2 EIPs × 730 h × 0.005 = 7.30;
	// out 9.00 = 86.50/month, 2.843836/day
	checkLine(t, e.WithHeadnat, "NAT Gateway", 1460, 6570)
	checkLine(t, e.WithHeadnat, "public IPv4 (Elastic IPs)", 1460, 730)
	checkTotal(t, "as synthesized", e.WithHeadnat, 8650, 284)
	checkTotal(t, "with NAT Gateways", e.WithNATGateways, 8650, 284)
}

// Fargate Spot, an ALB, Aurora Serverless v2 (0-2 ACU) and two log groups.
func TestPlatform(t *testing.T) {
	e := estimate(t, "platform", defaults())
	h := e.WithHeadnat
	// 2 tasks × 730 h × 0.25 vCPU = 365 vCPU-h × (0.03238 × 0.30 = 0.009714) = 3.54561
	checkLine(t, h, "Fargate ARM64 vCPU, spot", 365, 355)
	// 2 × 730 h × 0.5 GB = 730 GB-h × (0.00356 × 0.30 = 0.001068) = 0.77964
	checkLine(t, h, "Fargate ARM64 memory, spot", 730, 78)
	// 730 h × 0.0225 = 16.425; 1 LCU × 730 h × 0.008 = 5.84; 2 nodes × 730 h × 0.005 = 7.30
	checkLine(t, h, "ALB", 730, 1643)
	checkLine(t, h, "ALB LCUs", 730, 584)
	checkLine(t, h, "public IPv4 (ALB nodes, one per subnet)", 1460, 730)
	// (0 + 2)/2 = 1 ACU × 1 instance × 730 h × 0.12 = 87.60; 10 GB × 0.10 = 1.00
	checkLine(t, h, "Aurora Serverless v2 capacity", 730, 8760)
	checkLine(t, h, "Aurora storage", 10, 100)
	// logs: 2 GB × 0.50 = 1.00; 1 GB each, stored (14 + 30) × 24/730 = 1.446575 GB-month ×
	// 0.03 = 0.043397
	checkLine(t, h, "CloudWatch Logs storage (ingestion × retention)", 44*24.0/730, 4)
	// 3.54561 + 0.77964 + 16.425 + 5.84 + 7.30 + 87.60 + 1.00 + 1.00 + 0.043397 = 123.533647
	checkTotal(t, "platform", h, 12353, 406)
	checkTotal(t, "platform, NAT Gateways", e.WithNATGateways, 12353, 406)
	for _, want := range []string{"no NAT in the templates"} {
		if !strings.Contains(strings.Join(e.Notes, "\n"), want) {
			t.Errorf("notes lack %q: %q", want, e.Notes)
		}
	}

	o := defaults()
	o.AuroraACU = 0.5 // 0.5 × 730 × 0.12 = 43.80: 123.533647 - 87.60 + 43.80 = 79.733647
	checkTotal(t, "0.5 ACU", estimate(t, "platform", o).WithHeadnat, 7973, 262)
	o.AuroraACU = 5 // clamped to the max, 2: 175.20: 123.533647 + 87.60 = 211.133647
	checkTotal(t, "5 ACU, capped at 2", estimate(t, "platform", o).WithHeadnat, 21113, 694)
}

func TestSpotTasks(t *testing.T) {
	sp := func(cp string, base, weight float64) any {
		return map[string]any{"CapacityProvider": cp, "Base": base, "Weight": weight}
	}
	for _, tt := range []struct {
		n        float64
		strategy []any
		spot     float64
		ok       bool
	}{
		{2, []any{sp("FARGATE_SPOT", 0, 1)}, 2, true},
		{2, []any{sp("FARGATE", 0, 1)}, 0, true},
		{5, []any{sp("FARGATE", 1, 1), sp("FARGATE_SPOT", 0, 3)}, 3, true}, // 1 base, then 4 × 3/4
		{1, []any{sp("FARGATE", 2, 1), sp("FARGATE_SPOT", 0, 1)}, 0, true}, // the base takes the only task
		{4, []any{sp("FARGATE_SPOT", 1, 1), sp("FARGATE", 0, 1)}, 2.5, true},
		{2, []any{sp("my-asg-provider", 0, 1)}, 0, false},
	} {
		spot, ok := spotTasks(tt.n, tt.strategy)
		if spot != tt.spot || ok != tt.ok {
			t.Errorf("spotTasks(%v, %v) = %v, %v; want %v, %v", tt.n, tt.strategy, spot, ok, tt.spot, tt.ok)
		}
	}
}

// Every item the estimator uses has a unit, a source URL and a price in both regions.
func TestPriceTable(t *testing.T) {
	tab, err := Prices()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.DateOnly, tab.Date); err != nil {
		t.Errorf("date %q: %v", tab.Date, err)
	}
	for _, r := range []string{"us-east-1", "ap-northeast-2"} {
		if err := tab.CheckRegion(r); err != nil {
			t.Error(err)
		}
	}
	used := []string{"nat_gateway_hour", "nat_gateway_gb", "public_ipv4_hour", "ec2_spot_ratio",
		"ebs_gp3_gb_month", "ebs_snapshot_gb_month", "alb_hour", "alb_lcu_hour",
		"fargate_arm_vcpu_hour", "fargate_arm_gb_hour", "fargate_x86_vcpu_hour", "fargate_x86_gb_hour",
		"fargate_spot_ratio", "aurora_sv2_acu_hour", "aurora_storage_gb_month", "logs_ingest_gb",
		"logs_storage_gb_month", "cw_metric_month", "cw_alarm_month", "data_out_gb",
		"vpc_endpoint_hour", "secret_month", "kms_key_month"}
	for _, typ := range []string{"t4g.nano", "t4g.micro", "t4g.small", "c7g.medium", "c6g.medium", "m7g.medium"} {
		used = append(used, "ec2_hour."+typ)
	}
	for _, name := range used {
		p, ok := tab.Items[name]
		if !ok {
			t.Errorf("no item %s", name)
			continue
		}
		if p.Unit == "" || !strings.HasPrefix(tab.Sources[p.Source], "https://") {
			t.Errorf("%s: unit %q, source %q", name, p.Unit, tab.Sources[p.Source])
		}
		for _, r := range []string{"us-east-1", "ap-northeast-2"} {
			if v := p.Regions[r]; v <= 0 || v > 1 {
				t.Errorf("%s in %s: %v, want a price above 0 and at most 1 dollar", name, r, v)
			}
		}
	}
	if v := tab.Items["public_ipv4_hour"].Regions["us-east-1"]; v != 0.005 {
		t.Errorf("public IPv4: %v an hour, want 0.005", v)
	}
}

func TestParseTableRejects(t *testing.T) {
	good := "date: 2026-11-30\nregions: [us-east-1, ap-northeast-2]\nsources: {vpc: https://aws.amazon.com/vpc/pricing/}\n" +
		"items:\n  x: {unit: hour, source: vpc, regions: {us-east-1: 0.1, ap-northeast-2: 0.2}}\n"
	if _, err := ParseTable([]byte(good)); err != nil {
		t.Fatalf("good table: %v", err)
	}
	for name, tt := range map[string]struct{ old, new, want string }{
		"no date":        {"date: 2026-11-30", "date: soon", "date"},
		"missing region": {", ap-northeast-2: 0.2", "", "no price for ap-northeast-2"},
		"unknown source": {"source: vpc", "source: elb", `source "elb"`},
		"no unit":        {"unit: hour, ", "", "no unit"},
		"unknown key":    {"unit: hour", "unit: hour, colour: red", "colour"},
		"unsure region":  {"unit: hour", "unit: hour, unsure: [eu-west-1]", "unsure region eu-west-1"},
	} {
		_, err := ParseTable([]byte(strings.Replace(good, tt.old, tt.new, 1)))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tt.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "no *.template.json") {
		t.Errorf("empty directory: %v", err)
	}
	bad := filepath.Join(dir, "Bad.template.json")
	if err := os.WriteFile(bad, []byte(`{"Resources": {`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("unparsable template: %v, want its name", err)
	}
	if err := os.WriteFile(bad, []byte(`{"Outputs": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFiles([]string{bad}); err == nil || !strings.Contains(err.Error(), "no Resources") {
		t.Errorf("template without resources: %v", err)
	}
}

func TestComputeRejects(t *testing.T) {
	tab, err := Prices()
	if err != nil {
		t.Fatal(err)
	}
	o := defaults()
	o.Region = "eu-west-1"
	if _, err := Compute(nil, tab, o); err == nil || !strings.Contains(err.Error(), "supported: us-east-1, ap-northeast-2") {
		t.Errorf("unknown region: %v", err)
	}
	o = defaults()
	o.Hours = 800
	if _, err := Compute(nil, tab, o); err == nil {
		t.Error("800 hours a month accepted")
	}
}

// An intrinsic function where a number is wanted is stated, not guessed.
func TestUnknownsAreStated(t *testing.T) {
	ts := []Template{{Name: "T.template.json", Resources: map[string]Resource{
		"Asg": {Type: "AWS::AutoScaling::AutoScalingGroup", Properties: map[string]any{
			"MinSize": map[string]any{"Ref": "Size"}}},
		"Box": {Type: "AWS::EC2::Instance", Properties: map[string]any{"InstanceType": "x9.huge"}},
	}}}
	tab, err := Prices()
	if err != nil {
		t.Fatal(err)
	}
	e, err := Compute(ts, tab, defaults())
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(e.Notes, "\n")
	for _, want := range []string{`T.template.json Asg: MinSize {"Ref":"Size"}: its instances are not priced`,
		"EC2 x9.huge, on-demand: no price ec2_hour.x9.huge in the table: not priced",
		"T.template.json Box: no block device mappings"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

// The printed estimate is the same every time, and states the flags, date and sources.
func TestWriteStable(t *testing.T) {
	tab, err := Prices()
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for range 3 {
		var buf bytes.Buffer
		if err := Write(&buf, estimate(t, "network", defaults()), tab, defaults()); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, buf.String())
	}
	if outs[0] != outs[1] || outs[1] != outs[2] {
		t.Fatalf("output differs between runs:\n%s\n---\n%s", outs[0], outs[1])
	}
	for _, want := range []string{"$21.55/month, $0.71/day", "$87.53/month, $2.88/day",
		"Difference: NAT Gateways instead of headnat: +$65.97/month, +$2.17/day",
		"100 GB/month (--gb-per-month)", "compiled on " + tab.Date, "source vpc: https://aws.amazon.com/vpc/pricing/"} {
		if !strings.Contains(outs[0], want) {
			t.Errorf("output lacks %q:\n%s", want, outs[0])
		}
	}
}

func computeInline(t *testing.T, res map[string]Resource) *Estimate {
	t.Helper()
	tab, err := Prices()
	if err != nil {
		t.Fatal(err)
	}
	e, err := Compute([]Template{{Name: "T.template.json", Resources: res}}, tab, defaults())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// An Auto Scaling group's on-demand base and percentage split its instances.
func TestGroupOnDemandSplit(t *testing.T) {
	e := computeInline(t, map[string]Resource{
		"Lt": {Type: "AWS::EC2::LaunchTemplate", Properties: map[string]any{"LaunchTemplateData": map[string]any{}}},
		"Asg": {Type: "AWS::AutoScaling::AutoScalingGroup", Properties: map[string]any{
			"MinSize": "3", "MaxSize": "3",
			"MixedInstancesPolicy": map[string]any{
				"InstancesDistribution": map[string]any{"OnDemandBaseCapacity": 1.0, "OnDemandPercentageAboveBaseCapacity": 50.0},
				"LaunchTemplate": map[string]any{
					"LaunchTemplateSpecification": map[string]any{"LaunchTemplateId": map[string]any{"Ref": "Lt"}},
					"Overrides":                   []any{map[string]any{"InstanceType": "t4g.small"}}}}}},
	})
	b := e.WithHeadnat
	// 1 base + 2 × 50% = 2 on-demand: 2 × 730 h = 1460 h × 0.0168 = 24.528
	checkLine(t, b, "EC2 t4g.small, on-demand", 1460, 2453)
	// 1 spot: 730 h × 0.0168 × 0.35 = 4.2924
	checkLine(t, b, "EC2 t4g.small, spot", 730, 429)
	// no block device mappings: 3 × 8 GiB = 24 GB-month × 0.08 = 1.92
	checkLine(t, b, "EBS volumes of Auto Scaling groups, gp3", 24, 192)
	// 24.528 + 4.2924 + 1.92 = 30.7404; not headnat: the same in both bills
	checkTotal(t, "group", b, 3074, 101)
	checkTotal(t, "group, NAT Gateways", e.WithNATGateways, 3074, 101)
}

// An x86_64 service with its own strategy (a FARGATE base) and public IPs.
func TestServiceStrategy(t *testing.T) {
	e := computeInline(t, map[string]Resource{
		"Td": {Type: "AWS::ECS::TaskDefinition", Properties: map[string]any{"Cpu": "512", "Memory": "1024"}},
		"Svc": {Type: "AWS::ECS::Service", Properties: map[string]any{
			"DesiredCount": 3.0, "TaskDefinition": map[string]any{"Ref": "Td"},
			"CapacityProviderStrategy": []any{
				map[string]any{"CapacityProvider": "FARGATE", "Base": 1.0, "Weight": 1.0},
				map[string]any{"CapacityProvider": "FARGATE_SPOT", "Weight": 1.0}},
			"NetworkConfiguration": map[string]any{"AwsvpcConfiguration": map[string]any{"AssignPublicIp": "ENABLED"}}}},
	})
	b := e.WithHeadnat
	// 3 tasks: 1 base on FARGATE, then 2 by weight 1:1: 2 on-demand, 1 spot; 0.5 vCPU, 1 GB each
	// on-demand: 2 × 730 × 0.5 = 730 vCPU-h × 0.04048 = 29.5504; 1460 GB-h × 0.004445 = 6.4897
	checkLine(t, b, "Fargate x86_64 vCPU, on-demand", 730, 2955)
	checkLine(t, b, "Fargate x86_64 memory, on-demand", 1460, 649)
	// spot: 365 vCPU-h × 0.04048 × 0.30 = 4.43256; 730 GB-h × 0.004445 × 0.30 = 0.973455
	checkLine(t, b, "Fargate x86_64 vCPU, spot", 365, 443)
	checkLine(t, b, "Fargate x86_64 memory, spot", 730, 97)
	// a public IPv4 per task: 3 × 730 h × 0.005 = 10.95
	checkLine(t, b, "public IPv4 (Fargate tasks)", 2190, 1095)
	// 29.5504 + 6.4897 + 4.43256 + 0.973455 + 10.95 = 52.396115
	checkTotal(t, "service", b, 5240, 172)
}

// Interface endpoints, secrets and keys; gateway endpoints are free.
func TestEndpointsSecretsKeys(t *testing.T) {
	e := computeInline(t, map[string]Resource{
		"S3":     {Type: "AWS::EC2::VPCEndpoint", Properties: map[string]any{"VpcEndpointType": "Gateway"}},
		"Ecr":    {Type: "AWS::EC2::VPCEndpoint", Properties: map[string]any{"VpcEndpointType": "Interface", "SubnetIds": []any{"a", "b"}}},
		"Secret": {Type: "AWS::SecretsManager::Secret", Properties: map[string]any{}},
		"Key":    {Type: "AWS::KMS::Key", Properties: map[string]any{}},
	})
	b := e.WithHeadnat
	// 2 AZs × 730 h = 1460 AZ-h × 0.01 = 14.60; 1 secret 0.40; 1 key 1.00
	checkLine(t, b, "VPC interface endpoints", 1460, 1460)
	checkLine(t, b, "Secrets Manager secrets", 1, 40)
	checkLine(t, b, "KMS keys", 1, 100)
	checkTotal(t, "endpoints, secrets, keys", b, 1600, 53)
}
