// Package headscale is the CDK construct for an optional headscale server: the tailnet's
// control server that the headnat NAT instances and the admins log in to. Without it, point
// the fleet at an existing server (its TailnetLoginServer).
//
// NewHeadscaleServer creates:
//
//   - one on-demand arm64 instance (t4g.micro by default) in the VPC's first public subnet,
//     from the same headnat AMI as the fleet (an AMI id, or an SSM parameter resolved at deploy
//     time, never looked up at synth). The AMI is expected to carry /usr/local/bin/headscale
//     (pinned v0.29.2), the SSM agent, and /usr/local/bin/headnat (whose `headnat secret` fetches
//     a certificate from SSM). On demand, not spot: the tailnet's
//     subnet-route failover between NAT instances is decided by headscale's HA prober, so an
//     interruption of the control server would stall failover exactly when it may be needed.
//     One instance, not an Auto Scaling group: headscale keeps its state in sqlite and runs as
//     a single server; EC2's simplified automatic recovery (on by default for T4g) restarts it
//     on new hardware with the same volumes and address, and NAT forwarding and failover of
//     the VPC's routes never depend on it;
//   - IMDSv2 required with hop limit 1, no SSH key, an encrypted gp3 root volume, T4g CPU
//     credits "standard";
//   - a separate encrypted gp3 data volume (8 GiB) in the instance's AZ for /var/lib/headscale
//     (database, noise and DERP keys, ACME cache), attached with AWS::EC2::VolumeAttachment and
//     mounted by the user data, which formats it only when it is blank. Stack deletion takes a
//     final snapshot (RemovalPolicy SNAPSHOT; RetainDataVolume keeps the volume). A Data
//     Lifecycle Manager policy snapshots it daily and keeps 7, through its own role with the
//     AWS managed DLM service-role policy; it finds the volume by its headnat:headscale-data
//     tag. Restoring: create a volume from a snapshot and swap it in;
//   - an Elastic IP associated with the instance (point Domain's A record at it, or give a
//     Route 53 zone and the construct creates the record);
//   - a security group open to the internet on 443/tcp (control plane and embedded DERP) and
//     3478/udp (STUN) only, plus 80/tcp with the ACME HTTP-01 challenge; no SSH;
//   - a role with AmazonSSMManagedInstanceCore: admins reach the server with Session Manager
//     (`aws ssm start-session --target <instance>`, then `sudo headscale users create alice`,
//     `sudo headscale preauthkeys create --user <ID> --expiration 1h`); with a configured
//     certificate, also ssm:GetParameter on exactly the two parameters' ARNs;
//   - user data that writes /etc/headscale/config.yaml (server_url https://Domain, listen on
//     443, sqlite on the data volume, IPv4 and IPv6 prefixes, the embedded DERP server with
//     STUN on 3478, the HA probe and tuning values of docs/ADMIN.md for fast failover), the
//     ACL policy rendered at synth time by package policy (the VPC CIDRs as routes, the admins
//     group), and a systemd unit running headscale as an unprivileged user allowed to bind
//     443; then starts it. No secret is ever in the user data or the template;
//   - optionally a CloudWatch log group with a retention (for the AMI's log shipper).
//
// TLS: headscale's built-in ACME client with the TLS-ALPN-01 challenge by default, answered
// on 443, which is open anyway, so port 80 stays closed; the certificate is cached on the data
// volume, so a restart does not ask Let's Encrypt again. Or a configured certificate: two SSM
// SecureString parameters (certificate chain and key, default aws/ssm key) fetched each time
// headscale starts (`sudo systemctl restart headscale` after rotating them).
//
// Known limit: a change that replaces the instance (another AMI or subnet) needs the
// data volume detached first, as a volume attaches to one instance at a time.
package headscale
