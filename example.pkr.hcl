# The original bootstrap script's cluster, baked once instead of installed at
# every boot: Elasticsearch 8 with discovery-ec2, ElasticHQ and the CloudWatch
# agent on a CIS-hardened Debian base image in eu-west-2.
#
#   cp checksums.pkrvars.hcl.example checksums.pkrvars.hcl   # then pin the real sums
#   packer init example.pkr.hcl
#   packer build -var-file=checksums.pkrvars.hcl example.pkr.hcl

packer {
  required_plugins {
    elasticsearch = {
      version = "~> 0.1"
      source  = "github.com/esbake/elasticsearch"
    }
  }
}

variable "region" {
  type        = string
  default     = "eu-west-2"
  description = "The AWS region to build in; the AMI and its SSM parameter are created there."
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "The region must be an AWS region code such as \"eu-west-2\"."
  }
}

variable "cluster_name" {
  type        = string
  default     = "aardvark-cluster"
  description = "The Elasticsearch cluster the image is for: tags, the SSM parameter path and cluster.name."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", var.cluster_name))
    error_message = "The cluster name must be 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit."
  }
}

variable "elasticsearch_version" {
  type        = string
  default     = "8.15.3"
  description = "The Elasticsearch release to bake, MAJOR.MINOR.PATCH (6.8, 7.17, 8.x and 9.x are supported)."
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.elasticsearch_version))
    error_message = "The Elasticsearch version must look like 8.15.3 (MAJOR.MINOR.PATCH, no leading v)."
  }
}

variable "elastichq_sha512" {
  type        = string
  description = "SHA-512 (128 hex digits) of ElasticHQ's release archive. GitHub publishes none: compute it once with `curl -sL <url> | sha512sum` and keep it in checksums.pkrvars.hcl."
  validation {
    condition     = can(regex("^[0-9a-f]{128}$", var.elastichq_sha512))
    error_message = "The elastichq_sha512 must be a SHA-512 in lower-case hex (128 characters), as sha512sum prints it."
  }
}

variable "cloudwatch_agent_sha512" {
  type        = string
  description = "SHA-512 (128 hex digits) of the CloudWatch agent package. AWS signs it but publishes no checksum: verify the .sig once, then pin its sha512sum here."
  validation {
    condition     = can(regex("^[0-9a-f]{128}$", var.cloudwatch_agent_sha512))
    error_message = "The cloudwatch_agent_sha512 must be a SHA-512 in lower-case hex (128 characters), as sha512sum prints it."
  }
}

variable "builder_cidr" {
  type        = string
  default     = "10.0.0.0/8"
  description = "The CIDR the build host connects from: the temporary security group lets it reach the build instance's SSH port."
  validation {
    condition     = can(cidrhost(var.builder_cidr, 0))
    error_message = "The builder_cidr must be a CIDR block such as \"10.0.0.0/8\"."
  }
}

locals {
  # One timestamp per build, safe in an AMI name (Packer's timestamp() is
  # RFC 3339; the legacy {{timestamp}} is not needed).
  timestamp = formatdate("YYYYMMDDhhmmss", timestamp())
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

  ami_name        = "elasticsearch-${var.elasticsearch_version}-${local.timestamp}"
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

    # Nodes and clients span the VPC's AZs: a subnet is one AZ.
    firewall {
      http_sources      = ["vpc"]
      transport_sources = ["vpc"]
      hq_sources        = ["vpc"]
      ssh_sources       = ["vpc"]
    }

    heap {
      percent = 50
    }

    # master_nodes: the auto-scaling group's first cluster starts with 3
    # master-eligible nodes, which bootstrap it together through Parameter
    # Store (docs/esnode.md, "Cluster formation"; the nodes' instance profile
    # needs ssm:GetParameters and ssm:PutParameter on
    # /esnode/bootstrap/<cluster>/*). Nodes launched later only join.
    cluster {
      name              = var.cluster_name
      discovery_tag_key = "es_cluster"
      master_nodes      = 3
    }

    # Each cluster's TLS material and elastic password: SecureString
    # parameters, never in the image; esnode boot reads them with the
    # instance profile at every boot ({cluster} is the node's cluster name).
    # Elasticsearch 8 does not start without transport TLS (docs/esnode.md,
    # "Security": the commands that create them, and the IAM).
    security {
      transport_key         = "/es/{cluster}/transport/key"
      transport_certificate = "/es/{cluster}/transport/cert"
      transport_ca          = "/es/{cluster}/transport/ca"
      elastic_password      = "/es/{cluster}/elastic-password"
    }
  }

  # What was built, for the next stage of a pipeline: the AMI ids per region
  # (artifact_id "region:ami-...,..."), the build time and the source.
  post-processor "manifest" {
    output     = "packer-manifest.json"
    strip_path = true
  }
}
