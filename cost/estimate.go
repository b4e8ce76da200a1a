package cost

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/headnat/headnat/agent/api"
)

// ClusterTag marks headnat's Auto Scaling groups, private route tables and EIP pool.
const ClusterTag = api.TagCluster

// HoursPerMonth is AWS's billing month (365 × 24 / 12).
const HoursPerMonth = 730

// Options are the usage figures a template cannot say.
type Options struct {
	Region    string
	Hours     float64 // hours of use per month (at most 730)
	EgressGB  float64 // GB/month from the private subnets to the internet, through the NAT
	LogGB     float64 // GB/month ingested, all log groups together
	AuroraACU float64 // average ACUs per Aurora Serverless v2 instance; negative: midpoint of min and max
	AuroraGB  float64 // GB stored per Aurora cluster
	LCU       float64 // average LCUs per ALB
}

// Line is one priced quantity.
type Line struct {
	Item      string
	Quantity  float64
	Unit      string
	UnitPrice float64
	rank      int
}

// Monthly is the line's cost per month.
func (l Line) Monthly() float64 { return l.Quantity * l.UnitPrice }

// Bill is a sorted list of lines.
type Bill struct{ Lines []Line }

// Monthly is the bill's total per month.
func (b Bill) Monthly() float64 {
	var s float64
	for _, l := range b.Lines {
		s += l.Monthly()
	}
	return s
}

// Daily is the bill's total per day (a month of 730/24 days).
func (b Bill) Daily() float64 { return b.Monthly() * 24 / HoursPerMonth }

// Estimate is the bill as synthesized (with headnat) and with NAT Gateways instead.
type Estimate struct {
	WithHeadnat     Bill
	WithNATGateways Bill
	AZs             int      // NAT Gateways that replace headnat: one per AZ it serves
	Notes           []string // assumptions and what could not be priced, sorted
}

// Compute prices the templates with t in o.Region.
func Compute(ts []Template, t *Table, o Options) (*Estimate, error) {
	if err := t.CheckRegion(o.Region); err != nil {
		return nil, err
	}
	switch {
	case o.Hours <= 0 || o.Hours > HoursPerMonth:
		return nil, fmt.Errorf("hours per month %v: want more than 0 and at most %d", o.Hours, HoursPerMonth)
	case o.EgressGB < 0 || o.LogGB < 0 || o.AuroraGB < 0 || o.LCU < 0:
		return nil, fmt.Errorf("GB and LCU figures must not be negative (egress %v, logs %v, Aurora %v, LCU %v)", o.EgressGB, o.LogGB, o.AuroraGB, o.LCU)
	}
	notes := map[string]bool{}
	azs := servedAZs(ts)
	e := &Estimate{AZs: azs}
	e.WithHeadnat = build(ts, t, o, 0, notes)
	e.WithNATGateways = build(ts, t, o, azs, notes)
	for n := range notes {
		e.Notes = append(e.Notes, n)
	}
	sort.Strings(e.Notes)
	return e, nil
}

// servedAZs counts the AZs headnat serves: its Auto Scaling groups, or else the private
// route tables tagged with a cluster.
func servedAZs(ts []Template) int {
	var groups, tables int
	for _, t := range ts {
		for _, id := range t.ofType("AWS::AutoScaling::AutoScalingGroup") {
			if hasTag(t.Resources[id].Properties["Tags"], ClusterTag) {
				groups++
			}
		}
		for _, id := range t.ofType("AWS::EC2::RouteTable") {
			if hasTag(t.Resources[id].Properties["Tags"], ClusterTag) {
				tables++
			}
		}
	}
	if groups > 0 {
		return groups
	}
	return tables
}

// eipPools returns the clusters that have Elastic IPs tagged with them.
func eipPools(ts []Template) map[string]bool {
	out := map[string]bool{}
	for _, t := range ts {
		for _, id := range t.ofType("AWS::EC2::EIP") {
			if c, ok := tagValue(t.Resources[id].Properties["Tags"], ClusterTag); ok {
				out[c] = true
			}
		}
	}
	return out
}

// Ranks order the lines.
const (
	rankNAT = iota
	rankEC2
	rankEBS
	rankIPv4
	rankALB
	rankFargate
	rankAurora
	rankLogs
	rankOther
	rankCloudWatch
	rankTransfer
)

