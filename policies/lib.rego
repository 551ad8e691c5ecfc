# Shared helpers: every rule reads the input document (see README.md)
# through these, so a missing or null part of it means "not known" the same
# way everywhere, and the node spec's defaults apply to legacy nodes that
# were not baked with esnode.
package esbake.lib

# obj and arr turn null or a missing document into an empty one, so rules
# can iterate without guarding every level.
obj(x) := x if {
	is_object(x)
} else := {}

arr(x) := x if {
	is_array(x)
} else := []

# value is object.get that also treats an explicit null as missing.
value(o, path, default_value) := v if {
	v := object.get(o, path, null)
	v != null
} else := default_value

# positive is x when it is a number above zero, else the default (a spec
# field left at 0 means "use the default").
positive(x, default_value) := x if {
	is_number(x)
	x > 0
} else := default_value

# items turns a setting that may be a string, a comma-separated string or
# a list (Elasticsearch accepts all three for list settings) into a list of
# trimmed strings.
items(x) := [trim_space(s) |
	some v in list_of(x)
	is_string(v)
	some s in split(v, ",")
	trim_space(s) != ""
]

list_of(x) := x if {
	is_array(x)
} else := [x]

truthy(x) if x == true

truthy(x) if {
	is_string(x)
	lower(trim_space(x)) == "true"
}

falsy(x) if x == false

falsy(x) if {
	is_string(x)
	lower(trim_space(x)) == "false"
}

# ---- the parts of the input ----

facts := x if {
	x := input.facts
	is_object(x)
} else := {}

node := x if {
	x := input.node
	is_object(x)
} else := {}

probes := x if {
	x := input.probes
	is_object(x)
} else := {}

policy := x if {
	x := input.policy
	is_object(x)
} else := {}

es := x if {
	x := facts.elasticsearch
	is_object(x)
} else := {}

yml := x if {
	x := es.yml
	is_object(x)
} else := {}

heap := x if {
	x := es.heap
	is_object(x)
} else := {}

# process is the running Elasticsearch JVM; undefined when none ran.
process := p if {
	p := es.process
	is_object(p)
}

keystore := x if {
	x := es.keystore
	is_object(x)
} else := {}

keystore_entries := x if {
	x := keystore.entries
	is_array(x)
} else := []

host := x if {
	x := facts.host
	is_object(x)
} else := {}

boot := x if {
	x := host.boot
	is_object(x)
} else := {}

manifest := x if {
	x := facts.manifest
	is_object(x)
} else := {}

# spec is the node spec the image was baked from; {} on legacy nodes.
spec := x if {
	x := manifest.spec
	is_object(x)
} else := {}

has_spec if count(spec) > 0

listeners := x if {
	x := facts.listeners
	is_array(x)
} else := []

services := x if {
	x := facts.services
	is_array(x)
} else := []

paths := x if {
	x := facts.paths
	is_array(x)
} else := []

# service is the present systemd service of that name.
service(name) := s if {
	some s in services
	s.name == name
	s.present == true
}

# has_facts: a facts document came with the input.
has_facts if count(facts) > 0

# failed(name): the collector recorded an error for that fact or a fact
# containing it ("elasticsearch" covers "elasticsearch.yml"), so absence in
# the document means "unknown", not "not there".
failed(name) if {
	some e in errors
	is_object(e)
	covers_fact(object.get(e, "fact", ""), name)
}

errors := x if {
	x := facts.errors
	is_array(x)
} else := []

covers_fact(fact, name) if fact == name

covers_fact(fact, name) if startswith(name, concat("", [fact, "."]))

# ---- policy options (both default to true when absent) ----

expect_instance_profile if object.get(policy, "expect_instance_profile", null) in {true, null}

auto_scaled if object.get(policy, "auto_scaled", null) in {true, null}

# ---- what the spec says (spec defaults for nodes without a manifest) ----

http_port := p if {
	p := spec.elasticsearch.http_port
	is_number(p)
	p > 0
} else := 9200

transport_port := p if {
	p := spec.elasticsearch.transport_port
	is_number(p)
	p > 0
} else := 9300

hq_port := p if {
	p := spec.elastichq.port
	is_number(p)
	p > 0
} else := 5000

ssh_port := 22

# hq_enabled: the spec enables ElasticHQ, or, on a legacy node, an
# elastichq service is installed.
hq_enabled if spec.elastichq.enabled == true

