package headscale

import (
	"fmt"
	"strconv"
	"strings"
)

// Paths on the server.
const (
	DataDir    = "/var/lib/headscale" // the data volume's mount point
	ConfigDir  = "/etc/headscale"
	ConfigPath = ConfigDir + "/config.yaml"
	PolicyPath = ConfigDir + "/policy.hujson"
	TLSDir     = ConfigDir + "/tls"
	CertPath   = TLSDir + "/cert.pem"
	KeyPath    = TLSDir + "/key.pem"
	Socket     = "/var/run/headscale/headscale.sock"
	Binary     = "/usr/local/bin/headscale"
	FetchTLS   = "/usr/local/sbin/headscale-fetch-tls"
	// STUNPort is the embedded DERP server's STUN port (UDP).
	STUNPort = 3478
	// DataVolumeTag tags the data volume; the DLM policy snapshots the volumes that carry it
	// with this server's value.
	DataVolumeTag = "headnat:headscale-data"
)

// ServerConfig is headscale v0.29's config.yaml for these props (after defaults): no secret,
// only names and paths.
func ServerConfig(p HeadscaleServerProps) string {
	q := strconv.Quote
	var b strings.Builder
	b.WriteString("# Written by the headnat CDK construct at launch.\n")
	fmt.Fprintf(&b, "server_url: %s\n", q("https://"+p.Domain))
	b.WriteString(`listen_addr: 0.0.0.0:443
metrics_listen_addr: 127.0.0.1:9090
grpc_listen_addr: 127.0.0.1:50443
grpc_allow_insecure: false
disable_check_updates: true
noise:
  private_key_path: ` + DataDir + `/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: headnat
    region_name: headnat headscale
    verify_clients: true
    stun_listen_addr: 0.0.0.0:` + strconv.Itoa(STUNPort) + `
    private_key_path: ` + DataDir + `/derp_server_private.key
    automatically_add_embedded_derp_region: true
  urls: []
  paths: []
  auto_update_enabled: false
node:
  routes:
    ha:
      probe_interval: 2s
      probe_timeout: 1s
tuning:
  batch_change_delay: 100ms
  node_store_batch_timeout: 50ms
database:
  type: sqlite
  sqlite:
    path: ` + DataDir + `/db.sqlite
    write_ahead_log: true
log:
  level: info
  format: text
policy:
  mode: file
  path: ` + PolicyPath + `
dns:
  magic_dns: false
  override_local_dns: false
  nameservers:
    global: []
unix_socket: ` + Socket + `
unix_socket_permission: "0770"
logtail:
  enabled: false
`)
	if p.ACME() {
		fmt.Fprintf(&b, "acme_url: https://acme-v02.api.letsencrypt.org/directory\n")
		fmt.Fprintf(&b, "acme_email: %s\n", q(p.AcmeEmail))
		fmt.Fprintf(&b, "tls_letsencrypt_hostname: %s\n", q(p.Domain))
		fmt.Fprintf(&b, "tls_letsencrypt_challenge_type: %s\n", p.AcmeChallenge)
		fmt.Fprintf(&b, "tls_letsencrypt_cache_dir: %s/cache\n", DataDir)
		b.WriteString("tls_letsencrypt_listen: \":http\"\n")
	} else {
		fmt.Fprintf(&b, "tls_cert_path: %s\ntls_key_path: %s\n", CertPath, KeyPath)
	}
	return b.String()
}

// unit is headscale's systemd unit. It runs as the "headscale" system user, allowed to bind
// 443 and nothing more; with a configured certificate it fetches it from SSM first (as root).
func unit(p HeadscaleServerProps) string {
	pre := ""
	if !p.ACME() {
		pre = "ExecStartPre=+" + FetchTLS + "\n"
	}
	return `[Unit]
Description=headscale (headnat's tailnet control server)
Wants=network-online.target
After=network-online.target
RequiresMountsFor=` + DataDir + `

[Service]
User=headscale
Group=headscale
` + pre + `ExecStart=` + Binary + ` -c ` + ConfigPath + ` serve
Restart=always
RestartSec=2
RuntimeDirectory=headscale
RuntimeDirectoryMode=0750
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=` + DataDir + `

[Install]
WantedBy=multi-user.target
`
}

// fetchScript writes the certificate and key from SSM, readable by headscale only, with the
// AMI's `headnat secret`: their values go to files, never to stdout or the journal.
func fetchScript(p HeadscaleServerProps) string {
	return `#!/bin/bash
# Written by the headnat CDK construct: fetches headscale's TLS certificate and key from SSM.
set -euo pipefail
install -d -m 0750 -o root -g headscale ` + TLSDir + `
get() {
  /usr/local/bin/headnat secret --ssm-parameter "$1" --out "$2" --mode 0640
  chown root:headscale "$2"
}
get ` + strconv.Quote(p.CertSSMParameter) + ` ` + CertPath + `
get ` + strconv.Quote(p.KeySSMParameter) + ` ` + KeyPath + `
`
}