type builder struct {
	t       *Table
	o       Options
	replace bool // leave headnat out: the NAT Gateway counterfactual
	lines   map[string]*Line
	notes   map[string]bool
	nats    int             // NAT devices of either kind: traffic goes through one
	pools   map[string]bool // clusters with an EIP pool: their instances' own addresses are released
}

// build prices the templates; natGateways > 0 replaces headnat by that many NAT Gateways.
func build(ts []Template, t *Table, o Options, natGateways int, notes map[string]bool) Bill {
	b := &builder{t: t, o: o, replace: natGateways > 0, lines: map[string]*Line{}, notes: notes, pools: eipPools(ts)}
	perMonth := o.Hours / HoursPerMonth
	if b.replace {
		b.nats += natGateways
		b.add(rankNAT, "NAT Gateway (replacing headnat, one per AZ)", float64(natGateways)*o.Hours, "h", "nat_gateway_hour", 1)
		b.add(rankIPv4, "public IPv4 (NAT Gateways)", float64(natGateways)*o.Hours, "h", "public_ipv4_hour", 1)
	}
	metrics := map[string]bool{}
	var logGroups []float64 // retention days
	for _, tp := range ts {
		for range tp.ofType("AWS::EC2::NatGateway") {
			b.nats++
			b.add(rankNAT, "NAT Gateway", o.Hours, "h", "nat_gateway_hour", 1)
		}
		for _, id := range tp.ofType("AWS::AutoScaling::AutoScalingGroup") {
			b.asg(tp, id)
		}
		for _, id := range tp.ofType("AWS::EC2::Instance") {
			b.instance(tp, id)
		}
		for _, id := range tp.ofType("AWS::EC2::Volume") {
			p := tp.Resources[id].Properties
			b.volume(tp.Name+" "+id, "EBS volumes (AWS::EC2::Volume)", p["Size"], p["VolumeType"], 1)
		}
		for _, id := range tp.ofType("AWS::EC2::VPCEndpoint") {
			b.endpoint(tp, id)
		}
		for range tp.ofType("AWS::SecretsManager::Secret") {
			b.add(rankOther, "Secrets Manager secrets", perMonth, "secret-month", "secret_month", 1)
		}
		for range tp.ofType("AWS::KMS::Key") {
			b.add(rankOther, "KMS keys", perMonth, "key-month", "kms_key_month", 1)
		}
		for _, id := range tp.ofType("AWS::ECR::Repository") {
			b.note("%s %s: ECR image storage not estimated", tp.Name, id)
		}
		for _, id := range tp.ofType("AWS::DLM::LifecyclePolicy") {
			b.note("%s %s: EBS snapshots not estimated (incremental: they depend on how much changes)", tp.Name, id)
		}
		for _, id := range tp.ofType("AWS::EC2::EIP") {
			if hasTag(tp.Resources[id].Properties["Tags"], ClusterTag) {
				if !b.replace {
					b.add(rankIPv4, "public IPv4 (headnat EIP pool)", o.Hours, "h", "public_ipv4_hour", 1)
				}
				continue
			}
			b.add(rankIPv4, "public IPv4 (Elastic IPs)", o.Hours, "h", "public_ipv4_hour", 1)
		}
		for _, id := range tp.ofType("AWS::ElasticLoadBalancingV2::LoadBalancer") {
			b.loadBalancer(tp, id)
		}
		for _, id := range tp.ofType("AWS::ECS::Service") {
			b.service(tp, id)
		}
		for _, id := range tp.ofType("AWS::RDS::DBCluster") {
			b.aurora(tp, id)
		}
		for _, id := range tp.ofType("AWS::Logs::LogGroup") {
			days, ok := number(tp.Resources[id].Properties["RetentionInDays"])
			if !ok {
				b.note("log group %s %s has no retention: it keeps growing; its storage is priced at one year of ingestion", tp.Name, id)
				days = 365
			}
			logGroups = append(logGroups, days)
		}
		for _, id := range tp.ofType("AWS::CloudWatch::Alarm") {
			p := tp.Resources[id].Properties
			ns, _ := str(p["Namespace"])
			if b.replace && ns == api.DefaultMetricNamespace {
				continue
			}
			b.add(rankCloudWatch, "CloudWatch alarms", perMonth, "alarm-month", "cw_alarm_month", 1)
			if ns != "" && !strings.HasPrefix(ns, "AWS/") {
				dims, _ := json.Marshal(p["Dimensions"])
				metrics[fmt.Sprintf("%s %v %s", ns, p["MetricName"], dims)] = true
			}
		}
	}
	if n := len(metrics); n > 0 {
		b.add(rankCloudWatch, "CloudWatch custom metrics (those the alarms watch)", float64(n)*perMonth, "metric-month", "cw_metric_month", 1)
	}
	if len(logGroups) > 0 && o.LogGB > 0 {
		b.add(rankLogs, "CloudWatch Logs ingestion", o.LogGB, "GB", "logs_ingest_gb", 1)
		var stored float64
		for _, days := range logGroups {
			stored += o.LogGB / float64(len(logGroups)) * days * 24 / HoursPerMonth
		}
		b.add(rankLogs, "CloudWatch Logs storage (ingestion × retention)", stored, "GB-month", "logs_storage_gb_month", 1)
	}
	if b.nats == 0 && o.EgressGB > 0 {
		b.note("no NAT in the templates: internet egress not priced")
	}
	if b.nats > 0 && o.EgressGB > 0 {
		if b.hasNATGateway(ts) {
			b.add(rankNAT, "NAT Gateway data processed", o.EgressGB, "GB", "nat_gateway_gb", 1)
		}
		b.add(rankTransfer, "data transfer out to the internet", o.EgressGB, "GB", "data_out_gb", 1)
	}
	var out Bill
	for _, l := range b.lines {
		out.Lines = append(out.Lines, *l)
	}
	sort.Slice(out.Lines, func(i, j int) bool {
		a, c := out.Lines[i], out.Lines[j]
		if a.rank != c.rank {
			return a.rank < c.rank
		}
		if a.Item != c.Item {
			return a.Item < c.Item
		}
		return a.UnitPrice < c.UnitPrice
	})
	return out
}

