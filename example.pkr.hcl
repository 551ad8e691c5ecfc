# The original bootstrap script's cluster, baked once instead of installed at
# every boot: Elasticsearch 8 with discovery-ec2, ElasticHQ and the CloudWatch
# agent on a CIS-hardened Debian base image in eu-west-2.
#
#   packer init example.pkr.hcl
#   packer build -var-file=checksums.pkrvars.hcl example.pkr.hcl

packer {
  required_plugins {
    elasticsearch = {
      version = ">= 0.1.0"
      source  = "github.com/esbake/elasticsearch"
    }
  }
}

variable "region" {
  type    = string
  default = "eu-west-2"
}

variable "cluster_name" {
  type    = string
  default = "aardvark-cluster"
}

variable "elasticsearch_version" {
  type    = string
  default = "8.15.3"
}

# GitHub publishes no checksum for ElasticHQ's release archive: compute it once
# with `curl -sL <url> | sha512sum` and keep it in checksums.pkrvars.hcl.
variable "elastichq_sha512" {
  type = string
}

# AWS signs the CloudWatch agent package but publishes no checksum: verify the
# signature once, then pin its SHA-512 here.
variable "cloudwatch_agent_sha512" {
  type = string
}

# CIDR the build host connects from (SSH to the temporary instance).
variable "builder_cidr" {
  type    = string
  default = "10.0.0.0/8"
}

source "elasticsearch-ami" "node" {
  region        = var.region
  instance_type = "m6i.large"

  source_ami_filter {
    filters = {
      name                = "debian-12-cis-hardened-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
    }
    owners      = ["self"]
    most_recent = true
  }

  subnet_filter {
    filters = {
      "tag:Name" = "packer-build"
    }
    most_free = true
  }

  iam_instance_profile = "packer-elasticsearch-bake"

  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 30
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  temporary_key_pair_type               = "ed25519"
  temporary_security_group_source_cidrs = [var.builder_cidr]
  ssh_interface                         = "private_ip"
  ssh_username                          = "admin"
  shutdown_behavior                     = "terminate"
  self_terminate_after                  = "2h"

  ami_name        = "elasticsearch-${var.elasticsearch_version}-{{timestamp}}"
  ami_description = "Elasticsearch ${var.elasticsearch_version} node for ${var.cluster_name}"
  imds_support    = "v2.0"
  tags = {
    Cluster = var.cluster_name
  }
  snapshot_tags = {
    Cluster = var.cluster_name
  }
  ssm_parameter_name = "/elasticsearch/${var.cluster_name}/ami-id"

  policy_gate {
    enabled = true
    fail_on = "high"
  }
}

build {
  sources = ["source.elasticsearch-ami.node"]

  provisioner "elasticsearch-node" {
    elasticsearch {
      version = var.elasticsearch_version
    }

    plugin {
      name = "discovery-ec2"
    }

    elastichq {
      enabled = true
      version = "3.5.12"
      sha512  = var.elastichq_sha512
      port    = 5000
    }

    cloudwatch_agent {
      enabled   = true
      sha512    = var.cloudwatch_agent_sha512
      log_group = "/elasticsearch/${var.cluster_name}"
    }

    firewall {
      http_sources      = ["subnet"]
      transport_sources = ["subnet"]
      hq_sources        = ["subnet"]
      ssh_sources       = ["vpc"]
    }

    heap {
      percent = 50
    }

    cluster {
      name              = var.cluster_name
      discovery_tag_key = "es_cluster"
    }
  }
}
