// Package ec2emu is a stateful emulator of the EC2 API (plus SSM Parameter Store, Session Manager
// port forwarding, Run Command with a minimal S3 for its output, and STS GetCallerIdentity) for tests and demos. It speaks the wire protocols aws-sdk-go-v2 uses, so
// the SDK's real clients, waiters, paginators and retryer run against it unchanged:
//
//	srv := ec2emu.New(ec2emu.Options{})
//	defer srv.Close()
//	endpoint := srv.Start() // http://127.0.0.1:PORT
//	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(endpoint) })
//
// # Protocols
//
// EC2 and STS: POST form-encoded Query (Action=...&Version=2016-11-15 or 2011-06-15); EC2
// answers in EC2's XML shape and errors as <Response><Errors><Error><Code>... with the HTTP status
// AWS uses (400 client errors, 403 UnauthorizedOperation/AuthFailure, 503 RequestLimitExceeded,
// 500 InternalError, 412 DryRunOperation). SSM: JSON 1.1 with X-Amz-Target: AmazonSSM.<Action>.
// Every request must carry a SigV4 Authorization header; signatures are not verified.
//
// # Regions
//
// The region of a request is the one in its SigV4 credential scope
// (Credential=AKID/DATE/REGION/SERVICE/aws4_request), so one endpoint serves every region and
// a client configured for eu-west-1 sees only eu-west-1's resources. A request without a scope
// uses Options.DefaultRegion. Each region has its own default VPC, subnets, default security
// group, key pairs, instances, images, snapshots, volumes and parameters.
//
// # State machines
//
// Instances go pending → running, running → stopping → stopped, stopped → pending, and any →
// shutting-down → terminated; terminated instances stay visible for
// Options.TerminatedRetention. Images go pending → available (failed when a backend snapshot
// fails); snapshots pending → completed. A transitional state advances once it has been shown
// by Timing.Polls Describe answers and lasted Timing.Delay, and only after the backend work it
// waits for has returned. The defaults (Polls 1, Delay 0) make every waiter see one pending
// answer and then the final state, without wall-clock sleeps.
//
// # Backend
//
// Options.Backend (see Backend, BackendInstance, ImageReleaser) lets real guests back
// instances: RunInstances calls Launch with the allocated private IP, MAC, subnet/VPC CIDRs,
// tags, user data and the key pair's public key; Stop/Start/Terminate call the instance's
// methods; CreateImage calls Snapshot and stores the returned ref on the new image (and its root
// snapshot) so a later Launch from that image gets it as LaunchRequest.ImageRef. CopyImage keeps
// the ref. A guest that powers itself off is reported with Server.NotifyShutdown; a
// BackendInstance that implements TagUpdater gets tag changes (for IMDS tags). Backend calls
// for one instance run in API order, one at a time, outside the emulator's lock; WaitIdle
// waits for them. The subnet CIDRs (Options.VPCCIDR, Options.Subnets) should match the
// backend's bridge network so the allocated PrivateIP is usable by the guest.
//
// # Eventual consistency
//
// Options.EventualConsistency makes the first N calls that name a new instance or image by id
// answer InvalidInstanceID.NotFound / InvalidAMIID.NotFound, as AWS does right after
// RunInstances, CreateImage and CopyImage. A single call can also be made to fail that way
// with InjectFault.
//
// # Test hooks
//
// InjectFault/SetThrottle (also POST /_emu/faults, /_emu/throttle) fail or slow calls; Calls
// (GET /_emu/calls) is the call log; Leaks (GET /_emu/leaks) lists what a run left behind;
// AddImage (POST /_emu/images) seeds source AMIs; Instance and Image expose state for assertions.
//
// # Run Command and S3
//
// SendCommand (AWS-RunShellScript, by InstanceIds or Targets tag:K / tag-key / InstanceIds),
// GetCommandInvocation, ListCommandInvocations, ListCommands and CancelCommand, with the
// statuses of the Systems Manager User Guide's "Understanding command statuses"; see
// ssm_command.go. The emulator plays each managed instance's SSM agent: a BackendInstance that
// implements Agent (localcloud's guests run the script as root through nsenter), or an Agent
// given with SetAgent (SimulatedAgent for instances without a guest). SetAgentStatus (POST
// /_emu/agents) takes an agent offline (Undeliverable) or makes it stall (DeliveryTimedOut).
// Options.RunCommandTimeScale shortens the enforced timeouts for tests. Output goes to a
// minimal path-style S3 (s3.go) when OutputS3BucketName is given; CreateBucket (or POST
// /_emu/buckets) makes the bucket. Leaks reports commands still running and objects left.
//
// Known simplifications: no IAM (any instance profile is accepted), no real KMS (SecureString
// values are returned behind a stand-in "ciphertext" without WithDecryption), public DNS names
// are empty (clients connect by IP), public IPs without a backend come from 192.0.2.0/24.
package ec2emu