func (b *builder) hasNATGateway(ts []Template) bool {
	if b.replace {
		return true
	}
	for _, t := range ts {
		if len(t.ofType("AWS::EC2::NatGateway")) > 0 {
			return true
		}
	}
	return false
}

func (b *builder) note(format string, a ...any) { b.notes[fmt.Sprintf(format, a...)] = true }

// add adds qty of item at the table's price × factor, merging lines of the same item and price.
func (b *builder) add(rank int, item string, qty float64, unit, priceKey string, factor float64) {
	p, ok := b.t.price(priceKey, b.o.Region)
	if !ok {
		b.note("%s: no price %s in the table: not priced", item, priceKey)
		return
	}
	p *= factor
	key := fmt.Sprintf("%s|%s|%v", item, unit, p)
	if l, ok := b.lines[key]; ok {
		l.Quantity += qty
		return
	}
	b.lines[key] = &Line{Item: item, Quantity: qty, Unit: unit, UnitPrice: p, rank: rank}
}

// ec2 adds count instances of typ, spot or on-demand.
func (b *builder) ec2(what, typ string, count float64, spot bool) {
	if count <= 0 {
		return
	}
	if spot {
		ratio, _ := b.t.price("ec2_spot_ratio", b.o.Region)
		b.add(rankEC2, fmt.Sprintf("%s %s, spot", what, typ), count*b.o.Hours, "h", "ec2_hour."+typ, ratio)
		return
	}
	b.add(rankEC2, fmt.Sprintf("%s %s, on-demand", what, typ), count*b.o.Hours, "h", "ec2_hour."+typ, 1)
}

// volume adds count EBS volumes of size GiB.
func (b *builder) volume(where, item string, size, typ any, count float64) {
	gib, ok := number(size)
	if !ok {
		b.note("%s: volume size %s: priced as 8 GiB", where, describe(size))
		gib = 8
	}
	if vt, _ := str(typ); vt != "gp3" {
		b.note("%s: volume type %s: priced as gp3", where, describe(typ))
	}
	b.add(rankEBS, item+", gp3", count*gib*b.o.Hours/HoursPerMonth, "GB-month", "ebs_gp3_gb_month", 1)
}

