// Package facts collects what an audit needs to know about an Elasticsearch
// node into one versioned JSON document (SchemaVersion): host, listening
// sockets and their processes, firewall rules, elasticsearch.yml flattened,
// effective heap from the files and from the running JVM, limits, sysctls,
// services, owners and modes, users, and drift from the bake manifest.
//
// Collect reads everything under Options.Root (a captured node or a mounted
// image; /proc included) and, when Live, also runs a few commands with
// timeouts. Failures become entries in Facts.Errors, never a crash. Each
// input format has a pure, fuzz-tested parser (FlattenYAML, ParseJVMOptions,
// ParseProcNetTCP, ParseIPTablesSave, ParseNFTJSON, ParseNFTText,
// ParseKeystore, ParseLimits, ParseCmdline, ParsePasswd, ParseUnit).
//
// README.md documents the schema field by field, with a sample document.
package facts
