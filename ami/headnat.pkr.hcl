# The headnat appliance AMI (arm64): Debian's own arm64 image, the pinned binaries from
# bin/linux-arm64/ (make ami builds them), ami/files/, and one run of ami/provision.sh.
# make ami-validate checks this offline; make ami builds it (needs AWS credentials).

packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "= 1.3.2"
    }
  }
}

variable "region" {
  type        = string
  default     = "eu-west-1"
  description = "Region to build in (the AMI lands there)."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the build instance; empty: the default VPC. It needs a route to the internet (apt)."
}

variable "ami_name" {
  type        = string
  default     = "headnat"
  description = "AMI name prefix; the version and a timestamp are appended."
}

variable "version" {
  type        = string
  default     = "dev"
  description = "headnat version baked in (make ami passes git describe)."
}

variable "debian_release" {
  type        = string
  default     = "13"
  description = "Debian major release of the base image (13, or 12)."
}

variable "ssm_agent" {
  type        = bool
  default     = true
  description = "Install amazon-ssm-agent (disabled; user data enables it where wanted)."
}

variable "bin_dir" {
  type        = string
  default     = "../bin/linux-arm64"
  description = "Where headnat, tailscaled, tailscale and headscale for linux/arm64 are."
}

locals {
  timestamp = formatdate("YYYYMMDDhhmmss", timestamp())
  # Debian's official AWS account.
  debian_owner = "136693071363"
}

source "amazon-ebs" "headnat" {
  region          = var.region
  subnet_id       = var.subnet_id == "" ? null : var.subnet_id
  instance_type   = "t4g.small"
  ami_name        = "${var.ami_name}-${var.version}-arm64-${local.timestamp}"
  ami_description = "headnat ${var.version}: NAT instance appliance (Debian ${var.debian_release}, arm64)"
  ssh_username    = "admin"

  source_ami_filter {
    filters = {
      name                = "debian-${var.debian_release}-arm64-*"
      architecture        = "arm64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = [local.debian_owner]
    most_recent = true
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 8
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"
  ena_support  = true

  tags = {
    Name              = "${var.ami_name}-${var.version}"
    "headnat:version" = var.version
    "headnat:base"    = "{{ .SourceAMIName }}"
  }
}

build {
  sources = ["source.amazon-ebs.headnat"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/headnat/bin"]
  }

  provisioner "file" {
    sources = [
      "${var.bin_dir}/headnat",
      "${var.bin_dir}/tailscaled",
      "${var.bin_dir}/tailscale",
      "${var.bin_dir}/headscale",
    ]
    destination = "/tmp/headnat/bin/"
  }

  provisioner "file" {
    source      = "files"
    destination = "/tmp/headnat/"
  }

  provisioner "file" {
    source      = "provision.sh"
    destination = "/tmp/headnat/provision.sh"
  }

  # AWS's own regional copy of the SSM agent for Debian arm64; provision.sh installs it only
  # if it is there.
  provisioner "shell" {
    inline = var.ssm_agent ? [
      "curl -fsS --retry 3 -o /tmp/headnat/amazon-ssm-agent.deb https://s3.${var.region}.amazonaws.com/amazon-ssm-${var.region}/latest/debian_arm64/amazon-ssm-agent.deb",
    ] : ["true"]
  }

  provisioner "shell" {
    execute_command  = "sudo env {{ .Vars }} bash '{{ .Path }}'"
    environment_vars = ["HEADNAT_SRC=/tmp/headnat"]
    inline           = ["bash /tmp/headnat/provision.sh", "rm -rf /tmp/headnat"]
  }
}