func (b *builder) asg(t Template, id string) {
	p := t.Resources[id].Properties
	where := t.Name + " " + id
	headnat := hasTag(p["Tags"], ClusterTag)
	if headnat && b.replace {
		return
	}
	what, ebsItem, ipItem := "EC2", "EBS volumes of Auto Scaling groups", "public IPv4 (Auto Scaling instances)"
	if headnat {
		b.nats++
		what, ebsItem, ipItem = "headnat NAT instance", "EBS root volumes of headnat instances", "public IPv4 (headnat instances)"
	}
	n, ok := number(p["DesiredCapacity"])
	if !ok {
		if n, ok = number(p["MinSize"]); !ok {
			b.note("%s: MinSize %s: its instances are not priced", where, describe(p["MinSize"]))
			return
		}
	}
	if n <= 0 {
		return
	}
	onDemand, typ := n, ""
	var lt string
	if mip, ok := p["MixedInstancesPolicy"]; ok {
		lt, _ = ref(get(mip, "LaunchTemplate", "LaunchTemplateSpecification", "LaunchTemplateId"))
		first := get(mip, "LaunchTemplate", "Overrides", "0")
		typ, _ = str(get(first, "InstanceType"))
		if o, ok := ref(get(first, "LaunchTemplateSpecification", "LaunchTemplateId")); ok {
			lt = o
		}
		base, pct := 0.0, 100.0 // AWS's defaults
		if v, ok := number(get(mip, "InstancesDistribution", "OnDemandBaseCapacity")); ok {
			base = v
		}
		if v, ok := number(get(mip, "InstancesDistribution", "OnDemandPercentageAboveBaseCapacity")); ok {
			pct = v
		}
		base = math.Min(base, n)
		onDemand = base + (n-base)*pct/100
		b.note("%s: priced as its first instance type, %s", where, describe(typ))
	} else {
		lt, _ = ref(get(p, "LaunchTemplate", "LaunchTemplateId"))
	}
	data := get(t.Resources[lt].Properties, "LaunchTemplateData")
	if typ == "" {
		typ, _ = str(get(data, "InstanceType"))
	}
	if typ == "" {
		b.note("%s: instance type unknown: its instances are not priced", where)
	} else {
		b.ec2(what, typ, onDemand, false)
		b.ec2(what, typ, n-onDemand, true)
	}
	b.disks(where, ebsItem, get(data, "BlockDeviceMappings"), n)
	cluster, _ := tagValue(p["Tags"], ClusterTag)
	switch {
	case !publicIP(get(data, "NetworkInterfaces")):
	case headnat && b.pools[cluster]:
		b.note("%s: its instances take addresses from the EIP pool of cluster %s: the pool's EIPs are priced instead of their own", where, cluster)
	default:
		b.add(rankIPv4, ipItem, n*b.o.Hours, "h", "public_ipv4_hour", 1)
	}
}

// disks adds the EBS volumes of a BlockDeviceMappings list for count instances; with none, an
// 8 GiB root volume.
func (b *builder) disks(where, item string, mappings any, count float64) {
	l, _ := mappings.([]any)
	found := false
	for _, m := range l {
		if ebs := get(m, "Ebs"); ebs != nil {
			found = true
			b.volume(where, item, get(ebs, "VolumeSize"), get(ebs, "VolumeType"), count)
		}
	}
	if !found {
		b.note("%s: no block device mappings: the AMI's root volume priced as 8 GiB gp3", where)
		b.add(rankEBS, item+", gp3", count*8*b.o.Hours/HoursPerMonth, "GB-month", "ebs_gp3_gb_month", 1)
	}
}

// publicIP reports whether a NetworkInterfaces list asks for a public IPv4 address.
func publicIP(nics any) bool {
	l, _ := nics.([]any)
	for _, n := range l {
		if v, _ := get(n, "AssociatePublicIpAddress").(bool); v {
			return true
		}
		if s, _ := get(n, "AssociatePublicIpAddress").(string); s == "true" {
			return true
		}
	}
	return false
}

