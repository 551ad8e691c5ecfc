// Package spec is the contract between every stage: what an Elasticsearch node
// image is (Node), where its artifacts come from (Artifacts), and what a bake
// recorded about itself (Manifest). The provisioner validates it, esnode install
// bakes it, esnode boot and the auditor read it back from the manifest.
//
// Change the schema here and only here, and bump APIVersion when a change is
// not backwards compatible.
package spec