hq_enabled if {
	not has_spec
	service("elastichq")
}

# allowed_ports are the TCP ports a node may listen on beyond loopback.
allowed_ports contains http_port

allowed_ports contains transport_port

allowed_ports contains ssh_port

allowed_ports contains hq_port if hq_enabled

# protected are the ports that must never be open beyond their sources;
# ElasticHQ's port counts even when HQ is off, since something else
# answering there is no better.
protected contains {"port": http_port, "kind": "http"}

protected contains {"port": transport_port, "kind": "transport"}

protected contains {"port": hq_port, "kind": "hq"}

default_sources := {"http": ["subnet"], "transport": ["subnet"], "hq": ["subnet"], "ssh": ["vpc"]}

spec_sources(kind) := s if {
	s := spec.firewall[sprintf("%s_sources", [kind])]
	s != null
	count(s) > 0
} else := default_sources[kind]

# subnet_cidr and vpc_cidrs come from what esnode boot recorded, else from
# the discovery (node.subnet_cidr, node.vpc_cidrs); undefined when unknown.
subnet_cidr := c if {
	c := boot.subnet_cidr
	not c in {"", null}
} else := c if {
	c := node.subnet_cidr
	not c in {"", null}
}

boot_vpc_cidrs := {c | some c in arr(object.get(boot, "vpc_cidrs", [])); c != ""} | {c |
	c := boot.vpc_cidr
	not c in {"", null}
}

node_vpc_cidrs := {c | some c in arr(object.get(node, "vpc_cidrs", [])); c != ""}

vpc_cidrs := boot_vpc_cidrs if {
	count(boot_vpc_cidrs) > 0
} else := node_vpc_cidrs

resolve("subnet") := {subnet_cidr}

resolve("vpc") := vpc_cidrs if count(vpc_cidrs) > 0

resolve(s) := {s} if not s in {"subnet", "vpc"}

# allowed_cidrs(kind) is every CIDR the spec lets reach that kind of port
# (http, transport, hq, ssh); undefined when subnet or vpc is unknown.
# esaudit's firewall model (audit/eval/firewall_model.go, allowedSources)
# reads the sources the same way: keep the two in step.
allowed_cidrs(kind) := cidrs if {
	srcs := spec_sources(kind)
	every s in srcs {
		resolve(s)
	}
	cidrs := {c | some s in srcs; some c in resolve(s)}
}

# world is a source that matches every address of its family.
world(src) if endswith(trim_space(src), "/0")

world(src) if trim_space(src) in {"0.0.0.0", "::", "any", "*"}

# within_allowed: src (an address or CIDR) lies inside the CIDRs the spec
# allows for kind. With the subnet unknown, every source but the world is
# given the benefit of the doubt.
within_allowed(kind, src) if {
	not world(src)
	some c in allowed_cidrs(kind)
	net.cidr_contains(c, src)
}

within_allowed(kind, src) if {
	not world(src)
	not allowed_cidrs(kind)
}

# ---- versions ----

es_version := v if {
	v := es.version
	not v in {"", null}
} else := v if {
	v := manifest.es_version
	not v in {"", null}
} else := value(spec, ["elasticsearch", "version"], "")

version_match := m[0] if {
	m := regex.find_all_string_submatch_n(`^v?(\d+)\.(\d+)`, es_version, 1)
	count(m) > 0
}

es_major := to_number(version_match[1])

es_minor := to_number(version_match[2])

# ---- cluster identity ----

tag_key := k if {
	k := spec.cluster.discovery_tag_key
	not k in {"", null}
} else := "es_cluster"

# tags: the discovery's view of the instance wins over what the node
# recorded itself.
tags := object.union_n([
	obj(object.get(boot, "tags", {})),
	obj(object.get(host, "tags", {})),
	obj(object.get(node, "tags", {})),
])

# tag is tags[tag_key]; a string in the discovery's tags (the usual case)
# wins without merging the three.
tag := t if {
	t := node.tags[tag_key]
	is_string(t)
} else := tags[tag_key]

# ---- sizes ----

mib := 1048576

gib := 1073741824

human_bytes(b) := sprintf("%d GiB", [b / gib]) if {
	b % gib == 0
} else := sprintf("%d MiB", [round(b / mib)])