func (b *builder) instance(t Template, id string) {
	p := t.Resources[id].Properties
	where := t.Name + " " + id
	typ, ok := str(p["InstanceType"])
	if !ok {
		b.note("%s: instance type %s: not priced", where, describe(p["InstanceType"]))
	} else {
		b.ec2("EC2", typ, 1, false)
	}
	b.disks(where, "EBS volumes of instances", p["BlockDeviceMappings"], 1)
	if publicIP(p["NetworkInterfaces"]) {
		b.add(rankIPv4, "public IPv4 (instances)", b.o.Hours, "h", "public_ipv4_hour", 1)
	}
}

func (b *builder) loadBalancer(t Template, id string) {
	p := t.Resources[id].Properties
	where := t.Name + " " + id
	if typ, _ := str(p["Type"]); typ != "" && typ != "application" {
		b.note("%s: a %s load balancer: not priced", where, typ)
		return
	}
	b.add(rankALB, "ALB", b.o.Hours, "h", "alb_hour", 1)
	b.add(rankALB, "ALB LCUs", b.o.LCU*b.o.Hours, "LCU-h", "alb_lcu_hour", 1)
	if scheme, _ := str(p["Scheme"]); scheme == "internal" {
		return
	}
	nodes := 0
	if l, ok := p["Subnets"].([]any); ok {
		nodes = len(l)
	} else if l, ok := p["SubnetMappings"].([]any); ok {
		nodes = len(l)
	}
	if nodes == 0 {
		b.note("%s: subnets unknown: an internet-facing ALB priced with 2 public IPv4 addresses", where)
		nodes = 2
	}
	b.add(rankIPv4, "public IPv4 (ALB nodes, one per subnet)", float64(nodes)*b.o.Hours, "h", "public_ipv4_hour", 1)
}

// endpoint prices an interface VPC endpoint: one ENI per subnet; gateway endpoints are free.
func (b *builder) endpoint(t Template, id string) {
	p := t.Resources[id].Properties
	if typ, _ := str(p["VpcEndpointType"]); typ != "Interface" {
		return
	}
	azs := 0
	if l, ok := p["SubnetIds"].([]any); ok {
		azs = len(l)
	}
	if azs == 0 {
		b.note("%s %s: subnets unknown: an interface endpoint priced in 2 AZs", t.Name, id)
		azs = 2
	}
	b.add(rankOther, "VPC interface endpoints", float64(azs)*b.o.Hours, "AZ-h", "vpc_endpoint_hour", 1)
}

func (b *builder) service(t Template, id string) {
	p := t.Resources[id].Properties
	where := t.Name + " " + id
	tdID, _ := ref(p["TaskDefinition"])
	td := t.Resources[tdID].Properties
	cpu, okC := number(td["Cpu"])
	mem, okM := number(td["Memory"])
	if !okC || !okM {
		b.note("%s: task size unknown (Cpu %s, Memory %s): not priced", where, describe(td["Cpu"]), describe(td["Memory"]))
		return
	}
	n, ok := number(p["DesiredCount"])
	if !ok {
		if p["DesiredCount"] != nil {
			b.note("%s: DesiredCount %s: not priced", where, describe(p["DesiredCount"]))
			return
		}
		b.note("%s: no DesiredCount: priced as 1 task", where)
		n = 1
	}
	if n <= 0 {
		return
	}
	strategy, _ := p["CapacityProviderStrategy"].([]any)
	switch lt, _ := str(p["LaunchType"]); {
	case lt == "FARGATE":
		strategy = []any{map[string]any{"CapacityProvider": "FARGATE", "Weight": 1.0}}
	case lt != "":
		b.note("%s: launch type %s: its tasks run on the instances priced above", where, lt)
		return
	case strategy == nil:
		strategy = b.clusterStrategy(t, p["Cluster"])
	}
	if strategy == nil {
		b.note("%s: no capacity provider strategy: priced as FARGATE", where)
		strategy = []any{map[string]any{"CapacityProvider": "FARGATE", "Weight": 1.0}}
	}
	spot, ok := spotTasks(n, strategy)
	if !ok {
		b.note("%s: its strategy names a provider other than FARGATE and FARGATE_SPOT: not priced", where)
		return
	}
	arch := "x86"
	if a, _ := str(get(td, "RuntimePlatform", "CpuArchitecture")); a == "ARM64" {
		arch = "arm"
	}
	label := map[string]string{"arm": "Fargate ARM64", "x86": "Fargate x86_64"}[arch]
	ratio, _ := b.t.price("fargate_spot_ratio", b.o.Region)
	vcpu, gb := cpu/1024, mem/1024
	for _, part := range []struct {
		name   string
		tasks  float64
		factor float64
	}{{"on-demand", n - spot, 1}, {"spot", spot, ratio}} {
		if part.tasks <= 0 {
			continue
		}
		h := part.tasks * b.o.Hours
		b.add(rankFargate, label+" vCPU, "+part.name, h*vcpu, "vCPU-h", "fargate_"+arch+"_vcpu_hour", part.factor)
		b.add(rankFargate, label+" memory, "+part.name, h*gb, "GB-h", "fargate_"+arch+"_gb_hour", part.factor)
	}
	if ip, _ := str(get(p, "NetworkConfiguration", "AwsvpcConfiguration", "AssignPublicIp")); ip == "ENABLED" {
		b.add(rankIPv4, "public IPv4 (Fargate tasks)", n*b.o.Hours, "h", "public_ipv4_hour", 1)
	}
}

