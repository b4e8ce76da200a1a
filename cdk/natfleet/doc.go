// Package natfleet is the CDK construct for a headnat NAT fleet: the arm64 spot instances that
// run the headnat agent and serve the private route tables of one VPC.
//
// NewNatFleet creates, for one cluster name:
//
//   - one Auto Scaling group per AZ, in that AZ's public subnet (1 instance by default, room
//     for one more: replacements launch before the instance they replace goes, through an
//     instance maintenance policy of 100-200%, and a deploy that changes the launch template
//     starts a rolling instance refresh the same way). Per
//     AZ, not one group across AZs: a NAT that dies or is interrupted is replaced in its own
//     AZ, where its route table's home is; capacity rebalancing replaces a spot instance
//     inside its own group, hence its own AZ; and the group never "rebalances" instances
//     between AZs, which would terminate a healthy NAT to launch one elsewhere;
//   - a launch template: the AMI from an SSM parameter (resolved at deploy time) or an AMI id,
//     IMDSv2 required with hop limit 1 (containers on the instance cannot reach the role's
//     credentials), no SSH key, an encrypted gp3 root volume, T4g CPU credits "standard" (no
//     surplus charges), a public address, and tags on the instance, its volume and its ENI.
//     Non-burstable types (c7g, m7g...) get a twin template without the credit specification,
//     which is for T types only;
//   - a mixed-instances policy: spot only by default (on-demand base capacity in props), several
//     Graviton types in order of preference, capacity-optimized-prioritized allocation (the
//     cheapest type first, as long as its spot pool is deep) and capacity rebalancing;
//   - the two lifecycle hooks the agent completes, declared in the groups themselves so they
//     exist before the first instance launches: launch (default result ABANDON, 5 minutes: an
//     instance that never becomes a working NAT is thrown away) and terminate (CONTINUE, 5
//     minutes: the agent hands its route tables over first);
//   - a security group: everything from the VPC's CIDR (the traffic to forward, and peers
//     probing the agent's port), tailscaled's UDP port from anywhere (WireGuard), no SSH;
//   - an instance role that allows exactly the actions of agent/cloud/iam, each scoped as
//     tightly as IAM allows: route tables, ENIs and Elastic IPs by the headnat:cluster tag, the
//     groups and the auth key's SSM parameter by ARN, and the Describe calls (which IAM cannot
//     scope) on "*";
//   - the headnat:cluster tag on the private route tables (their home AZ is the AZ of their
//     subnet, so no headnat:az tag is needed). No default route is added to them: the agent
//     creates it and moves it;
//   - optionally an Elastic IP pool (instances + 1 addresses) for stable egress addresses, user
//     data that writes only the agent's configuration (/etc/headnat/headnat.yaml: cluster,
//     tailnet login server, the SSM parameter's name; never a secret), and a CloudWatch log
//     group with a retention (for the AMI's log shipper; the role does not write to it yet);
//   - two CloudWatch alarms (unless NoAlarms) on the metrics the agents publish when the user
//     data turns cloudwatch.namespace on: "no healthy NAT for a route table" (Maximum of
//     UnservedRouteTables >= 1 in 2 of 3 minutes; missing data breaches, since no agent alive
//     to publish means no NAT at all) and "failover" (Sum of Failovers >= 1 in a minute),
//     notifying AlarmTopic if set. One metric is sent every minute and the other only when a
//     failover happens, to keep the custom-metric bill at about $0.30 a month.
package natfleet
