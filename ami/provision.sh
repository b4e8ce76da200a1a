#!/usr/bin/env bash
# Bakes the headnat appliance into a Debian system, as root: on Packer's build instance, or in
# test/ami's debootstrap chroot. Idempotent: a second run changes nothing.
#
# HEADNAT_SRC (default: this script's folder) holds bin/ (headnat, tailscaled, tailscale,
# headscale for this machine's architecture), files/ (ami/files) and, optionally,
# amazon-ssm-agent.deb.
set -euo pipefail

src=${HEADNAT_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
export DEBIAN_FRONTEND=noninteractive

log() { echo "provision: $*"; }

# Services a NAT instance does not need. sshd stays installed but disabled: admins come in
# through the tailnet (or SSM), and user data can still enable it in an emergency.
UNNEEDED=(
	ssh.service ssh.socket
	apt-daily.timer apt-daily-upgrade.timer unattended-upgrades.service
	man-db.timer e2scrub_all.timer e2scrub_reap.service
	rsync.service cron.service exim4.service postfix.service
	amazon-ssm-agent.service
)

packages() {
	local missing=() p
	for p in iptables conntrack; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if ((${#missing[@]})); then
		log "installing ${missing[*]}"
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}"
	fi
	local deb=$src/amazon-ssm-agent.deb
	if [[ -f $deb ]]; then
		local want have
		want=$(dpkg-deb -f "$deb" Version)
		have=$(dpkg-query -W -f='${Version}' amazon-ssm-agent 2>/dev/null || true)
		if [[ $want != "$have" ]]; then
			log "installing amazon-ssm-agent $want"
			dpkg -i "$deb" >/dev/null
		fi
	fi
}

binaries() {
	local b
	for b in headnat tailscaled tailscale headscale; do
		[[ -x $src/bin/$b ]] || { echo "provision: $src/bin/$b missing" >&2; exit 1; }
		install -m 0755 -o root -g root "$src/bin/$b" "/usr/local/bin/$b"
	done
}

files() {
	local f=$src/files
	install -D -m 0644 "$f/headnat.service" /etc/systemd/system/headnat.service
	install -D -m 0644 "$f/tailscaled.service" /etc/systemd/system/tailscaled.service
	install -D -m 0644 "$f/headnat.yaml" /etc/headnat/headnat.yaml
	install -D -m 0644 "$f/90-headnat-sysctl.conf" /etc/sysctl.d/90-headnat.conf
	install -D -m 0644 "$f/headnat-modules.conf" /etc/modules-load.d/headnat.conf
	install -D -m 0644 "$f/headnat-tmpfiles.conf" /etc/tmpfiles.d/headnat.conf
	install -D -m 0644 "$f/journald.conf" /etc/systemd/journald.conf.d/90-headnat.conf
	install -D -m 0644 "$f/sshd.conf" /etc/ssh/sshd_config.d/90-headnat.conf
	chmod 0755 /etc/headnat
}

services() {
	local u
	systemctl enable tailscaled.service headnat.service
	for u in "${UNNEEDED[@]}"; do
		if [[ -e /etc/systemd/system/$u || -e /usr/lib/systemd/system/$u || -e /lib/systemd/system/$u ]]; then
			systemctl disable "$u" 2>/dev/null
		fi
	done
}

# Everything that would make two instances of the AMI alike, or leak the build.
clean() {
	rm -f /etc/ssh/ssh_host_*
	# Empty, not missing or "uninitialized": a new id at boot, without first-boot presets that
	# would enable again what services() disabled.
	: >/etc/machine-id
	rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed /var/lib/systemd/credential.secret
	if command -v cloud-init >/dev/null; then
		cloud-init clean --logs --seed >/dev/null
	fi
	rm -rf /var/lib/cloud/instances /var/lib/cloud/instance /var/lib/cloud/data
	rm -f /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys
	rm -f /root/.bash_history /home/*/.bash_history
	apt-get clean
	rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
	rm -rf /var/log/journal/*
	find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
	find /var/log -type f -exec truncate -s 0 {} +
	rm -rf /var/tmp/*
}

packages
binaries
files
services
clean
log "done: $(/usr/local/bin/headnat version)"