// clusterStrategy is the default capacity provider strategy of the service's cluster.
func (b *builder) clusterStrategy(t Template, cluster any) []any {
	for _, id := range t.ofType("AWS::ECS::ClusterCapacityProviderAssociations") {
		p := t.Resources[id].Properties
		if reflect.DeepEqual(p["Cluster"], cluster) {
			s, _ := p["DefaultCapacityProviderStrategy"].([]any)
			return s
		}
	}
	return nil
}

// spotTasks is how many of n tasks a strategy places on FARGATE_SPOT: the base first, the
// rest by weight. ok is false if it names another provider.
func spotTasks(n float64, strategy []any) (spot float64, ok bool) {
	var weights, spotWeight float64
	rest := n
	for _, s := range strategy {
		cp, _ := str(get(s, "CapacityProvider"))
		if cp != "FARGATE" && cp != "FARGATE_SPOT" {
			return 0, false
		}
		w, _ := number(get(s, "Weight"))
		base, _ := number(get(s, "Base"))
		base = math.Min(base, rest)
		rest -= base
		weights += w
		if cp == "FARGATE_SPOT" {
			spot += base
			spotWeight += w
		}
	}
	if weights > 0 {
		spot += rest * spotWeight / weights
	}
	return spot, true
}

func (b *builder) aurora(t Template, id string) {
	p := t.Resources[id].Properties
	where := t.Name + " " + id
	sc, ok := p["ServerlessV2ScalingConfiguration"]
	if !ok {
		b.note("%s: not Aurora Serverless v2: not priced", where)
		return
	}
	lo, ok1 := number(get(sc, "MinCapacity"))
	hi, ok2 := number(get(sc, "MaxCapacity"))
	if !ok1 || !ok2 {
		b.note("%s: ACU range unknown: not priced", where)
		return
	}
	acu := (lo + hi) / 2
	if b.o.AuroraACU >= 0 {
		acu = math.Max(lo, math.Min(hi, b.o.AuroraACU))
	}
	instances := 0
	for _, iid := range t.ofType("AWS::RDS::DBInstance") {
		ip := t.Resources[iid].Properties
		if c, _ := ref(ip["DBClusterIdentifier"]); c == id {
			if class, _ := str(ip["DBInstanceClass"]); class == "db.serverless" {
				instances++
			}
		}
	}
	if instances == 0 {
		b.note("%s: no db.serverless instance found: priced as one", where)
		instances = 1
	}
	b.note("%s: %d instance(s) at an average of %v ACU (range %v-%v)", where, instances, acu, lo, hi)
	b.add(rankAurora, "Aurora Serverless v2 capacity", acu*float64(instances)*b.o.Hours, "ACU-h", "aurora_sv2_acu_hour", 1)
	b.add(rankAurora, "Aurora storage", b.o.AuroraGB*b.o.Hours/HoursPerMonth, "GB-month", "aurora_storage_gb_month", 1)
}
