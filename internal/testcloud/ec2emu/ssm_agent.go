package ec2emu

import (
	"context"
	"fmt"
	"time"
)

// Agent plays the SSM agent of one managed instance for Run Command: it runs an
// AWS-RunShellScript script as root until ctx ends (the document's executionTimeout, or
// CancelCommand). A BackendInstance that implements Agent (a real guest) is a managed
// instance with an online agent; instances without a guest get one from SetAgent.
type Agent interface {
	RunShellScript(ctx context.Context, script string) AgentResult
}

// AgentResult is what the agent reports for one script run.
type AgentResult struct {
	Stdout, Stderr []byte
	// ExitCode is the script's exit status (the invocation's ResponseCode).
	ExitCode int
	// Err is a failure to run the script at all (the guest is gone); the invocation fails.
	Err error
}

// Agent ping states (DescribeInstanceInformation's PingStatus, plus one emulator-only state).
const (
	// AgentOnline picks up commands as they are sent.
	AgentOnline = "Online"
	// AgentConnectionLost is an agent that stopped reporting (stopped service, broken
	// network): Run Command cannot deliver to it and the invocation ends Undeliverable.
	AgentConnectionLost = "ConnectionLost"
	// AgentStalled pings but never fetches its commands: invocations go Delayed and end
	// DeliveryTimedOut when the command's TimeoutSeconds pass (emulator-only state).
	AgentStalled = "Stalled"
)

// SimulatedAgent answers every script with a fixed result after Latency, without running
// anything: the stand-in for instances that have no guest (benchmarks of large fleets).
type SimulatedAgent struct {
	Stdout, Stderr string
	ExitCode       int
	Latency        time.Duration
	// Hang never finishes: the invocation ends TimedOut (executionTimeout) or Cancelled.
	Hang bool
}

// RunShellScript implements Agent.
func (a SimulatedAgent) RunShellScript(ctx context.Context, _ string) AgentResult {
	if a.Latency > 0 {
		t := time.NewTimer(a.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return AgentResult{ExitCode: -1, Err: ctx.Err()}
		}
	}
	if a.Hang {
		<-ctx.Done()
		return AgentResult{ExitCode: -1, Err: ctx.Err()}
	}
	return AgentResult{Stdout: []byte(a.Stdout), Stderr: []byte(a.Stderr), ExitCode: a.ExitCode}
}

// agentState is the emulator's record of an instance's SSM agent. Guarded by Server.mu.
type agentState struct {
	agent  Agent // nil: the backend instance is the agent
	status string
}

// SetAgent registers agent as the SSM agent of instance id (which must exist), online.
// A nil agent keeps the current one (the guest's, for backed instances).
func (s *Server) SetAgent(id string, agent Agent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.findInstance(id) == nil {
		return fmt.Errorf("SetAgent: no instance %s", id)
	}
	st := s.agents[id]
	if st == nil {
		st = &agentState{status: AgentOnline}
		s.agents[id] = st
	}
	if agent != nil {
		st.agent = agent
	}
	return nil
}

// SetAgentStatus changes the ping state of instance id's agent (AgentOnline,
// AgentConnectionLost, AgentStalled), as stopping the amazon-ssm-agent service would.
func (s *Server) SetAgentStatus(id, status string) error {
	switch status {
	case AgentOnline, AgentConnectionLost, AgentStalled:
	default:
		return fmt.Errorf("SetAgentStatus: status %q: use %s, %s or %s", status, AgentOnline, AgentConnectionLost, AgentStalled)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.findInstance(id)
	if in == nil {
		return fmt.Errorf("SetAgentStatus: no instance %s", id)
	}
	st := s.agents[id]
	if st == nil {
		if _, ok := in.be.(Agent); !ok {
			return fmt.Errorf("SetAgentStatus: instance %s has no SSM agent (no guest that runs scripts): SetAgent first", id)
		}
		st = &agentState{}
		s.agents[id] = st
	}
	st.status = status
	return nil
}

// findInstance looks an instance up in every region; callers hold s.mu.
func (s *Server) findInstance(id string) *instance {
	for _, r := range s.regions {
		if in := r.instances[id]; in != nil {
			return in
		}
	}
	return nil
}

// managed reports whether the instance is registered with Systems Manager (has an agent);
// callers hold s.mu.
func (s *Server) managed(in *instance) bool {
	if in.state == "terminated" || in.state == "shutting-down" {
		return false
	}
	if s.agents[in.id] != nil {
		return true
	}
	_, ok := in.be.(Agent)
	return ok
}

// agentFor is the agent that would receive a command now and its ping state; callers hold
// s.mu. A stopped or stopping instance's agent is not online.
func (s *Server) agentFor(in *instance) (Agent, string) {
	var a Agent
	status := AgentOnline
	if ba, ok := in.be.(Agent); ok {
		a = ba
	}
	if st := s.agents[in.id]; st != nil {
		if st.agent != nil {
			a = st.agent
		}
		status = st.status
	}
	if a == nil || in.state != "running" {
		return nil, AgentConnectionLost
	}
	return a, status
}
