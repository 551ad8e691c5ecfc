// Package audit is esaudit: it finds Elasticsearch nodes, collects their
// facts, checks them with the Rego policies and reports.
//
// Run goes: discover targets (EC2 by tag, with security group ingress; an
// inventory file; the local machine; captured facts files) → for each node,
// with at most Options.Parallel in flight and Options.NodeTimeout each:
// fetch the facts document (SSH, SSM Run Command, in-process, or file),
// parse it (facts.Parse refuses other schema versions), probe the node's
// ports and Elasticsearch API from the auditor's side, evaluate the
// policies with one prepared engine, apply waivers → compare with the
// previous stored run (history) → write the reports.
//
// A node that cannot be reached, times out, or returns junk (not JSON, a
// wrong schema version, output over the size limit) is a node error in the
// result, with a kind (unreachable, timeout, host-key, auth, sudo,
// esnode-missing, command-failed, output-too-large, invalid-output,
// agent-offline (SSM could not reach the node's agent), evaluation); the run goes on and every node is accounted for.
//
// # Exit codes
//
//	0  compliant: no violation at or above --fail-on (default high) and no
//	   node error (node errors are allowed with --allow-node-errors)
//	1  violations at or above --fail-on, or node errors without
//	   --allow-node-errors
//	2  usage or configuration error (bad flag, unreadable inventory, invalid
//	   waiver file, missing known_hosts, no credentials)
//	3  tool error: the policies failed to load, discovery failed or found no
//	   node, a report could not be written, or no node at all could be
//	   audited (every node in error)
//
// Node errors count as 1, not 3, because the rest of the fleet was audited:
// the run's answer ("is the fleet compliant?") is "not proven".
package audit
